import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';

import { ExtentSet } from '../../src/extent/extentSet.js';
import type { PhysicalRange } from '../../src/extent/types.js';
import { TAG, hostLvNames, readThinlvVg, type ThinlvSettings } from '../../src/format/thinlvVg.js';
import { applyChanges } from '../../src/metadata/applyChanges.js';
import { checkLayout, computeFreeExtents } from '../../src/metadata/checkLayout.js';
import { lvExtentCount, type VgMetadata } from '../../src/metadata/vgModel.js';
import { planRefill, reserveExtentCount, type RefillPlan } from '../../src/pool/planRefill.js';
import { encodeJournalRecord } from '../../src/records/records.js';
import { planReplay } from '../../src/replay/planReplay.js';
import {
  PV_SDB,
  PV_SDC,
  countingIdentity,
  extentsOfLv,
  lvNamed,
  logicalExtents,
  range,
  thinlvLayoutArbitrary,
  thinlvVgMetadata,
  type HostSpec,
  type ThinlvVgSpec,
} from './arbitraries/thinlvVg.js';

const SETTINGS: ThinlvSettings = { quantumExtents: 16, lowWaterExtents: 8, reservePermille: 50 };
const SDB = PV_SDB.device;

interface RefillLayout {
  /** Pool size of each host, in host order; 0 means no free LV. */
  readonly pools: Readonly<Record<string, number>>;
  /** VG free extents, all at the end of the PV. */
  readonly freeExtentCount: number;
  readonly pvExtentCount?: number;
  readonly settings?: ThinlvSettings;
  readonly grantGeneration?: number;
}

/**
 * One PV: rings first, then each host's pool in a single run, then disk0 filling
 * what is not free, then `freeExtentCount` free extents at the end.
 */
function refillSpec(layout: RefillLayout): ThinlvVgSpec {
  const pvExtentCount = layout.pvExtentCount ?? 400;
  const hostNames = Object.keys(layout.pools);
  let cursor = 2 * hostNames.length;
  const hosts = hostNames.map((host, i): HostSpec => {
    const poolExtentCount = layout.pools[host]!;
    const pool = poolExtentCount > 0 ? [range(SDB, cursor, poolExtentCount)] : [];
    cursor += poolExtentCount;
    return { host, journal: range(SDB, 2 * i, 1), grants: range(SDB, 2 * i + 1, 1), pool, appliedSeq: 0, grantGeneration: layout.grantGeneration ?? 3 };
  });
  const fillerExtentCount = pvExtentCount - layout.freeExtentCount - cursor;
  if (fillerExtentCount < 1) throw new Error(`layout does not fit: ${JSON.stringify(layout)}`);
  return {
    pvs: [{ ...PV_SDB, peCount: pvExtentCount }],
    settings: layout.settings ?? SETTINGS,
    hosts,
    thinLvs: [{ name: 'disk0', uuid: 'uuid-disk0', ranges: [range(SDB, cursor, fillerExtentCount)] }],
  };
}

interface Refilled {
  readonly before: VgMetadata;
  readonly plan: RefillPlan;
  readonly after: VgMetadata;
}

function refill(spec: ThinlvVgSpec): Refilled {
  const before = thinlvVgMetadata(spec);
  const plan = planRefill(before, readThinlvVg(before));
  return { before, plan, after: applyChanges(before, plan.changes, countingIdentity()) };
}

const grantTagsOf = (vg: VgMetadata, host: string): string[] =>
  (lvNamed(vg, hostLvNames(host).grants)?.tags ?? []).filter((t) => t.startsWith(TAG.grantGeneration));
const grantSummary = (plan: RefillPlan): [string, number][] => plan.grants.map((g) => [g.host, g.extentCount]);

