// One writer per host journal: a delta lease on a 4096-byte block of the shared LUN,
// in the style of ext4's multi-mount protection and sanlock's delta leases. The
// holder keeps bumping a counter; a would-be holder watches the counter and takes
// over only a lease whose counter stopped moving. Small on purpose, behind
// HeldLease, so a sanlock lockspace can replace it.
//
//   holder H                                 taker T
//   read: mine? -> write counter+1  (every R)
//   ...                                      read: held by H, counter c
//                                            watch WATCH = 6R: c never moves
//   (H crashed, hung, or lost its path)      write claim {T's ownerId, c+1}
//                                            settle SETTLE = 4R, re-reading every R:
//                                              still my claim? else LEASE_HELD
//                                            held: may write the journal
//
// Liveness is decided by the counter, never by clocks. Machines do not share a
// clock; each measures only its own durations (nowMs, which must be monotonic) and
// compares only what it read from disk: an owner id and a counter. Clock rates may
// differ a little; SETTLE - VALID = R absorbs that and a bounded landing delay of
// our own lease writes.
//
// Why VALID <= SETTLE keeps one writer. Call s the start of H's last successful
// verify read (a read that still showed H's owner id and counter).
//   1. H starts no journal write, and no lease write, after s + VALID (VALID = 3R):
//      ensureHeld() resolves at once only while now < s + VALID, and a renewal
//      whose read finished after that skips its write.
//   2. T's claim landed after s: had it landed before, that read would have shown
//      T, and H would have found itself lost instead.
//   3. T uses the ring only after its claim write returned plus SETTLE >= VALID, so
//      after s + VALID: every journal write of H started before T's first one.
//   4. A renewal write of H based on a read from before the claim may land on top
//      of the claim. It is issued before s + VALID, so it lands before T's last
//      settle read, which then sees it: T gives up with LEASE_HELD. Any verify of H
//      that reads after the claim landed fails, and lost is permanent.
// A claim needs no such care: it is safe whenever it lands (it is a takeover, and
// the settle orders it after the old holder), and the watch before it is only
// politeness, which is why `force` may skip it.
//
// Callers call ensureHeld() both before a journal write starts (right before: an
// append queued behind a slow write is checked again, by the ring writer's gate, in
// leasedJournal.ts) and after it completes, and
// acknowledge the write only if the second call succeeds. A write that outlived
// the validity is then acknowledged only if a fresh verify read, started after the
// write completed, still shows us: any taker's claim landed after that read, so the
// taker's recovery reads the record.
//
// Residual risk: a write issued in time that the SAN delivers minutes later (a
// multipath queue holding I/O while paths are down, a hung HBA) can land after a
// taker settled. No lease can order that; only fencing can, by making sure the old
// machine's I/O can never reach the LUN again. That is what an operator asserts
// with `thinlv host declare-dead --fenced`.

import { randomBytes } from 'node:crypto';
import type { BlockRegion } from '../../journal/index.js';
import { InvariantError, ThinlvError } from '../errors.js';
import { LEASE_BLOCK_BYTES, decodeLeaseBlock, encodeLeaseBlock, holderProblem, leaseIdProblem, type DecodedLeaseBlock, type LeaseBlock } from './leaseBlock.js';

export const DEFAULT_LEASE_RENEW_MS = 1000;
export const MIN_LEASE_RENEW_MS = 10;
/** A longer interval only delays takeovers; past a minute it is surely a unit mistake. */
export const MAX_LEASE_RENEW_MS = 60_000;
/** ensureHeld gives up with LEASE_IO after this many verifies that all ended too late. */
export const MAX_INLINE_VERIFY_ATTEMPTS = 2;

export interface LeaseTiming {
  readonly renewIntervalMs: number;
  /** A holder writes only within this long after the start of its last successful verify read. */
  readonly validMs: number;
  /** A claimer re-reads its claim for this long before it holds; must be >= validMs. */
  readonly settleMs: number;
  /** A held lease is taken over only if its block did not change for this long. */
  readonly watchMs: number;
}

