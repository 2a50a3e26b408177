// Model-based tests of the host allocator with in-memory effects: a journal that
// is a list, a device-mapper that keeps tables in a map, a master that replays
// and grants by hand. Random interleavings of extend, activate, deactivate,
// replay, grant, failed writes and crashes must keep I1, I3, I4 and I6.

import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { ExtentSet } from '../../src/extent/extentSet.js';
import type { DmTableLine } from '../../src/extent/dmTable.js';
import type { PhysicalRange } from '../../src/extent/types.js';
import { HostAllocator, VIRTUAL_SIZE_RECHECK_MS, type HostDeviceMapper, type HostJournal, type UnreplayedRecord } from '../../src/host/allocator.js';
import type { LvLayout, VgLayout } from '../../src/metadata/vgModel.js';
import { MAX_RANGES_PER_RECORD, type JournalRecord } from '../../src/records/records.js';
import { DmError } from '../../src/errors.js';
import { DmErrorCode } from '../../src/dm/deviceMapper.js';

const PV = '/dev/sdx';
const PV_UUID = 'pv-uuid-sdx';
const PE_COUNT = 1200;
const EXTENT_SECTORS = 8192;
const EXTENT_BYTES = EXTENT_SECTORS * 512;
const LVS = ['lv0', 'lv1', 'lv2'];

/** The master and the shared disk, as a model: metadata segments, the host's free LV, the journal. */
class World {
  metadata = new Map<string, PhysicalRange[]>(LVS.map((lv, i) => [lv, [{ pv: PV, firstExtent: i, extentCount: 1 }]]));
  freeLv = ExtentSet.empty();
  vgFree = ExtentSet.fromRanges([{ pv: PV, firstExtent: LVS.length, extentCount: PE_COUNT - LVS.length }]);
  journal: { seq: number; record: JournalRecord }[] = [];
  appliedSeq = 0;
  generation = 0;
  failNextAppend = false;
  /** After a reboot dm devices are gone, and a reload of one fails as dmsetup's does. */
  rebooted = false;
  /** Every thin LV's virtual size (thinlv_virtual_bytes). */
  virtualBytes = PE_COUNT * EXTENT_BYTES;
  dmTables = new Map<string, readonly DmTableLine[]>();
  /** Who holds each LV (thinlv_owner): h1 at first; claims and releases move it as replay applies them. */
  owners = new Map<string, string | undefined>(LVS.map((lv) => [lv, 'h1']));

  layout(): VgLayout {
    const lvs: LvLayout[] = LVS.map((name) => {
      let logicalStart = 0;
      return {
        name,
        uuid: `uuid-${name}`,
        tags: [`thinlv_virtual_bytes=${this.virtualBytes}`, ...(this.owners.get(name) === undefined ? [] : [`thinlv_owner=${this.owners.get(name)}`])],
        activationSkip: true,
        segments: this.metadata.get(name)!.map((r) => {
          const segment = { logicalStart, extentCount: r.extentCount, type: 'striped', stripes: [{ pv: r.pv, firstExtent: r.firstExtent }] };
          logicalStart += r.extentCount;
          return segment;
        }),
      };
    });
    // The host's free LV, as the master committed it (grant() and replay() move extents in and out).
    const freeRanges = this.freeLv.ranges();
    let freeStart = 0;
    if (freeRanges.length > 0) {
      lvs.push({
        name: 'thinlv_h1_free',
        uuid: 'uuid-thinlv_h1_free',
        tags: [],
        activationSkip: false,
        segments: freeRanges.map((r) => {
          const segment = { logicalStart: freeStart, extentCount: r.extentCount, type: 'striped', stripes: [{ pv: r.pv, firstExtent: r.firstExtent }] };
          freeStart += r.extentCount;
          return segment;
        }),
      });
    }
    const tags = ['thinlv_format=1', 'thinlv_quantum_extents=16', 'thinlv_lowwater_extents=8', 'thinlv_reserve_permille=0'];
    return { name: 'vg', uuid: 'vg-uuid', seqno: 1, extentSizeSectors: EXTENT_SECTORS, tags, pvs: [{ device: PV, uuid: PV_UUID, peStartSectors: 2048, peCount: PE_COUNT }], lvs };
  }

