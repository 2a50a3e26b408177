// Part 2 of `npm run bench:grow`: the stall-free write rate.
//
// Simulated guests write sequentially at a set rate (no data is written: a writer's
// offset advances with the monotonic clock) into thin LVs that the host daemon grows.
// As tapdisk's thin-provisioning hook does, a writer asks for one more chunk (an
// `extend` to its size + CHUNK_BYTES through the daemon's socket) as soon as it comes
// within WRITER_LOW_WATER_BYTES of its LV's end, with at most one extend of its own in
// flight. A stall is the offset reaching the LV's end while that extend is still
// outstanding: the guest would pause. A stalled writer stays at the end until the
// extend lands, then writes on at its rate; stalls and the time spent in them count.
//
//   offset(t) = baseOffset + rate * (t - baseMs)     never past the LV's end
//   ask        when end - offset < WRITER_LOW_WATER_BYTES and no extend is in flight
//   stall      when offset = end and the extend has not come back
//
// Search, for each of WRITER_COUNTS writers on one host (the total rate split evenly):
// double the total rate from FIRST_RATE_MIBPS while a TRIAL_SECONDS rung has no stall
// (up to MAX_RATE_MIBPS), bisect BISECT_STEPS times between the last rate without
// stalls and the first with, then run the best for FINAL_SECONDS; if that stalls,
// step down by STEP_DOWN and run again (at most MAX_FINAL_ATTEMPTS runs). The reported
// rate is the highest that ran FINAL_SECONDS with zero stalls.
//
// Each rung has fresh LVs, made with one extent and grown to PRIMED_BYTES before its
// clock starts (untimed); its writers start out of phase, and only once the host's
// pool is back above its low-water mark, as on a host in service. The VG is a sparse STALL_VG_BYTES loop device
// formatted with `thinlv format`'s default quantum and low-water for that size.
// Nothing reclaims the rungs' LVs, so the search's worst case must fit in the VG
// (checked before the first rung) and every rung checks its room before it runs.
//
// THINLV_BENCH_QUICK=1 shrinks the rungs and the ladder for a smoke run.

import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCode, ThinlvError } from '../src/errors.js';
import { TAG, defaultSettings, readThinlvVg, type ThinlvSettings } from '../src/format/thinlvVg.js';
import { newRequestId, requestOnce } from '../src/host/socketServer.js';
import { commitBatch, readVgMetadata } from '../src/lvm/commitBatch.js';
import { computeFreeExtents } from '../src/metadata/checkLayout.js';
import { extentSizeBytes, type VgMetadata } from '../src/metadata/vgModel.js';
import { reserveExtentCount } from '../src/pool/planRefill.js';
import { createThinlvTestVg, type ThinlvTestVg } from '../test/fixtures/thinlvVg.js';
import { percentile, round1 } from './benchStats.js';

export const QUICK = process.env['THINLV_BENCH_QUICK'] === '1';

const MIB = 1024 ** 2;
const GIB = 1024 ** 3;
const TIB = 1024 ** 4;
/** A few TiB, so that `thinlv format`'s default quantum is that of a LUN in service; ext4 files stop at 16 TiB. */
const STALL_VG_BYTES = 8 * TIB;
/** The fixture's PVs: 4 MiB extents after a 64 MiB metadata area, aligned to 1 MiB (pe_start 65 MiB). */
const FIXTURE_EXTENT_BYTES = 4 * MIB;
const FIXTURE_PE_START_BYTES = 65 * MIB;
/** What a writer asks for each time, and how close to its LV's end it comes before it asks. */
const CHUNK_BYTES = GIB;
const WRITER_LOW_WATER_BYTES = CHUNK_BYTES;
const WRITER_COUNTS = [1, 30] as const;
const HOST = 'bench';
/** Total rates (all writers of a host), MiB/s. */
const FIRST_RATE_MIBPS = 256;
const MAX_RATE_MIBPS = QUICK ? 2048 : 16384;
const RATE_STEP_MIBPS = 64;
const BISECT_STEPS = QUICK ? 0 : 2;
const TRIAL_SECONDS = QUICK ? 2 : 10;
const FINAL_SECONDS = QUICK ? 4 : 60;
const MAX_FINAL_ATTEMPTS = QUICK ? 2 : 3;
const STEP_DOWN = 0.75;
/**
 * An extend slower than this waited for the master (the pool could not serve it: a
 * tail poll, a pass and a grants-ring read); one the pool serves takes a few ms, tens
 * when many writers ask at once.
 */