export function leaseTiming(renewIntervalMs: number): LeaseTiming {
  if (!Number.isSafeInteger(renewIntervalMs) || renewIntervalMs < MIN_LEASE_RENEW_MS || renewIntervalMs > MAX_LEASE_RENEW_MS) {
    throw new ThinlvError('INVALID_ARGUMENT', `the lease renew interval must be an integer from ${MIN_LEASE_RENEW_MS} to ${MAX_LEASE_RENEW_MS} ms, got ${renewIntervalMs}`, { renewIntervalMs });
  }
  const timing = { renewIntervalMs, validMs: 3 * renewIntervalMs, settleMs: 4 * renewIntervalMs, watchMs: 6 * renewIntervalMs };
  // The safety argument at the top of this file; and a watcher must not find a
  // claimer stale merely because it is settling (it renews only afterwards).
  if (timing.settleMs < timing.validMs || timing.watchMs <= timing.settleMs + renewIntervalMs) {
    throw new InvariantError('lease timing breaks VALID <= SETTLE < WATCH', { ...timing });
  }
  return timing;
}

export type LeaseLogLevel = 'info' | 'warn' | 'error';
export type LeaseLogger = (level: LeaseLogLevel, message: string, data: Record<string, unknown>) => void;

export interface LeaseEffects {
  /** Exactly one 4096-byte block: the lease block at offset 0. */
  readonly region: BlockRegion;
  /** A monotonic clock (performance.now, not the wall clock: a step back would stretch validity). */
  nowMs(): number;
  /** Resolves no earlier than `ms` from now. */
  sleepMs(ms: number): Promise<void>;
  /** The renewal loop's sleep, when it must differ from the waits of acquiring (a simulator's timers); default sleepMs. */
  readonly renewSleepMs?: (ms: number) => Promise<void>;
  readonly log?: LeaseLogger;
  /** Draws the per-acquisition owner id (16 lowercase hex chars); crypto-random unless a simulator seeds it. */
  readonly newOwnerId?: () => string;
}

export interface LeaseIdentity {
  /** What is leased; thinlv passes the journal LV's uuid, so a re-created LV never passes for an old one. */
  readonly leaseId: string;
  /** Who holds it, for messages only ("hostA pid 1234"). */
  readonly holder: string;
}

export type LeaseProbeState = 'absent' | 'released' | 'stale' | 'alive' | 'other';
export interface LeaseProbe {
  readonly state: LeaseProbeState;
  readonly holder?: string;
  readonly counter?: number;
  /** The holding session's owner id (drawn per acquisition), when the block is this lease's. */
  readonly ownerId?: string;
}

export interface HeldLease {
  readonly leaseId: string;
  /** This session's owner id, as the block shows it: what a stop request names. */
  readonly ownerId: string;
  /**
   * Resolves at once while fresh (last successful verify read started < VALID ago);
   * otherwise verifies now (still my owner id and counter? then write counter+1) and
   * resolves, or throws LEASE_LOST (permanent) or LEASE_IO (the verify failed or was
   * too slow; the lease is not lost, try again). Call before a journal write and
   * after it completes; acknowledge the write only if both resolve.
   */
  ensureHeld(): Promise<void>;
  /** True once lost; never false again. */
  readonly isLost: boolean;
  /** Called once when the lease is found lost (by the background renewal or by ensureHeld). */
  onLost(listener: (error: ThinlvError) => void): void;
  /** Starts the background renewal loop (every R: verify + write counter+1). Call right after acquiring. Idempotent. */
  startRenewing(): void;
  /**
   * Stops renewing; if still ours, writes state=released so the next acquirer need
   * not wait WATCH. Stop journal writes first: ensureHeld throws from now on. Best
   * effort: a failed release only makes the next acquirer wait. Safe to call twice.
   */
  release(): Promise<void>;
  /**
   * Stops renewing and never writes the block again, not even to release it: for a
   * lease whose block is about to stop being ours (host removal deletes the LV it
   * lives in). ensureHeld throws from now on. A lease write already issued may still
   * land, so call it before the block's extents can be reused. Idempotent.
   */
  abandon(): void;
}

