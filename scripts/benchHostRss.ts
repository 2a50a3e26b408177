// npm run bench:host-rss [-- --lvs N --hosts N --segments N --rounds N --extends N --bundle LABEL=PATH ...]
//
// Issue 14's host daemon memory bound (peak RSS <= 100 MB at pool scale) in minutes
// instead of bench:scale's month: one sparse loop-backed VG holding LVS thin LVs of
// SEGMENTS interleaved one-extent segments each (segment k of LV i at k * LVS + i, so no
// two segments of an LV touch and the text has LVS x SEGMENTS segments, bench:scale's
// ~20,000 by default), held by HOSTS hosts in turn. Then host h01's daemon, from the
// bundle as a service runs it, and ROUNDS rounds of:
//   - EXTENDS one-extent extends of h01's LVs through its socket (journal records);
//   - a master pass (runPass, in this process): it replays them and commits, so the
//     metadata text on the PV changes;
//   - two extends of an LV that does not exist: each makes the daemon re-read metadata
//     once (hostRequests.ts looks an unknown LV up again) before it answers LV_NOT_FOUND.
//     The first reads the new text, unless the daemon took it in already (after the
//     pass's grant); the second finds the PVs' headers naming the text it holds and reads
//     no further (metadataRefresh.ts; builds before that read the report cache). These
//     are the reads the daemon makes every 30 s and on every claim, on demand.
// The daemon's peak RSS (VmHWM) is printed after start-up and after the rounds. What
// bounds it is the largest heap the daemon holds at once, which is during a metadata
// read: the text, the report built from it as it is parsed (diskMetadata.ts), beside the
// layout the allocator still holds.
//
// --bundle LABEL=PATH (repeatable) runs the same rounds against each CLI in turn on the
// same VG (say, a copy of the bundle before a change, and dist/bundle/thinlv.js), so
// before and after come from one run; the default is dist/bundle/thinlv.js alone.
// Each daemon runs with the environment its build's unit gives it (the Environment= lines
// of contrib/systemd/thinlv-host@.service in the tree the bundle was built in, less
// THINLV_*, which only fill the unit's command line): what is measured is what an operator
// runs. A bundle with no unit beside it runs with none, and the run says so.
// THINLV_BENCH_DAEMON_NODE_ARGS adds node options to the daemon (V8 flags, to try them);
// THINLV_BENCH_DAEMON_STDOUT names a file for the daemon's stdout (--trace-gc writes there);
// THINLV_BENCH_DAEMON_LOG_LEVEL=debug logs its start-up steps there, each timed (hostDaemon.ts).
//
// Prints a table, then one JSON line. The first SIGINT or SIGTERM stops the run and
// cleans up; only what this run created is touched (a thinlvtest_* VG on its own loop
// device, --devices on every lvm call, the daemon by its pid).

import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { TAG } from '../src/format/thinlvVg.js';
import { newRequestId, requestOnce } from '../src/host/socketServer.js';
import { commitBatch, readVgMetadata } from '../src/lvm/commitBatch.js';
import { printVgMetadata } from '../src/lvm/metadataText.js';
import { VG_CACHE_DIR } from '../src/lvm/vgReportCache.js';
import { computeFreeExtents } from '../src/metadata/checkLayout.js';
import { extentSizeBytes } from '../src/metadata/vgModel.js';
import { MasterSession, runPass } from '../src/master/replayPass.js';
import { realLvmUnavailableReason } from '../test/fixtures/loopVg.js';
import { createThinlvTestVg, type ThinlvTestVg } from '../test/fixtures/thinlvVg.js';
import { BUNDLE_PATH, peakRssMb, removeLockFiles, startDaemon, stopDaemon } from './benchDaemon.js';
import { percentile, round1 } from './benchStats.js';

const GIB = 1024 ** 3;
const EXTENT_BYTES = 4 * 1024 ** 2;
/**
 * Pools of 4 rounds' extends, given 4 more below 2 (src/pool/planRefill.ts): h01's serves every round
 * without asking the master, which here runs only between rounds.
 */
const quantumExtents = (options: Options): number => 4 * options.extendsPerRound;
const lowWaterExtents = (options: Options): number => 2 * options.extendsPerRound;
const DAEMON_START_TIMEOUT_MS = 120_000;
const REQUEST_TIMEOUT_MS = 120_000;
/** A name no LV has: extending it makes the daemon re-read metadata once. */
const MISSING_LV = 'no_such_lv';
const USAGE = 'usage: benchHostRss [--lvs N] [--hosts N] [--segments N] [--rounds N] [--extends N] [--bundle LABEL=PATH ...]';