const WAITED_FOR_MASTER_MS = 250;
/** Each LV's size when its writer's clock starts: one chunk more than the writer's low-water. */
const PRIMED_BYTES = WRITER_LOW_WATER_BYTES + CHUNK_BYTES;
const EXTEND_TIMEOUT_MS = 30_000;
/** OUT_OF_SPACE (no grant within the daemon's 5 s wait) and TOO_MANY_IN_FLIGHT are retried this often. */
const MAX_EXTEND_ATTEMPTS = 5;
const RETRIED_EXTEND_CODES: ReadonlySet<string> = new Set(['OUT_OF_SPACE', 'TOO_MANY_IN_FLIGHT']);
const STATUS_TIMEOUT_MS = 5_000;
const SETTLE_TIMEOUT_MS = 30_000;
const SETTLE_POLL_MS = 100;
const POOL_SAMPLE_MS = 250;
/** Creating a rung's LVs races the master's passes (STALE_SEQNO): this many attempts. */
const MAX_CREATE_ATTEMPTS = 8;

/** Runs `run` with the master and a host daemon for HOST as their own processes, and stops them after. */
export type WithDaemons = <T>(t: ThinlvTestVg, host: string, run: (socketPath: string) => Promise<T>) => Promise<T>;

interface StallFreeContext {
  readonly t: ThinlvTestVg;
  readonly socketPath: string;
  readonly signal: AbortSignal;
  readonly settings: ThinlvSettings;
  readonly extentSizeBytes: number;
  rungCount: number;
}

export interface RungResult {
  readonly kind: 'trial' | 'final';
  readonly writers: number;
  readonly totalMiBps: number;
  readonly seconds: number;
  readonly stalls: number;
  readonly stalledMs: number;
  /** Every extend's request-to-reply time, ascending. */
  readonly latenciesMs: readonly number[];
  readonly waitedCount: number;
  readonly grants: number;
  readonly minPoolExtents: number;
}

export interface SearchResult {
  readonly writers: number;
  /** The highest total rate that ran FINAL_SECONDS with zero stalls; 0 when none did. */
  readonly stallFreeMiBps: number;
  /** No trial stalled up to MAX_RATE_MIBPS: the real limit is higher. */
  readonly capped: boolean;
  readonly final: RungResult | undefined;
  readonly rungs: readonly RungResult[];
}

export interface StallFreeOutcome {
  readonly vgExtentCount: number;
  readonly extentSizeBytes: number;
  readonly settings: ThinlvSettings;
  readonly searches: readonly SearchResult[];
}

/** Builds the VG, runs the search for each writer count with the daemons up, and tears it all down. */
export async function measureStallFree(withDaemons: WithDaemons, signal: AbortSignal): Promise<StallFreeOutcome> {
  const expected = defaultSettings(Math.floor((STALL_VG_BYTES - FIXTURE_PE_START_BYTES) / FIXTURE_EXTENT_BYTES), FIXTURE_EXTENT_BYTES);
  const t = await createThinlvTestVg({ sizeBytes: STALL_VG_BYTES, hosts: [HOST], thinLvCount: 0, quantumExtents: expected.quantumExtents, lowWaterExtents: expected.lowWaterExtents });
  try {
    const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
    const { settings, vgExtentCount } = checkFormatDefaults(vg);
    checkSearchFits(vg, settings);
    const searches = await withDaemons(t, HOST, async (socketPath) => {
      const ctx: StallFreeContext = { t, socketPath, signal, settings, extentSizeBytes: extentSizeBytes(vg), rungCount: 0 };
      const results: SearchResult[] = [];
      for (const writers of WRITER_COUNTS) results.push(await searchStallFree(ctx, writers));
      return results;
    });
    return { vgExtentCount, extentSizeBytes: extentSizeBytes(vg), settings, searches };
  } finally {
    await t.destroy();
  }
}

/**
 * The fixture needs the quantum and low-water before it makes the VG, so they were
 * computed from its expected extent count: check that they are what `thinlv format`
 * chooses for the VG as made (its reserve is the fixture's own 1%).
 */
