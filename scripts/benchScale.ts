// npm run bench:scale [-- --lvs N --hosts N --days N --size-gib N --metadata-mib N --seed N --pass-every-days N]
//
// Issue 14: thinlv at the scale of a large pool. One sparse loop-backed VG (by default
// about 16 TiB of 4 MiB extents, 4 million extents), formatted with --expected-lvs, with
// 64 hosts and 10,000 thin LVs, then a simulated month of growth:
//   - LV i belongs to host i mod hosts; FAST_PERMILLE of LVs are fast (FAST_EXTENTS every
//     round), IDLE_PERMILLE idle (never grow), the rest slow (SLOW_EXTENTS in a round with
//     probability SLOW_CHANCE); ROUNDS_PER_DAY rounds a day;
//   - in each round every host runs its extends at once (so allocations from one pool
//     interleave, and share group-committed journal writes), through the real
//     HostAllocator over the host's real journal ring (scripts/scaleHosts.ts);
//   - the master (the real runPass, a daemon's MasterSession keeping its journal readers)
//     replays once per simulated day (--pass-every-days), and before a round whenever a
//     host's pool could not serve it; hosts take in grants and metadata after each pass as the daemon does.
// The LVs are created in batches of CREATE_BATCH through commitBatch (what `thinlv
// lvcreate` commits, many at a time), hosts with addHost (`thinlv host add`).
//
// Then it measures: segments per thin LV (median, p99, max), metadata text size and
// metadata area use; master pass time per 1,000 replayed records (over the month) and
// for one pass replaying REPLAY_RECORDS records (1-extent extends spread over hosts and
// LVs), against one plain vgcfgrestore of the same VG (the floor of any commit); an idle
// pass with every host (the daemon's session, and a fresh one as `thinlv master --once`
// has), with the time spent in ring I/O; and as whole processes: one stock `lvm lvs` and
// `lvm vgs`, `thinlv lvs` and `thinlv free` (median of RUNS after one untimed run, or one
// timed run when the untimed one took over SLOW_MS: on a fragmented VG each takes minutes), the
// host daemon's start-up (process start to serving) and its peak RSS after EXTEND_SAMPLES
// extends through its socket.
//
// Prints a table, then one JSON line. Progress goes to stderr. The first SIGINT or SIGTERM
// stops the run and cleans up (daemon, VG, loop device, sparse file, lock files); only
// what this run created is touched (VG thinlvscale_<pid>_<random>, --devices on every lvm
// call). THINLV_BENCH_PROFILE=DIR writes a CPU profile of the timed replay pass there.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chooseExtents } from '../src/extent/chooseExtents.js';
import { ExtentSet } from '../src/extent/extentSet.js';
import { noFaults } from '../src/faults.js';
import { TAG, readThinlvVg } from '../src/format/thinlvVg.js';
import { newRequestId, requestOnce } from '../src/host/socketServer.js';
import { commitBatch, readVgMetadata } from '../src/lvm/commitBatch.js';
import { readVgReport } from '../src/lvm/readVgReport.js';
import { createLvmRunner, type LvmRunner } from '../src/lvm/runLvm.js';
import { createLogger } from '../src/log.js';
import type { MetadataChange } from '../src/metadata/applyChanges.js';
import { computeFreeExtents } from '../src/metadata/checkLayout.js';
import { extentSizeBytes, type VgMetadata } from '../src/metadata/vgModel.js';
import { formatVg } from '../src/master/formatVg.js';
import { addHost } from '../src/master/hostMembership.js';
import { MasterSession, runPass, type MasterDeps, type PassResult } from '../src/master/replayPass.js';
import { fileRegionOpener, type RegionOpener } from '../src/rings/ringRegions.js';
import { observedRegions } from '../test/fixtures/observedRegions.js';
import { createLoopVg, realLvmUnavailableReason, TEST_LVM_CONFIG, type LoopVg } from '../test/fixtures/loopVg.js';
import { BUNDLE_PATH, peakRssMb, removeLockFiles, startDaemon, stopDaemon } from './benchDaemon.js';
import { percentile, round1 } from './benchStats.js';
import { ScaleHost } from './scaleHosts.js';
import { seededRandom as random } from '../test/fixtures/seededRandom.js';

