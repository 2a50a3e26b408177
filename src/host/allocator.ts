// The host allocator's core: grow LVs from the local pool in about one
// synchronous write, with every side effect passed in.
//
//   extend(lv, size)
//     1. serialise on the LV (concurrent extends of one LV queue; different LVs proceed)
//     2. round up to whole extents; equal size -> no-op; smaller -> SHRINK_REFUSED
//     3. take extents from the pool NOW (synchronously, so no concurrent extend can
//        take them too), preferring the extent right after the LV's last one
//     4. journal one record {lv, lvUuid, ranges, extentCountAfter} (group-committed)
//     5. if the LV is active here, load its new table (suspend, load, resume)
//     6. reply
//   Pool short: journal a demand and wait for a grant up to `outOfSpaceWaitMs`
//   (grantWaits.ts), then OUT_OF_SPACE saying why; a client gone cancels the wait.
//
// What the host believes, and why it is safe (I1, I4):
//   pool       = its free LV in metadata, less the extents of its own records the
//                master has not replayed yet; replaced by each newer grant snapshot,
//                less its records after the seq that snapshot reflects.
//   LV layout  = metadata segments, then its own unreplayed records in seq order,
//                which is exactly where replay will append them (I6).
// An extent taken for a record whose write failed is NOT returned to the pool, not
// even by a later grant snapshot (it is quarantined): the write may have reached the
// disk, and the master would then give the extent to the LV. The pool is rebuilt
// from metadata and the journal at the next start.

import { DmError, ErrorCode, ThinlvError, assert } from '../errors.js';
import { chooseExtents } from '../extent/chooseExtents.js';
import { linearTable, type DmTableLine } from '../extent/dmTable.js';
import { ExtentSet } from '../extent/extentSet.js';
import { ValidSegments } from '../extent/segments.js';
import type { LinearSegment, PhysicalRange } from '../extent/types.js';
import { DmErrorCode } from '../dm/deviceMapper.js';
import { linearSegments, lvExtentCount, SECTOR_BYTES, type VgLayout } from '../metadata/vgModel.js';
import { hostLvNames, readThinlvVg, type ThinlvVg } from '../format/thinlvVg.js';
import { allocationProblem } from '../replay/allocationRule.js';
import { MAX_RANGES_PER_RECORD, rangesOf, type GrantRecord, type JournalRecord, type PvExtentRange, type ShortageRecord } from '../records/records.js';
import { GrantWaits, type OutOfSpaceReason, type WhyNotServed } from './grantWaits.js';
import { KeyedMutex } from './keyedMutex.js';

export const DEFAULT_OUT_OF_SPACE_WAIT_MS = 5_000;
/** Longest wait for a grant a caller may configure. */
export const MAX_OUT_OF_SPACE_WAIT_MS = 120_000;
/** Largest single extend, in extents: bounds one journal record's range list. */
export const MAX_EXTEND_EXTENTS = 1 << 20;
/** A claim needs a master pass and a metadata read: seconds, not milliseconds. */
export const DEFAULT_CLAIM_WAIT_MS = 15_000;
/** How often a waiting claim re-reads metadata; each read is one `lvm fullreport --readonly`. */
export const CLAIM_POLL_MS = 100;
/**
 * An extend past the virtual size re-reads metadata (the size may have been raised) at most
 * this often: a guest retrying at its limit must not run an lvm report per request
 * (found by the simulator: thousands of refused extends, a metadata read each).
 */
export const VIRTUAL_SIZE_RECHECK_MS = 1_000;

export interface HostJournal {
  /**
   * Appends one record durably. Rejects with a ThinlvError whose data has
   * `notWritten: true` when it is certain nothing reached the disk (the ring is full);
   * any other rejection means the record may or may not be on disk.
   */
  append(record: JournalRecord): Promise<{ seq: number }>;
  /** The seq the master has consumed (replayed) through, read from the ring now; for status only. */
  consumedSeq?(): Promise<number>;
}

const certainlyNotWritten = (error: unknown): boolean => error instanceof ThinlvError && error.data['notWritten'] === true;

/** The dm operations the allocator needs (src/dm/deviceMapper.ts implements them). */
export interface HostDeviceMapper {
  activate(name: string, table: readonly DmTableLine[]): Promise<void>;
  reload(name: string, table: readonly DmTableLine[]): Promise<void>;
  deactivate(name: string): Promise<void>;
}

export interface HostEffects {
  readonly journal: HostJournal;
  readonly dm: HostDeviceMapper;
  readonly nowMs: () => number;
  readonly sleepMs: (ms: number) => Promise<void>;
  /** How thinlv names the dm device of an LV. */
  readonly dmName: (vg: string, lv: string) => string;
  /** Persists and journals the set of active LVs after an activate or deactivate. */
  readonly onActivityChange?: (activeLvs: readonly string[], changed: { lv: string; table: readonly DmTableLine[] | null }) => Promise<void>;
  /**
   * Re-reads metadata (read-only) and hands it to refreshMetadata(). A claim is
   * answered by the master in metadata, so waiting for one polls this.
   */
  readonly refreshMetadata: () => Promise<void>;
}