function checkFormatDefaults(vg: VgMetadata): { settings: ThinlvSettings; vgExtentCount: number } {
  const settings = readThinlvVg(vg).settings;
  const vgExtentCount = vg.pvs.reduce((sum, pv) => sum + pv.peCount, 0);
  const defaults = defaultSettings(vgExtentCount, extentSizeBytes(vg));
  if (settings.quantumExtents !== defaults.quantumExtents || settings.lowWaterExtents !== defaults.lowWaterExtents) {
    throw new Error(`VG ${vg.name} (${vgExtentCount} extents) has quantum ${settings.quantumExtents}/low-water ${settings.lowWaterExtents}, not format's defaults ${defaults.quantumExtents}/${defaults.lowWaterExtents}: fix FIXTURE_PE_START_BYTES`);
  }
  return { settings, vgExtentCount };
}

/** Bytes the whole search may allocate at worst: every trial, bisection and final run at its highest rate. */
function worstCaseSearchBytes(writers: number): number {
  let mibOverall = 0;
  let rungs = 0;
  for (let rate = FIRST_RATE_MIBPS; rate <= MAX_RATE_MIBPS; rate *= 2, rungs++) mibOverall += rate * TRIAL_SECONDS;
  mibOverall += BISECT_STEPS * MAX_RATE_MIBPS * TRIAL_SECONDS;
  for (let attempt = 0, rate = MAX_RATE_MIBPS; attempt < MAX_FINAL_ATTEMPTS; attempt++, rate *= STEP_DOWN) mibOverall += rate * FINAL_SECONDS;
  rungs += BISECT_STEPS + MAX_FINAL_ATTEMPTS;
  // Each writer also holds its primed size and may end one chunk past its offset.
  return mibOverall * MIB + rungs * writers * (PRIMED_BYTES + CHUNK_BYTES);
}

function checkSearchFits(vg: VgMetadata, settings: ThinlvSettings): void {
  const neededBytes = WRITER_COUNTS.reduce((sum, writers) => sum + worstCaseSearchBytes(writers), 0);
  const neededExtents = Math.ceil(neededBytes / extentSizeBytes(vg)) + 2 * settings.quantumExtents;
  const usableExtents = computeFreeExtents(vg).extentCount - reserveExtentCount(vg, settings.reservePermille);
  if (neededExtents > usableExtents) {
    throw new Error(`the search may allocate ${neededExtents} extents, VG ${vg.name} has ${usableExtents} above its reserve: raise STALL_VG_BYTES or lower MAX_RATE_MIBPS`);
  }
}

async function searchStallFree(ctx: StallFreeContext, writers: number): Promise<SearchResult> {
  const rungs: RungResult[] = [];
  const trial = async (totalMiBps: number): Promise<boolean> => {
    const rung = await runRung(ctx, 'trial', writers, totalMiBps, TRIAL_SECONDS);
    rungs.push(rung);
    return rung.stalls === 0;
  };
  const ladder = await climbLadder(trial);
  const best = await bisect(trial, ladder.good, ladder.bad);
  const final = best === undefined ? undefined : await confirmRate(ctx, writers, best, rungs);
  return { writers, stallFreeMiBps: final?.stalls === 0 ? final.totalMiBps : 0, capped: ladder.bad === undefined, final, rungs };
}

/** Doubles the rate until a trial stalls; `good` is the last rate without a stall, `bad` the first with one. */
async function climbLadder(trial: (totalMiBps: number) => Promise<boolean>): Promise<{ good: number | undefined; bad: number | undefined }> {
  let good: number | undefined;
  for (let rate = FIRST_RATE_MIBPS; rate <= MAX_RATE_MIBPS; rate *= 2) {
    if (!(await trial(rate))) return { good, bad: rate };
    good = rate;
  }
  return { good, bad: undefined };
}

async function bisect(trial: (totalMiBps: number) => Promise<boolean>, good: number | undefined, bad: number | undefined): Promise<number | undefined> {
  if (good === undefined || bad === undefined) return good;
  for (let step = 0; step < BISECT_STEPS; step++) {
    const middle = roundRate((good + bad) / 2);
    if (middle <= good || middle >= bad) break;
    if (await trial(middle)) good = middle;
    else bad = middle;
  }
  return good;
}

/** Runs `candidate` for FINAL_SECONDS, stepping down after a stall; returns the last run (stall-free if any was). */
async function confirmRate(ctx: StallFreeContext, writers: number, candidate: number, rungs: RungResult[]): Promise<RungResult> {
  let rate = candidate;
  for (let attempt = 1; ; attempt++) {
    const run = await runRung(ctx, 'final', writers, rate, FINAL_SECONDS);
    rungs.push(run);
    if (run.stalls === 0 || attempt >= MAX_FINAL_ATTEMPTS) return run;
    rate = roundRate(rate * STEP_DOWN);
  }
}