interface Options {
  readonly lvs: number;
  readonly hosts: number;
  readonly segments: number;
  readonly rounds: number;
  readonly extendsPerRound: number;
  readonly bundles: readonly { readonly label: string; readonly path: string }[];
}

function parseOptions(argv: readonly string[]): Options {
  const numbers = new Map<string, number>();
  const bundles: { label: string; path: string }[] = [];
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i]!, argv[i + 1] ?? ''];
    if (name === '--bundle') {
      const at = value.indexOf('=');
      if (at < 1 || !existsSync(value.slice(at + 1))) throw new Error(`${USAGE}; --bundle wants LABEL=PATH of an existing file, got "${value}"`);
      bundles.push({ label: value.slice(0, at), path: value.slice(at + 1) });
      continue;
    }
    const number = Number(value);
    if (!['--lvs', '--hosts', '--segments', '--rounds', '--extends'].includes(name) || !Number.isSafeInteger(number) || number < 1) throw new Error(`${USAGE} (whole numbers >= 1); got "${name} ${value}"`);
    numbers.set(name, number);
  }
  return {
    lvs: numbers.get('--lvs') ?? 10_000,
    hosts: numbers.get('--hosts') ?? 64,
    segments: numbers.get('--segments') ?? 2,
    rounds: numbers.get('--rounds') ?? 3,
    extendsPerRound: numbers.get('--extends') ?? 100,
    bundles: bundles.length > 0 ? bundles : [{ label: 'dist', path: BUNDLE_PATH }],
  };
}

/** The host unit of the tree a bundle (TREE/dist/bundle/thinlv.js) was built in. */
const hostUnitOf = (bundlePath: string): string => join(dirname(bundlePath), '../../contrib/systemd/thinlv-host@.service');

