// `npm run sim -- --seed S --steps N [--minutes M] [--verbose]`: one simulator run.
// Without --seed a random seed is chosen and printed first, so any run can be repeated.

import { runSimulation, SimFailure, THROUGHPUT_PROFILE, type SimOptions, type SimProgress } from './simulator.js';

function argValue(name: string): string | undefined {
  const index = process.argv.indexOf(`--${name}`);
  if (index >= 0) return process.argv[index + 1];
  const inline = process.argv.find((a) => a.startsWith(`--${name}=`));
  return inline?.slice(name.length + 3);
}

/** `--progress`: a line every 30 s, with the extends since the last line (a long run's drift shows here). */
function printProgress(): (p: SimProgress) => void {
  let last = { wallMs: 0, step: 0, extendsAcknowledged: 0, outOfSpace: 0 };
  return (p) => {
    const seconds = (p.wallMs - last.wallMs) / 1000;
    const extendsNow = p.extendsAcknowledged - last.extendsAcknowledged;
    const perStep = extendsNow / Math.max(1, p.step - last.step);
    console.log(`  ${(p.wallMs / 1000).toFixed(0)} s step ${p.step}: ${p.extendsAcknowledged} extends (${(extendsNow / seconds).toFixed(0)}/s, ${perStep.toFixed(2)}/step, ${p.outOfSpace - last.outOfSpace} OUT_OF_SPACE); LVs ${p.thinLvs} (${p.heldLvs} held), hosts ${p.members} (${p.liveDaemons} daemons, ${p.startingDaemons} starting${p.oldestStart === undefined ? '' : `, ${p.oldestStart.host} for ${p.oldestStart.steps} steps${p.oldestStart.member ? '' : ' (not a member)'}`}), free ${p.freeExtents} extents, text ${p.textBytes} bytes`);
    last = p;
  };
}

async function main(): Promise<void> {
  const seed = Number(argValue('seed') ?? Math.floor(Math.random() * 0xffffffff));
  const steps = Number(argValue('steps') ?? 10_000);
  const minutes = argValue('minutes');
  const burst = argValue('burst');
  const waves = argValue('waves');
  const quantum = argValue('quantum');
  const peCount = argValue('pe-count');
  const verbose = process.argv.includes('--verbose');
  if (!Number.isSafeInteger(seed) || seed < 0 || !Number.isSafeInteger(steps) || steps < 1) {
    console.error('usage: npm run sim -- [--seed S] [--steps N] [--minutes M] [--burst B] [--waves W] [--quantum Q] [--pe-count N] [--throughput] [--claims] [--membership] [--workaround-stale-grant] [--progress] [--verbose]');
    process.exit(2);
  }
  console.log(`thinlv simulator: seed ${seed}, ${steps} steps`);
  const options: SimOptions = {
    seed,
    steps,
    ...(minutes === undefined ? {} : { maxWallMs: Number(minutes) * 60_000 }),
    // Throughput (simulator.ts): bursts of extends in waves, so that a commit carries hundreds of records.
    ...(process.argv.includes('--throughput') ? THROUGHPUT_PROFILE : {}),
    ...(burst === undefined ? {} : { extendBurst: Number(burst) }),
    ...(waves === undefined ? {} : { extendWaves: Number(waves) }),
    ...(quantum === undefined ? {} : { quantumExtents: Number(quantum) }),
    ...(peCount === undefined ? {} : { peCount: Number(peCount) }),
    ...(process.argv.includes('--claims') ? { oneOffExtendChance: 0.1, longClockJumpChance: 0.1, bigExtendChance: 0.07, quantumExtents: 16 } : {}),
    // Membership: host remove, declare-dead, second daemons, lvrename and deflates ten times as often.
    ...(process.argv.includes('--membership') ? { membershipRate: 10, deflateChance: 0.5 } : {}),
    ...(process.argv.includes('--workaround-stale-grant') ? { workaroundStaleGrant: true } : {}),
    ...(verbose ? { onTrace: (line: string) => console.log(line) } : {}),
    ...(process.argv.includes('--progress') ? { onProgress: printProgress() } : {}),
  };
  const cpuBefore = process.cpuUsage();
  try {
    const stats = await runSimulation(options);
    const seconds = stats.wallMs / 1000;
    // The machine may be shared: CPU seconds say what the run cost, whatever else ran.
    const cpu = process.cpuUsage(cpuBefore);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    const perMinute = (n: number) => Math.round((n / seconds) * 60);
    console.log(`seed ${stats.seed}: ${stats.steps} steps in ${seconds.toFixed(1)} s (simulated ${(stats.simulatedMs / 1000).toFixed(0)} s), trace ${stats.traceHash}`);
    console.log(`  extends acknowledged ${stats.extendsAcknowledged} (${(stats.extendsAcknowledged / seconds).toFixed(0)}/s, ${stats.extentsAcknowledged} extents); refused ${JSON.stringify(stats.extendsRefused)}`);
    console.log(`  crashes: host ${stats.hostCrashes}, master ${stats.masterCrashes} (${perMinute(stats.hostCrashes + stats.masterCrashes)}/min); host restarts ${stats.hostRestarts}`);
    console.log(`  fault points hit ${stats.faultPointsHit}, fired ${stats.faultsFired}; torn writes ${stats.tornWrites} (${perMinute(stats.tornWrites)}/min); bit flips ${stats.bitFlips}`);
    console.log(`  passes ${stats.passes}, commits ${stats.commits}, second-master passes ${stats.secondMasterPasses}; LVs created ${stats.lvsCreated}, removed ${stats.lvsRemoved}; effect points ${stats.effectPoints}`);
    console.log(`  lvm calls ${JSON.stringify(stats.lvmCalls)} (${stats.restoresAsGiven} restores parsed and printed back as given); metadata text ${stats.metadataTextBytes} bytes, at most ${stats.maxMetadataTextBytes}`);
    console.log(`  extends per commit ${(stats.extendsAcknowledged / Math.max(1, stats.commits)).toFixed(1)}, per step ${(stats.extendsAcknowledged / Math.max(1, stats.steps)).toFixed(2)}`);
    console.log(`  membership, rename, deflate ${JSON.stringify(stats.operations)}`);
    console.log(`  cpu ${cpuSeconds.toFixed(1)} s (${(stats.extendsAcknowledged / cpuSeconds).toFixed(0)} extends and ${((stats.hostCrashes + stats.masterCrashes) / cpuSeconds).toFixed(2)} crashes per cpu-second)`);
  } catch (error) {
    if (error instanceof SimFailure) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
}

await main();
