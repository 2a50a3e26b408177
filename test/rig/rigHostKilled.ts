// Issue 15's host crash, on two rig guests sharing one LUN: a host killed in the middle of
// extends of an active thin LV under a writer, declared dead, and the LV read back on
// another host.
//
//   g1: VG, thinlv format, hosts hA hB, thinlv master (a 30 s interval, so that extends
//       stay unreplayed until the kill; claims poke it), host daemon hA
//   g2: host daemon hB; the thin LV activated there; a writer (guest/ackedWriter.ts)
//       writes a pattern with O_DIRECT|O_DSYNC and logs each acknowledged block to the
//       serial console; a loop extends the LV with `thinlv lvextend --live`, logging each
//       start and each acknowledged extend to the console
//   the harness kills g2's qemu (SIGKILL) after some extends were acknowledged, part-way
//   through the next one
//   g1: `thinlv host declare-dead VG hB --fenced`; metadata holds every acknowledged
//       extend (and every extent a logged write used); hA activates the LV, its table is
//       metadata's (I6), and it reads back every block the writer logged as written.
//
// The console file lives outside the guest, so what it says survives the kill: a line
// there was written after the write or extend it names returned.

import { readFileSync } from 'node:fs';
import { shellQuote, startRig, type RigConfig, type RigGuest } from './rigHarness.js';
import type { RigStepResult } from './rigSmoke.js';
import {
  COMMAND_TIMEOUT_MS, GUEST_DIST, MIB, RunLog, VG, activate, createThinlvVg, expectTableIsMetadata, expectVgClean, formatTable,
  liveTable, lunDevice, metadataSizeBytes, sleep, startHostDaemon, startMaster, tableBytes, waitForPool,
} from './rigSteps.js';

const LV = 'disk1';
const INITIAL_MIB = 8;
const VIRTUAL_MIB = 256;
const EXTEND_STEP_MIB = 4;
const EXTEND_COUNT = 14;
/** The kill lands in the extend after this many acknowledged ones. */
const ACKED_EXTENDS_BEFORE_KILL = 3;
const BLOCK_BYTES = 256 * 1024;
const MASTER_INTERVAL_MS = 30_000;
const CONSOLE_POLL_MS = 25;
const KILL_WAIT_TIMEOUT_MS = 300_000;

interface ConsoleProgress {
  /** The last block the writer logged as written, or -1. */
  readonly lastAckedBlock: number;
  /** Sizes (MiB) of the extends logged as acknowledged, in order. */
  readonly ackedExtendsMib: readonly number[];
  /** The target (MiB) of an extend logged as started and not (yet) acknowledged. */
  readonly inFlightMib: number | undefined;
  readonly failedExtends: number;
}

export async function runRigHostKilled(config: RigConfig = {}): Promise<RigStepResult> {
  const log = new RunLog();
  const seed = `hk${Date.now().toString(36)}`;
  const rig = await startRig({ ...config, guestCount: 2 });
  const [master, victim] = rig.guests as [RigGuest, RigGuest];
  try {
    log.note(`boot: ${master.name} ${master.lastBootMs} ms, ${victim.name} ${victim.lastBootMs} ms (booted together); seed ${seed}`);
    const lun = await lunDevice(rig.guests);
    await createThinlvVg(log, master, lun, ['hA', 'hB']);
    await startMaster(log, master, lun, MASTER_INTERVAL_MS);
    await startHostDaemon(log, master, lun, 'hA');
    await startHostDaemon(log, victim, lun, 'hB');
    await waitForPool(log, master, 'hA');
    await waitForPool(log, victim, 'hB');
    await log.step(master, `thinlv lvcreate ${LV} (thin, ${INITIAL_MIB} MiB allocated)`, `thinlv lvcreate ${VG} -n ${LV} -V ${VIRTUAL_MIB}m -L ${INITIAL_MIB}m --devices ${lun}`);
    await activate(log, victim, LV, lun, master);
    const before = await liveTable(victim, LV);
    log.expect(tableBytes(before) === INITIAL_MIB * MIB, `the LV is active on ${victim.name} (host hB) at its initial size`, formatTable(before));

    const progress = await writeExtendAndKill(log, victim, lun, seed);
    await afterTheKill(log, master, lun, seed, progress);
  } catch (error) {
    log.failures.push(`the run stopped: ${(error as Error).message}`);
  } finally {
    await log.collectLogs(rig.guests);
    await rig.close({ keepWorkDir: log.failures.length > 0 });
  }
  return log.result('host killed: a host SIGKILLed mid-extend under a writer, declared dead, its LV read back on another host');
}