/** The unit's Environment= variables a daemon reads (THINLV_* only fill ExecStart's words); none without a unit. */
function unitEnvironment(bundlePath: string): Record<string, string> {
  const unit = hostUnitOf(bundlePath);
  if (!existsSync(unit)) return {};
  const env: Record<string, string> = {};
  for (const line of readFileSync(unit, 'utf8').split('\n')) {
    const match = /^Environment=([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (match === null || match[1]!.startsWith('THINLV_')) continue;
    if (/[%$"'\\ ]/.test(match[2]!)) throw new Error(`${unit}: Environment=${match[1]}=${match[2]} needs quoting or expansion this bench does not do`);
    env[match[1]!] = match[2]!;
  }
  return env;
}

const log = (message: string): void => console.error(`bench:host-rss ${new Date().toISOString().slice(11, 19)} ${message}`);
const hostName = (i: number): string => `h${String(i + 1).padStart(2, '0')}`;
const lvName = (i: number): string => `vdi${String(i).padStart(5, '0')}`;

/** The VG's extents: the thin LVs' segments, every host's pool (rings included), and room for the passes' grants. */
function vgSizeBytes(options: Options): number {
  const extents = options.lvs * options.segments + options.hosts * quantumExtents(options) * 4;
  return Math.max(64, Math.ceil((extents * EXTENT_BYTES * 2) / GIB)) * GIB;
}

/** LVS thin LVs of SEGMENTS segments each, in one commit: segment k of LV i at k * LVS + i, held by host i mod HOSTS. */
async function fill(t: ThinlvTestVg, options: Options): Promise<void> {
  const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
  const { lvs, segments, hosts } = options;
  const run = computeFreeExtents(vg).ranges().find((r) => r.extentCount >= lvs * segments);
  if (run === undefined) throw new Error(`no free run of ${lvs * segments} extents`);
  await commitBatch(t.vg.lvm, vg, Array.from({ length: lvs }, (_, i) => ({
    kind: 'createLv' as const,
    name: lvName(i),
    ranges: Array.from({ length: segments }, (_, k) => ({ pv: run.pv, firstExtent: run.firstExtent + k * lvs + i, extentCount: 1 })),
    activationSkip: true,
    tags: [`${TAG.virtualBytes}${100 * GIB}`, `${TAG.owner}${hostName(i % hosts)}`],
  })));
}

async function pass(t: ThinlvTestVg, session: MasterSession): Promise<void> {
  for (let more = true; more; ) more = (await runPass(t.deps(), session, t.vg.vgName)).moreWaiting;
}

interface DaemonRun {
  readonly label: string;
  /** What the build's unit adds to the daemon's environment. */
  readonly unitEnvironment: Readonly<Record<string, string>>;
  readonly startMs: number;
  readonly rssAtStartMb: number;
  /** Peak RSS after each round. */
  readonly rssAfterRoundMb: readonly number[];
  readonly extendP50Ms: number;
  readonly refreshMissP50Ms: number;
  readonly refreshHitP50Ms: number;
}

async function request(socketPath: string, lv: string, extentBytes: number): Promise<{ ms: number; ok: boolean; code?: string }> {
  const at = performance.now();
  const reply = await requestOnce(socketPath, { id: newRequestId(), op: 'extend', lv, incrementBytes: extentBytes }, REQUEST_TIMEOUT_MS);
  return { ms: performance.now() - at, ok: reply.ok, ...(reply.ok ? {} : { code: reply.error.code }) };
}

/** One re-read of metadata by the daemon, through an extend of an LV that does not exist. */
async function refresh(socketPath: string, extentBytes: number): Promise<number> {
  const reply = await request(socketPath, MISSING_LV, extentBytes);
  if (reply.ok || reply.code !== 'LV_NOT_FOUND') throw new Error(`extend of ${MISSING_LV} answered ${reply.ok ? 'ok' : reply.code}, expected LV_NOT_FOUND`);
  return reply.ms;
}

async function runDaemon(t: ThinlvTestVg, options: Options, bundle: Options['bundles'][number], dir: string, running: { daemon?: ChildProcess }, signal: AbortSignal): Promise<DaemonRun> {
  const socketPath = join(dir, `${bundle.label}.sock`);
  const args = ['host', 'run', t.vg.vgName, hostName(0), '--socket', socketPath, '--state-dir', join(dir, `state-${bundle.label}`), '--log-level', process.env['THINLV_BENCH_DAEMON_LOG_LEVEL'] ?? 'error', ...t.cliArgs()];
  const nodeArgs = (process.env['THINLV_BENCH_DAEMON_NODE_ARGS'] ?? '').split(/\s+/).filter((a) => a !== '');
  const env = unitEnvironment(bundle.path);
  log(`  ${bundle.label}: environment from ${existsSync(hostUnitOf(bundle.path)) ? hostUnitOf(bundle.path) : 'no unit beside the bundle'}: ${JSON.stringify(env)}`);
  // Each daemon starts on a text it must parse, as after a commit: not on the report cache another run left.
  rmSync(join(VG_CACHE_DIR, `${t.vg.vgName}.json`), { force: true });
  const started = await startDaemon(args, socketPath, { bundlePath: bundle.path, nodeArgs, timeoutMs: DAEMON_START_TIMEOUT_MS, stdoutPath: process.env['THINLV_BENCH_DAEMON_STDOUT'], env });
  running.daemon = started.daemon;
  const pid = started.daemon.pid!;
  const rssAtStartMb = peakRssMb(pid);
  log(`  ${bundle.label}: serving after ${Math.round(started.startMs)} ms, peak RSS ${rssAtStartMb.toFixed(1)} MB`);
  const extentBytes = extentSizeBytes(await readVgMetadata(t.vg.lvm, t.vg.vgName));
  const mine = Array.from({ length: Math.ceil(options.lvs / options.hosts) }, (_, k) => lvName(k * options.hosts)).filter((_, k) => k * options.hosts < options.lvs);
  const session = new MasterSession();
  const extendMs: number[] = [];
  const missMs: number[] = [];
  const hitMs: number[] = [];
  const rssAfterRoundMb: number[] = [];
  try {
    for (let round = 0; round < options.rounds; round++) {
      for (let i = 0; i < options.extendsPerRound; i++) {
        signal.throwIfAborted();
        const reply = await request(socketPath, mine[(round * options.extendsPerRound + i) % mine.length]!, extentBytes);
        if (!reply.ok) throw new Error(`extend through ${bundle.label}'s daemon failed: ${reply.code}`);
        extendMs.push(reply.ms);
      }
      await pass(t, session);
      missMs.push(await refresh(socketPath, extentBytes));
      hitMs.push(await refresh(socketPath, extentBytes));
      rssAfterRoundMb.push(peakRssMb(pid));
      log(`  ${bundle.label}: round ${round + 1}: peak RSS ${rssAfterRoundMb.at(-1)!.toFixed(1)} MB (re-read ${Math.round(missMs.at(-1)!)} ms after the commit, ${Math.round(hitMs.at(-1)!)} ms unchanged)`);
    }
  } finally {
    await session.close();
    await stopDaemon(started.daemon);
    delete running.daemon;
  }
  const median = (xs: number[]): number => round1(percentile(xs.sort((a, b) => a - b), 0.5));
  return { label: bundle.label, unitEnvironment: env, startMs: round1(started.startMs), rssAtStartMb: round1(rssAtStartMb), rssAfterRoundMb: rssAfterRoundMb.map(round1), extendP50Ms: median(extendMs), refreshMissP50Ms: median(missMs), refreshHitP50Ms: median(hitMs) };
}

function abortOnSignals(): AbortSignal {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) process.exit(signal === 'SIGINT' ? 130 : 143);
    console.error(`bench:host-rss: ${signal}: stopping and cleaning up (send it again to exit at once)`);
    controller.abort(new Error(`interrupted by ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return controller.signal;
}

function printReport(options: Options, vg: { segments: number; metadataBytes: number }, runs: readonly DaemonRun[]): void {
  console.log(`\nbench:host-rss: ${options.lvs} thin LVs of ${options.segments} segments, ${options.hosts} hosts; ${vg.segments} segments, metadata text ${(vg.metadataBytes / 1e6).toFixed(2)} MB; ${options.rounds} rounds of ${options.extendsPerRound} extends, a pass and two re-reads`);
  for (const r of runs) {
    console.log(`  ${r.label.padEnd(12)} peak RSS ${r.rssAtStartMb.toFixed(1)} MB at start, ${r.rssAfterRoundMb.at(-1)!.toFixed(1)} MB after (rounds: ${r.rssAfterRoundMb.join(', ')}); start ${Math.round(r.startMs)} ms, extend p50 ${r.extendP50Ms} ms, re-read p50 ${Math.round(r.refreshMissP50Ms)} ms after a commit / ${Math.round(r.refreshHitP50Ms)} ms unchanged`);
  }
  console.log('  bound: the largest heap held at once, during a metadata re-read (text + the report built as it is parsed, beside the layout in use); target <= 100 MB');
  console.log(JSON.stringify({ lvs: options.lvs, hosts: options.hosts, segmentsPerLv: options.segments, segments: vg.segments, metadataBytes: vg.metadataBytes, rounds: options.rounds, extendsPerRound: options.extendsPerRound, daemonNodeArgs: process.env['THINLV_BENCH_DAEMON_NODE_ARGS'] ?? '', runs }));
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const reason = realLvmUnavailableReason();
  if (reason !== undefined) throw new Error(`bench:host-rss needs real LVM and loop devices: ${reason}`);
  for (const bundle of options.bundles) if (!existsSync(bundle.path)) throw new Error(`${bundle.path} is missing: run "npm run build" first ("npm run bench:host-rss" does)`);
  const signal = abortOnSignals();
  const hosts = Array.from({ length: options.hosts }, (_, i) => hostName(i));
  log(`VG of ${vgSizeBytes(options) / GIB} GiB, ${options.hosts} hosts`);
  const t = await createThinlvTestVg({ sizeBytes: vgSizeBytes(options), hosts, thinLvCount: 0, quantumExtents: quantumExtents(options), lowWaterExtents: lowWaterExtents(options) });
  const dir = mkdtempSync(join(tmpdir(), 'thinlv-bench-host-rss-'));
  const running: { daemon?: ChildProcess } = {};
  try {
    signal.throwIfAborted();
    log(`${options.lvs} thin LVs of ${options.segments} segments, one commit`);
    await fill(t, options);
    const metadata = await readVgMetadata(t.vg.lvm, t.vg.vgName);
    const vg = { segments: metadata.lvs.reduce((n, lv) => n + lv.segments.length, 0), metadataBytes: Buffer.byteLength(printVgMetadata(metadata)) };
    const runs: DaemonRun[] = [];
    for (const bundle of options.bundles) runs.push(await runDaemon(t, options, bundle, dir, running, signal));
    printReport(options, vg, runs);
  } finally {
    if (running.daemon !== undefined) await stopDaemon(running.daemon).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    log('cleaning up');
    await t.destroy();
    removeLockFiles(t.vg.vgName);
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