  journalEffect(): HostJournal {
    return {
      append: async (record) => {
        if (this.failNextAppend) {
          this.failNextAppend = false;
          // A write that reached the disk but whose acknowledgement was lost.
          this.journal.push({ seq: this.journal.length + 1, record });
          throw new Error('injected I/O error');
        }
        this.journal.push({ seq: this.journal.length + 1, record });
        return { seq: this.journal.length };
      },
    };
  }

  dmEffect(): HostDeviceMapper {
    return {
      activate: async (name, table) => {
        expect(this.dmTables.has(name), `activate of active ${name}`).toBe(false);
        this.dmTables.set(name, table);
      },
      reload: async (name, table) => {
        if (this.rebooted && !this.dmTables.has(name)) throw new DmError(DmErrorCode.notFound, `no device ${name}`, { name });
        expect(this.dmTables.has(name), `reload of inactive ${name}`).toBe(true);
        this.dmTables.set(name, table);
      },
      deactivate: async (name) => {
        this.dmTables.delete(name);
      },
    };
  }

  /** The master's replay: every journal record after the cursor lands in metadata. */
  replay(): void {
    for (const { seq, record } of this.journal.filter((j) => j.seq > this.appliedSeq)) {
      if (record.kind === 'claim' && this.owners.get(record.lv) === undefined) this.owners.set(record.lv, 'h1');
      if (record.kind === 'release') this.owners.set(record.lv, undefined);
      if (record.kind === 'deflate' && this.owners.get(record.lv) === undefined) this.deflate(record.lv, record.extentCount);
      if (record.kind === 'allocate') expect(this.owners.get(record.lv), `record ${seq} grows ${record.lv}, which h1 does not hold (I8)`).toBe('h1');
      if (record.kind === 'allocate' || record.kind === 'return') {
        const ranges = record.ranges.map((r) => ({ pv: PV, firstExtent: r.firstExtent, extentCount: r.extentCount }));
        const set = ExtentSet.fromRanges(ranges);
        expect(this.freeLv.containsAll(set), `record ${seq} names extents outside the host's free LV (I4)`).toBe(true);
        this.freeLv = this.freeLv.difference(set);
        if (record.kind === 'allocate') this.metadata.set(record.lv, [...this.metadata.get(record.lv)!, ...ranges]);
        else this.vgFree = this.vgFree.union(set);
      }
      this.appliedSeq = seq;
    }
  }

  /** A deflate of an LV nobody holds: its extents past `keepExtentCount` go back to VG free space. */
  deflate(lv: string, keepExtentCount: number): void {
    const kept: PhysicalRange[] = [];
    let logical = 0;
    for (const r of this.metadata.get(lv)!) {
      const keep = Math.max(0, Math.min(r.extentCount, keepExtentCount - logical));
      if (keep > 0) kept.push({ ...r, extentCount: keep });
      if (keep < r.extentCount) this.vgFree = this.vgFree.union(ExtentSet.fromRanges([{ ...r, firstExtent: r.firstExtent + keep, extentCount: r.extentCount - keep }]));
      logical += r.extentCount;
    }
    this.metadata.set(lv, kept);
  }

  /** The master's refill: `extentCount` extents from VG free into the host's free LV. */
  grant(extentCount: number) {
    const taken = this.vgFree.ranges().slice(0, 1).map((r) => ({ ...r, extentCount: Math.min(r.extentCount, extentCount) }));
    const set = ExtentSet.fromRanges(taken);
    this.vgFree = this.vgFree.difference(set);
    this.freeLv = this.freeLv.union(set);
    this.generation++;
    return {
      kind: 'grant' as const,
      generation: this.generation,
      appliedSeq: this.appliedSeq,
      freeRanges: this.freeLv.ranges().map((r) => ({ pvUuid: PV_UUID, firstExtent: r.firstExtent, extentCount: r.extentCount })),
    };
  }

  start(lastGrantGeneration: number, activeLvs: readonly string[] = []): HostAllocator {
    const unreplayed: UnreplayedRecord[] = this.journal.filter((j) => j.seq > this.appliedSeq);
    const allocator: HostAllocator = new HostAllocator(
      { host: 'h1', vg: this.layout(), freeRanges: this.freeLv.ranges(), unreplayed, appliedSeq: this.appliedSeq, lastGrantGeneration, activeLvs, outOfSpaceWaitMs: 0 },
      {
        journal: this.journalEffect(),
        dm: this.dmEffect(),
        nowMs: () => 0,
        sleepMs: async () => undefined,
        dmName: (vg, lv) => `${vg}-${lv}`,
        refreshMetadata: () => this.refreshInto(allocator),
      },
    );
    return allocator;
  }

