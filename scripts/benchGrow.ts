// npm run bench:grow
//
// Part 1: extends larger than the host's pool, on a loop-backed VG, with the master
// and a host daemon as their own processes (master interval 2 s, tail poll 50 ms;
// host lease 1 s): each extend grows an LV by 1 GiB while the pool holds one quantum
// (82 extents, 328 MiB: the default for a 64 GiB VG). First with the master's
// rate-sized grants off (`--rate-window-ms 0`), so every one waits for the master: the
// host journals its demand, the master's tail poll sees it and starts a pass, the pass
// grants the demand, the host reads its grants ring (the headline figure). Then, on a
// fresh VG, at the master's defaults, where grants grow with the host's rate and most
// extends stop waiting. Latency is request to durable reply, p50/p99 over SAMPLES
// extends. Beside it, in the same run: a stock `lvm lvextend -L +1G` on the same VG
// (what an operator or oVirt's master runs per extend), median of LVEXTEND_SAMPLES.
//
// Part 2 (scripts/benchStallFree.ts), on a VG of its own (8 TiB, sparse, with
// `thinlv format`'s default quantum and low-water for it) and daemons started the same
// way: the stall-free write rate. Simulated guests write sequentially at a set rate and,
// as tapdisk's hook does, ask for one 1 GiB chunk when within 1 GiB of their LV's end;
// the rate is raised until a writer would have to wait for its extend. Reported: the
// highest total rate with zero stalls over 60 s, for 1 writer and for 30 writers on
// one host (target: at least 5 GiB/s per host).
//
// Progress goes to stderr. Prints both tables, then one JSON line with both parts'
// fields. THINLV_BENCH_QUICK=1 shrinks both parts for a smoke run; THINLV_BENCH_PART=1
// runs part 1 only. The first SIGINT or
// SIGTERM stops the run and cleans up (VGs, loop devices, daemons).

import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { newRequestId, requestOnce } from '../src/host/socketServer.js';
import { commitBatch, readVgMetadata } from '../src/lvm/commitBatch.js';
import { createLvmRunner } from '../src/lvm/runLvm.js';
import { computeFreeExtents } from '../src/metadata/checkLayout.js';
import { createThinlvTestVg, type ThinlvTestVg } from '../test/fixtures/thinlvVg.js';
import { realLvmUnavailableReason } from '../test/fixtures/loopVg.js';
import { percentile, round1 } from './benchStats.js';
import { QUICK, measureStallFree, stallFreeJson, stallFreeTable } from './benchStallFree.js';

const CLI_PATH = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const GIB = 1024 ** 3;
const SAMPLES = QUICK ? 5 : 50;
const LVEXTEND_SAMPLES = QUICK ? 3 : 10;
const QUANTUM_EXTENTS = 82;
/** An extend slower than this waited for a master pass (a demand, a pass, a grant). */
const WAITED_FOR_MASTER_MS = 250;

const spawnCli = (args: readonly string[]) => execa(process.execPath, [CLI_PATH, ...args], { reject: false, stdin: 'ignore' });