/** Starts the writer and the extend loop on the victim, and kills it part-way through an extend. */
async function writeExtendAndKill(log: RunLog, victim: RigGuest, lun: string, seed: string): Promise<ConsoleProgress> {
  const mapper = `/dev/mapper/${VG}-${LV}`;
  const maxBlocks = (VIRTUAL_MIB * MIB) / BLOCK_BYTES;
  await log.step(victim, 'writer started (acks to /dev/ttyS0)', `setsid node ${GUEST_DIST}/test/rig/guest/ackedWriter.js write ${mapper} ${maxBlocks} ${BLOCK_BYTES} ${seed} /dev/ttyS0 > /tmp/writer.log 2>&1 < /dev/null &`);
  const targets = Array.from({ length: EXTEND_COUNT }, (_, index) => INITIAL_MIB + (index + 1) * EXTEND_STEP_MIB);
  const loop = [
    'i=0',
    `for target in ${targets.join(' ')}; do`,
    '  i=$((i+1))',
    '  echo "rig-extend-start $i $target!" > /dev/ttyS0',
    `  if thinlv lvextend -L \${target}m ${VG}/${LV} --live --devices ${lun} >> /tmp/extends.log 2>&1; then`,
    '    echo "rig-extend-ok $i $target!" > /dev/ttyS0',
    '  else',
    '    echo "rig-extend-fail $i $target!" > /dev/ttyS0',
    '  fi',
    'done',
  ].join('\n');
  await log.step(victim, `extend loop started (${EXTEND_STEP_MIB} MiB steps to ${targets[targets.length - 1]} MiB)`, `setsid sh -c ${shellQuote(loop)} > /dev/null 2>&1 < /dev/null &`);

  // Watch the console (outside the guest) for acknowledged extends, and time them.
  const seen: ExtendTimes = { startedMs: new Map(), ackedMs: new Map() };
  const deadline = Date.now() + KILL_WAIT_TIMEOUT_MS;
  let progress: ConsoleProgress;
  for (;;) {
    progress = readProgress(victim, seed, seen);
    if (progress.failedExtends > 0) throw new Error(`an extend failed on ${victim.name} before the kill (see /tmp/extends.log)`);
    if (progress.ackedExtendsMib.length >= ACKED_EXTENDS_BEFORE_KILL && progress.inFlightMib !== undefined) break;
    if (Date.now() > deadline) throw new Error(`${victim.name} did not acknowledge ${ACKED_EXTENDS_BEFORE_KILL} extends within ${KILL_WAIT_TIMEOUT_MS} ms (console: ${JSON.stringify(progress)})`);
    await sleep(CONSOLE_POLL_MS);
  }
  // Part-way through the extend in flight: a random share of how long acknowledged ones
  // took (node's start-up in the guest is most of it; the journal write and reload come last).
  const durations = [...seen.ackedMs].map(([index, ackedMs]) => ackedMs - (seen.startedMs.get(index) ?? ackedMs));
  const meanMs = durations.reduce((sum, ms) => sum + ms, 0) / Math.max(1, durations.length);
  const delayMs = Math.round(meanMs * (0.3 + 0.7 * Math.random()));
  await sleep(delayMs);
  const pid = victim.pid;
  await victim.kill();
  log.note(`${victim.name}: qemu pid ${pid} SIGKILLed ${delayMs} ms after the extend to ${progress.inFlightMib} MiB was seen starting (acknowledged extends took ${durations.map((ms) => Math.round(ms)).join(', ')} ms as seen on the console)`);
  // The console file is complete now: read it once more.
  progress = readProgress(victim, seed);
  log.note(`console at the kill: extends acknowledged to ${progress.ackedExtendsMib.join(', ')} MiB, in flight ${progress.inFlightMib ?? 'none'} MiB; the writer logged blocks 0..${progress.lastAckedBlock} (${((progress.lastAckedBlock + 1) * BLOCK_BYTES) / MIB} MiB)`);
  log.expect(progress.lastAckedBlock + 1 > (INITIAL_MIB * MIB) / BLOCK_BYTES, 'the writer wrote past the initial size before the kill (the extends were in use)', `${progress.lastAckedBlock + 1} blocks`);
  return progress;
}

/** When the harness first saw each extend's start and acknowledgement on the console, by extend number. */
interface ExtendTimes {
  readonly startedMs: Map<number, number>;
  readonly ackedMs: Map<number, number>;
}