  /** A claim waits for the master: here the master replays at once, and the host reads metadata. */
  async refreshInto(allocator: HostAllocator): Promise<void> {
    this.replay();
    await allocator.refreshMetadata(this.layout(), this.appliedSeq);
  }
}

type Step =
  | { kind: 'extend'; lv: string; extentCount: number }
  | { kind: 'activate'; lv: string }
  | { kind: 'deactivate'; lv: string }
  | { kind: 'replay' }
  | { kind: 'grant'; extentCount: number }
  | { kind: 'returnExtents'; extentCount: number }
  | { kind: 'failNextWrite' }
  | { kind: 'crash' };

const lvArb = fc.constantFrom(...LVS);
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('extend' as const), lv: lvArb, extentCount: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('activate' as const), lv: lvArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deactivate' as const), lv: lvArb }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'replay' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('grant' as const), extentCount: fc.integer({ min: 1, max: 30 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('returnExtents' as const), extentCount: fc.integer({ min: 1, max: 10 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'failNextWrite' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'crash' as const }) },
);

describe('host allocator against a model', () => {
  test.prop([fc.array(stepArb, { minLength: 1, maxLength: 60 })], { numRuns: 200 })(
    'random extends, activations, replays, grants, returns, failed writes and crashes keep I1, I3, I4 and I6',
    async (steps) => {
      const world = new World();
      let lastGrant = world.grant(20);
      let allocator = world.start(0);
      expect(allocator.applyGrant(lastGrant)).toBe(true);
      const acknowledged: { lv: string; ranges: PhysicalRange[]; logicalStart: number }[] = [];
      const active = new Set<string>();

      for (const step of steps) {
        switch (step.kind) {
          case 'extend': {
            const before = allocator.segmentsOf(step.lv).reduce((n, s) => n + s.extentCount, 0);
            const poolBefore = allocator.poolExtents();
            try {
              const result = await allocator.extend(step.lv, (before + step.extentCount) * EXTENT_BYTES);
              const record = world.journal[result.seq! - 1]!.record;
              expect(record.kind).toBe('allocate');
              const ranges = record.kind === 'allocate' ? record.ranges.map((r) => ({ pv: PV, firstExtent: r.firstExtent, extentCount: r.extentCount })) : [];
              // I4: taken from the host's own pool only.
              expect(poolBefore.containsAll(ExtentSet.fromRanges(ranges))).toBe(true);
              // Where the host mapped the new extents: the guest may write there at once.
              acknowledged.push({ lv: step.lv, ranges, logicalStart: before });
            } catch (error) {
              expect((error as { code?: string }).code ?? (error as Error).message).toMatch(/OUT_OF_SPACE|JOURNAL_FAILED|injected I\/O error/);
            }
            break;
          }
          case 'activate':
            // Activating an LV this host released needs a claim, a journal write that may fail.
            try {
              await allocator.activate(step.lv);
              active.add(step.lv);
            } catch (error) {
              expect((error as { code?: string }).code ?? (error as Error).message).toMatch(/JOURNAL_FAILED|injected I\/O error/);
            }
            break;
          case 'deactivate':
            // The table goes first; a failed release write leaves the LV inactive all the same.
            await allocator.deactivate(step.lv).catch((error: unknown) => {
              expect((error as { code?: string }).code ?? (error as Error).message).toMatch(/JOURNAL_FAILED|injected I\/O error/);
            });
            if (!world.dmTables.has(`vg-${step.lv}`)) active.delete(step.lv);
            break;
          case 'replay':
            world.replay();
            await allocator.refreshMetadata(world.layout(), world.appliedSeq);
            break;
          case 'grant':
            world.replay();
            await allocator.refreshMetadata(world.layout(), world.appliedSeq);
            lastGrant = world.grant(step.extentCount);
            expect(allocator.applyGrant(lastGrant)).toBe(true);
            // A grant delivered twice is applied once.
            expect(allocator.applyGrant(lastGrant)).toBe(false);
            break;
          case 'returnExtents': {
            // The master asked for extents back: they leave the pool and, once replayed, the free LV.
            const poolBefore = allocator.poolExtents().extentCount;
            const returned = await allocator.returnExtents(step.extentCount).catch(() => 0);
            expect(returned).toBeLessThanOrEqual(step.extentCount);
            if (returned > 0) expect(allocator.poolExtents().extentCount).toBe(poolBefore - returned);
            break;
          }
          case 'failNextWrite':
            world.failNextAppend = true;
            break;
          case 'crash': {
            // Lose all in-memory state; dm devices and the SQLite list of active LVs survive.
            allocator = world.start(world.generation, [...active]);
            await allocator.recover();
            break;
          }
        }

        // I1: pool and every LV's layout (metadata + unreplayed) are disjoint.
        const owned = [{ owner: 'pool', set: allocator.poolExtents() }, ...LVS.map((lv) => ({ owner: lv, set: ExtentSet.fromRanges(allocator.segmentsOf(lv)) }))];
        for (let i = 0; i < owned.length; i++) {
          for (let j = i + 1; j < owned.length; j++) {
            expect(owned[i]!.set.overlaps(owned[j]!.set), `${owned[i]!.owner} and ${owned[j]!.owner} share extents`).toBe(false);
          }
        }
        // The pool never holds what the master has not given this host.
        expect(world.freeLv.containsAll(allocator.poolExtents())).toBe(true);
        // I3: every acknowledged allocation is in its LV's layout.
        for (const ack of acknowledged) {
          expect(ExtentSet.fromRanges(allocator.segmentsOf(ack.lv)).containsAll(ExtentSet.fromRanges(ack.ranges))).toBe(true);
        }
        // I6: each active LV's table is its metadata segments followed by its unreplayed ones.
        for (const lv of active) expect(world.dmTables.get(`vg-${lv}`)).toEqual(allocator.tableOf(lv));
      }
      // After a final replay, metadata holds every acknowledged allocation exactly once,
      // at the logical offset the host mapped it when it acknowledged (no data moves).
      world.replay();
      for (const lv of LVS) {
        const logicalOf = new Map<number, number>();
        let logical = 0;
        for (const r of world.metadata.get(lv)!) {
          for (let e = 0; e < r.extentCount; e++) {
            expect(logicalOf.has(r.firstExtent + e), `extent ${r.firstExtent + e} twice in ${lv}`).toBe(false);
            logicalOf.set(r.firstExtent + e, logical++);
          }
        }
        for (const ack of acknowledged.filter((a) => a.lv === lv)) {
          let expected = ack.logicalStart;
          for (const r of ack.ranges) for (let e = 0; e < r.extentCount; e++) expect(logicalOf.get(r.firstExtent + e)).toBe(expected++);
        }
      }
    },
  );

  test('an extend to the size the LV has is a no-op; a smaller size is refused; an empty pool answers OUT_OF_SPACE naming VG, host and request', async () => {
    const world = new World();
    const allocator = world.start(0);
    allocator.applyGrant(world.grant(4));
    expect(await allocator.extend('lv0', EXTENT_BYTES)).toMatchObject({ extentsGranted: 0, seq: null });
    expect(await allocator.extend('lv0', 1)).toMatchObject({ extentsGranted: 0, sizeBytes: EXTENT_BYTES });
    expect(await allocator.extend('lv0', 3 * EXTENT_BYTES)).toMatchObject({ extentsGranted: 2, seq: 1 });
    await expect(allocator.extend('lv0', EXTENT_BYTES)).rejects.toMatchObject({ code: 'SHRINK_REFUSED' });
    const error = await allocator.extend('lv1', 10 * EXTENT_BYTES).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'OUT_OF_SPACE', data: { vg: 'vg', host: 'h1', lv: 'lv1', neededExtents: 9, poolExtents: 2 } });
    // The allocation, the demand the waiting extend told the master about, and its end (0) when it gave up.
    expect(world.journal.map((j) => j.record)).toEqual([expect.objectContaining({ kind: 'allocate' }), { kind: 'demand', extentCount: 9 }, { kind: 'demand', extentCount: 0 }]);
  });

  test('an extend that waits for a grant succeeds when one arrives within the bound', async () => {
    const world = new World();
    let now = 0;
    const allocator: HostAllocator = new HostAllocator(
      { host: 'h1', vg: world.layout(), freeRanges: [], unreplayed: [], appliedSeq: 0, lastGrantGeneration: 0, outOfSpaceWaitMs: 1000 },
      { journal: world.journalEffect(), dm: world.dmEffect(), nowMs: () => now, sleepMs: async (ms) => void (now += ms), dmName: (vg, lv) => `${vg}-${lv}`, refreshMetadata: (): Promise<void> => world.refreshInto(allocator) },
    );
    const pending = allocator.extend('lv2', 3 * EXTENT_BYTES);
    await Promise.resolve();
    allocator.applyGrant(world.grant(8));
    expect(await pending).toMatchObject({ extentsGranted: 2 });
  });

  test('after a failed journal write no extend is served until a restart, which finds the record if it landed', async () => {
    const world = new World();
    const allocator = world.start(0);
    allocator.applyGrant(world.grant(10));
    world.failNextAppend = true;
    await expect(allocator.extend('lv0', 2 * EXTENT_BYTES)).rejects.toThrow('injected I/O error');
    await expect(allocator.extend('lv1', 2 * EXTENT_BYTES)).rejects.toMatchObject({ code: 'JOURNAL_FAILED' });
    // The write had reached the disk: after a restart the record is part of lv0's layout.
    const restarted = world.start(world.generation);
    expect(restarted.segmentsOf('lv0').reduce((n, s) => n + s.extentCount, 0)).toBe(2);
    expect(await restarted.extend('lv0', 3 * EXTENT_BYTES)).toMatchObject({ extentsGranted: 1, seq: 2 });
  });

  test('concurrent extends of one LV are serialised and each lands after the previous one', async () => {
    const world = new World();
    const allocator = world.start(0);
    allocator.applyGrant(world.grant(40));
    const results = await Promise.all([2, 3, 4, 5].map((n) => allocator.extend('lv1', n * EXTENT_BYTES)));
    expect(results.map((r) => r.extentsGranted)).toEqual([1, 1, 1, 1]);
    expect(allocator.segmentsOf('lv1').reduce((n, s) => n + s.extentCount, 0)).toBe(5);
  });

  test('concurrent extends of different LVs, with grants arriving while their writes are in flight, never share an extent', async () => {
    const world = new World();
    // A journal whose writes take a while, as real ones do: grants land meanwhile.
    const slow = world.journalEffect();
    let tick = 0;
    const allocator: HostAllocator = new HostAllocator(
      { host: 'h1', vg: world.layout(), freeRanges: [], unreplayed: [], appliedSeq: 0, lastGrantGeneration: 0, outOfSpaceWaitMs: 0 },
      {
        journal: { append: async (record) => { await new Promise((resolve) => setTimeout(resolve, 1 + (tick++ % 3))); return slow.append(record); } },
        dm: world.dmEffect(),
        nowMs: () => 0,
        sleepMs: async () => undefined,
        dmName: (vg, lv) => `${vg}-${lv}`,
        refreshMetadata: (): Promise<void> => world.refreshInto(allocator),
      },
    );
    allocator.applyGrant(world.grant(60));
    const extends_ = LVS.flatMap((lv) => [2, 3, 4].map((n) => allocator.extend(lv, n * EXTENT_BYTES)));
    // The master re-sends the same pool (a newer generation, nothing replayed yet) while writes are in flight.
    world.generation++;
    allocator.applyGrant({ kind: 'grant', generation: world.generation, appliedSeq: 0, freeRanges: world.freeLv.ranges().map((r) => ({ pvUuid: PV_UUID, firstExtent: r.firstExtent, extentCount: r.extentCount })) });
    await Promise.all(extends_);
    const taken = world.journal.flatMap((j) => (j.record.kind === 'allocate' ? j.record.ranges.flatMap((r) => Array.from({ length: r.extentCount }, (_, k) => r.firstExtent + k)) : []));
    expect(new Set(taken).size).toBe(taken.length);
    for (const extent of taken) expect(allocator.poolExtents().has(PV, extent)).toBe(false);
  });
});

