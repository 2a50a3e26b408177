// npm run bench:cli
//
// What a thinlv command costs as a whole process (start-up included), side by side with
// what it replaces, in one run on the same VG: storage managers run lvm commands as
// processes, dozens per VDI operation, and tapdisk's resize hook runs `thinlv lvextend`
// once per grow. Each command runs RUNS times (THINLV_BENCH_RUNS, default 10), the
// commands taking turns so that a noisy machine weighs on all of them alike; the table
// gives the median of each. Commands:
//   - `node -e 0`: the floor, what any Node program pays to start;
//   - `thinlv --version`: start-up and option parsing, no work;
//   - `thinlv inspect VG` and stock `lvm lvs VG`;
//   - `thinlv lvs VG`, when the lvm-compatible lvs is there (src/lvmcompat/dispatch.ts);
//   - `thinlv lvextend -l +1 VG/LV --live` through a running host daemon, against stock
//     `lvm lvextend -l +1` of an ordinary LV of the same VG (lvm's own configuration,
//     so it backs up and archives metadata as an operator's lvextend does; this VG's
//     backup and archive files are removed afterwards);
//   - the same thinlv commands run from tsc's output (dist/src/cli/main.js) instead of
//     the bundle (dist/bundle/thinlv.js, the bin), to show what bundling adds.
// Twice: on a small VG (one host, a few thin LVs) and on one filled like a pool in
// service (FILL_HOSTS hosts, FILL_LVS thin LVs of FILL_SEGMENTS interleaved segments).
// Stock lvm gets the options thinlv's own lvm calls have here: `--devices` (the loop
// device) and, where the kernel has no device-mapper, `--driverloaded n`.
//
// Prints a table per VG, then one JSON line. Its top-level fields are the filled VG's:
// nodeFloorMs, versionMs, inspectMs, lvsMs (null without the lvm-compatible lvs),
// stockLvsMs, lvextendLiveMs, stockLvextendMs; worstVsStock is the largest ratio of a
// thinlv command to the stock command it stands for (inspect and lvs to lvs, lvextend
// to lvextend) on either VG. Each VG's `targets` holds issue 11's bound per command, 1.5x
// of `node -e 0` plus what lvm needs for the same answer (a stock lvs for `inspect` and
// `lvs`, nothing for `--version` and `lvextend --live`), and allTargetsMet adds that
// `lvextend --live` beats stock lvextend on the filled VG. THINLV_BENCH_QUICK=1: 3 runs and a smaller fill, for a
// smoke run. The first SIGINT or SIGTERM stops the run and cleans up.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TAG } from '../src/format/thinlvVg.js';
import { commitBatch, readVgMetadata } from '../src/lvm/commitBatch.js';
import { lvmCompatCommandNames } from '../src/lvmcompat/dispatch.js';
import { computeFreeExtents } from '../src/metadata/checkLayout.js';
import { MasterSession, runPass } from '../src/master/replayPass.js';
import { realLvmUnavailableReason } from '../test/fixtures/loopVg.js';
import { createThinlvTestVg, type ThinlvTestVg } from '../test/fixtures/thinlvVg.js';
import { BUNDLE_PATH, startDaemon, stopDaemon } from './benchDaemon.js';
import { percentile, round1 } from './benchStats.js';

const QUICK = process.env['THINLV_BENCH_QUICK'] === '1';
const MAX_RUNS = 1000;
const RUNS = benchRuns(process.env['THINLV_BENCH_RUNS'], QUICK ? 3 : 10);
/** A pool in service: hundreds of VM disks over several hosts, each grown a few times while others grew too. */
const FILL_HOSTS = QUICK ? 2 : 4;
const FILL_LVS = QUICK ? 60 : 300;
const FILL_SEGMENTS = QUICK ? 4 : 8;
const SMALL_THIN_LVS = 4;
/** One command may take this long before the run is abandoned. */
const COMMAND_TIMEOUT_MS = 60_000;
const DAEMON_START_TIMEOUT_MS = 60_000;

const UNBUNDLED_PATH = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const STOCK_LV = 'stocklv';

function benchRuns(value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const runs = Number(value);
  if (!Number.isSafeInteger(runs) || runs < 1 || runs > MAX_RUNS) throw new Error(`THINLV_BENCH_RUNS must be from 1 to ${MAX_RUNS}, got "${value}"`);
  return runs;
}

interface Command {
  readonly key: string;
  readonly label: string;
  readonly file: string;
  readonly args: readonly string[];
}