const roundRate = (mibps: number): number => Math.max(RATE_STEP_MIBPS, Math.floor(mibps / RATE_STEP_MIBPS) * RATE_STEP_MIBPS);

async function runRung(ctx: StallFreeContext, kind: RungResult['kind'], writers: number, totalMiBps: number, seconds: number): Promise<RungResult> {
  ctx.signal.throwIfAborted();
  const lvs = await prepareWriterLvs(ctx, writers, totalMiBps * MIB * seconds);
  const sampler = startPoolSampler(ctx);
  // stop() is idempotent: the first ends the sampling (also when a writer failed), the second reads it.
  const outcomes = await runWriters(ctx, lvs, (totalMiBps * MIB) / 1000 / writers, seconds).finally(() => sampler.stop());
  const pool = await sampler.stop();
  const latenciesMs = outcomes.flatMap((o) => o.latenciesMs).sort((a, b) => a - b);
  const rung: RungResult = {
    kind,
    writers,
    totalMiBps,
    seconds,
    stalls: outcomes.reduce((sum, o) => sum + o.stalls, 0),
    stalledMs: outcomes.reduce((sum, o) => sum + o.stalledMs, 0),
    latenciesMs,
    waitedCount: latenciesMs.filter((ms) => ms > WAITED_FOR_MASTER_MS).length,
    ...pool,
  };
  console.error(`stall-free: ${describeRung(rung)}`);
  return rung;
}

/** Runs one writer per LV for `seconds`, out of phase; one writer's failure stops the others at once. */
async function runWriters(ctx: StallFreeContext, lvs: readonly string[], bytesPerMs: number, seconds: number): Promise<WriterOutcome[]> {
  const failed = new AbortController();
  const signal = AbortSignal.any([ctx.signal, failed.signal]);
  // Every writer's sleep listens on it at once: that many listeners are expected, not a leak.
  setMaxListeners(lvs.length + 10, signal);
  const startMs = performance.now();
  const endMs = startMs + seconds * 1000;
  const writerCtx = { ...ctx, signal };
  return Promise.all(lvs.map((lv, i) => {
    const pace = { bytesPerMs, startOffsetBytes: (i / lvs.length) * CHUNK_BYTES, startMs, endMs };
    return runWriter(writerCtx, lv, pace).catch((error: unknown) => {
      failed.abort();
      throw error;
    });
  }));
}

function describeRung(rung: RungResult): string {
  const max = rung.latenciesMs.at(-1) ?? 0;
  return `${rung.writers} writer(s), ${rung.kind} at ${rung.totalMiBps} MiB/s for ${rung.seconds} s: ${rung.stalls} stalls (${Math.round(rung.stalledMs)} ms), ${rung.latenciesMs.length} extends (${rung.waitedCount} waited for the master), max ${round1(max)} ms against a margin of ${Math.round(writerMarginMs(rung))} ms, ${rung.grants} grants, pool min ${rung.minPoolExtents} extents`;
}

/** Fresh LVs for one rung, each grown to PRIMED_BYTES, with the host's pool back above low-water. */
async function prepareWriterLvs(ctx: StallFreeContext, writers: number, rungBytes: number): Promise<string[]> {
  ctx.rungCount++;
  const names = Array.from({ length: writers }, (_, i) => `sf${ctx.rungCount}_w${i}`);
  await createWriterLvs(ctx, names, rungBytes);
  await Promise.all(names.map((lv) => extendTo(ctx, lv, PRIMED_BYTES)));
  await waitForSettledPool(ctx);
  return names;
}

/**
 * Creates `names` as thin LVs of one extent held by HOST, as a granted claim would
 * leave them, in one commit. The master's passes commit too, so a STALE_SEQNO (which
 * wrote nothing) is retried after re-reading the VG.
 */