interface ReadResult {
  readonly readStartMs: number;
  readonly block: DecodedLeaseBlock;
}

/** Takes the lease: watch (unless free or forced), claim, settle (a free block claimed quickly: a short confirm, see confirmQuickClaim). See the top of this file. */
export async function acquireLease(effects: LeaseEffects, identity: LeaseIdentity, options: { renewIntervalMs: number; force?: boolean }): Promise<HeldLease> {
  const timing = leaseTiming(options.renewIntervalMs);
  checkIdentity(identity);
  checkRegion(effects.region);
  const clock = monotonicClock(effects);
  let current = await readOrThrow(clock, identity.leaseId);
  const previous = current.block;
  if (previous.kind === 'lease' && previous.leaseId === identity.leaseId && previous.state === 'held') {
    if (options.force === true) {
      log(effects, 'warn', 'taking over a held lease without watching it (force)', { leaseId: identity.leaseId, holder: previous.holder, counter: previous.counter });
    } else {
      current = await watchUntilStale(clock, timing, current, identity.leaseId);
    }
  } else if (previous.kind === 'corrupt' || (previous.kind === 'lease' && previous.leaseId !== identity.leaseId)) {
    log(effects, 'warn', 'overwriting a lease block that belongs to no current lease', { leaseId: identity.leaseId, found: describeBlock(previous) });
  }
  const previousCounter = current.block.kind === 'lease' ? current.block.counter : 0;
  const claim: LeaseBlock = { state: 'held', ownerId: drawOwnerId(effects), counter: previousCounter + 1, leaseId: identity.leaseId, holder: identity.holder };
  await writeOrThrow(clock, claim);
  const quick = isFree(previous, identity.leaseId) && clock.nowMs() - current.readStartMs <= quickClaimWindowMs(timing);
  const lastVerifyStartMs = quick ? await confirmQuickClaim(clock, timing, claim) : await settleClaim(clock, timing, claim);
  log(effects, 'info', 'lease acquired', { leaseId: claim.leaseId, holder: claim.holder, counter: claim.counter, quickClaim: quick });
  return new HostLease(clock, timing, claim, lastVerifyStartMs);
}

/** Reports the state of a lease without touching it; 'alive' or 'stale' needs up to WATCH of watching. */
export async function probeLease(effects: LeaseEffects, leaseId: string, options: { renewIntervalMs: number }): Promise<LeaseProbe> {
  const timing = leaseTiming(options.renewIntervalMs);
  const problem = leaseIdProblem(leaseId);
  if (problem !== undefined) throw new ThinlvError('INVALID_ARGUMENT', `cannot probe the lease: ${problem}`, { leaseId });
  checkRegion(effects.region);
  const clock = monotonicClock(effects);
  const first = await readOrThrow(clock, leaseId);
  if (first.block.kind !== 'lease' || first.block.leaseId !== leaseId || first.block.state !== 'held') return probeOf(first.block, leaseId);
  const change = await watchForChange(clock, leaseId, first.block, first.readStartMs, timing.watchMs, timing.renewIntervalMs);
  if (change.kind === 'unchanged') return probeOf(first.block, leaseId, 'stale');
  return probeOf(change.block, leaseId, 'alive');
}

function probeOf(block: DecodedLeaseBlock, leaseId: string, heldState: 'alive' | 'stale' = 'alive'): LeaseProbe {
  if (block.kind === 'absent') return { state: 'absent' };
  if (block.kind === 'corrupt') return { state: 'other' };
  const { holder, counter } = block;
  if (block.leaseId !== leaseId) return { state: 'other', holder, counter };
  return { state: block.state === 'released' ? 'released' : heldState, holder, counter, ownerId: block.ownerId };
}