/** Runs one command to its end; resolves to its wall time in ms, rejects if it fails. */
function timeCommand(command: Command): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command.file, command.args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-2000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (code === 0) resolve(ms);
      else reject(new Error(`${command.label} failed (exit ${String(code ?? signal)}): ${stderr.trim()}`));
    });
  });
}

/** Median ms of each command over RUNS turns; each command runs once first, untimed (page cache, lvm's caches). */
async function measure(commands: readonly Command[], signal: AbortSignal): Promise<Map<string, number>> {
  for (const command of commands) await timeCommand(command);
  const samples = new Map<string, number[]>(commands.map((c) => [c.key, []]));
  for (let run = 0; run < RUNS; run++) {
    for (const command of commands) {
      signal.throwIfAborted();
      samples.get(command.key)!.push(await timeCommand(command));
    }
  }
  return new Map([...samples].map(([key, ms]) => [key, round1(percentile(ms.sort((a, b) => a - b), 0.5))]));
}

/** The commands compared on one VG; `lv` is a thin LV that the host daemon behind `socketPath` holds. */
function commandsFor(t: ThinlvTestVg, lv: string, socketPath: string, withLvs: boolean): Command[] {
  const vg = t.vg.vgName;
  const lvmOptions = ['--devices', t.vg.device, ...(t.vg.deviceMapperAvailable ? [] : ['--driverloaded', 'n'])];
  const thinlv = (key: string, label: string, cli: string, args: readonly string[]): Command => ({ key, label, file: process.execPath, args: [cli, ...args] });
  const lvextendArgs = ['lvextend', '-l', '+1', `${vg}/${lv}`, '--live', '--socket', socketPath];
  return [
    { key: 'nodeFloor', label: 'node -e 0', file: process.execPath, args: ['-e', '0'] },
    thinlv('version', 'thinlv --version', BUNDLE_PATH, ['--version']),
    thinlv('inspect', 'thinlv inspect VG', BUNDLE_PATH, ['inspect', vg, ...t.vg.cliDeviceArgs]),
    { key: 'stockLvs', label: 'lvm lvs VG', file: 'lvm', args: ['lvs', vg, ...lvmOptions] },
    // thinlv's lvs adds --driverloaded itself, as all its lvm calls do.
    ...(withLvs ? [thinlv('lvs', 'thinlv lvs VG', BUNDLE_PATH, ['lvs', vg, '--devices', t.vg.device])] : []),
    thinlv('lvextendLive', 'thinlv lvextend -l +1 VG/LV --live', BUNDLE_PATH, lvextendArgs),
    { key: 'stockLvextend', label: 'lvm lvextend -l +1 VG/LV', file: 'lvm', args: ['lvextend', '-l', '+1', `${vg}/${STOCK_LV}`, ...lvmOptions] },
    thinlv('versionUnbundled', 'thinlv --version (tsc output, unbundled)', UNBUNDLED_PATH, ['--version']),
    thinlv('inspectUnbundled', 'thinlv inspect VG (tsc output, unbundled)', UNBUNDLED_PATH, ['inspect', vg, ...t.vg.cliDeviceArgs]),
    thinlv('lvextendLiveUnbundled', 'thinlv lvextend ... --live (tsc output, unbundled)', UNBUNDLED_PATH, lvextendArgs),
  ];
}

/** Starts `thinlv host run VG HOST` from the bundle, as a service would, and waits until it serves. */
async function startHostDaemon(t: ThinlvTestVg, host: string, dir: string): Promise<{ daemon: ChildProcess; socketPath: string }> {
  const socketPath = join(dir, 'h.sock');
  const args = ['host', 'run', t.vg.vgName, host, '--socket', socketPath, '--state-dir', dir, '--log-level', 'error', ...t.cliArgs()];
  const { daemon } = await startDaemon(args, socketPath, { timeoutMs: DAEMON_START_TIMEOUT_MS, pollMs: 100 });
  return { daemon, socketPath };
}

/** Adds the ordinary LV stock lvextend grows, one extent from the VG's free space. */
async function addStockLv(t: ThinlvTestVg): Promise<void> {
  const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
  const free = computeFreeExtents(vg).ranges()[0]!;
  await commitBatch(t.vg.lvm, vg, [{ kind: 'createLv', name: STOCK_LV, ranges: [{ pv: free.pv, firstExtent: free.firstExtent, extentCount: 1 }] }]);
}