async function createWriterLvs(ctx: StallFreeContext, names: readonly string[], rungBytes: number): Promise<void> {
  const { lvm, vgName } = ctx.t.vg;
  for (let attempt = 1; ; attempt++) {
    const vg = await readVgMetadata(lvm, vgName);
    const last = checkRungFits(ctx, vg, names.length, rungBytes);
    const changes = names.map((name, i) => ({
      kind: 'createLv' as const,
      name,
      ranges: [{ pv: last.pv, firstExtent: last.firstExtent + last.extentCount - 1 - i, extentCount: 1 }],
      activationSkip: true,
      tags: [`${TAG.virtualBytes}${STALL_VG_BYTES}`, `${TAG.owner}${HOST}`],
    }));
    try {
      await commitBatch(lvm, vg, changes);
      return;
    } catch (error) {
      if (!(error instanceof ThinlvError && error.code === ErrorCode.staleSeqno) || attempt >= MAX_CREATE_ATTEMPTS) throw error;
      await sleep(100 * attempt, undefined, { signal: ctx.signal });
    }
  }
}

/** Refuses a rung the VG may not hold (what it writes, its LVs' primed and last chunks, a refill's slack); returns the last free range. */
function checkRungFits(ctx: StallFreeContext, vg: VgMetadata, writers: number, rungBytes: number) {
  const free = computeFreeExtents(vg);
  const usableExtents = free.extentCount - reserveExtentCount(vg, ctx.settings.reservePermille);
  const neededExtents = Math.ceil((rungBytes + writers * (PRIMED_BYTES + CHUNK_BYTES)) / ctx.extentSizeBytes) + writers + ctx.settings.quantumExtents + ctx.settings.lowWaterExtents;
  if (neededExtents > usableExtents) {
    throw new Error(`VG ${vg.name} has ${usableExtents} extents above its reserve, the next rung may need ${neededExtents}: raise STALL_VG_BYTES`);
  }
  const last = free.ranges().at(-1);
  if (last === undefined || last.extentCount < writers) throw new Error(`VG ${vg.name}'s last free range cannot hold ${writers} one-extent LVs`);
  return last;
}

interface WriterOutcome {
  stalls: number;
  stalledMs: number;
  readonly latenciesMs: number[];
}

interface WriterPace {
  readonly bytesPerMs: number;
  /** Writers start out of phase (writer i of n at i/n of a chunk), as guests do, so they do not all ask at once. */
  readonly startOffsetBytes: number;
  readonly startMs: number;
  readonly endMs: number;
}

/** One guest writing into `lv` (PRIMED_BYTES long) at its pace, from startMs to endMs. */
async function runWriter(ctx: StallFreeContext, lv: string, pace: WriterPace): Promise<WriterOutcome> {
  const { bytesPerMs, endMs } = pace;
  const outcome: WriterOutcome = { stalls: 0, stalledMs: 0, latenciesMs: [] };
  let sizeBytes = PRIMED_BYTES;
  let baseMs = pace.startMs;
  let baseOffsetBytes = pace.startOffsetBytes;
  for (;;) {
    const askAtMs = baseMs + (sizeBytes - WRITER_LOW_WATER_BYTES - baseOffsetBytes) / bytesPerMs;
    if (askAtMs >= endMs) return outcome;
    await sleepUntil(askAtMs, ctx.signal);
    const stallAtMs = baseMs + (sizeBytes - baseOffsetBytes) / bytesPerMs;
    const sentMs = performance.now();
    const grownBytes = await extendTo(ctx, lv, sizeBytes + CHUNK_BYTES);
    const doneMs = performance.now();
    outcome.latenciesMs.push(doneMs - sentMs);
    if (doneMs > stallAtMs && stallAtMs < endMs) {
      // The guest sat at the LV's end from stallAtMs until now; it writes on from there.
      outcome.stalls++;
      outcome.stalledMs += Math.min(doneMs, endMs) - stallAtMs;
      baseMs = doneMs;
      baseOffsetBytes = sizeBytes;
    }
    sizeBytes = grownBytes;
  }
}

async function sleepUntil(atMs: number, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  const delayMs = atMs - performance.now();
  if (delayMs > 0) await sleep(delayMs, undefined, { signal });
}