describe('planRefill: grants', () => {
  test("a pool below low-water gets a quantum appended to its free LV, and its grant generation bumped in the same plan", () => {
    const { before, plan, after } = refill(refillSpec({ pools: { h1: 5, h2: 20 }, freeExtentCount: 200 }));
    expect(grantSummary(plan)).toEqual([['h1', 16]]);
    expect(plan.grants[0]?.generation).toBe(4);
    expect(plan.changes.map((c) => c.kind)).toEqual(['appendRanges', 'setTag']);
    expect(plan.changes[1]).toEqual({ kind: 'setTag', lv: 'thinlv_h1_grants', tag: `${TAG.grantGeneration}4`, replacingPrefix: TAG.grantGeneration });
    // The old pool stays first; the grant follows it and came from VG free space.
    expect(logicalExtents(after, 'thinlv_h1_free').slice(0, 5)).toEqual(logicalExtents(before, 'thinlv_h1_free'));
    expect(lvExtentCount(lvNamed(after, 'thinlv_h1_free')!)).toBe(21);
    expect(computeFreeExtents(before).containsAll(ExtentSet.fromRanges(plan.grants[0]!.ranges))).toBe(true);
    expect(grantTagsOf(after, 'h1')).toEqual([`${TAG.grantGeneration}4`]);
    expect(readThinlvVg(after).hosts.get('h1')?.grantGeneration).toBe(4);
    expect(plan.returnRequests).toEqual([]);
  });

  test('a host with no free LV gets one created, activation-skipped, holding the grant', () => {
    const { plan, after } = refill(refillSpec({ pools: { h1: 0, h2: 20 }, freeExtentCount: 200 }));
    expect(plan.changes[0]).toMatchObject({ kind: 'createLv', name: 'thinlv_h1_free', activationSkip: true });
    expect(lvNamed(after, 'thinlv_h1_free')).toMatchObject({ activationSkip: true });
    expect(lvExtentCount(lvNamed(after, 'thinlv_h1_free')!)).toBe(16);
    expect(readThinlvVg(after).hosts.get('h1')?.freeLv).toBeDefined();
  });

  test('the grant continues the pool right after its last extent when that extent is free', () => {
    const spec = refillSpec({ pools: { h1: 20, h2: 3 }, freeExtentCount: 100, pvExtentCount: 130 });
    const layout: ThinlvVgSpec = { ...spec, thinLvs: [{ name: 'disk0', uuid: 'uuid-disk0', ranges: [range(SDB, 100, 30)] }] };
    const { plan, after } = refill(layout);
    // h2's pool is sdb:24-26 and sdb:27.. is free: the grant starts there, and the pool stays one segment.
    expect(plan.grants[0]?.ranges[0]).toEqual(range(SDB, 27, 16));
    expect(lvNamed(after, 'thinlv_h2_free')?.segments).toHaveLength(1);
  });

  test.each([
    ['exactly at', 8],
    ['above', 9],
  ])('a pool %s low-water gets nothing', (_, poolExtentCount) => {
    const { plan, after, before } = refill(refillSpec({ pools: { h1: poolExtentCount, h2: 100 }, freeExtentCount: 200 }));
    expect(plan.changes).toEqual([]);
    expect(plan.grants).toEqual([]);
    expect(plan.returnRequests).toEqual([]);
    expect(after.lvs).toEqual(before.lvs);
  });

  test('the grant is capped at VG free space less the reserve', () => {
    // 400 extents at 50 permille: a reserve of 20; 25 free leaves 5 to grant.
    const { plan, after } = refill(refillSpec({ pools: { h1: 0 }, freeExtentCount: 25 }));
    expect(plan.reserveExtentCount).toBe(20);
    expect(grantSummary(plan)).toEqual([['h1', 5]]);
    expect(plan.vgFreeExtentCountAfter).toBe(20);
    expect(computeFreeExtents(after).extentCount).toBe(20);
  });

  test.each([20, 19, 0])('with %i extents free (reserve 20) nothing is granted and no generation moves', (freeExtentCount) => {
    const { plan, before, after } = refill(refillSpec({ pools: { h1: 0, h2: 2 }, freeExtentCount }));
    expect(plan.grants).toEqual([]);
    expect(plan.changes).toEqual([]);
    expect(after).toEqual(before);
  });

  test('when space is short the hosts below low-water share it equally, and a host that gets nothing gets no bump', () => {
    // available = 40 - 20 = 20 among three hosts wanting 16 each: 6, 7, 7 (ties by name).
    const { plan, after } = refill(refillSpec({ pools: { h1: 6, h2: 2, h3: 4 }, freeExtentCount: 40 }));
    expect(grantSummary(plan)).toEqual([
      ['h1', 6],
      ['h2', 7],
      ['h3', 7],
    ]);
    expect(grantTagsOf(after, 'h2')).toEqual([`${TAG.grantGeneration}4`]);
    // available = 22 - 20 = 2 among three: the first two by name get one each.
    const short = refill(refillSpec({ pools: { h1: 6, h2: 2, h3: 4 }, freeExtentCount: 22 }));
    expect(grantSummary(short.plan)).toEqual([
      ['h2', 1],
      ['h3', 1],
    ]);
    expect(grantTagsOf(short.after, 'h1')).toEqual([`${TAG.grantGeneration}3`]);
  });

  test('pools of equal size share a short VG equally, grants listed in host name order', () => {
    const { plan } = refill(refillSpec({ pools: { h2: 3, h1: 3 }, freeExtentCount: 36 }));
    expect(grantSummary(plan)).toEqual([
      ['h1', 8],
      ['h2', 8],
    ]);
  });

  test('the reserve rounds up: 401 extents at 50 permille reserve 21', () => {
    const vg = thinlvVgMetadata({ ...refillSpec({ pools: { h1: 0 }, freeExtentCount: 100 }), pvs: [{ ...PV_SDB, peCount: 200 }, { ...PV_SDC, peCount: 201 }] });
    expect(reserveExtentCount(vg, 50)).toBe(21);
    expect(reserveExtentCount(vg, 0)).toBe(0);
    expect(reserveExtentCount(vg, 1000)).toBe(401);
  });
});