describe('host allocator: a grant older than the metadata it knows', () => {
  test('a grant written before the replay this host has already read never hands out what that replay moved into an LV', async () => {
    const world = new World();
    const allocator = world.start(0);
    allocator.applyGrant(world.grant(10));
    // The master refills (generation 2, as of applied seq 0) but the grant record is read late.
    const late = world.grant(10);
    const { seq } = await allocator.extend('lv0', 5 * EXTENT_BYTES);
    // The master replays the allocation; the host reads that metadata before the late grant.
    world.replay();
    await allocator.refreshMetadata(world.layout(), world.appliedSeq);
    expect(world.appliedSeq).toBe(seq);
    expect(late.appliedSeq).toBeLessThan(seq!);
    expect(allocator.applyGrant(late)).toBe(true);
    const lv0 = ExtentSet.fromRanges(world.metadata.get('lv0')!);
    expect(allocator.poolExtents().overlaps(lv0), 'the pool holds extents of lv0 (I1)').toBe(false);
    // Everything the free LV holds is the host's to use.
    expect(allocator.poolExtents().equals(world.freeLv)).toBe(true);
  });
});

describe('host allocator: extends past the virtual size', () => {
  test('re-read metadata at most once a second, so a guest retrying at its limit does not run an lvm report each time; a raised size is seen then', async () => {
    const world = new World();
    world.virtualBytes = 2 * EXTENT_BYTES;
    let now = 0;
    let reads = 0;
    const allocator: HostAllocator = new HostAllocator(
      { host: 'h1', vg: world.layout(), freeRanges: [], unreplayed: [], appliedSeq: 0, lastGrantGeneration: 0, outOfSpaceWaitMs: 0 },
      { journal: world.journalEffect(), dm: world.dmEffect(), nowMs: () => now, sleepMs: async () => undefined, dmName: (vg, lv) => `${vg}-${lv}`, refreshMetadata: async () => (reads++, world.refreshInto(allocator)) },
    );
    allocator.applyGrant(world.grant(10));
    for (let i = 0; i < 5; i++) await expect(allocator.extend('lv0', 3 * EXTENT_BYTES)).rejects.toMatchObject({ code: 'VIRTUAL_SIZE_EXCEEDED' });
    expect(reads).toBe(1);
    now += VIRTUAL_SIZE_RECHECK_MS;
    world.virtualBytes = 4 * EXTENT_BYTES;
    expect(await allocator.extend('lv0', 3 * EXTENT_BYTES)).toMatchObject({ extentsGranted: 2 });
    expect(reads).toBe(2);
  });
});