const GIB = 1024 ** 3;
const TIB = 1024 * GIB;
/** ext4 holds files of at most 16 TiB less one block: the full-scale PV is 16 TiB less 1 GiB. */
const FULL_SIZE_BYTES = 16 * TIB - GIB;
const FULL_LVS = 10_000;
const FAST_PERMILLE = 20;
const IDLE_PERMILLE = 300;
const FAST_EXTENTS = 24;
const SLOW_EXTENTS = 8;
const SLOW_CHANCE = 0.1;
const ROUNDS_PER_DAY = 6;
const CREATE_BATCH = 1000;
const VIRTUAL_BYTES = 100 * GIB;
const REPLAY_RECORDS = 10_000;
const RUNS = 3;
const EXTEND_SAMPLES = 200;
const IDLE_PASSES = 3;
const COMMAND_TIMEOUT_MS = 300_000;
const DAEMON_START_TIMEOUT_MS = 120_000;
/** lvm on metadata of this size takes seconds; the runner's default bound is for small VGs. */
const LVM_TIMEOUT_MS = 600_000;

interface Options {
  readonly lvs: number;
  readonly hosts: number;
  readonly days: number;
  readonly sizeBytes: number;
  readonly metadataMiB: number;
  readonly seed: number;
  /** The master replays every this many simulated days (and whenever a pool runs short). */
  readonly passEveryDays: number;
}

function parseOptions(argv: readonly string[]): Options {
  const values = new Map<string, number>();
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]!;
    const value = Number(argv[i + 1]);
    if (!['--lvs', '--hosts', '--days', '--size-gib', '--metadata-mib', '--seed', '--pass-every-days'].includes(name) || !Number.isSafeInteger(value) || value < 1) {
      throw new Error(`usage: benchScale [--lvs N] [--hosts N] [--days N] [--size-gib N] [--metadata-mib N] [--seed N] [--pass-every-days N] (whole numbers >= 1); got "${name} ${argv[i + 1] ?? ''}"`);
    }
    values.set(name, value);
  }
  const lvs = values.get('--lvs') ?? FULL_LVS;
  // A smaller run keeps the full run's space per LV, so pools and growth keep their proportions.
  const sizeBytes = values.has('--size-gib') ? values.get('--size-gib')! * GIB : Math.max(64 * GIB, Math.floor((FULL_SIZE_BYTES * Math.min(lvs, FULL_LVS)) / FULL_LVS / GIB) * GIB);
  if (sizeBytes > FULL_SIZE_BYTES) throw new Error(`--size-gib at most ${FULL_SIZE_BYTES / GIB} (ext4's largest file)`);
  return { lvs, hosts: values.get('--hosts') ?? 64, days: values.get('--days') ?? 30, sizeBytes, metadataMiB: values.get('--metadata-mib') ?? 128, seed: values.get('--seed') ?? 14, passEveryDays: values.get('--pass-every-days') ?? 1 };
}


const log = (message: string): void => console.error(`bench:scale ${new Date().toISOString().slice(11, 19)} ${message}`);

/**
 * Ring I/O of every region opened through it: bytes, calls, and wall time with any of it in
 * flight (the master reads journals in parallel, so a sum of call times would count the
 * same milliseconds several times).
 */
interface IoCount {
  ms: number;
  bytes: number;
  calls: number;
  inFlight: number;
  busySinceMs: number;
}

function countingRegions(inner: RegionOpener, io: IoCount): RegionOpener {
  return observedRegions(inner, async (call, run) => {
    if (io.inFlight++ === 0) io.busySinceMs = performance.now();
    try {
      return await run();
    } finally {
      if (--io.inFlight === 0) io.ms += performance.now() - io.busySinceMs;
      io.bytes += call.bytes;
      io.calls += 1;
    }
  });
}

interface PassSample {
  readonly ms: number;
  readonly records: number;
  readonly ioMs: number;
}

class Bench {
  readonly io: IoCount = { ms: 0, bytes: 0, calls: 0, inFlight: 0, busySinceMs: 0 };
  readonly regions: RegionOpener;
  readonly deps: MasterDeps;
  /** The master daemon's session: journal readers kept between passes. */
  readonly session = new MasterSession({ keepJournalsOpen: true, intervalMs: 2000 });
  readonly monthPasses: PassSample[] = [];
  hosts: ScaleHost[] = [];
  hostNames: string[] = [];
  lvNames: string[] = [];
  /** LV index -> host index. */
  lvHost: number[] = [];
  lvClass: ('fast' | 'slow' | 'idle')[] = [];

  constructor(
    readonly vg: LoopVg,
    readonly lvm: LvmRunner,
    readonly options: Options,
    readonly signal: AbortSignal,
  ) {
    this.regions = countingRegions(fileRegionOpener(), this.io);
    this.deps = {
      lvm,
      regions: this.regions,
      log: createLogger('silent'),
      faults: noFaults,
      nowMs: () => Date.now(),
      sleepMs: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    };
  }

  get vgName(): string {
    return this.vg.vgName;
  }