/** Fills the VG like a pool in service: segment k of thin LV i at k * FILL_LVS + i, so no two segments of one LV touch. */
async function fillLikeAPool(t: ThinlvTestVg, hosts: readonly string[]): Promise<void> {
  const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
  const run = computeFreeExtents(vg).ranges().find((r) => r.extentCount >= FILL_LVS * FILL_SEGMENTS);
  if (run === undefined) throw new Error(`no free run of ${FILL_LVS * FILL_SEGMENTS} extents to fill the VG with`);
  await commitBatch(t.vg.lvm, vg, Array.from({ length: FILL_LVS }, (_, i) => ({
    kind: 'createLv' as const,
    name: `vdi${i}`,
    ranges: Array.from({ length: FILL_SEGMENTS }, (_, k) => ({ pv: run.pv, firstExtent: run.firstExtent + k * FILL_LVS + i, extentCount: 1 })),
    activationSkip: true,
    // Held by the hosts in turn, as if each had activated its share.
    tags: [`${TAG.virtualBytes}${100 * 1024 ** 3}`, `${TAG.owner}${hosts[i % hosts.length]!}`],
  })));
  await runPass(t.deps(), new MasterSession(), t.vg.vgName);
}

/** Removes the backup and archive files stock lvextend wrote for this VG, and only those. */
function removeLvmArchives(vgName: string): void {
  rmSync(join('/etc/lvm/backup', vgName), { force: true });
  const archiveDir = '/etc/lvm/archive';
  if (!existsSync(archiveDir)) return;
  for (const name of readdirSync(archiveDir)) if (name.startsWith(`${vgName}_`)) rmSync(join(archiveDir, name), { force: true });
}

interface VgResult {
  readonly vg: { readonly lvs: number; readonly segments: number; readonly hosts: number };
  readonly commands: readonly Command[];
  readonly ms: Map<string, number>;
}

/** Makes a VG (`fill`: like a pool in service), starts host h1's daemon on it, and measures. */
async function benchVg(fill: boolean, withLvs: boolean, signal: AbortSignal): Promise<VgResult> {
  const hosts = fill ? Array.from({ length: FILL_HOSTS }, (_, i) => `h${i + 1}`) : ['h1'];
  // Every timed lvextend takes one extent from h1's pool, and no master refills it.
  const quantumExtents = 2 * (RUNS + 1) + 16;
  const t = await createThinlvTestVg({
    sizeBytes: (fill ? 64 : 16) * 1024 ** 3,
    hosts,
    thinLvCount: fill ? 0 : SMALL_THIN_LVS,
    quantumExtents,
    lowWaterExtents: 1,
  });
  const dir = mkdtempSync(join(tmpdir(), 'thinlv-bench-cli-'));
  let daemon: ChildProcess | undefined;
  try {
    if (fill) await fillLikeAPool(t, hosts);
    await addStockLv(t);
    signal.throwIfAborted();
    const started = await startHostDaemon(t, 'h1', dir);
    daemon = started.daemon;
    // disk0 (small VG) and vdi0 (filled) are held by h1.
    const commands = commandsFor(t, fill ? 'vdi0' : 'disk0', started.socketPath, withLvs);
    const ms = await measure(commands, signal);
    const metadata = await readVgMetadata(t.vg.lvm, t.vg.vgName);
    return { vg: { lvs: metadata.lvs.length, segments: metadata.lvs.reduce((n, lv) => n + lv.segments.length, 0), hosts: hosts.length }, commands, ms };
  } finally {
    if (daemon !== undefined) await stopDaemon(daemon);
    rmSync(dir, { recursive: true, force: true });
    removeLvmArchives(t.vg.vgName);
    await t.destroy();
  }
}

const ratio = (a: number | undefined, b: number | undefined): number | null => (a === undefined || b === undefined || b === 0 ? null : Math.round((a / b) * 100) / 100);

const STOCK_OF: Record<string, string> = { inspect: 'stockLvs', lvs: 'stockLvs', lvextendLive: 'stockLvextend', inspectUnbundled: 'stockLvs', lvextendLiveUnbundled: 'stockLvextend' };
/** What lvm itself needs for the same answer: a stock lvs for the reports; nothing for --version and lvextend --live (no lvm call). */
const LVM_NEED_OF: Record<string, string | undefined> = { version: undefined, inspect: 'stockLvs', lvs: 'stockLvs', lvextendLive: undefined };

/** Issue 11's bound for a bundled command: 1.5x of `node -e 0` plus what lvm needs for the same answer. */
function targetMs(result: VgResult, key: string): number | undefined {
  if (!(key in LVM_NEED_OF) || !result.ms.has(key)) return undefined;
  const need = LVM_NEED_OF[key];
  return round1(1.5 * (result.ms.get('nodeFloor')! + (need === undefined ? 0 : result.ms.get(need)!)));
}