/** The same effects with the clock checked: a clock that runs backwards would silently stretch validity. */
function monotonicClock(effects: LeaseEffects): LeaseEffects {
  let lastMs = -Infinity;
  const nowMs = (): number => {
    const currentMs = effects.nowMs();
    if (!(currentMs >= lastMs)) throw new InvariantError(`the lease clock went backwards from ${lastMs} to ${currentMs} ms: pass a monotonic clock`, { lastMs, currentMs });
    lastMs = currentMs;
    return currentMs;
  };
  const { log, newOwnerId, renewSleepMs } = effects;
  return {
    region: effects.region,
    nowMs,
    sleepMs: (ms) => effects.sleepMs(ms),
    ...(renewSleepMs === undefined ? {} : { renewSleepMs }),
    ...(log === undefined ? {} : { log }),
    ...(newOwnerId === undefined ? {} : { newOwnerId }),
  };
}

function checkIdentity(identity: LeaseIdentity): void {
  const problem = leaseIdProblem(identity.leaseId) ?? holderProblem(identity.holder);
  if (problem !== undefined) throw new ThinlvError('INVALID_ARGUMENT', `cannot acquire the lease: ${problem}`, { leaseId: identity.leaseId, holder: identity.holder });
}

function checkRegion(region: BlockRegion): void {
  if (region.sizeBytes !== LEASE_BLOCK_BYTES) {
    throw new ThinlvError('INVALID_ARGUMENT', `a lease region must be exactly ${LEASE_BLOCK_BYTES} bytes, ${region.description} has ${region.sizeBytes}`, { sizeBytes: region.sizeBytes });
  }
}

function drawOwnerId(effects: LeaseEffects): string {
  const ownerId = effects.newOwnerId?.() ?? randomBytes(8).toString('hex');
  if (!/^[0-9a-f]{16}$/.test(ownerId)) throw new InvariantError(`owner id "${ownerId}" is not 16 lowercase hex chars`, { ownerId });
  return ownerId;
}

async function readLeaseBlock(effects: LeaseEffects): Promise<ReadResult> {
  const readStartMs = effects.nowMs();
  const bytes = await effects.region.read(0, LEASE_BLOCK_BYTES);
  return { readStartMs, block: decodeLeaseBlock(bytes) };
}

async function writeLeaseBlock(effects: LeaseEffects, block: LeaseBlock): Promise<void> {
  const buffer = encodeLeaseBlock(block, effects.region.allocateBuffer(LEASE_BLOCK_BYTES));
  await effects.region.write(0, buffer);
}

function leaseIoError(effects: LeaseEffects, leaseId: string, operation: string, cause: unknown): ThinlvError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new ThinlvError('LEASE_IO', `${operation} the lease block of ${leaseId} on ${effects.region.description} failed: ${reason}`, { leaseId, region: effects.region.description }, { cause });
}

async function readOrThrow(effects: LeaseEffects, leaseId: string): Promise<ReadResult> {
  try {
    return await readLeaseBlock(effects);
  } catch (error) {
    throw leaseIoError(effects, leaseId, 'reading', error);
  }
}

async function writeOrThrow(effects: LeaseEffects, block: LeaseBlock): Promise<void> {
  try {
    await writeLeaseBlock(effects, block);
  } catch (error) {
    throw leaseIoError(effects, block.leaseId, 'writing', error);
  }
}

type WatchResult = { readonly kind: 'changed'; readonly block: DecodedLeaseBlock } | { readonly kind: 'unchanged'; readonly lastReadStartMs: number };

/**
 * Re-reads every `intervalMs` until a read that started `durationMs` after
 * `startMs` still shows `expected`; stops at the first read that differs.
 */
async function watchForChange(effects: LeaseEffects, leaseId: string, expected: DecodedLeaseBlock, startMs: number, durationMs: number, intervalMs: number): Promise<WatchResult> {
  // With an honest sleepMs each pass but the last waits a full interval.
  const maxReads = Math.ceil(durationMs / intervalMs) + 2;
  for (let reads = 0; reads < maxReads; reads++) {
    const remainingMs = durationMs - (effects.nowMs() - startMs);
    // Whole milliseconds, as timers have: a sub-millisecond remainder would spin.
    await effects.sleepMs(Math.ceil(Math.max(0, Math.min(intervalMs, remainingMs))));
    const current = await readOrThrow(effects, leaseId);
    if (!sameBlock(current.block, expected)) return { kind: 'changed', block: current.block };
    if (current.readStartMs - startMs >= durationMs) return { kind: 'unchanged', lastReadStartMs: current.readStartMs };
  }
  throw new InvariantError(`a ${durationMs} ms lease watch took more than ${maxReads} reads: sleepMs returns early`, { durationMs, intervalMs });
}