  /** One master pass (more while journals hold more than a pass takes); hosts then take in grants and metadata. */
  async pass(session = this.session): Promise<PassSample> {
    let ms = 0;
    let records = 0;
    const ioBefore = this.io.ms;
    for (let more = true; more; ) {
      const started = performance.now();
      const result: PassResult = await runPass(this.deps, session, this.vgName);
      ms += performance.now() - started;
      records += result.replayedRecordCount;
      more = result.moreWaiting;
    }
    const sample = { ms, records, ioMs: this.io.ms - ioBefore };
    if (session === this.session && this.hosts.length > 0) {
      const committed = session.lastPass?.metadata ?? (await readVgMetadata(this.lvm, this.vgName));
      const thinlv = readThinlvVg(committed);
      for (const host of this.hosts) await host.afterPass(committed, thinlv.hosts.get(host.host)!.appliedSeq);
    }
    return sample;
  }

  async build(): Promise<void> {
    const { lvs, hosts, seed } = this.options;
    log(`format ${this.vgName} (--expected-lvs ${lvs})`);
    const formatted = await formatVg(this.lvm, this.vgName, { expectedLvCount: lvs });
    log(`  settings: quantum ${formatted.settings.quantumExtents} extents, low-water ${formatted.settings.lowWaterExtents}, reserve ${formatted.settings.reservePermille}‰`);
    this.hostNames = Array.from({ length: hosts }, (_, i) => `h${String(i + 1).padStart(2, '0')}`);
    for (const [i, host] of this.hostNames.entries()) {
      this.signal.throwIfAborted();
      await addHost(this.deps, this.vgName, host);
      if ((i + 1) % 16 === 0 || i + 1 === hosts) log(`  ${i + 1} of ${hosts} hosts added`);
    }
    const rng = random(seed);
    this.lvNames = Array.from({ length: lvs }, (_, i) => `vdi${String(i).padStart(5, '0')}`);
    this.lvHost = this.lvNames.map((_, i) => i % hosts);
    this.lvClass = this.lvNames.map(() => {
      const r = rng() * 1000;
      return r < FAST_PERMILLE ? 'fast' : r < FAST_PERMILLE + IDLE_PERMILLE ? 'idle' : 'slow';
    });
    for (let first = 0; first < lvs; first += CREATE_BATCH) {
      this.signal.throwIfAborted();
      const vg = await readVgMetadata(this.lvm, this.vgName);
      let free = computeFreeExtents(vg);
      const changes: MetadataChange[] = [];
      for (let i = first; i < Math.min(lvs, first + CREATE_BATCH); i++) {
        // As createThinLv places a new LV's one extent.
        const chosen = chooseExtents(free, [], 1);
        if (!chosen.ok) throw new Error('VG full while creating thin LVs');
        free = free.difference(ExtentSet.fromRanges(chosen.ranges));
        changes.push({
          kind: 'createLv',
          name: this.lvNames[i]!,
          ranges: chosen.ranges,
          activationSkip: true,
          tags: [`${TAG.virtualBytes}${VIRTUAL_BYTES}`, `${TAG.owner}${this.hostNames[this.lvHost[i]!]!}`],
        });
      }
      await commitBatch(this.lvm, vg, changes);
      log(`  ${Math.min(lvs, first + CREATE_BATCH)} of ${lvs} thin LVs created`);
    }
    log('first master pass (grants every pool)');
    await this.pass();
    const vg = await readVgMetadata(this.lvm, this.vgName);
    for (const host of this.hostNames) this.hosts.push(await ScaleHost.open(this.regions, vg, host));
    // Hosts opened after the pass that granted them: read the grants now.
    const thinlv = readThinlvVg(vg);
    for (const host of this.hosts) await host.afterPass(vg, thinlv.hosts.get(host.host)!.appliedSeq);
  }

  /** The extends of one round: [lv index, extents], in the order the hosts' clients send them. */
  roundExtends(rng: () => number): [number, number][] {
    const extends_: [number, number][] = [];
    for (let i = 0; i < this.lvNames.length; i++) {
      const kind = this.lvClass[i];
      if (kind === 'fast') extends_.push([i, FAST_EXTENTS]);
      else if (kind === 'slow' && rng() < SLOW_CHANCE) extends_.push([i, SLOW_EXTENTS]);
    }
    // Clients of one host do not take turns in LV order.
    for (let i = extends_.length - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      [extends_[i], extends_[j]] = [extends_[j]!, extends_[i]!];
    }
    return extends_;
  }