describe('host allocator: restart', () => {
  test('after a reboot an LV listed active but without a device is forgotten and released; the others are reloaded', async () => {
    const world = new World();
    const first = world.start(0);
    first.applyGrant(world.grant(10));
    await first.activate('lv0');
    await first.activate('lv1');
    await first.extend('lv1', 3 * EXTENT_BYTES);
    world.rebooted = true;
    world.dmTables.delete('vg-lv0');
    const restarted = world.start(world.generation, ['lv0', 'lv1']);
    expect(await restarted.recover()).toEqual(['lv0']);
    expect([...restarted.activeTables().keys()]).toEqual(['lv1']);
    expect(world.dmTables.get('vg-lv1')).toEqual(restarted.tableOf('lv1'));
    expect(world.journal.at(-1)?.record).toEqual({ kind: 'release', lv: 'lv0', lvUuid: 'uuid-lv0' });
  });
});

describe('host allocator: deactivation with a deflate', () => {
  test('journals release then deflate; once replayed the LV keeps that many extents, and a later activation maps only those', async () => {
    const world = new World();
    const allocator = world.start(0);
    allocator.applyGrant(world.grant(20));
    await allocator.activate('lv0');
    await allocator.extend('lv0', 6 * EXTENT_BYTES);
    const result = await allocator.deactivate('lv0', 2 * EXTENT_BYTES - 1);
    expect(result).toEqual({ deflate: { seq: 3, targetBytes: 2 * EXTENT_BYTES } });
    expect(world.journal.slice(-2).map((j) => j.record)).toEqual([
      { kind: 'release', lv: 'lv0', lvUuid: 'uuid-lv0' },
      { kind: 'deflate', lv: 'lv0', lvUuid: 'uuid-lv0', extentCount: 2 },
    ]);
    expect(await allocator.awaitReplay(3, 0)).toBe(true);
    expect(allocator.metadataSizeOf('lv0')).toEqual({ sizeBytes: 2 * EXTENT_BYTES, owner: undefined });
    expect(await allocator.activate('lv0')).toEqual(allocator.tableOf('lv0'));
    expect(allocator.segmentsOf('lv0').reduce((n, s) => n + s.extentCount, 0)).toBe(2);
    // The extents given back are VG free space, in no LV and not in the pool (I1, I2).
    const given = world.vgFree.intersection(ExtentSet.fromRanges(allocator.segmentsOf('lv1').concat(allocator.segmentsOf('lv0'))));
    expect(given.isEmpty() && !world.vgFree.overlaps(allocator.poolExtents())).toBe(true);
  });

  test('a deflate of an LV another host holds is refused before a deflate is written', async () => {
    const world = new World();
    world.owners.set('lv1', 'h2');
    const allocator = world.start(0);
    await expect(allocator.deactivate('lv1', EXTENT_BYTES)).rejects.toMatchObject({ code: 'LV_OWNED_ELSEWHERE', data: { owner: 'h2' } });
    expect(world.journal).toEqual([]);
  });

  test('a deflate waits no longer than it is told when the master does not answer', async () => {
    const world = new World();
    let now = 0;
    const allocator = new HostAllocator(
      { host: 'h1', vg: world.layout(), freeRanges: [], unreplayed: [], appliedSeq: 0, lastGrantGeneration: 0, outOfSpaceWaitMs: 0 },
      { journal: world.journalEffect(), dm: world.dmEffect(), nowMs: () => now, sleepMs: async (ms) => void (now += ms), dmName: (vg, lv) => `${vg}-${lv}`, refreshMetadata: async () => undefined },
    );
    const { deflate } = await allocator.deactivate('lv2', EXTENT_BYTES);
    expect(await allocator.awaitReplay(deflate!.seq, 500)).toBe(false);
    expect(now).toBeGreaterThanOrEqual(500);
    expect(now).toBeLessThan(1000);
  });
});