describe('planRefill: demands (extents a host\'s waiting extends need)', () => {
  const refillWith = (spec: ThinlvVgSpec, demands: Record<string, number>) => {
    const before = thinlvVgMetadata(spec);
    const plan = planRefill(before, readThinlvVg(before), { demands: new Map(Object.entries(demands)) });
    return { before, plan, after: applyChanges(before, plan.changes, countingIdentity()) };
  };

  test('a demand larger than a quantum is met in one grant, with low-water to spare, even for a pool above low-water', () => {
    const { plan, after } = refillWith(refillSpec({ pools: { h1: 20, h2: 20 }, freeExtentCount: 300 }), { h1: 100 });
    expect(grantSummary(plan)).toEqual([['h1', 100 + SETTINGS.lowWaterExtents - 20]]);
    expect(lvExtentCount(lvNamed(after, 'thinlv_h1_free')!)).toBe(100 + SETTINGS.lowWaterExtents);
  });

  test('a demand the pool already covers with low-water to spare grants nothing', () => {
    const { plan } = refillWith(refillSpec({ pools: { h1: 30, h2: 20 }, freeExtentCount: 300 }), { h1: 10 });
    expect(plan.grants).toEqual([]);
  });

  test('a demand the VG cannot cover gets what lies above the reserve, and hosts holding far more than a quantum are asked to return it', () => {
    const { plan } = refillWith(refillSpec({ pools: { h1: 0, h2: 100 }, freeExtentCount: 150 }), { h1: 400 });
    const available = 150 - Math.ceil((400 * SETTINGS.reservePermille) / 1000);
    expect(grantSummary(plan)).toEqual([['h1', available]]);
    expect(plan.returnRequests).toEqual([{ host: 'h2', extentCount: 100 - SETTINGS.quantumExtents }]);
  });
});