  /** Runs `extends_` with every host's extends in flight at once. */
  async runExtends(extends_: readonly [number, number][]): Promise<void> {
    const extentBytes = extentSizeBytes(await this.metadataNow());
    // A pool that cannot serve the round gets a pass first, as a demand would start one.
    const need = new Map<number, number>();
    for (const [lv, extents] of extends_) need.set(this.lvHost[lv]!, (need.get(this.lvHost[lv]!) ?? 0) + extents);
    if ([...need].some(([host, extents]) => this.hosts[host]!.poolExtentCount < extents)) {
      this.monthPasses.push(await this.pass());
      const short = [...need].filter(([host, extents]) => this.hosts[host]!.poolExtentCount < extents);
      if (short.length > 0) throw new Error(`after a pass, ${short.length} host(s) still lack extents for a round (VG too full for this growth profile?)`);
    }
    await Promise.all(extends_.map(([lv, extents]) => this.hosts[this.lvHost[lv]!]!.allocator.extendBy(this.lvNames[lv]!, extents * extentBytes)));
  }

  private cachedMetadata: VgMetadata | undefined;
  private async metadataNow(): Promise<VgMetadata> {
    this.cachedMetadata ??= await readVgMetadata(this.lvm, this.vgName);
    return this.cachedMetadata;
  }

  async month(): Promise<{ extendCount: number; extentCount: number }> {
    const rng = random(this.options.seed + 1);
    let extendCount = 0;
    let extentCount = 0;
    for (let day = 1; day <= this.options.days; day++) {
      for (let round = 0; round < ROUNDS_PER_DAY; round++) {
        this.signal.throwIfAborted();
        const extends_ = this.roundExtends(rng);
        await this.runExtends(extends_);
        extendCount += extends_.length;
        extentCount += extends_.reduce((sum, [, n]) => sum + n, 0);
      }
      if (day % this.options.passEveryDays !== 0 && day !== this.options.days) continue;
      const sample = await this.pass();
      this.monthPasses.push(sample);
      const committed = this.session.lastPass?.metadata;
      const stats = committed === undefined ? undefined : segmentStats(committed);
      const segments = stats === undefined ? '' : `; ${stats.allSegments} segments in the VG, per thin LV median ${stats.median} p99 ${stats.p99} max ${stats.max}`;
      log(`  day ${day}/${this.options.days}: ${extendCount} extends so far; pass replayed ${sample.records} records in ${Math.round(sample.ms)} ms${segments}`);
    }
    return { extendCount, extentCount };
  }

  /** REPLAY_RECORDS extends of one extent, spread over hosts and growing LVs, then ONE timed pass. */
  async replayPass(): Promise<PassSample & { passes: number }> {
    const growing = this.lvNames.map((_, i) => i).filter((i) => this.lvClass[i] !== 'idle');
    const extends_: [number, number][] = Array.from({ length: REPLAY_RECORDS }, (_, k) => [growing[(k * 7919) % growing.length]!, 1]);
    // A pool too small for its share (a small run) gets passes meanwhile: they replay part of the records, and count.
    const passesBefore = this.monthPasses.length;
    // Extends of one LV queue on its lock: run them in waves of distinct LVs so every one is its own record.
    for (let first = 0; first < extends_.length; first += growing.length) await this.runExtends(extends_.slice(first, first + growing.length));
    const passes = [...this.monthPasses.splice(passesBefore), await profiled('replay-pass', () => this.pass())];
    return { ms: passes.reduce((n, p) => n + p.ms, 0), records: passes.reduce((n, p) => n + p.records, 0), ioMs: passes.reduce((n, p) => n + p.ioMs, 0), passes: passes.length };
  }

  async closeHosts(): Promise<void> {
    for (const host of this.hosts.splice(0)) await host.close();
  }
}

/**
 * THINLV_BENCH_PROFILE=DIR: a CPU profile of `work` (this process only: lvm's own time shows
 * as idle) written to DIR/NAME.cpuprofile, for Chrome's devtools or any .cpuprofile reader.
 */
async function profiled<T>(name: string, work: () => Promise<T>): Promise<T> {
  const dir = process.env['THINLV_BENCH_PROFILE'];
  if (dir === undefined || dir === '') return work();
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  try {
    return await work();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
    log(`CPU profile written to ${join(dir, `${name}.cpuprofile`)}`);
  }
}

// ---- whole processes ----

function timeProcess(file: string, args: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-2000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(performance.now() - started);
      else reject(new Error(`${file} ${args.join(' ')} failed (exit ${String(code ?? signal)}): ${stderr.trim()}`));
    });
  });
}

/** Commands that failed (a thinlv command's own lvm time limit, say): their figure is NaN and the table says why. */
const failures: string[] = [];

/**
 * Median of RUNS timed runs after one untimed one; of one timed run when the untimed one
 * took over SLOW_MS; NaN when the command fails (noted in `failures`).
 */