async function watchUntilStale(effects: LeaseEffects, timing: LeaseTiming, first: ReadResult, leaseId: string): Promise<ReadResult> {
  const change = await watchForChange(effects, leaseId, first.block, first.readStartMs, timing.watchMs, timing.renewIntervalMs);
  if (change.kind === 'unchanged') {
    log(effects, 'warn', 'taking over a lease whose counter stopped moving', { leaseId, found: describeBlock(first.block), watchMs: timing.watchMs });
    return { readStartMs: change.lastReadStartMs, block: first.block };
  }
  throw leaseHeldError(leaseId, change.block, timing, `its block changed during the ${timing.watchMs} ms watch`);
}

/** Waits SETTLE re-reading the claim; returns the start of the last read, the lease's first verify. */
async function settleClaim(effects: LeaseEffects, timing: LeaseTiming, claim: LeaseBlock): Promise<number> {
  const expected: DecodedLeaseBlock = { kind: 'lease', ...claim };
  const change = await watchForChange(effects, claim.leaseId, expected, effects.nowMs(), timing.settleMs, timing.renewIntervalMs);
  if (change.kind === 'unchanged') return change.lastReadStartMs;
  throw leaseHeldError(claim.leaseId, change.block, timing, 'another daemon wrote its block while this one was settling its claim');
}

/** A quick claim's read-to-claim bound is the smaller of this and a quarter of the renew interval. */
export const MAX_QUICK_CLAIM_WINDOW_MS = 100;

/** How long a quick claim may take from its first read to its claim write returning: Q. */
export function quickClaimWindowMs(timing: LeaseTiming): number {
  return Math.min(MAX_QUICK_CLAIM_WINDOW_MS, timing.renewIntervalMs / 4);
}

/** A block nobody holds: never written, or released by its last holder (who then writes nothing more). */
function isFree(block: DecodedLeaseBlock, leaseId: string): boolean {
  return block.kind === 'absent' || (block.kind === 'lease' && block.leaseId === leaseId && block.state === 'released');
}

/**
 * The claim of a free lease, made quickly (read at r, claim write returned at w, w - r
 * <= Q): wait 2Q, then one verify read that must still show our claim. Why that is
 * enough, where a claim of a held or unknown block settles for SETTLE:
 *   1. Nobody holds the lease now. A released block is its holder's last write (it
 *      stops its journal writes and its renewals before, see release()); an absent one
 *      was never held. A holder H1 after r must have claimed after r too.
 *   2. A claimer K that also found the block free read it before our claim landed
 *      (else it would have seen our claim, which is held), so r_K < w; if it claimed
 *      quickly, its claim landed by w_K <= r_K + Q < w + Q. We verify after w + 2Q
 *      (2Q: clock rates may differ a little, by up to 2x): every such claim has landed,
 *      so of all quick claimers only the one whose claim landed last sees its own
 *      claim, and the others get LEASE_HELD. K does the same, so exactly one holds.
 *   3. A claimer that settles (it found the block held, corrupt or another lease's, or
 *      found it free too slowly) re-reads for SETTLE = 4R >= 4Q after its claim: if
 *      ours landed after its claim, it landed within Q of its claim (its claim landed
 *      after our read r, ours by r + Q), so its settle sees ours and it gives up; if
 *      its claim landed after our verify read, we are a holder it takes over from by
 *      the argument at the top of this file, with s = our verify read's start.
 * A claim slower than Q (a stalled process, a slow LUN) settles as before.
 */