describe('planRefill: sharing a short VG, shortages and rates', () => {
  const plan = (spec: ThinlvVgSpec, needs: { demands?: Record<string, number>; rates?: Record<string, number> }) => {
    const before = thinlvVgMetadata(spec);
    return planRefill(before, readThinlvVg(before), {
      demands: new Map(Object.entries(needs.demands ?? {})),
      rateTargets: new Map(Object.entries(needs.rates ?? {})),
    });
  };
  // 400 extents, reserve 20: free 120 leaves 100 to grant.

  test('waiting extends come first: a demand is served before pools merely below low-water', () => {
    const p = plan(refillSpec({ pools: { h1: 0, h2: 0 }, freeExtentCount: 120 }), { demands: { h1: 90 } });
    // h1 needs 90 + low-water 8 = 98 in round 1; h2 gets the 2 left in round 2.
    expect(grantSummary(p)).toEqual([
      ['h1', 98],
      ['h2', 2],
    ]);
    expect(p.coveredDemands).toEqual(['h1']);
    expect(p.shortages).toEqual([]);
  });

  test('two hosts waiting for more than the VG holds share it equally, and each is told "shared"', () => {
    const p = plan(refillSpec({ pools: { h1: 0, h2: 0, h3: 50 }, freeExtentCount: 120 }), { demands: { h1: 200, h2: 300 } });
    expect(grantSummary(p)).toEqual([
      ['h1', 50],
      ['h2', 50],
    ]);
    expect(p.shortages).toEqual([
      { host: 'h1', reason: 'shared', demandExtentCount: 200, grantedExtentCount: 50 },
      { host: 'h2', reason: 'shared', demandExtentCount: 300, grantedExtentCount: 50 },
    ]);
    // h3 wants nothing and holds more than twice the quantum: asked for its excess.
    expect(p.returnRequests).toEqual([{ host: 'h3', extentCount: 50 - SETTINGS.quantumExtents }]);
  });

  test('one host waiting for more than the VG holds gets all of it and is told "vg-full"; with nothing left it gets nothing', () => {
    const p = plan(refillSpec({ pools: { h1: 0, h2: 0 }, freeExtentCount: 120 }), { demands: { h1: 500 } });
    expect(grantSummary(p)).toEqual([['h1', 100]]);
    expect(p.shortages).toEqual([{ host: 'h1', reason: 'vg-full', demandExtentCount: 500, grantedExtentCount: 100 }]);
    const full = plan(refillSpec({ pools: { h1: 0, h2: 0 }, freeExtentCount: 20 }), { demands: { h1: 500 } });
    expect(full.grants).toEqual([]);
    expect(full.shortages).toEqual([{ host: 'h1', reason: 'vg-full', demandExtentCount: 500, grantedExtentCount: 0 }]);
  });

  test("a demand the pool covers without low-water to spare still counts as covered", () => {
    const p = plan(refillSpec({ pools: { h1: 30, h2: 0 }, freeExtentCount: 20 }), { demands: { h1: 30 } });
    expect(p.coveredDemands).toEqual(['h1']);
    expect(p.shortages).toEqual([]);
  });

  test("a host's rate raises its quantum and low-water, up to a fair share of what lies above the reserve", () => {
    // Rate target 40: quantum 40, low-water 20; h1's pool of 15 is below it.
    const p = plan(refillSpec({ pools: { h1: 15, h2: 30 }, freeExtentCount: 120 }), { rates: { h1: 40 } });
    expect(grantSummary(p)).toEqual([['h1', 40]]);
    expect(p.poolLevels.get('h1')).toEqual({ extentCount: 55, lowWater: 20 });
    expect(p.poolLevels.get('h2')).toEqual({ extentCount: 30, lowWater: SETTINGS.lowWaterExtents });
    // Rate target 1000 is capped at 100 / 2 hosts = 50.
    const capped = plan(refillSpec({ pools: { h1: 0, h2: 30 }, freeExtentCount: 120 }), { rates: { h1: 1000 } });
    expect(grantSummary(capped)).toEqual([['h1', 50]]);
  });

  test('a short VG caps rate targets at a fair share, so a busy host holding much is still asked to return its excess', () => {
    // available 10 among 2 hosts: h2's rate target 40 is capped at 5, its quantum stays 16.
    const p = plan(refillSpec({ pools: { h1: 0, h2: 60 }, freeExtentCount: 30 }), { rates: { h2: 40 } });
    expect(grantSummary(p)).toEqual([['h1', 10]]);
    expect(p.returnRequests).toEqual([{ host: 'h2', extentCount: 60 - SETTINGS.quantumExtents }]);
  });
});

describe('planRefill: return requests', () => {
  test('when a needy host gets less than a quantum, hosts holding more than twice the quantum are asked to return pool - quantum', () => {
    // h1 (0) gets 5 of 16; h2 holds 33 > 32 and is asked for 17; h3 holds exactly 32 and is left alone.
    const { plan } = refill(refillSpec({ pools: { h1: 0, h2: 33, h3: 32 }, freeExtentCount: 25 }));
    expect(grantSummary(plan)).toEqual([['h1', 5]]);
    expect(plan.returnRequests).toEqual([{ host: 'h2', extentCount: 17 }]);
  });

  test('a needy host that gets nothing at all also triggers return requests', () => {
    const { plan } = refill(refillSpec({ pools: { h1: 1, h2: 100 }, freeExtentCount: 10 }));
    expect(plan.grants).toEqual([]);
    expect(plan.returnRequests).toEqual([{ host: 'h2', extentCount: 84 }]);
  });

  test('no return requests when every needy host got a full quantum', () => {
    const { plan } = refill(refillSpec({ pools: { h1: 0, h2: 100 }, freeExtentCount: 36 }));
    expect(grantSummary(plan)).toEqual([['h1', 16]]);
    expect(plan.returnRequests).toEqual([]);
  });

  test('no return requests when no host is below low-water, however full the VG', () => {
    const { plan } = refill(refillSpec({ pools: { h1: 8, h2: 100 }, freeExtentCount: 0 }));
    expect(plan.returnRequests).toEqual([]);
  });
});