async function medianMs(file: string, args: readonly string[]): Promise<number> {
  try {
    return await medianOf(() => timeProcess(file, args));
  } catch (error) {
    failures.push((error as Error).message.slice(0, 400));
    return Number.NaN;
  }
}

/** A run slower than this is timed once (after the untimed one): on a fragmented VG one lvm call takes minutes. */
const SLOW_MS = 5_000;

async function medianOf(timeOnce: () => Promise<number>): Promise<number> {
  const warmUpMs = await timeOnce();
  const samples: number[] = [];
  for (let i = 0; i < (warmUpMs > SLOW_MS ? 1 : RUNS); i++) samples.push(await timeOnce());
  return percentile(samples.sort((a, b) => a - b), 0.5);
}

interface DaemonFigures {
  readonly startMs: number;
  readonly startShortLeaseMs: number;
  readonly rssAfterStartMb: number;
  readonly rssMb: number;
  readonly extendP50Ms: number;
}

/** Host h01's daemon from the bundle: start-up at the default lease interval, peak RSS after EXTEND_SAMPLES extends, start-up with the shortest lease interval. */
async function measureDaemon(bench: Bench, afterMonth: VgMetadata, dir: string, signal: AbortSignal, running: { daemon?: ChildProcess }): Promise<DaemonFigures> {
  const vg = bench.vg;
  const host = bench.hostNames[0]!;
  const cli = ['--devices', vg.device, '--lvm-config', TEST_LVM_CONFIG, '--log-level', 'error'];
  const socketPath = join(dir, 'h.sock');
  const daemonArgs = (stateDir: string, extra: readonly string[]) => ['host', 'run', vg.vgName, host, '--socket', socketPath, '--state-dir', join(dir, stateDir), ...extra, ...cli];
  let started = await startDaemon(daemonArgs('state1', []), socketPath, { timeoutMs: DAEMON_START_TIMEOUT_MS });
  running.daemon = started.daemon;
  const startMs = started.startMs;
  const rssAfterStartMb = peakRssMb(started.daemon.pid!);
  const extendMs: number[] = [];
  const extentBytes = extentSizeBytes(afterMonth);
  const mine = bench.lvNames.filter((_, i) => bench.lvHost[i] === 0 && bench.lvClass[i] !== 'idle');
  for (let i = 0; i < EXTEND_SAMPLES; i++) {
    signal.throwIfAborted();
    const lv = mine[i % mine.length]!;
    const at = performance.now();
    const reply = await requestOnce(socketPath, { id: newRequestId(), op: 'extend', lv, incrementBytes: extentBytes }, 60_000);
    if (!reply.ok) throw new Error(`daemon extend of ${lv} failed: ${reply.error.code} ${reply.error.message}`);
    extendMs.push(performance.now() - at);
  }
  const rssMb = peakRssMb(started.daemon.pid!);
  await stopDaemon(started.daemon);
  // A free lease is claimed in about 0.2 s, a held one after 4x the renewal interval (1 s by default):
  // started again with the shortest interval, to show what the rest costs either way.
  started = await startDaemon(daemonArgs('state2', ['--lease-interval-ms', '100']), socketPath, { timeoutMs: DAEMON_START_TIMEOUT_MS });
  running.daemon = started.daemon;
  const startShortLeaseMs = started.startMs;
  await stopDaemon(started.daemon);
  delete running.daemon;
  return { startMs, startShortLeaseMs, rssAfterStartMb, rssMb, extendP50Ms: percentile(extendMs.sort((a, b) => a - b), 0.5) };
}

// ---- report ----

function segmentStats(vg: VgMetadata): { median: number; p99: number; max: number; total: number; thinLvs: number; poolSegments: number; allSegments: number } {
  const thinlv = readThinlvVg(vg);
  const counts = vg.lvs.filter((lv) => thinlv.thinLvs.has(lv.name)).map((lv) => lv.segments.length).sort((a, b) => a - b);
  const poolSegments = [...thinlv.hosts.values()].reduce((n, h) => n + (h.freeLv?.segments.length ?? 0), 0);
  const allSegments = vg.lvs.reduce((n, lv) => n + lv.segments.length, 0);
  return { median: percentile(counts, 0.5), p99: percentile(counts, 0.99), max: counts.at(-1) ?? 0, total: counts.reduce((a, b) => a + b, 0), thinLvs: counts.length, poolSegments, allSegments };
}