/** What the console says, and (when given `seen`) the times its extend lines first appeared. */
function readProgress(victim: RigGuest, seed: string, seen?: ExtendTimes): ConsoleProgress {
  let text = '';
  try {
    text = readFileSync(victim.consolePath, 'latin1');
  } catch {
    // No console yet.
  }
  let lastAckedBlock = -1;
  for (const match of text.matchAll(/rig-ack (\S+) (\d+) (\d+)!/g)) {
    // Both numbers must agree: a line garbled by kernel output on the same console is ignored.
    if (match[1] === seed && match[2] === match[3]) lastAckedBlock = Math.max(lastAckedBlock, Number(match[2]));
  }
  const acked: number[] = [];
  let inFlightMib: number | undefined;
  let failedExtends = 0;
  for (const match of text.matchAll(/rig-extend-(start|ok|fail) (\d+) (\d+)!/g)) {
    const [kind, index, target] = [match[1], Number(match[2]), Number(match[3])];
    if (kind === 'start') {
      inFlightMib = target;
      if (seen !== undefined && !seen.startedMs.has(index)) seen.startedMs.set(index, Date.now());
    } else if (kind === 'ok') {
      acked.push(target);
      inFlightMib = undefined;
      if (seen !== undefined && !seen.ackedMs.has(index)) seen.ackedMs.set(index, Date.now());
    } else {
      failedExtends += 1;
      inFlightMib = undefined;
    }
  }
  return { lastAckedBlock, ackedExtendsMib: acked, inFlightMib, failedExtends };
}

/** Declares the killed host dead on the master's guest, then reads the LV back on host A. */
async function afterTheKill(log: RunLog, master: RigGuest, lun: string, seed: string, progress: ConsoleProgress): Promise<void> {
  const ackedBytes = Math.max(INITIAL_MIB, ...progress.ackedExtendsMib) * MIB;
  const writtenBytes = (progress.lastAckedBlock + 1) * BLOCK_BYTES;
  const atKill = await metadataSizeBytes(master, LV, lun);
  log.note(`metadata right after the kill: ${atKill / MIB} MiB (acknowledged ${ackedBytes / MIB} MiB: ${(ackedBytes - Math.min(atKill, ackedBytes)) / MIB} MiB unreplayed)`);

  const declared = await log.step(master, 'thinlv host declare-dead hB --fenced', `thinlv host declare-dead ${VG} hB --fenced --devices ${lun} --json`);
  log.note(`declare-dead: ${declared.trim().replaceAll('\n', ' ').slice(0, 400)}`);
  const sizeBytes = await metadataSizeBytes(master, LV, lun);
  const allowed = [ackedBytes, ...(progress.inFlightMib === undefined ? [] : [progress.inFlightMib * MIB])];
  log.expect(allowed.includes(sizeBytes), 'I3: metadata holds every acknowledged extend, and at most the one in flight', `metadata ${sizeBytes / MIB} MiB; acknowledged ${ackedBytes / MIB} MiB; in flight ${progress.inFlightMib ?? 'none'} MiB`);
  log.expect(writtenBytes <= sizeBytes, 'every block the writer logged lies inside the LV as metadata has it', `${writtenBytes / MIB} MiB written, ${sizeBytes / MIB} MiB in metadata`);
  const lvs = (await master.run(`lvm lvs --readonly --devices ${lun} --noheadings -o lv_name,lv_tags ${VG}`)).stdout;
  log.expect(!/thinlv_hB_/.test(lvs), "hB's rings and pool are gone from metadata", lvs.trim().replace(/\s+/g, ' ').slice(0, 400));
  log.expect(!/thinlv_owner=hB/.test(lvs), "hB's hold on the LV is cleared");

  await activate(log, master, LV, lun, master);
  const live = await expectTableIsMetadata(log, master, lun, LV, 'I6 on host A: the live table equals the table built from metadata');
  log.expect(tableBytes(live) === sizeBytes, 'host A maps the whole LV as metadata has it', `${tableBytes(live) / MIB} MiB`);
  const blockCount = progress.lastAckedBlock + 1;
  const verify = await master.exec(`node ${GUEST_DIST}/test/rig/guest/ackedWriter.js verify /dev/mapper/${VG}-${LV} ${blockCount} ${BLOCK_BYTES} ${seed}`, { timeoutMs: COMMAND_TIMEOUT_MS });
  log.expect(verify.exitCode === 0 && /"badCount":0/.test(verify.stdout), `host A reads back every block the writer logged before the kill (${blockCount} blocks, ${writtenBytes / MIB} MiB)`, `${verify.stdout.trim()} ${verify.stderr.trim().slice(0, 500)}`);
  await log.step(master, 'thinlv lvchange -an on host A', `thinlv lvchange -an ${VG}/${LV} --devices ${lun}`);
  await expectVgClean(log, master, lun);
}