async function waitForSocket(path: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const reply = existsSync(path) ? await requestOnce(path, { id: newRequestId(), op: 'status' }, 5000).catch(() => undefined) : undefined;
    if (reply?.ok) return;
    if (Date.now() > deadline) throw new Error(`host daemon not serving on ${path} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function timeBigExtends(socketPath: string, vgName: string, signal: AbortSignal): Promise<number[]> {
  const latenciesMs: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    signal.throwIfAborted();
    const started = performance.now();
    const reply = await requestOnce(socketPath, { id: newRequestId(), op: 'extend', vg: vgName, lv: `grow${i}`, sizeBytes: GIB }, 60_000);
    if (!reply.ok) throw new Error(`extend ${i} failed: ${reply.error.code} ${reply.error.message}`);
    latenciesMs.push(performance.now() - started);
  }
  return latenciesMs.sort((a, b) => a - b);
}

async function timeStockLvextend(vg: { device: string; vgName: string; deviceMapperAvailable: boolean }): Promise<number> {
  const lvm = createLvmRunner({ devices: [vg.device], deviceMapperAvailable: vg.deviceMapperAvailable });
  const timesMs: number[] = [];
  for (let i = 0; i < LVEXTEND_SAMPLES; i++) {
    const started = performance.now();
    await lvm.run('lvextend', ['-L', '+1G', `${vg.vgName}/stocklv`]);
    timesMs.push(performance.now() - started);
  }
  return percentile(timesMs.sort((a, b) => a - b), 0.5);
}

/**
 * Runs `run` with the master and a host daemon as their own processes at their default
 * settings, and stops both after it, whatever happens. A daemon that exits on its own
 * meanwhile fails the run (its requests would only time out).
 */
async function withDaemons<T>(t: ThinlvTestVg, hostName: string, run: (socketPath: string) => Promise<T>, masterArgs: readonly string[] = []): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'thinlv-bench-grow-'));
  const socketPath = join(dir, 's.sock');
  let stopping = false;
  const daemons: ReturnType<typeof spawnCli>[] = [];
  const exitedEarly = (name: string, daemon: ReturnType<typeof spawnCli>): Promise<never> =>
    daemon.then((result) => {
      if (stopping) return new Promise<never>(() => undefined);
      throw new Error(`the ${name} exited during the benchmark (exit ${result.exitCode}): ${result.stderr.slice(-2000)}`);
    });
  try {
    daemons.push(spawnCli(['master', t.vg.vgName, '--no-history', ...masterArgs, ...t.cliArgs()]));
    daemons.push(spawnCli(['host', 'run', t.vg.vgName, hostName, '--socket', socketPath, '--state-dir', join(dir, 'state'), ...t.cliArgs()]));
    const running = (async () => {
      await waitForSocket(socketPath, 60_000);
      return run(socketPath);
    })();
    return await Promise.race([running, exitedEarly('master', daemons[0]!), exitedEarly('host daemon', daemons[1]!)]);
  } finally {
    stopping = true;
    for (const daemon of daemons.reverse()) daemon.kill('SIGTERM');
    await Promise.all(daemons);
    rmSync(dir, { recursive: true, force: true });
  }
}

interface BigExtends {
  /** With rate-sized grants off: every extend is larger than the pool and waits for a pass. */
  readonly demandPathMs: number[];
  /** At the master's defaults: grants grow with the host's rate, so most stop waiting. */
  readonly defaultsMs: number[];
  readonly lvextendMedianMs: number;
}

/** Part 1: SAMPLES extends larger than the pool, twice (see BigExtends), then stock lvextend, each on a VG of its own. */
async function measureBigExtends(signal: AbortSignal): Promise<BigExtends> {
  const demandPath = await onGrowVg((t) => withDaemons(t, 'bench', (socketPath) => timeBigExtends(socketPath, t.vg.vgName, signal), ['--rate-window-ms', '0']));
  return onGrowVg((t) =>
    withDaemons(t, 'bench', async (socketPath) => ({
      demandPathMs: demandPath,
      defaultsMs: await timeBigExtends(socketPath, t.vg.vgName, signal),
      lvextendMedianMs: await timeStockLvextend(t.vg),
    })),
  );
}

/** Runs `run` on a fresh 128 GiB VG with one host, the default quantum of a 64 GiB VG, and SAMPLES thin LVs. */
async function onGrowVg<T>(run: (t: ThinlvTestVg) => Promise<T>): Promise<T> {
  const t = await createThinlvTestVg({ sizeBytes: 128 * GIB, hosts: ['bench'], thinLvCount: 0, quantumExtents: QUANTUM_EXTENTS, lowWaterExtents: QUANTUM_EXTENTS / 2 });
  try {
    await createGrowLvs(t);
    return await run(t);
  } finally {
    removeLvmArchives(t.vg.vgName);
    await t.destroy();
  }
}

/** SAMPLES thin LVs of one extent held by the host, and one stock LV, from the end of the PV. */
async function createGrowLvs(t: ThinlvTestVg): Promise<void> {
  const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
  const run = computeFreeExtents(vg).ranges().at(-1)!;
  await commitBatch(t.vg.lvm, vg, [
    ...Array.from({ length: SAMPLES }, (_, i) => ({
      kind: 'createLv' as const,
      name: `grow${i}`,
      ranges: [{ pv: run.pv, firstExtent: run.firstExtent + run.extentCount - 1 - i, extentCount: 1 }],
      activationSkip: true,
      tags: [`thinlv_virtual_bytes=${2 * GIB}`, 'thinlv_owner=bench'],
    })),
    { kind: 'createLv' as const, name: 'stocklv', ranges: [{ pv: run.pv, firstExtent: run.firstExtent, extentCount: 1 }] },
  ]);
}

/**
 * Aborts on the first SIGINT or SIGTERM, so that every VG, loop device and daemon is
 * cleaned up; a second one exits at once. The handlers stay installed (not `once`):
 * execa's exit hook re-raises a signal that finds no other listener, which would kill
 * the run before its cleanup.
 */
function abortOnSignals(): AbortSignal {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) process.exit(signal === 'SIGINT' ? 130 : 143);
    console.error(`bench:grow: ${signal}: stopping and cleaning up (send it again to exit at once)`);
    controller.abort(new Error(`interrupted by ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return controller.signal;
}

async function main(): Promise<void> {
  const skip = realLvmUnavailableReason();
  if (skip !== undefined) throw new Error(`bench:grow needs real LVM and loop devices: ${skip}`);
  const signal = abortOnSignals();
  console.error(`bench:grow part 1: ${SAMPLES} extends larger than the pool${QUICK ? ' (QUICK)' : ''}`);
  const bigExtends = await measureBigExtends(signal);
  const bigExtendFields = reportBigExtends(bigExtends);
  if (process.env['THINLV_BENCH_PART'] === '1') {
    console.log(JSON.stringify(bigExtendFields));
    return;
  }
  console.error('bench:grow part 2: stall-free write rate');
  const stallFree = await measureStallFree(withDaemons, signal);
  for (const line of stallFreeTable(stallFree)) console.log(line);
  console.log(JSON.stringify({ ...bigExtendFields, ...stallFreeJson(stallFree) }));
}

/** Removes the backup and archive files the stock lvextend wrote for this benchmark's VG, and only those. */
function removeLvmArchives(vgName: string): void {
  rmSync(join('/etc/lvm/backup', vgName), { force: true });
  if (!existsSync('/etc/lvm/archive')) return;
  for (const name of readdirSync('/etc/lvm/archive')) if (name.startsWith(`${vgName}_`)) rmSync(join('/etc/lvm/archive', name), { force: true });
}

/** Prints part 1's table and returns its fields of the JSON line. */
function reportBigExtends(measured: BigExtends): Record<string, unknown> {
  const stats = (latenciesMs: readonly number[]) => ({
    p50: round1(percentile(latenciesMs, 0.5)),
    p99: round1(percentile(latenciesMs, 0.99)),
    max: round1(latenciesMs.at(-1)!),
    waited: latenciesMs.filter((ms) => ms > WAITED_FOR_MASTER_MS).length,
    over500: latenciesMs.filter((ms) => ms > 500).length,
  });
  const demand = stats(measured.demandPathMs);
  const defaults = stats(measured.defaultsMs);
  console.log(`extends of 1 GiB, each on its own LV, one after another; pool quantum ${QUANTUM_EXTENTS} extents (master interval 2000 ms, tail poll 50 ms), ${SAMPLES} samples`);
  console.log(`  demand path        p50 ${demand.p50} ms   p99 ${demand.p99} ms   max ${demand.max} ms   (master --rate-window-ms 0: every extend is larger than the pool; target p99 < 500 ms)`);
  console.log(`  waited for master  ${demand.waited} of ${SAMPLES} (over ${WAITED_FOR_MASTER_MS} ms: its demand, a master pass, the grant); over 500 ms: ${demand.over500}`);
  console.log(`  master defaults    p50 ${defaults.p50} ms   p99 ${defaults.p99} ms   max ${defaults.max} ms   (grants follow the host's rate: ${defaults.waited} of ${SAMPLES} waited)`);
  console.log(`  stock lvextend     median ${round1(measured.lvextendMedianMs)} ms  (-L +1G on the same VG, as a master would run it per extend)`);
  console.log(`  oVirt, published   0.77 s min, 1.15 s mean, 1.39 s max per extend (not measured here)`);
  return {
    bigExtendP50Ms: demand.p50,
    bigExtendP99Ms: demand.p99,
    bigExtendMaxMs: demand.max,
    bigExtendWaitedCount: demand.waited,
    bigExtendOver500Count: demand.over500,
    defaultsExtendP50Ms: defaults.p50,
    defaultsExtendP99Ms: defaults.p99,
    defaultsWaitedCount: defaults.waited,
    stockLvextendMedianMs: round1(measured.lvextendMedianMs),
    samples: SAMPLES,
    quantumExtents: QUANTUM_EXTENTS,
  };
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