async function confirmQuickClaim(effects: LeaseEffects, timing: LeaseTiming, claim: LeaseBlock): Promise<number> {
  await effects.sleepMs(Math.ceil(2 * quickClaimWindowMs(timing)));
  const verify = await readOrThrow(effects, claim.leaseId);
  if (sameBlock(verify.block, { kind: 'lease', ...claim })) return verify.readStartMs;
  throw leaseHeldError(claim.leaseId, verify.block, timing, 'another daemon claimed the free lease at the same time');
}

function leaseHeldError(leaseId: string, found: DecodedLeaseBlock, timing: LeaseTiming, why: string): ThinlvError {
  const holder = found.kind === 'lease' ? found.holder : undefined;
  const counter = found.kind === 'lease' ? found.counter : undefined;
  return new ThinlvError(
    'LEASE_HELD',
    `lease ${leaseId} is in use by "${holder ?? 'unknown'}": ${why}. Stop that daemon first; if its machine is dead and fenced, ` +
      `retry once it has been stopped for ${timing.watchMs} ms, or declare it dead with "thinlv host declare-dead --fenced"`,
    { leaseId, holder, counter },
  );
}

function sameBlock(a: DecodedLeaseBlock, b: DecodedLeaseBlock): boolean {
  if (a.kind !== 'lease' || b.kind !== 'lease') return a.kind === b.kind;
  return a.ownerId === b.ownerId && a.counter === b.counter && a.state === b.state && a.leaseId === b.leaseId;
}

function describeBlock(block: DecodedLeaseBlock): string {
  if (block.kind === 'absent') return 'no lease block';
  if (block.kind === 'corrupt') return `a corrupt lease block (${block.reason})`;
  return `lease ${block.leaseId} ${block.state} by "${block.holder}" (owner ${block.ownerId}, counter ${block.counter})`;
}

function log(effects: LeaseEffects, level: LeaseLogLevel, message: string, data: Record<string, unknown>): void {
  effects.log?.(level, message, data);
}

type RenewOutcome =
  | { readonly kind: 'renewed' }
  | { readonly kind: 'lost' }
  | { readonly kind: 'stopped' }
  | { readonly kind: 'io-error'; readonly error: unknown }
  | { readonly kind: 'too-slow'; readonly elapsedMs: number };

class HostLease implements HeldLease {
  readonly leaseId: string;
  readonly ownerId: string;
  private readonly holder: string;
  /** The counter the block last showed as ours, confirmed by a write that returned. */
  private confirmedCounter: number;
  /** The highest counter we issued; a failed write may or may not have landed, so (confirmed, issued] may show too. */
  private issuedCounter: number;
  private lastVerifyStartMs: number;
  private lostError: ThinlvError | undefined;
  /** Set by release() or abandon(): no journal writes from then on. */
  private releasePromise: Promise<void> | undefined;
  private abandoned = false;
  private renewalInFlight: Promise<RenewOutcome> | undefined;
  private loopRunning = false;
  private consecutiveFailures = 0;
  private lostListeners: ((error: ThinlvError) => void)[] = [];

  constructor(
    private readonly effects: LeaseEffects,
    private readonly timing: LeaseTiming,
    claim: LeaseBlock,
    lastVerifyStartMs: number,
  ) {
    this.leaseId = claim.leaseId;
    this.ownerId = claim.ownerId;
    this.holder = claim.holder;
    this.confirmedCounter = claim.counter;
    this.issuedCounter = claim.counter;
    this.lastVerifyStartMs = lastVerifyStartMs;
    // Bound, so that a wrapper made with Object.create(lease), or a method passed
    // around on its own, still drives this lease's state rather than shadow copies
    // of its fields (two counters would make the lease find itself lost).
    this.ensureHeld = this.ensureHeld.bind(this);
    this.onLost = this.onLost.bind(this);
    this.startRenewing = this.startRenewing.bind(this);
    this.release = this.release.bind(this);
    this.abandon = this.abandon.bind(this);
  }

  get isLost(): boolean {
    return this.lostError !== undefined;
  }