/** One of this host's journal records that the master has not replayed yet. */
export interface UnreplayedRecord {
  readonly seq: number;
  readonly record: JournalRecord;
}

export interface HostStart {
  readonly host: string;
  /** The VG as metadata says (read-only on a host). */
  readonly vg: VgLayout;
  /** The host's free LV extents in that metadata (device paths). */
  readonly freeRanges: readonly PhysicalRange[];
  /** Records after the applied seq in that metadata, in seq order. */
  readonly unreplayed: readonly UnreplayedRecord[];
  readonly lastGrantGeneration: number;
  /** The host's applied seq in that metadata: records at or below it are in metadata. */
  readonly appliedSeq: number;
  /** LVs this host had active before a restart (from its SQLite state); dm devices outlive the daemon. */
  readonly activeLvs?: readonly string[];
  readonly outOfSpaceWaitMs?: number;
  /** How long a claim of an LV waits for the master to answer it. */
  readonly claimWaitMs?: number;
}

export interface ExtendResult {
  readonly lv: string;
  readonly extentsGranted: number;
  readonly sizeBytes: number;
  readonly seq: number | null;
}

export interface HostStatus {
  readonly host: string;
  readonly poolExtentCount: number;
  readonly unreplayedRecordCount: number;
  readonly lastGrantGeneration: number;
  readonly activeLvs: readonly string[];
  /** Extends waiting for a grant now. */
  readonly waitingExtendCount: number;
}

function hostError(code: string, message: string, data: Record<string, unknown> = {}): ThinlvError {
  return new ThinlvError(code, message, data);
}

export class HostAllocator {
  private pool: ExtentSet;
  private generation: number;
  private vg: VgLayout;
  private thinlv: ThinlvVg;
  private appliedSeq: number;
  /** Set when this host must not write again (removed, its lease lost); every request then fails with it. */
  private halted: ThinlvError | undefined;
  /** LV name -> unreplayed segments appended after its metadata segments (device paths). */
  private readonly pending = new Map<string, PhysicalRange[]>();
  private readonly unreplayed: UnreplayedRecord[] = [];
  /** LVs this host has journaled a release of that the master has not replayed: no longer its own (owns() is on every extend). */
  private readonly unreplayedReleases = new Set<string>();
  private readonly active = new Set<string>();
  private readonly lvLocks = new KeyedMutex();
  private readonly waits: GrantWaits;
  /** LVs claimed for a client that gave up waiting: released when the master grants them. */
  private readonly abandonedClaims = new Set<string>();
  private readonly outOfSpaceWaitMs: number;
  /** Extends waiting for a grant now (status() reports it). */
  private waitingExtendCount = 0;
  /** When refreshMetadata last took metadata in (the start's metadata counts as never: recheck at once). */
  private metadataReadAtMs = Number.NEGATIVE_INFINITY;
  /**
   * Extents taken for records whose write failed: the write may have reached the disk,
   * so they stay out of every pool until a restart rebuilds it from the journal.
   */
  private quarantine = ExtentSet.empty();
  /** Extents taken for records being written right now (see journalRanges). */
  private inFlight = ExtentSet.empty();
  /**
   * Set when a journal write failed. Whether that record reached the disk decides the
   * logical offset of every later extent of its LV, and only re-reading the journal
   * tells, so no extend is served until the daemon restarts and rebuilds from the ring.
   */
  private journalFailure: unknown = undefined;
  private readonly deviceByUuid: Map<string, string>;
  private readonly uuidByDevice: Map<string, string>;

  /**
   * What later steps need of the start: not the start itself, whose VG (megabytes on a
   * pool of 10,000 LVs) would then outlive every refresh that replaced it.
   */
  private readonly start: Pick<HostStart, 'host' | 'claimWaitMs'>;

  constructor(
    start: HostStart,
    private readonly effects: HostEffects,
  ) {
    this.start = { host: start.host, ...(start.claimWaitMs === undefined ? {} : { claimWaitMs: start.claimWaitMs }) };
    this.vg = start.vg;
    this.thinlv = readThinlvVg(start.vg);
    this.appliedSeq = start.appliedSeq;
    this.generation = start.lastGrantGeneration;
    this.outOfSpaceWaitMs = start.outOfSpaceWaitMs ?? DEFAULT_OUT_OF_SPACE_WAIT_MS;
    this.waits = new GrantWaits({ nowMs: effects.nowMs, sleepMs: effects.sleepMs, announce: (extentCount) => this.announceDemand(extentCount) });
    assert(this.outOfSpaceWaitMs >= 0 && this.outOfSpaceWaitMs <= MAX_OUT_OF_SPACE_WAIT_MS, 'outOfSpaceWaitMs out of bounds');
    this.deviceByUuid = new Map(start.vg.pvs.map((pv) => [pv.uuid, pv.device]));
    this.uuidByDevice = new Map(start.vg.pvs.map((pv) => [pv.device, pv.uuid]));
    let pool = ExtentSet.fromRanges(start.freeRanges);
    for (const entry of start.unreplayed) {
      const ranges = this.toDevice(rangesOf(entry.record));
      pool = pool.difference(ExtentSet.fromRanges(ranges));
      this.remember(entry, ranges);
    }
    this.pool = pool;
    for (const lv of start.activeLvs ?? []) this.active.add(lv);
  }