/** Grows `lv` to `sizeBytes` through the host daemon, as `thinlv lvextend -L` would; returns its size after. */
async function extendTo(ctx: StallFreeContext, lv: string, sizeBytes: number): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const reply = await requestOnce(ctx.socketPath, { id: newRequestId(), op: 'extend', vg: ctx.t.vg.vgName, lv, sizeBytes }, EXTEND_TIMEOUT_MS);
    if (reply.ok) {
      if (reply.result.sizeBytes < sizeBytes) throw new Error(`extend of ${lv} to ${sizeBytes} bytes answered ${reply.result.sizeBytes} bytes`);
      return reply.result.sizeBytes;
    }
    if (!RETRIED_EXTEND_CODES.has(reply.error.code) || attempt >= MAX_EXTEND_ATTEMPTS) {
      throw new Error(`extend of ${lv} to ${sizeBytes} bytes failed (attempt ${attempt}): ${reply.error.code} ${reply.error.message}`);
    }
    console.error(`stall-free: extend of ${lv} got ${reply.error.code}; retrying`);
  }
}

async function hostStatus(ctx: StallFreeContext): Promise<{ poolExtentCount: number; lowWaterExtents: number; lastGrantGeneration: number }> {
  const reply = await requestOnce(ctx.socketPath, { id: newRequestId(), op: 'status' }, STATUS_TIMEOUT_MS);
  if (!reply.ok) throw new Error(`host status failed: ${reply.error.code} ${reply.error.message}`);
  return reply.result;
}

/** Waits until the host's pool is at or above its low-water mark: after the master's next pass at the latest. */
async function waitForSettledPool(ctx: StallFreeContext): Promise<void> {
  const deadline = performance.now() + SETTLE_TIMEOUT_MS;
  for (;;) {
    const status = await hostStatus(ctx);
    if (status.poolExtentCount >= status.lowWaterExtents) return;
    if (performance.now() > deadline) throw new Error(`the host's pool stayed at ${status.poolExtentCount} extents, under its low-water mark of ${status.lowWaterExtents}, for ${SETTLE_TIMEOUT_MS} ms: is the master running?`);
    await sleep(SETTLE_POLL_MS, undefined, { signal: ctx.signal });
  }
}

/** Samples the host's pool while a rung runs: its smallest size, and the grants that came. */
function startPoolSampler(ctx: StallFreeContext): { stop(): Promise<{ grants: number; minPoolExtents: number }> } {
  let stopping = false;
  let minPoolExtents = Number.POSITIVE_INFINITY;
  let firstGeneration: number | undefined;
  let lastGeneration = 0;
  const done = (async () => {
    while (!stopping) {
      // A failed sample is only a missing point; the writers' own extends decide the rung.
      const status = await hostStatus(ctx).catch(() => undefined);
      if (status !== undefined) {
        minPoolExtents = Math.min(minPoolExtents, status.poolExtentCount);
        firstGeneration ??= status.lastGrantGeneration;
        lastGeneration = status.lastGrantGeneration;
      }
      if (!stopping) await sleep(POOL_SAMPLE_MS);
    }
  })();
  return {
    async stop() {
      stopping = true;
      await done;
      return { grants: lastGeneration - (firstGeneration ?? lastGeneration), minPoolExtents: Number.isFinite(minPoolExtents) ? minPoolExtents : -1 };
    },
  };
}

/** The table's lines for part 2. */
export function stallFreeTable(outcome: StallFreeOutcome): string[] {
  const { settings, extentSizeBytes: extentBytes } = outcome;
  const gib = (extents: number): string => `${round1((extents * extentBytes) / GIB)} GiB`;
  const lines = [
    `stall-free write rate: VG ${STALL_VG_BYTES / TIB} TiB (sparse loop device, ${outcome.vgExtentCount} extents of ${extentBytes / MIB} MiB), master interval 2000 ms, tail poll 50 ms`,
    `  thinlv format's defaults for that VG: quantum ${settings.quantumExtents} extents (${gib(settings.quantumExtents)}), low-water ${settings.lowWaterExtents} extents (${gib(settings.lowWaterExtents)}); reserve ${settings.reservePermille / 10}% (the test fixture's; format's default is 5%)`,
    `  writer: asks for one chunk of ${CHUNK_BYTES / MIB} MiB when within ${WRITER_LOW_WATER_BYTES / MIB} MiB of its LV's end, one extend in flight; starts on an LV of ${PRIMED_BYTES / MIB} MiB, writers out of phase by 1/n chunk`,
    `  rungs: trial ${TRIAL_SECONDS} s, final ${FINAL_SECONDS} s${QUICK ? ' (QUICK)' : ''}; "waited": extends over ${WAITED_FOR_MASTER_MS} ms (the pool was empty: they waited for a master pass); "margin": a writer's time from its ask to its stall; "grants": pool refills during the rung`,
    `  ${columns(['rung', 'writers', 'MiB/s total', 'MiB/s each', 'margin ms', 's', 'stalls', 'stalled ms', 'extends', 'waited', 'p50 ms', 'p99 ms', 'max ms', 'grants', 'min pool'])}`,
    ...outcome.searches.flatMap((search) => search.rungs.map((rung) => `  ${columns(rungCells(rung))}`)),
  ];
  for (const search of outcome.searches) lines.push(`  ${verdict(search)}`);
  lines.push(`  target: at least 5120 MiB/s per host in total; oVirt, published: about 1.3 GiB/s per VM with 2.5 GiB chunks, pauses above that (not measured here)`);
  return lines;
}