describe('planRefill after planReplay, in one commit', () => {
  test('a pool emptied by this pass\'s replay is recreated with createLv in the same commit, with a new uuid', () => {
    const base = refillSpec({ pools: { h1: 10, h2: 20 }, freeExtentCount: 200 });
    // h1 holds disk0, so its allocation there is valid.
    const spec = { ...base, thinLvs: base.thinLvs.map((thin) => (thin.name === 'disk0' ? { ...thin, owner: 'h1' } : thin)) };
    const vg = thinlvVgMetadata(spec);
    const thinlv = readThinlvVg(vg);
    const sizeBefore = lvExtentCount(vg.lvs.find((lv) => lv.name === 'disk0')!);
    const payload = encodeJournalRecord({ kind: 'allocate', lv: 'disk0', lvUuid: 'uuid-disk0', ranges: [{ pvUuid: PV_SDB.uuid, firstExtent: 4, extentCount: 10 }], extentCountAfter: sizeBefore + 10 });
    const replay = planReplay(vg, thinlv, new Map([['h1', [{ seq: 1, payload }]]]));
    const afterReplay = applyChanges(vg, replay.changes, countingIdentity());
    const refillPlan = planRefill(afterReplay, thinlv);
    expect(refillPlan.changes[0]).toMatchObject({ kind: 'createLv', name: 'thinlv_h1_free' });
    // As runPass does: both plans in one batch on the metadata read at the start of the pass.
    const committed = applyChanges(vg, [...replay.changes, ...refillPlan.changes], countingIdentity());
    expect(checkLayout(committed).filter((f) => f.severity === 'error')).toEqual([]);
    const h1 = readThinlvVg(committed).hosts.get('h1');
    expect(h1).toMatchObject({ appliedSeq: 1, grantGeneration: 4 });
    expect(h1?.freeLv?.uuid).toBe('uuid-new-0');
    expect(lvExtentCount(h1!.freeLv!)).toBe(16);
    expect(extentsOfLv(committed, 'disk0').has(SDB, 4)).toBe(true);
  });
});

// ---------------------------------------------------------------------------
// Property: random layouts and settings. The applied plan must keep the documented
// policy's promises (checkAgainstPolicy) and I1/I2.

/**
 * What the policy promises for layouts without demands or rates: only hosts below
 * low-water get extents, none more than a quantum; together they get all they ask or
 * all that lies above the reserve; and the sharing is max-min fair (a host short of a
 * quantum has at most one extent less than any other). When one is short, hosts above
 * low-water holding more than twice the quantum are asked for their excess.
 */
function checkAgainstPolicy(vg: VgMetadata, spec: ThinlvVgSpec, plan: RefillPlan): void {
  const { quantumExtents, lowWaterExtents, reservePermille } = spec.settings;
  const total = spec.pvs.reduce((sum, pv) => sum + pv.peCount, 0);
  const available = Math.max(0, computeFreeExtents(vg).extentCount - Math.ceil((total * reservePermille) / 1000));
  const sizes = new Map(spec.hosts.map((h) => [h.host, ExtentSet.fromRanges(h.pool).extentCount]));
  const needy = [...sizes].filter(([, size]) => size < lowWaterExtents).map(([host]) => host);
  const given = new Map(plan.grants.map((g) => [g.host, g.extentCount]));
  for (const host of given.keys()) expect(needy).toContain(host);
  for (const count of given.values()) expect(count).toBeLessThanOrEqual(quantumExtents);
  const sum = [...given.values()].reduce((a, b) => a + b, 0);
  expect(sum).toBe(Math.min(available, needy.length * quantumExtents));
  for (const a of needy) {
    for (const b of needy) if ((given.get(a) ?? 0) < quantumExtents) expect(given.get(b) ?? 0).toBeLessThanOrEqual((given.get(a) ?? 0) + 1);
  }
  const starved = needy.some((host) => (given.get(host) ?? 0) < quantumExtents);
  const expectedReturns = starved
    ? [...sizes].filter(([, size]) => size >= lowWaterExtents && size > 2 * quantumExtents).map(([host, size]) => ({ host, extentCount: size - quantumExtents }))
    : [];
  expect([...plan.returnRequests].sort((x, y) => x.host.localeCompare(y.host))).toEqual(expectedReturns.sort((x, y) => x.host.localeCompare(y.host)));
}