  /**
   * After a restart, loads each active LV's table again. A crash between a record's
   * write and its table reload left the device on the old table (the record is
   * durable, its extents are this LV's); reloading is harmless when it did not.
   */
  /**
   * Reloads the table of every LV this host had active before a restart (I6). An LV whose
   * device is gone (the host rebooted, or someone removed it) is not active any more: it
   * is forgotten and released, since no table here maps it. Returns those LVs.
   */
  async recover(): Promise<string[]> {
    const gone: string[] = [];
    for (const lv of [...this.active].sort()) {
      await this.lvLocks.run(lv, async () => {
        try {
          await this.reloadTable(lv);
        } catch (error) {
          if (!(error instanceof DmError && error.code === DmErrorCode.notFound)) throw error;
          gone.push(lv);
          this.active.delete(lv);
          await this.effects.onActivityChange?.([...this.active], { lv, table: null });
          await this.releaseOwnership(lv);
        }
      });
    }
    return gone;
  }

  private toDevice(ranges: readonly PvExtentRange[]): PhysicalRange[] {
    return ranges.map((r) => {
      const pv = this.deviceByUuid.get(r.pvUuid);
      assert(pv !== undefined, `record names PV ${r.pvUuid}, which is not in the VG`);
      return { pv, firstExtent: r.firstExtent, extentCount: r.extentCount };
    });
  }

  private toUuid(ranges: readonly PhysicalRange[]): PvExtentRange[] {
    return ranges.map((r) => {
      const pvUuid = this.uuidByDevice.get(r.pv);
      assert(pvUuid !== undefined, `range on ${r.pv}, which is not a PV of the VG`);
      return { pvUuid, firstExtent: r.firstExtent, extentCount: r.extentCount };
    });
  }

  private remember(entry: UnreplayedRecord, ranges: readonly PhysicalRange[]): void {
    this.unreplayed.push(entry);
    if (entry.record.kind === 'release') this.unreplayedReleases.add(entry.record.lv);
    if (entry.record.kind !== 'allocate') return;
    const list = this.pending.get(entry.record.lv) ?? [];
    for (const range of ranges) {
      // Grows usually continue right after the LV's tail: merge, so the list (and every
      // extend's work) stays as short as the LV's real segment count.
      const last = list[list.length - 1];
      if (last !== undefined && last.pv === range.pv && last.firstExtent + last.extentCount === range.firstExtent) {
        list[list.length - 1] = { ...last, extentCount: last.extentCount + range.extentCount };
      } else {
        list.push({ ...range });
      }
    }
    this.pending.set(entry.record.lv, list);
    this.layouts.delete(entry.record.lv);
  }

  private lvIndex: { vg: VgLayout; byName: Map<string, VgLayout['lvs'][number]> } | undefined;

  private lvNamed(name: string): VgLayout['lvs'][number] | undefined {
    if (this.lvIndex?.vg !== this.vg) this.lvIndex = { vg: this.vg, byName: new Map(this.vg.lvs.map((lv) => [lv.name, lv])) };
    return this.lvIndex.byName.get(name);
  }

  private extentSizeBytes(): number {
    return this.vg.extentSizeSectors * SECTOR_BYTES;
  }

  /**
   * Each LV's segments as this host maps them, validated, built on first use after a
   * change: remember() drops the LV's entry, a metadata refresh drops them all. Every
   * extend needs them, and validating them each time was most of an extend's CPU.
   */
  private readonly layouts = new Map<string, ValidSegments>();

  private layoutOf(lvName: string): ValidSegments {
    let layout = this.layouts.get(lvName);
    if (layout === undefined) {
      layout = ValidSegments.of(this.segmentsOf(lvName), `LV ${lvName} as this host maps it`);
      this.layouts.set(lvName, layout);
    }
    return layout;
  }

  /** The LV's segments as this host must map them: metadata, then its unreplayed records. */
  segmentsOf(lvName: string): LinearSegment[] {
    const lv = this.lvNamed(lvName);
    if (lv === undefined) throw hostError(ErrorCode.lvNotFound, `LV ${this.vg.name}/${lvName} does not exist`, { lv: lvName });
    const base = linearSegments(lv);
    if (base === undefined) throw hostError(ErrorCode.unsupportedMetadata, `LV ${lvName} is not linear`, { lv: lvName });
    let logicalStart = base.reduce((sum, s) => sum + s.extentCount, 0);
    const extra = (this.pending.get(lvName) ?? []).map((r) => {
      const segment = { ...r, logicalStart };
      logicalStart += r.extentCount;
      return segment;
    });
    return [...base, ...extra];
  }

  /** The LV's size in extents as this host maps it, from the layout its extends use (no copy of the segments). */
  extentCountOf(lvName: string): number {
    return this.layoutOf(lvName).extentCount;
  }

  tableOf(lvName: string): DmTableLine[] {
    const pvs = new Map(this.vg.pvs.map((pv) => [pv.device, { devicePath: pv.device, peStartSectors: pv.peStartSectors }]));
    return linearTable(this.layoutOf(lvName), pvs, this.vg.extentSizeSectors);
  }