describe('host allocator: extends woken by one grant', () => {
  test('extends waiting on an empty pool, woken by one grant, each take different extents', async () => {
    const world = new World();
    let now = 0;
    const allocator: HostAllocator = new HostAllocator(
      { host: 'h1', vg: world.layout(), freeRanges: [], unreplayed: [], appliedSeq: 0, lastGrantGeneration: 0, outOfSpaceWaitMs: 1000 },
      { journal: world.journalEffect(), dm: world.dmEffect(), nowMs: () => now, sleepMs: async (ms) => void (now += ms), dmName: (vg, lv) => `${vg}-${lv}`, refreshMetadata: (): Promise<void> => world.refreshInto(allocator) },
    );
    const waiting = LVS.map((lv) => allocator.extend(lv, 4 * EXTENT_BYTES));
    await Promise.resolve();
    allocator.applyGrant(world.grant(30));
    await Promise.all(waiting);
    const taken = world.journal.flatMap((j) => (j.record.kind === 'allocate' ? j.record.ranges.flatMap((r) => Array.from({ length: r.extentCount }, (_, k) => r.firstExtent + k)) : []));
    expect(taken).toHaveLength(LVS.length * 3);
    expect(new Set(taken).size).toBe(taken.length);
  });
});

describe('host allocator at the record size bound', () => {
  test('an extend that would need more than MAX_RANGES_PER_RECORD ranges is refused before anything is taken, and the host keeps serving', async () => {
    const world = new World();
    const allocator = world.start(0);
    // A pool of every other extent: as fragmented as a pool can be.
    const fragmented = Array.from({ length: MAX_RANGES_PER_RECORD + 10 }, (_, i) => ({ pvUuid: PV_UUID, firstExtent: 100 + 2 * i, extentCount: 1 }));
    expect(allocator.applyGrant({ kind: 'grant', generation: 1, appliedSeq: 0, freeRanges: fragmented })).toBe(true);
    const poolBefore = allocator.poolExtents().extentCount;
    await expect(allocator.extend('lv0', (1 + MAX_RANGES_PER_RECORD + 1) * EXTENT_BYTES)).rejects.toMatchObject({ code: 'POOL_TOO_FRAGMENTED' });
    expect(allocator.poolExtents().extentCount).toBe(poolBefore);
    expect(world.journal).toHaveLength(0);
    // At the bound exactly, it is served, in one record.
    const result = await allocator.extend('lv0', (1 + MAX_RANGES_PER_RECORD) * EXTENT_BYTES);
    expect(result.extentsGranted).toBe(MAX_RANGES_PER_RECORD);
    expect(world.journal).toHaveLength(1);
    // A return asked of the same pool names at most MAX_RANGES_PER_RECORD ranges too.
    expect(await allocator.returnExtents(poolBefore)).toBe(10);
  });
});