function abortOnSignals(): AbortSignal {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) process.exit(signal === 'SIGINT' ? 130 : 143);
    console.error(`bench:scale: ${signal}: stopping and cleaning up (send it again to exit at once)`);
    controller.abort(new Error(`interrupted by ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return controller.signal;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const reason = realLvmUnavailableReason();
  if (reason !== undefined) throw new Error(`bench:scale needs real LVM and loop devices: ${reason}`);
  if (!existsSync(BUNDLE_PATH)) throw new Error(`${BUNDLE_PATH} is missing: run "npm run build" first ("npm run bench:scale" does)`);
  const signal = abortOnSignals();
  const runStarted = performance.now();
  log(`${options.lvs} thin LVs, ${options.hosts} hosts, ${options.days} days, VG ${(options.sizeBytes / GIB).toFixed(0)} GiB, metadata area ${options.metadataMiB} MiB, a pass every ${options.passEveryDays} day(s), seed ${options.seed}`);
  const vg = await createLoopVg({ sizeBytes: options.sizeBytes, metadataSizeMiB: options.metadataMiB, namePrefix: 'thinlvscale' });
  const runner = createLvmRunner({ devices: [vg.device], deviceMapperAvailable: vg.deviceMapperAvailable, extraConfig: TEST_LVM_CONFIG, defaultTimeoutMs: LVM_TIMEOUT_MS });
  // Ctrl-C cancels an lvm call in flight (on this run's own VG, which is removed next): one may take minutes.
  // The runner's devices too: with them the master and hosts read the PVs directly, as they do in service.
  const lvm: LvmRunner = { ...runner, run: (command, args, callOptions = {}) => runner.run(command, args, { signal, ...callOptions }) };
  const dir = mkdtempSync(join(tmpdir(), 'thinlv-bench-scale-'));
  const bench = new Bench(vg, lvm, options, signal);
  let daemon: ChildProcess | undefined;
  try {
    const buildStarted = performance.now();
    await bench.build();
    const lvmOptions = ['--devices', vg.device, ...(vg.deviceMapperAvailable ? [] : ['--driverloaded', 'n'])];
    const stockLvsBeforeMs = await medianMs('lvm', ['lvs', vg.vgName, ...lvmOptions]);
    log(`pool built in ${Math.round((performance.now() - buildStarted) / 1000)} s (stock lvs ${Math.round(stockLvsBeforeMs)} ms); a month of growth`);
    const monthStarted = performance.now();
    const month = await bench.month();
    const monthS = (performance.now() - monthStarted) / 1000;
    log(`month done in ${Math.round(monthS)} s: ${month.extendCount} extends, ${month.extentCount} extents`);

    const afterMonth = await readVgMetadata(lvm, vg.vgName);
    const segments = segmentStats(afterMonth);
    const backupPath = join(dir, 'vg.backup');
    await lvm.run('vgcfgbackup', ['-f', backupPath, vg.vgName]);
    const metadataBytes = statSync(backupPath).size;
    const report = await readVgReport(lvm, vg.vgName);

    log(`one pass replaying ${REPLAY_RECORDS} records`);
    const replay = await bench.replayPass();
    log(`replayed ${replay.records} records in ${Math.round(replay.ms)} ms (${replay.passes} pass(es))`);

    log('idle passes');
    const idle: PassSample[] = [];
    for (let i = 0; i < IDLE_PASSES; i++) {
      idle.push(await bench.pass());
      if (idle[0]!.ms > SLOW_MS) break;
    }
    const idleFresh = await bench.pass(new MasterSession());
    const idleMedian = [...idle].sort((a, b) => a.ms - b.ms)[Math.floor(idle.length / 2)]!;
    await bench.closeHosts();

    log('one plain vgcfgrestore');
    await lvm.run('vgcfgbackup', ['-f', backupPath, vg.vgName]);
    const oneRestoreMs = await medianOf(async () => {
      const started = performance.now();
      await lvm.run('vgcfgrestore', ['--yes', '-f', backupPath, vg.vgName]);
      return performance.now() - started;
    });

    log('stock lvs, vgs; thinlv lvs, free');
    const stockLvsMs = await medianMs('lvm', ['lvs', vg.vgName, ...lvmOptions]);
    const stockVgsMs = await medianMs('lvm', ['vgs', vg.vgName, ...lvmOptions]);
    const thinlvLvsMs = await medianMs(process.execPath, [BUNDLE_PATH, 'lvs', vg.vgName, '--devices', vg.device]);
    const thinlvFreeMs = await medianMs(process.execPath, [BUNDLE_PATH, 'free', vg.vgName, '--devices', vg.device, '--lvm-config', TEST_LVM_CONFIG]);

    log('host daemon start-up and RSS');
    const running: { daemon?: ChildProcess } = {};
    const daemonFigures = await measureDaemon(bench, afterMonth, dir, signal, running).catch((error: unknown): DaemonFigures => {
      failures.push(`host daemon: ${(error as Error).message.slice(0, 400)}`);
      return { startMs: Number.NaN, startShortLeaseMs: Number.NaN, rssAfterStartMb: Number.NaN, rssMb: Number.NaN, extendP50Ms: Number.NaN };
    });
    daemon = running.daemon;

    printReport({ options, stockLvsBeforeMs, month, monthS, segments, metadataBytes, report, replay, idleMedian, idleFresh, oneRestoreMs, stockLvsMs, stockVgsMs, thinlvLvsMs, thinlvFreeMs, daemonFigures, monthPasses: bench.monthPasses, totalS: (performance.now() - runStarted) / 1000 });
  } finally {
    if (daemon !== undefined) await stopDaemon(daemon).catch(() => undefined);
    await bench.closeHosts().catch(() => undefined);
    await bench.session.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    log('cleaning up (vgremove of a large VG takes a while)');
    await vg.destroy();
    removeLockFiles(vg.vgName);
  }
}

interface Figures {
  readonly options: Options;
  readonly month: { extendCount: number; extentCount: number };
  readonly monthS: number;
  readonly segments: ReturnType<typeof segmentStats>;
  readonly metadataBytes: number;
  readonly report: { metadataAreaSizeBytes: number; metadataAreaFreeBytes: number; extentCount: number };
  readonly replay: PassSample & { passes: number };
  readonly stockLvsBeforeMs: number;
  readonly idleMedian: PassSample;
  readonly idleFresh: PassSample;
  readonly oneRestoreMs: number;
  readonly stockLvsMs: number;
  readonly stockVgsMs: number;
  readonly thinlvLvsMs: number;
  readonly thinlvFreeMs: number;
  readonly daemonFigures: DaemonFigures;
  readonly monthPasses: readonly PassSample[];
  readonly totalS: number;
}

function printReport(f: Figures): void {
  const monthRecords = f.monthPasses.reduce((n, p) => n + p.records, 0);
  const monthPassMs = f.monthPasses.reduce((n, p) => n + p.ms, 0);
  const perThousandMonth = monthRecords === 0 ? null : (monthPassMs / monthRecords) * 1000;
  const perThousandReplay = f.replay.records === 0 ? null : (f.replay.ms / f.replay.records) * 1000;
  // The passes that replayed the REPLAY_RECORDS records (one, unless a small run's pools ran short meanwhile).
  const replay10000Ms = f.replay.ms;
  // lvm reports as free what one more copy of the text may still take: half the area, less the text.
  const mdaUsedBytes = f.report.metadataAreaSizeBytes / 2 - f.report.metadataAreaFreeBytes;
  const d = f.daemonFigures;
  const ratio = (a: number, b: number): number => Math.round((a / b) * 100) / 100;
  const rows: [string, string, string, string][] = [
    ['segments per thin LV', `median ${f.segments.median}, p99 ${f.segments.p99}, max ${f.segments.max}`, 'median <= 4', 'extents chosen per extend from a pool shared by the host\'s LVs (chooseExtents, allocator)'],
    ['metadata text', `${(f.metadataBytes / 1e6).toFixed(2)} MB (${f.segments.allSegments} segments: ${f.segments.total} of thin LVs, ${f.segments.poolSegments} of host pools)`, '', 'LVs x (about 450 B + 150 B per segment)'],
    ['metadata area use', `${(mdaUsedBytes / 1e6).toFixed(2)} MB of the ${(f.report.metadataAreaSizeBytes / 2e6).toFixed(1)} MB one copy may use (area ${(f.report.metadataAreaSizeBytes / 1e6).toFixed(1)} MB)`, '', 'text size; the area is fixed at pvcreate'],
    ['stock lvm lvs / vgs', `${Math.round(f.stockLvsMs)} / ${Math.round(f.stockVgsMs)} ms (lvs before the month: ${Math.round(f.stockLvsBeforeMs)} ms)`, '', 'lvm parses the whole text'],
    ['thinlv lvs', `${Math.round(f.thinlvLvsMs)} ms = ${ratio(f.thinlvLvsMs, f.stockLvsMs)}x stock lvs`, '<= 2x', 'stock lvs + metadata from the PVs + node start-up'],
    ['thinlv free', `${Math.round(f.thinlvFreeMs)} ms = ${ratio(f.thinlvFreeMs, f.stockLvsMs)}x stock lvs`, '', 'metadata from the PVs + rings read'],
    ['master pass, month', `${f.monthPasses.length} passes, ${monthRecords} records, ${perThousandMonth === null ? '-' : Math.round(perThousandMonth)} ms per 1,000 records`, '', 'one commit per pass: one vgcfgrestore, the text read from the PVs'],
    [`${f.replay.passes === 1 ? 'one pass' : `${f.replay.passes} passes`} of ${f.replay.records} records`, `${Math.round(f.replay.ms)} ms (${perThousandReplay === null ? '-' : Math.round(perThousandReplay)} ms per 1,000; ring I/O ${Math.round(f.replay.ioMs)} ms)`, '<= 2x one restore', 'the commit: one vgcfgrestore; the rings read; planning'],
    ['one plain vgcfgrestore', `${Math.round(f.oneRestoreMs)} ms; pass = ${ratio(replay10000Ms, f.oneRestoreMs)}x`, '', 'lvm parses, checks and writes the text (twice: both copies)'],
    [`idle pass, ${f.options.hosts} hosts (daemon)`, `${Math.round(f.idleMedian.ms)} ms, ring I/O ${Math.round(f.idleMedian.ioMs)} ms`, 'I/O < 50 ms', 'one block per kept journal, read in parallel'],
    [`idle pass, ${f.options.hosts} hosts (fresh session)`, `${Math.round(f.idleFresh.ms)} ms, ring I/O ${Math.round(f.idleFresh.ioMs)} ms`, '', 'opening each reader reads a window before its consumer'],
    ['host daemon start-up', `${Math.round(d.startMs)} ms (default lease); ${Math.round(d.startShortLeaseMs)} ms with --lease-interval-ms 100`, '< 2 s', 'metadata read + lease (a quick claim when free) + journal writer survey'],
    ['host daemon peak RSS', `${d.rssMb.toFixed(1)} MB after ${EXTEND_SAMPLES} extends (${d.rssAfterStartMb.toFixed(1)} MB at start); extend p50 ${round1(d.extendP50Ms)} ms`, '<= 100 MB', 'the parsed VG report (every LV\'s segments)'],
  ];
  console.log(`\nbench:scale: ${f.segments.thinLvs} thin LVs, ${f.options.hosts} hosts, VG of ${f.report.extentCount} extents; ${f.options.days} days: ${f.month.extendCount} extends, ${f.month.extentCount} extents (month simulated in ${Math.round(f.monthS)} s, whole run ${Math.round(f.totalS)} s)`);
  const w = [0, 1, 2].map((c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const r of rows) console.log(`  ${r[0].padEnd(w[0]!)}  ${r[1].padEnd(w[1]!)}  ${r[2].padEnd(w[2]!)}  ${r[3]}`);
  for (const failure of failures) console.log(`  FAILED: ${failure}`);
  console.log(JSON.stringify({
    lvs: f.segments.thinLvs,
    hosts: f.options.hosts,
    days: f.options.days,
    extentCount: f.report.extentCount,
    extendCount: f.month.extendCount,
    segmentsPerLvMedian: f.segments.median,
    segmentsPerLvP99: f.segments.p99,
    segmentsPerLvMax: f.segments.max,
    metadataBytes: f.metadataBytes,
    segmentsTotal: f.segments.allSegments,
    poolSegments: f.segments.poolSegments,
    metadataAreaBytes: f.report.metadataAreaSizeBytes,
    metadataAreaUsedBytes: mdaUsedBytes,
    stockLvsMs: round1(f.stockLvsMs),
    stockVgsMs: round1(f.stockVgsMs),
    stockLvsBeforeMonthMs: round1(f.stockLvsBeforeMs),
    passMsPer1000Records: perThousandMonth === null ? null : round1(perThousandMonth),
    replay10000Ms: round1(replay10000Ms),
    replayRecords: f.replay.records,
    replayPasses: f.replay.passes,
    oneRestoreMs: round1(f.oneRestoreMs),
    replayVsOneRestore: ratio(replay10000Ms, f.oneRestoreMs),
    idlePass64Ms: round1(f.idleMedian.ms),
    idlePass64IoMs: round1(f.idleMedian.ioMs),
    idlePassFreshMs: round1(f.idleFresh.ms),
    idlePassFreshIoMs: round1(f.idleFresh.ioMs),
    hostRssMb: round1(d.rssMb),
    hostStartMs: round1(d.startMs),
    hostStartShortLeaseMs: round1(d.startShortLeaseMs),
    thinlvLvsMs: round1(f.thinlvLvsMs),
    thinlvFreeMs: round1(f.thinlvFreeMs),
    thinlvLvsVsStock: ratio(f.thinlvLvsMs, f.stockLvsMs),
    thinlvFreeVsStock: ratio(f.thinlvFreeMs, f.stockLvsMs),
    seed: f.options.seed,
    passEveryDays: f.options.passEveryDays,
    failures,
  }));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