  /**
   * Grows `lvName` to at least `sizeBytes` (rounded up to whole extents). `signal` (the
   * client went away) ends a wait for a grant with CANCELLED; nothing is taken then.
   */
  extend(lvName: string, sizeBytes: number, signal?: AbortSignal): Promise<ExtendResult> {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) {
      return Promise.reject(hostError(ErrorCode.invalidArgument, `size must be a positive whole number of bytes, got ${sizeBytes}`));
    }
    return this.lvLocks.run(lvName, () => this.whileOwned(lvName, () => this.extendOwned(lvName, () => sizeBytes, signal)));
  }

  /** Grows `lvName` by `incrementBytes`, rounded up to whole extents. */
  extendBy(lvName: string, incrementBytes: number, signal?: AbortSignal): Promise<ExtendResult> {
    return this.lvLocks.run(lvName, () =>
      this.whileOwned(lvName, () => this.extendOwned(lvName, () => this.layoutOf(lvName).extentCount * this.extentSizeBytes() + incrementBytes, signal)),
    );
  }

  /** Whether this host owns `lvName`: metadata says so and it has not journaled a release since. */
  owns(lvName: string): boolean {
    return this.thinlv.thinLvs.get(lvName)?.owner === this.start.host && !this.unreplayedReleases.has(lvName);
  }

  /**
   * Runs `fn` with `lvName` owned by this host. An LV it does not own is claimed first
   * (a round trip through the master) and, unless it is active here, released after:
   * a one-off extend (a storage manager resizing an inactive LV) must not keep other
   * hosts from activating it. Called with the LV's lock held.
   */
  private async whileOwned<T>(lvName: string, fn: () => Promise<T>): Promise<T> {
    this.throwIfStopped();
    this.lvOf(lvName); // LV_NOT_FOUND or NOT_THIN_LV before anything is written
    if (this.owns(lvName)) return fn();
    await this.claim(lvName);
    try {
      return await fn();
    } finally {
      // A release that fails leaves the LV owned but idle: the next metadata refresh retries it.
      if (!this.active.has(lvName)) await this.releaseOwnership(lvName).catch(() => undefined);
    }
  }

  private lvOf(lvName: string): VgLayout['lvs'][number] {
    const lv = this.lvNamed(lvName);
    if (lv === undefined) throw hostError(ErrorCode.lvNotFound, `LV ${this.vg.name}/${lvName} does not exist`, { lv: lvName });
    if (!this.thinlv.thinLvs.has(lvName)) {
      throw hostError('NOT_THIN_LV', `LV ${this.vg.name}/${lvName} is not a thin LV (no thinlv_virtual_bytes tag, or one of thinlv's own LVs): hosts grow thin LVs only; use lvm for it`, { lv: lvName });
    }
    return lv;
  }

  /**
   * Journals a claim and waits until the master has replayed it, reading the answer
   * (the owner tag) from metadata. The same read brings the LV's current layout,
   * every other host's allocations of it included (they were replayed with the
   * release that freed it), so what this host maps afterwards is the whole LV.
   */
  private async claim(lvName: string): Promise<void> {
    const lv = this.lvOf(lvName);
    const { seq } = await this.appendRecord({ kind: 'claim', lv: lvName, lvUuid: lv.uuid });
    const waitMs = this.start.claimWaitMs ?? DEFAULT_CLAIM_WAIT_MS;
    if (!(await this.awaitReplay(seq, waitMs))) {
      this.abandonedClaims.add(lvName);
      throw hostError('CLAIM_TIMEOUT', `host ${this.start.host} asked the master for ${lvName} and had no answer within ${waitMs} ms: check that "thinlv master ${this.vg.name}" runs (the claim stays journaled; it is released if granted later)`, {
        lv: lvName,
        seq,
      });
    }
    if (this.lvNamed(lvName)?.uuid !== lv.uuid) {
      throw hostError(ErrorCode.lvNotFound, `LV ${this.vg.name}/${lvName} was removed (or replaced) on the master meanwhile`, { lv: lvName });
    }
    if (!this.owns(lvName)) {
      const owner = this.thinlv.thinLvs.get(lvName)?.owner;
      throw hostError('LV_OWNED_ELSEWHERE', `LV ${this.vg.name}/${lvName} is held by ${owner === undefined ? 'another host or was replaced' : `host ${owner}`}: deactivate it there first (only one host extends an LV)`, { lv: lvName, owner });
    }
  }

  /**
   * Re-reads metadata until the master has replayed this host's journal through `seq`;
   * false when `waitMs` (by default the claim wait) passed first.
   */
  async awaitReplay(seq: number, waitMs = this.start.claimWaitMs ?? DEFAULT_CLAIM_WAIT_MS): Promise<boolean> {
    const deadline = this.effects.nowMs() + waitMs;
    for (;;) {
      await this.effects.refreshMetadata();
      this.throwIfStopped();
      if (this.appliedSeq >= seq) return true;
      if (this.effects.nowMs() >= deadline) return false;
      await this.effects.sleepMs(CLAIM_POLL_MS);
    }
  }

  /** Journals a release of an LV this host owns. A failed write leaves it owned; the next metadata refresh retries. */
  private async releaseOwnership(lvName: string): Promise<void> {
    const lv = this.lvNamed(lvName);
    if (lv === undefined || !this.owns(lvName) || this.halted !== undefined) return;
    await this.appendRecord({ kind: 'release', lv: lvName, lvUuid: lv.uuid });
  }

  /**
   * Journals the record that moves `ranges`, already taken (see take()); returns its seq
   * once durable. Until the write settles the extents are "in flight": a grant snapshot
   * applied meanwhile (which cannot know of this record yet) does not put them back.
   */
  private async journalRanges(record: JournalRecord, ranges: readonly PhysicalRange[]): Promise<number> {
    const extents = ExtentSet.fromRanges(ranges);
    try {
      const { seq } = await this.effects.journal.append(record);
      this.remember({ seq, record }, ranges);
      return seq;
    } catch (error) {
      if (certainlyNotWritten(error)) {
        // Nothing reached the disk (a full ring): the extents are still the pool's.
        this.pool = this.pool.union(extents);
      } else {
        this.quarantine = this.quarantine.union(extents);
        this.journalFailure ??= error;
      }
      throw error;
    } finally {
      this.inFlight = this.inFlight.difference(extents);
    }
  }

  /**
   * Appends a record that moves no extents, and tracks it as unreplayed. A write that
   * may have landed leaves ownership unknown (a release on disk that this host does
   * not know of would make its next extend one replay refuses), so, as for an
   * allocation, nothing more is served until a restart re-reads the journal.
   */
  private async appendRecord(record: JournalRecord): Promise<{ seq: number }> {
    try {
      const { seq } = await this.effects.journal.append(record);
      this.remember({ seq, record }, []);
      return { seq };
    } catch (error) {
      if (!certainlyNotWritten(error)) this.journalFailure ??= error;
      throw error;
    }
  }

  private throwIfStopped(): void {
    if (this.halted !== undefined) throw this.halted;
    if (this.journalFailure !== undefined) {
      throw hostError('JOURNAL_FAILED', `host ${this.start.host} could not write its journal (${this.journalFailure instanceof Error ? this.journalFailure.message : String(this.journalFailure)}); it serves no extends until restarted, which re-reads the journal`, {
        host: this.start.host,
      });
    }
  }

  /**
   * Stops serving for good: every later request fails with `error`, and nothing more
   * is written (the host was removed, or another writer holds its journal).
   */
  halt(error: ThinlvError): void {
    this.halted ??= error;
    this.waits.wakeAll();
  }

  private async extendOwned(lvName: string, targetBytes: () => number, signal: AbortSignal | undefined): Promise<ExtendResult> {
    const sizeBytes = targetBytes();
    const lv = this.lvOf(lvName);
    const extentBytes = this.extentSizeBytes();
    const currentExtentCount = this.layoutOf(lvName).extentCount;
    const wantedExtentCount = Math.ceil(sizeBytes / extentBytes);
    if (wantedExtentCount < currentExtentCount) {
      throw hostError('SHRINK_REFUSED', `LV ${lvName} holds ${currentExtentCount * extentBytes} bytes; hosts only grow LVs (shrinking goes through the master: thinlv lvresize -L)`, {
        lv: lvName,
        sizeBytes,
      });
    }
    const needed = wantedExtentCount - currentExtentCount;
    if (needed === 0) return { lv: lvName, extentsGranted: 0, sizeBytes: currentExtentCount * extentBytes, seq: null };
    if (needed > MAX_EXTEND_EXTENTS) throw hostError(ErrorCode.invalidArgument, `one extend may add at most ${MAX_EXTEND_EXTENTS} extents, asked ${needed}`);
    await this.checkAllocation(lvName, currentExtentCount, needed);

    const chosen = await this.takeFromPool(lvName, needed, signal);
    const record: JournalRecord = { kind: 'allocate', lv: lvName, lvUuid: lv.uuid, ranges: this.toUuid(chosen), extentCountAfter: wantedExtentCount };
    const seq = await this.journalRanges(record, chosen);
    if (this.active.has(lvName)) await this.reloadTable(lvName);
    return { lv: lvName, extentsGranted: needed, sizeBytes: wantedExtentCount * extentBytes, seq };
  }

  /**
   * Refuses, before anything is written, what replay would refuse (the same rule).
   * A virtual size read long ago may have been raised since: one fresh read decides.
   */
  private async checkAllocation(lvName: string, extentCountBefore: number, extentCount: number): Promise<void> {
    const problem = () =>
      allocationProblem(this.thinlv, {
        host: this.start.host,
        lv: lvName,
        extentCountBefore,
        extentCount,
        extentCountAfter: extentCountBefore + extentCount,
        owner: this.owns(lvName) ? this.start.host : this.thinlv.thinLvs.get(lvName)?.owner,
        extentSizeBytes: this.extentSizeBytes(),
      });
    let found = problem();
    if (found?.code === 'VIRTUAL_SIZE_EXCEEDED' && this.effects.nowMs() - this.metadataReadAtMs >= VIRTUAL_SIZE_RECHECK_MS) {
      await this.effects.refreshMetadata();
      found = problem();
    }
    if (found !== undefined) throw hostError(found.code, `VG ${this.vg.name}: ${found.reason}`, { lv: lvName, extentCountBefore, extentCount });
  }

  /**
   * Takes extents for `needed` more of `lvName` out of the pool, waiting for a grant up
   * to outOfSpaceWaitMs. They are taken in the same turn as they are chosen (no await
   * in between), so two extends never choose the same extents, and they are "in
   * flight" until journalRanges settles their record.
   */
  private async takeFromPool(lvName: string, needed: number, signal: AbortSignal | undefined): Promise<PhysicalRange[]> {
    const taken = this.chooseAndTake(lvName, needed);
    if (taken !== undefined) return taken;
    this.waitingExtendCount += 1;
    try {
      return await this.waits.waitFor(needed, () => this.chooseAndTake(lvName, needed), {
        waitMs: this.outOfSpaceWaitMs,
        signal,
        giveUp: (why) => this.outOfSpace(lvName, needed, why),
      });
    } finally {
      this.waitingExtendCount -= 1;
    }
  }

  /**
   * Chooses extents for `needed` more of `lvName` and takes them out of the pool in the
   * same turn, with no await in between: every extend a grant wakes chooses from the
   * pool as the previous one left it, so no two take the same extents. Undefined when
   * the pool cannot serve the extend yet.
   */
  private chooseAndTake(lvName: string, needed: number): PhysicalRange[] | undefined {
    this.throwIfStopped();
    // Many LVs grow from one pool at once: new segments spread out, so each keeps room to grow contiguously.
    const chosen = chooseExtents(this.pool, this.layoutOf(lvName), needed, { newSegments: 'spread' });
    if (!chosen.ok) return undefined;
    if (chosen.ranges.length > MAX_RANGES_PER_RECORD) {
      // One record cannot name more ranges; refused here, before anything is taken or written.
      throw hostError('POOL_TOO_FRAGMENTED', `VG ${this.vg.name}: ${lvName} needs ${needed} extents, which host ${this.start.host}'s pool holds only in ${chosen.ranges.length} pieces (one journal record names at most ${MAX_RANGES_PER_RECORD}): extend by less at a time`, {
        lv: lvName,
        neededExtents: needed,
        rangeCount: chosen.ranges.length,
      });
    }
    this.take(chosen.ranges);
    return chosen.ranges;
  }

  /** The OUT_OF_SPACE an extend that waited in vain fails with, saying why. */
  private outOfSpace(lvName: string, needed: number, why: WhyNotServed): ThinlvError {
    const extentBytes = this.extentSizeBytes();
    const what = `VG ${this.vg.name}: ${lvName} needs ${needed} more extents (${needed * extentBytes} bytes) and host ${this.start.host}'s pool has ${this.pool.extentCount}`;
    const shortage = why.shortage;
    const reasons: Record<OutOfSpaceReason, string> = {
      'master-not-answering': `the master has not answered this host's demand for ${why.silentMs} ms: check that \`thinlv master\` runs for ${this.vg.name}`,
      'vg-full': `the VG is out of space: ${shortage?.vgFreeExtentCount ?? 0} extents free, of which ${shortage?.reserveExtentCount ?? 0} are the reserve pools are never granted from (add a PV, or free space)`,
      shared: `the VG is short and the hosts waiting at once share what is left: this host got ${shortage?.grantedExtentCount ?? 0} of the ${shortage?.demandExtentCount ?? 0} extents it waits for (its share is exhausted); ${shortage?.vgFreeExtentCount ?? 0} extents free, reserve ${shortage?.reserveExtentCount ?? 0}`,
      'no-grant-in-time': `no grant covered it within ${this.outOfSpaceWaitMs} ms`,
    };
    return hostError('OUT_OF_SPACE', `${what}; ${reasons[why.reason]}`, {
      vg: this.vg.name,
      host: this.start.host,
      lv: lvName,
      neededExtents: needed,
      poolExtents: this.pool.extentCount,
      reason: why.reason,
      ...(shortage === undefined ? {} : { vgFreeExtents: shortage.vgFreeExtentCount, reserveExtents: shortage.reserveExtentCount }),
    });
  }

  /**
   * Tells the master, through the journal, how many extents the extends waiting now
   * need in all, so its next pass grants that much at once (a refill of one quantum
   * would not cover an extend larger than a quantum); 0 when they stopped waiting.
   * Best effort: the record moves nothing, so a lost one only delays a grant.
   */
  private announceDemand(extentCount: number): void {
    if (this.halted !== undefined || this.journalFailure !== undefined) return;
    const record: JournalRecord = { kind: 'demand', extentCount };
    this.effects.journal.append(record).then(
      ({ seq }) => this.remember({ seq, record }, []),
      () => undefined,
    );
  }

  /** Whether an extend waits for a grant now (the daemon then reads its grants ring more often). */
  isWaitingForGrant(): boolean {
    return this.waits.isWaiting();
  }

  /** The master could not cover this host's demand (a shortage record): waiting extends learn why. */
  noteShortage(record: ShortageRecord): void {
    this.waits.noteShortage(record);
  }

  private take(ranges: readonly PhysicalRange[]): void {
    const extents = ExtentSet.fromRanges(ranges);
    this.pool = this.pool.difference(extents);
    this.inFlight = this.inFlight.union(extents);
  }

  /**
   * Applies a grant if its generation is newer than the last applied; returns whether it did.
   * Safe to repeat: an older or equal generation changes nothing, so a grant re-sent
   * after a master crash is applied once.
   */
  applyGrant(grant: GrantRecord): boolean {
    if (grant.kind !== 'grant' || grant.generation <= this.generation) return false;
    // A grant is the free LV as of its appliedSeq. Metadata this host read since may be
    // newer (the simulator found this: a grant read late, after a refresh): its records
    // between the two seqs are LV segments now and have left this.unreplayed, so the
    // snapshot would hand their extents out again (I1). The newer metadata's free LV
    // holds the grant's extents too (it was committed after the grant's commit), so it is
    // the snapshot to use then.
    const stale = grant.appliedSeq < this.appliedSeq;
    const snapshot = stale ? this.freeLvExtents() : ExtentSet.fromRanges(this.toDevice(grant.freeRanges));
    const since = stale ? this.appliedSeq : grant.appliedSeq;
    const mine = this.unreplayed.filter((u) => u.seq > since);
    const taken = ExtentSet.fromRanges(mine.flatMap((u) => this.toDevice(rangesOf(u.record))));
    this.pool = snapshot.difference(taken).difference(this.quarantine).difference(this.inFlight);
    this.generation = grant.generation;
    this.waits.noteGrant();
    return true;
  }

  /** This host's free LV in the metadata it last read. */
  private freeLvExtents(): ExtentSet {
    const free = this.lvNamed(hostLvNames(this.start.host).free);
    const segments = free === undefined ? [] : linearSegments(free);
    assert(segments !== undefined, `free LV of ${this.start.host} is not linear`);
    return ExtentSet.fromRanges(segments);
  }

  /** The VG layout in use: a re-read shares its unchanged LVs rather than build them twice (hostDaemon.ts). */
  layout(): VgLayout {
    return this.vg;
  }

  /**
   * Takes in metadata the master has committed (after a replay): records at or below
   * `appliedSeq` are now metadata segments, so they leave the pending lists. An active
   * LV whose layout changed in a way this host did not know (a record whose write
   * failed here but reached the disk, now replayed) gets its table reloaded (I6).
   */
  async refreshMetadata(vg: VgLayout, appliedSeq: number, thinlv: ThinlvVg = readThinlvVg(vg)): Promise<void> {
    const before = new Map([...this.active].map((lv) => [lv, JSON.stringify(this.tableOf(lv))]));
    this.metadataReadAtMs = this.effects.nowMs();
    this.vg = vg;
    // The index of the VG it replaces would keep that VG alive until the next lookup.
    this.lvIndex = undefined;
    // A caller that read `vg` already (the daemon) passes it: a second one is 1.4 MB more
    // at 10,000 LVs, at the moment the daemon's memory peaks (issue 14).
    this.thinlv = thinlv;
    this.appliedSeq = appliedSeq;
    const kept = this.unreplayed.filter((u) => u.seq > appliedSeq);
    this.unreplayed.length = 0;
    this.unreplayedReleases.clear();
    this.pending.clear();
    this.layouts.clear();
    for (const entry of kept) this.remember(entry, this.toDevice(rangesOf(entry.record)));
    for (const [lv, table] of before) {
      if (JSON.stringify(this.tableOf(lv)) === table) continue;
      // A refresh can come from inside an operation holding this LV's lock (a claim
      // or a virtual-size check): queue the reload behind it rather than wait for it.
      const busy = this.lvLocks.isBusy(lv);
      const reload = this.lvLocks.run(lv, () => this.reloadTable(lv));
      if (busy) void reload.catch(() => undefined);
      else await reload;
    }
    this.releaseIdleOwnership();
  }

  /**
   * Gives back LVs this host claimed for a client that gave up waiting, once the
   * master grants them (or the grant is seen denied). Only those: an LV this host
   * holds for another reason may be active in device-mapper even if this daemon's
   * SQLite state was lost, and releasing it would let another host grow it under
   * a live table. An LV whose lock is taken is in use: left for the next refresh.
   */
  private releaseIdleOwnership(): void {
    if (this.halted !== undefined || this.journalFailure !== undefined) return;
    for (const name of [...this.abandonedClaims]) {
      if (this.lvLocks.isBusy(name)) continue;
      if (this.thinlv.thinLvs.get(name)?.owner !== this.start.host) {
        // Denied, or not replayed yet: forget it once the claim is behind the applied seq.
        if (!this.unreplayed.some((u) => u.record.kind === 'claim' && u.record.lv === name)) this.abandonedClaims.delete(name);
        continue;
      }
      this.abandonedClaims.delete(name);
      if (this.active.has(name) || !this.owns(name)) continue;
      void this.lvLocks.run(name, () => (this.active.has(name) ? Promise.resolve() : this.releaseOwnership(name))).catch(() => undefined);
    }
  }

  /** Loads the LV's table (metadata plus unreplayed segments), claiming the LV first if another host may hold it. */
  async activate(lvName: string): Promise<DmTableLine[]> {
    return this.lvLocks.run(lvName, async () => {
      this.throwIfStopped();
      this.lvOf(lvName);
      if (!this.owns(lvName)) await this.claim(lvName);
      const table = this.tableOf(lvName);
      const name = this.effects.dmName(this.vg.name, lvName);
      if (this.active.has(lvName)) await this.effects.dm.reload(name, table);
      else await this.effects.dm.activate(name, table);
      this.active.add(lvName);
      await this.effects.onActivityChange?.([...this.active], { lv: lvName, table });
      return table;
    });
  }

  /**
   * Removes the LV's table here and gives up its ownership, so another host may activate
   * it. With `deflateToBytes`, then journals a deflate: the master gives the LV's extents
   * past that size back to VG free space once nobody holds it (src/replay/planReplay.ts);
   * returns the deflate record's seq and the size it keeps.
   */
  async deactivate(lvName: string, deflateToBytes?: number): Promise<{ deflate?: { seq: number; targetBytes: number } }> {
    return this.lvLocks.run(lvName, async () => {
      this.throwIfStopped();
      await this.effects.dm.deactivate(this.effects.dmName(this.vg.name, lvName));
      this.active.delete(lvName);
      await this.effects.onActivityChange?.([...this.active], { lv: lvName, table: null });
      await this.releaseOwnership(lvName);
      if (deflateToBytes === undefined) return {};
      return { deflate: await this.journalDeflate(lvName, deflateToBytes) };
    });
  }

  /** The deflate record for an LV nobody else holds (as far as this host knows); see deactivate(). */
  private async journalDeflate(lvName: string, deflateToBytes: number): Promise<{ seq: number; targetBytes: number }> {
    const lv = this.lvOf(lvName);
    const owner = this.thinlv.thinLvs.get(lvName)?.owner;
    if (owner !== undefined && owner !== this.start.host) {
      throw hostError('LV_OWNED_ELSEWHERE', `LV ${this.vg.name}/${lvName} is held by host ${owner}: deactivate and deflate it there (only an LV nobody holds can be deflated)`, { lv: lvName, owner });
    }
    const extentCount = Math.max(1, Math.ceil(deflateToBytes / this.extentSizeBytes()));
    const { seq } = await this.appendRecord({ kind: 'deflate', lv: lvName, lvUuid: lv.uuid, extentCount });
    return { seq, targetBytes: extentCount * this.extentSizeBytes() };
  }

  /** The LV's size as metadata says (after a deflate was replayed: what it kept), and its holder. */
  metadataSizeOf(lvName: string): { sizeBytes: number; owner: string | undefined } {
    const lv = this.lvOf(lvName);
    return { sizeBytes: lvExtentCount(lv) * this.extentSizeBytes(), owner: this.thinlv.thinLvs.get(lvName)?.owner };
  }

  /**
   * Hands `extentCount` extents of the pool back to VG free space (the master asked):
   * one `return` record, which the master replays into free space. Returns how many.
   */
  async returnExtents(extentCount: number): Promise<number> {
    if (this.journalFailure !== undefined || this.halted !== undefined) return 0;
    const count = Math.min(extentCount, this.pool.extentCount);
    if (count <= 0) return 0;
    // Give back the end of the pool's last runs, keeping long runs for growth near LVs' tails.
    const ranges: PhysicalRange[] = [];
    let remaining = count;
    for (const run of [...this.pool.ranges()].reverse()) {
      // One record names at most MAX_RANGES_PER_RECORD ranges: a fragmented pool returns less.
      if (remaining === 0 || ranges.length === MAX_RANGES_PER_RECORD) break;
      const take = Math.min(remaining, run.extentCount);
      ranges.push({ pv: run.pv, firstExtent: run.firstExtent + run.extentCount - take, extentCount: take });
      remaining -= take;
    }
    this.take(ranges);
    await this.journalRanges({ kind: 'return', ranges: this.toUuid(ranges) }, ranges);
    return count - remaining;
  }

  /**
   * How this host stands. Records count as unreplayed until the master consumed them, read
   * from the ring now (the master consumes right after its commit), so the count is
   * current even before this daemon next reads the metadata.
   */
  async statusNow(): Promise<HostStatus> {
    return this.status(await (this.effects.journal.consumedSeq?.().catch(() => 0) ?? 0));
  }

  /** How this host stands, counting records after `consumed` as unreplayed. */
  status(consumed = 0): HostStatus {
    return {
      host: this.start.host,
      poolExtentCount: this.pool.extentCount,
      unreplayedRecordCount: this.unreplayed.filter((u) => u.seq > consumed && rangesOf(u.record).length > 0).length,
      lastGrantGeneration: this.generation,
      activeLvs: [...this.active].sort(),
      waitingExtendCount: this.waitingExtendCount,
    };
  }

  private async reloadTable(lv: string): Promise<void> {
    const table = this.tableOf(lv);
    await this.effects.dm.reload(this.effects.dmName(this.vg.name, lv), table);
  }

  /** The table each active LV has now (metadata plus unreplayed segments, I6). */
  activeTables(): Map<string, readonly DmTableLine[]> {
    return new Map([...this.active].sort().map((lv) => [lv, this.tableOf(lv)]));
  }

  /** The pool, for tests and reports. */
  poolExtents(): ExtentSet {
    return this.pool;
  }
}