  async ensureHeld(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      this.throwIfUnusable();
      if (this.isFresh()) return;
      if (attempt > MAX_INLINE_VERIFY_ATTEMPTS) {
        throw new ThinlvError('LEASE_IO', `lease ${this.leaseId}: ${MAX_INLINE_VERIFY_ATTEMPTS} verifies in a row ended more than ${this.timing.validMs} ms after they started; the lease block is too slow to hold a lease on`, { leaseId: this.leaseId });
      }
      // Shares a renewal already in flight: one lease I/O at a time.
      const outcome = await this.renewShared();
      if (outcome.kind === 'io-error') {
        this.throwIfUnusable();
        throw leaseIoError(this.effects, this.leaseId, 'verifying', outcome.error);
      }
    }
  }

  onLost(listener: (error: ThinlvError) => void): void {
    const lostError = this.lostError;
    if (lostError === undefined) this.lostListeners.push(listener);
    else queueMicrotask(() => listener(lostError));
  }

  startRenewing(): void {
    if (this.loopRunning || this.lostError !== undefined || this.releasePromise !== undefined) return;
    this.loopRunning = true;
    void this.renewLoop();
  }

  release(): Promise<void> {
    this.releasePromise ??= this.releaseOnce();
    return this.releasePromise;
  }

  abandon(): void {
    this.abandoned = true;
    this.releasePromise ??= Promise.resolve();
  }

  /** Whether a lease write may follow a verify read that started at `readStartMs` (step 1 and 4 at the top). */
  private mayWriteAfterRead(readStartMs: number): boolean {
    return !this.abandoned && this.effects.nowMs() - readStartMs < this.timing.validMs;
  }

  private throwIfUnusable(): void {
    if (this.lostError !== undefined) throw this.lostError;
    if (this.releasePromise !== undefined) {
      throw new ThinlvError('LEASE_RELEASED', `lease ${this.leaseId} was released or abandoned by this process; it may not write the journal any more`, { leaseId: this.leaseId });
    }
  }

  private isFresh(): boolean {
    return this.effects.nowMs() - this.lastVerifyStartMs < this.timing.validMs;
  }

  private isOurs(block: DecodedLeaseBlock): boolean {
    return (
      block.kind === 'lease' &&
      block.state === 'held' &&
      block.ownerId === this.ownerId &&
      block.leaseId === this.leaseId &&
      block.counter >= this.confirmedCounter &&
      block.counter <= this.issuedCounter
    );
  }

  private renewShared(): Promise<RenewOutcome> {
    if (this.renewalInFlight === undefined) {
      const renewal: Promise<RenewOutcome> = this.renewOnce().finally(() => {
        if (this.renewalInFlight === renewal) this.renewalInFlight = undefined;
      });
      this.renewalInFlight = renewal;
    }
    return this.renewalInFlight;
  }

  /** Verify then bump. Never rejects: I/O errors become outcomes, so callers decide. */
  private async renewOnce(): Promise<RenewOutcome> {
    if (this.lostError !== undefined) return { kind: 'lost' };
    if (this.releasePromise !== undefined) return { kind: 'stopped' };
    let observed: ReadResult;
    try {
      observed = await readLeaseBlock(this.effects);
    } catch (error) {
      return { kind: 'io-error', error };
    }
    if (!this.isOurs(observed.block)) {
      // Someone claimed it. Writing now would clobber their claim: never write after lost.
      this.markLost(observed.block);
      return { kind: 'lost' };
    }
    // Step 4 of the argument at the top: a write issued after s + VALID could land
    // after a taker's settle ended. Skip it; the lease just goes stale.
    if (!this.mayWriteAfterRead(observed.readStartMs)) {
      if (this.abandoned) return { kind: 'stopped' };
      return { kind: 'too-slow', elapsedMs: this.effects.nowMs() - observed.readStartMs };
    }
    const counter = this.issuedCounter + 1;
    this.issuedCounter = counter;
    try {
      await writeLeaseBlock(this.effects, this.block('held', counter));
    } catch (error) {
      return { kind: 'io-error', error };
    }
    this.confirmedCounter = counter;
    this.lastVerifyStartMs = observed.readStartMs;
    return { kind: 'renewed' };
  }

  private block(state: 'held' | 'released', counter: number): LeaseBlock {
    return { state, counter, ownerId: this.ownerId, leaseId: this.leaseId, holder: this.holder };
  }

  private markLost(found: DecodedLeaseBlock): void {
    if (this.lostError !== undefined) return;
    const error = new ThinlvError(
      'LEASE_LOST',
      `lease ${this.leaseId} was taken over: its block shows ${describeBlock(found)} instead of "${this.holder}" (owner ${this.ownerId}, counter ${this.confirmedCounter}); this daemon must stop writing the journal and exit`,
      { leaseId: this.leaseId, holder: this.holder, foundHolder: found.kind === 'lease' ? found.holder : undefined, foundCounter: found.kind === 'lease' ? found.counter : undefined },
    );
    this.lostError = error;
    log(this.effects, 'error', 'lease lost', { leaseId: this.leaseId, found: describeBlock(found) });
    const listeners = this.lostListeners;
    this.lostListeners = [];
    for (const listener of listeners) {
      try {
        listener(error);
      } catch (listenerError) {
        log(this.effects, 'error', 'a lease-lost listener threw', { leaseId: this.leaseId, error: String(listenerError) });
      }
    }
  }

  private async renewLoop(): Promise<void> {
    try {
      while (this.lostError === undefined && this.releasePromise === undefined) {
        this.noteOutcome(await this.renewShared());
        if (this.lostError !== undefined || this.releasePromise !== undefined) break;
        await (this.effects.renewSleepMs ?? this.effects.sleepMs)(this.timing.renewIntervalMs);
      }
    } catch (error) {
      // renewOnce turns I/O errors into outcomes, so only a bug gets here. Stop the
      // journal writes: a lease nobody renews must not pass for held.
      this.markLost({ kind: 'corrupt', reason: `renewal stopped on an unexpected error: ${String(error)}` });
    } finally {
      this.loopRunning = false;
    }
  }

  /** Logs the first failure of a run and the recovery, not every retry. */
  private noteOutcome(outcome: RenewOutcome): void {
    if (outcome.kind === 'io-error' || outcome.kind === 'too-slow') {
      this.consecutiveFailures += 1;
      if (this.consecutiveFailures === 1) {
        const detail = outcome.kind === 'io-error' ? String(outcome.error) : `verify read took ${outcome.elapsedMs} ms`;
        log(this.effects, 'warn', 'lease renewal failed; retrying every interval (the lease goes stale meanwhile)', { leaseId: this.leaseId, detail });
      }
    } else if (outcome.kind === 'renewed' && this.consecutiveFailures > 0) {
      log(this.effects, 'info', 'lease renewal recovered', { leaseId: this.leaseId, failedRenewals: this.consecutiveFailures });
      this.consecutiveFailures = 0;
    }
  }

  private async releaseOnce(): Promise<void> {
    // renewOnce returns 'stopped' from now on, so after this await no other lease I/O starts.
    await this.renewalInFlight;
    if (this.lostError !== undefined) return;
    let observed: ReadResult;
    try {
      observed = await readLeaseBlock(this.effects);
    } catch (error) {
      log(this.effects, 'warn', 'could not release the lease; the next acquirer will wait for it to go stale', { leaseId: this.leaseId, error: String(error) });
      return;
    }
    if (!this.isOurs(observed.block)) {
      this.markLost(observed.block);
      return;
    }
    // Same rule as a renewal: no lease write after s + VALID.
    if (!this.mayWriteAfterRead(observed.readStartMs)) {
      if (!this.abandoned) log(this.effects, 'warn', 'the release verify read was too slow to write after; the next acquirer will wait for the lease to go stale', { leaseId: this.leaseId });
      return;
    }
    this.issuedCounter += 1;
    try {
      await writeLeaseBlock(this.effects, this.block('released', this.issuedCounter));
      log(this.effects, 'info', 'lease released', { leaseId: this.leaseId, counter: this.issuedCounter });
    } catch (error) {
      log(this.effects, 'warn', 'could not release the lease; the next acquirer will wait for it to go stale', { leaseId: this.leaseId, error: String(error) });
    }
  }
}