function targetsOf(result: VgResult): Record<string, { ms: number; targetMs: number; met: boolean }> {
  const entries = Object.keys(LVM_NEED_OF).flatMap((key) => {
    const target = targetMs(result, key);
    if (target === undefined) return [];
    const ms = result.ms.get(key)!;
    return [[key, { ms, targetMs: target, met: ms <= target }] as const];
  });
  return Object.fromEntries(entries);
}

function printTable(title: string, result: VgResult): void {
  const stockOf = STOCK_OF;
  console.log(`\n${title}: ${result.vg.lvs} LVs, ${result.vg.segments} segments, ${result.vg.hosts} host(s); median of ${RUNS} runs`);
  const width = Math.max(...result.commands.map((c) => c.label.length));
  for (const command of result.commands) {
    const ms = result.ms.get(command.key)!;
    const stock = stockOf[command.key];
    const vsStock = stock === undefined ? '' : `  ${ratio(ms, result.ms.get(stock))}x stock`;
    const overFloorMs = round1(ms - result.ms.get('nodeFloor')!);
    const overFloor = command.key === 'nodeFloor' ? '' : `  ${overFloorMs >= 0 ? '+' : ''}${overFloorMs} ms vs node`;
    const target = targetMs(result, command.key);
    const verdict = target === undefined ? '' : `  target <= ${target} ms: ${ms <= target ? 'met' : 'MISSED'}`;
    console.log(`  ${command.label.padEnd(width)}  ${String(ms).padStart(7)} ms${overFloor}${vsStock}${verdict}`);
  }
}

function summaryOf(result: VgResult) {
  const get = (key: string): number | null => result.ms.get(key) ?? null;
  return {
    vg: result.vg,
    nodeFloorMs: get('nodeFloor'),
    versionMs: get('version'),
    inspectMs: get('inspect'),
    lvsMs: get('lvs'),
    stockLvsMs: get('stockLvs'),
    lvextendLiveMs: get('lvextendLive'),
    stockLvextendMs: get('stockLvextend'),
    targets: targetsOf(result),
    unbundled: { versionMs: get('versionUnbundled'), inspectMs: get('inspectUnbundled'), lvextendLiveMs: get('lvextendLiveUnbundled') },
  };
}

async function main(): Promise<void> {
  const reason = realLvmUnavailableReason();
  if (reason !== undefined) throw new Error(`cannot benchmark: ${reason}`);
  if (!existsSync(BUNDLE_PATH)) throw new Error(`${BUNDLE_PATH} is missing: run "npm run build" first ("npm run bench:cli" does)`);
  const withLvs = lvmCompatCommandNames().includes('lvs');
  const stop = new AbortController();
  const onSignal = (): void => stop.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  console.error(`bench:cli: ${RUNS} runs per command${QUICK ? ' (quick)' : ''}; lvm-compatible lvs ${withLvs ? 'registered' : 'not registered: thinlv lvs not measured'}`);
  console.error('bench:cli: small VG...');
  const small = await benchVg(false, withLvs, stop.signal);
  console.error(`bench:cli: VG filled like a pool in service (${FILL_LVS} thin LVs of ${FILL_SEGMENTS} segments, ${FILL_HOSTS} hosts)...`);
  const filled = await benchVg(true, withLvs, stop.signal);

  printTable('small VG', small);
  printTable('VG filled like a pool in service', filled);

  const pairs: [string, string][] = [['inspect', 'stockLvs'], ['lvs', 'stockLvs'], ['lvextendLive', 'stockLvextend']];
  const ratios = [small, filled].flatMap((r) => pairs.map(([a, b]) => ratio(r.ms.get(a), r.ms.get(b)))).filter((x): x is number => x !== null);
  const filledSummary = summaryOf(filled);
  console.log(JSON.stringify({
    ...filledSummary,
    worstVsStock: Math.max(...ratios),
    lvextendFasterThanStockOnFilledVg: filled.ms.get('lvextendLive')! < filled.ms.get('stockLvextend')!,
    allTargetsMet: [small, filled].every((r) => Object.values(targetsOf(r)).every((t) => t.met)) && filled.ms.get('lvextendLive')! < filled.ms.get('stockLvextend')!,
    small: summaryOf(small),
    runs: RUNS,
    quick: QUICK,
  }));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