const COLUMN_WIDTHS = [6, 8, 12, 11, 10, 4, 7, 11, 8, 7, 7, 7, 8, 7, 9];

function columns(cells: readonly (string | number)[]): string {
  return cells.map((cell, i) => String(cell).padEnd(COLUMN_WIDTHS[i] ?? 8)).join(' ').trimEnd();
}

function rungCells(rung: RungResult): (string | number)[] {
  const at = (fraction: number): number => (rung.latenciesMs.length === 0 ? 0 : round1(percentile(rung.latenciesMs, fraction)));
  return [rung.kind, rung.writers, rung.totalMiBps, round1(rung.totalMiBps / rung.writers), Math.round(writerMarginMs(rung)), rung.seconds, rung.stalls, Math.round(rung.stalledMs), rung.latenciesMs.length, rung.waitedCount, at(0.5), at(0.99), round1(rung.latenciesMs.at(-1) ?? 0), rung.grants, rung.minPoolExtents];
}

/** How long a writer of the rung has from its ask until it would stall: an extend slower than this stalls it. */
const writerMarginMs = (rung: RungResult): number => WRITER_LOW_WATER_BYTES / ((rung.totalMiBps * MIB) / 1000 / rung.writers);

function verdict(search: SearchResult): string {
  const head = `stall-free over ${FINAL_SECONDS} s, ${search.writers} writer(s):`;
  if (search.stallFreeMiBps === 0) return `${head} none (lowest rate tried stalled)`;
  const cap = search.capped && search.stallFreeMiBps >= MAX_RATE_MIBPS ? ` or more (the search stops at ${MAX_RATE_MIBPS})` : '';
  return `${head} ${search.stallFreeMiBps} MiB/s${cap} (${round1(search.stallFreeMiBps / 1024)} GiB/s in total, ${round1(search.stallFreeMiBps / search.writers)} MiB/s each)`;
}

/** Part 2's fields of the JSON line. */
export function stallFreeJson(outcome: StallFreeOutcome): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  let stalls = 0;
  for (const search of outcome.searches) {
    const latencies = search.final?.latenciesMs ?? [];
    fields[`stallFreeMiBps${search.writers}`] = search.stallFreeMiBps;
    fields[`stallFreeCapped${search.writers}`] = search.capped && search.stallFreeMiBps >= MAX_RATE_MIBPS;
    fields[`finalExtendP99Ms${search.writers}`] = latencies.length === 0 ? null : round1(percentile(latencies, 0.99));
    fields[`finalExtendMaxMs${search.writers}`] = latencies.length === 0 ? null : round1(latencies.at(-1)!);
    stalls += search.final?.stalls ?? 0;
  }
  const rungs = outcome.searches.flatMap((s) => s.rungs);
  return {
    ...fields,
    stalls,
    stalledMs: Math.round(outcome.searches.reduce((sum, s) => sum + (s.final?.stalledMs ?? 0), 0)),
    searchStalls: rungs.reduce((sum, r) => sum + r.stalls, 0),
    searchStalledMs: Math.round(rungs.reduce((sum, r) => sum + r.stalledMs, 0)),
    rungs: rungs.length,
    chunkBytes: CHUNK_BYTES,
    writerLowWaterBytes: WRITER_LOW_WATER_BYTES,
    trialSeconds: TRIAL_SECONDS,
    finalSeconds: FINAL_SECONDS,
    maxRateMiBps: MAX_RATE_MIBPS,
    stallVgBytes: STALL_VG_BYTES,
    stallQuantumExtents: outcome.settings.quantumExtents,
    stallLowWaterExtents: outcome.settings.lowWaterExtents,
    quick: QUICK,
  };
}