/**
 * Random layouts; half of them get a reserve set close to the VG's free space
 * (within 20 extents either way), so that short grants and return requests are common.
 */
const refillLayoutArbitrary: fc.Arbitrary<ThinlvVgSpec> = fc
  .tuple(thinlvLayoutArbitrary({ minHosts: 1, maxHosts: 3 }), fc.option(fc.integer({ min: -20, max: 20 }), { nil: undefined }))
  .map(([spec, reserveOffset]) => {
    if (reserveOffset === undefined) return spec;
    const total = spec.pvs.reduce((sum, pv) => sum + pv.peCount, 0);
    const free = computeFreeExtents(thinlvVgMetadata(spec)).extentCount;
    const reservePermille = Math.min(1000, Math.max(0, Math.floor(((free + reserveOffset) * 1000) / total)));
    return { ...spec, settings: { ...spec.settings, reservePermille } };
  });

describe('planRefill: property over random layouts', () => {
  test.prop([refillLayoutArbitrary], { numRuns: 300 })(
    'grants follow the policy, come only from VG free space above the reserve, bump exactly the granted generations, and keep I1/I2',
    (spec) => {
      const before = thinlvVgMetadata(spec);
      const thinlvBefore = readThinlvVg(before);
      const plan = planRefill(before, thinlvBefore);
      const after = applyChanges(before, plan.changes, countingIdentity());

      checkAgainstPolicy(before, spec, plan);

      // I1 and I2 after the commit.
      expect(checkLayout(after).filter((f) => f.severity === 'error')).toEqual([]);
      const total = spec.pvs.reduce((sum, pv) => sum + pv.peCount, 0);
      expect(after.lvs.reduce((sum, lv) => sum + lvExtentCount(lv), 0) + computeFreeExtents(after).extentCount).toBe(total);

      // Granted extents came from VG free space, went to the granted pool only, and the reserve was never touched.
      const freeBefore = computeFreeExtents(before);
      let granted = ExtentSet.empty();
      for (const grant of plan.grants) {
        const extents = ExtentSet.fromRanges(grant.ranges);
        expect(extents.extentCount).toBe(grant.extentCount);
        expect(grant.ranges.reduce((sum: number, r: PhysicalRange) => sum + r.extentCount, 0)).toBe(grant.extentCount);
        expect(freeBefore.containsAll(extents)).toBe(true);
        expect(granted.overlaps(extents)).toBe(false);
        granted = granted.union(extents);
      }
      const freeAfter = computeFreeExtents(after);
      expect(freeAfter.equals(freeBefore.difference(granted))).toBe(true);
      expect(plan.vgFreeExtentCountAfter).toBe(freeAfter.extentCount);
      if (plan.grants.length > 0) expect(freeAfter.extentCount).toBeGreaterThanOrEqual(plan.reserveExtentCount);

      // Each pool keeps its extents in order and gains exactly its grant; generations move by one exactly for granted hosts.
      const thinlvAfter = readThinlvVg(after);
      for (const host of spec.hosts) {
        const grant = plan.grants.find((g) => g.host === host.host);
        const free = hostLvNames(host.host).free;
        const oldPool = logicalExtents(before, free);
        expect(logicalExtents(after, free).slice(0, oldPool.length)).toEqual(oldPool);
        expect(extentsOfLv(after, free).equals(extentsOfLv(before, free).union(grant ? ExtentSet.fromRanges(grant.ranges) : ExtentSet.empty()))).toBe(true);
        const generationBefore = host.grantGeneration ?? 0;
        expect(thinlvAfter.hosts.get(host.host)?.grantGeneration).toBe(grant ? generationBefore + 1 : generationBefore);
        if (grant) expect(grant.generation).toBe(generationBefore + 1);
        expect(grantTagsOf(after, host.host)).toHaveLength(1);
        // Cursors replay owns are not touched by a refill.
        expect(thinlvAfter.hosts.get(host.host)?.appliedSeq).toBe(host.appliedSeq ?? 0);
      }
      for (const thin of spec.thinLvs) expect(lvNamed(after, thin.name)).toEqual(lvNamed(before, thin.name));
    },
  );
});
