// The master's metrics, fed as runPass feeds them: timePass around whole passes, and
// passDone with what a pass planned (the pure planners on the two-host example VG)
// and the VG it left. The VG figures must be thinlv free's figures for that VG.

import { describe, expect, test } from 'vitest';
import { LvmError } from '../../src/errors.js';
import { readThinlvVg, TAG } from '../../src/format/thinlvVg.js';
import type { PassResult } from '../../src/master/replayPass.js';
import { applyChanges } from '../../src/metadata/applyChanges.js';
import type { VgMetadata } from '../../src/metadata/vgModel.js';
import { createMasterMetrics, type MasterMetrics } from '../../src/metrics/masterMetrics.js';
import { planRefill } from '../../src/pool/planRefill.js';
import { encodeJournalRecord, type JournalRecord } from '../../src/records/records.js';
import { planReplay, type JournalRecordBytes } from '../../src/replay/planReplay.js';
import { PV_SDB, countingIdentity, thinlvVgMetadata, twoHostSpec } from './arbitraries/thinlvVg.js';
import { parseMetricsText, samplesOf, valueOf, type Sample } from '../fixtures/metricsText.js';

const VG = { vg: 'vgthin' };
const RESULT: PassResult = { seqnoBefore: 42, seqnoAfter: 43, committed: true, replayedRecordCount: 0, rejectedRecordCount: 0, grantedHosts: [], moreWaiting: false };

const scrapeRegistry = async (metrics: MasterMetrics): Promise<Sample[]> => parseMetricsText(await metrics.registry.metrics());

const journal = (...list: readonly JournalRecord[]): JournalRecordBytes[] => list.map((record, i) => ({ seq: i + 1, payload: encodeJournalRecord(record) }));

/** A pass over `vg` replaying `records`, as runPass plans it; `commit: false` leaves the VG as read (records not replayed). */
function pass(vg: VgMetadata, records: ReadonlyMap<string, JournalRecordBytes[]>, commit = true) {
  const thinlv = readThinlvVg(vg);
  const replay = planReplay(vg, thinlv, records);
  const afterReplay = applyChanges(vg, replay.changes, countingIdentity());
  const refill = planRefill(afterReplay, thinlv, {});
  const committed = applyChanges(vg, [...replay.changes, ...refill.changes], countingIdentity());
  return { vg: commit ? committed : vg, didCommit: commit, records, replay, refill };
}

/** h1 grows disk0 (4 extents) by 15 from its 20-extent pool: below its low-water of 8, so it gets a grant. */
const h1Grows15 = () => new Map([['h1', journal({ kind: 'allocate', lv: 'disk0', lvUuid: 'uuid-disk0', ranges: [{ pvUuid: PV_SDB.uuid, firstExtent: 30, extentCount: 15 }], extentCountAfter: 19 })]]);

describe('master metrics', () => {
  test('passes are counted and timed, failed ones too; the last success moves only on success; failures are counted by code', async () => {
    const metrics = createMasterMetrics('vgthin', 2000);
    let samples = await scrapeRegistry(metrics);
    expect(valueOf(samples, 'thinlv_master_pass_interval_seconds', VG)).toBe(2);
    expect(valueOf(samples, 'thinlv_master_passes_total', VG)).toBe(0);
    expect(valueOf(samples, 'thinlv_master_last_successful_pass_timestamp_seconds', VG)).toBe(0);

    const before = Date.now() / 1000;
    await expect(metrics.timePass(async () => (await new Promise((resolve) => setTimeout(resolve, 30)), RESULT))).resolves.toBe(RESULT);
    samples = await scrapeRegistry(metrics);
    const lastSuccess = valueOf(samples, 'thinlv_master_last_successful_pass_timestamp_seconds', VG)!;
    expect(lastSuccess).toBeGreaterThanOrEqual(Math.floor(before));
    expect(lastSuccess).toBeLessThanOrEqual(Date.now() / 1000 + 1);
    expect(valueOf(samples, 'thinlv_master_pass_duration_seconds_sum', VG)).toBeGreaterThanOrEqual(0.025);

    const failure = new LvmError('LVM_FAILED', 'lvm vgcfgbackup failed');
    // Milliseconds apart, so a success wrongly recorded now would show.
    await new Promise((resolve) => setTimeout(resolve, 20));
    await expect(metrics.timePass(() => Promise.reject(failure))).rejects.toBe(failure);
    await expect(metrics.timePass(() => Promise.reject(new Error('a bug')))).rejects.toThrow('a bug');
    samples = await scrapeRegistry(metrics);
    expect(valueOf(samples, 'thinlv_master_passes_total', VG)).toBe(3);
    expect(valueOf(samples, 'thinlv_master_pass_duration_seconds_count', VG)).toBe(3);
    expect(valueOf(samples, 'thinlv_master_errors_total', { ...VG, code: 'LVM_FAILED' })).toBe(1);
    expect(valueOf(samples, 'thinlv_master_errors_total', { ...VG, code: 'INTERNAL' })).toBe(1);
    expect(valueOf(samples, 'thinlv_master_last_successful_pass_timestamp_seconds', VG)).toBe(lastSuccess);
  });

  test('a pass that replays and grants: commits, records, lag, grants and the VG figures thinlv free reports', async () => {
    const metrics = createMasterMetrics('vgthin', 2000);
    const vg = thinlvVgMetadata(twoHostSpec());
    // No VG figures before the first pass: a 0 would read as an empty VG.
    expect(samplesOf(await scrapeRegistry(metrics), 'thinlv_vg_extents')).toEqual([]);

    const done = pass(vg, h1Grows15());
    expect(done.replay.hosts.find((h) => h.host === 'h1')).toMatchObject({ appliedRecordCount: 1, movedExtentCount: 15, rejected: [] });
    expect(done.refill.grants.map((g) => g.host)).toEqual(['h1']);
    const granted = done.refill.grants[0]!.extentCount;
    expect(granted).toBeGreaterThan(0);
    metrics.passDone(done);

    const samples = await scrapeRegistry(metrics);
    const h1 = { ...VG, host: 'h1' };
    const h2 = { ...VG, host: 'h2' };
    expect(valueOf(samples, 'thinlv_master_commits_total', VG)).toBe(1);
    expect(valueOf(samples, 'thinlv_master_replayed_records_total', h1)).toBe(1);
    expect(valueOf(samples, 'thinlv_master_replayed_records_total', h2)).toBe(0);
    expect(valueOf(samples, 'thinlv_master_rejected_records_total', h1)).toBe(0);
    expect(valueOf(samples, 'thinlv_master_replay_lag_records', h1)).toBe(1);
    expect(valueOf(samples, 'thinlv_master_replay_lag_records', h2)).toBe(0);
    expect(valueOf(samples, 'thinlv_master_grants_total', h1)).toBe(1);
    expect(valueOf(samples, 'thinlv_master_grants_total', h2)).toBe(0);
    expect(valueOf(samples, 'thinlv_master_granted_extents_total', h1)).toBe(granted);
    // The example VG (see freeSpace.test.ts): 400 extents, 52 committed, 348 free, reserve 20.
    // The 15 extents moved from h1's pool to disk0 stay committed; the grant commits more.
    expect(valueOf(samples, 'thinlv_vg_extents', VG)).toBe(400);
    expect(valueOf(samples, 'thinlv_vg_extent_size_bytes', VG)).toBe(4 * 1024 * 1024);
    expect(valueOf(samples, 'thinlv_vg_committed_extents', VG)).toBe(52 + granted);
    expect(valueOf(samples, 'thinlv_vg_free_extents', VG)).toBe(348 - granted);
    expect(valueOf(samples, 'thinlv_vg_reserve_extents', VG)).toBe(20);
    expect(valueOf(samples, 'thinlv_vg_virtual_bytes', VG)).toBe(3 * 10 * 1024 ** 3);
    expect(valueOf(samples, 'thinlv_vg_host_pool_extents', h1)).toBe(20 - 15 + granted);
    expect(valueOf(samples, 'thinlv_vg_host_pool_extents', h2)).toBe(20);
    expect(valueOf(samples, 'thinlv_vg_alert_warning_ratio', VG)).toBe(0.75);
    expect(valueOf(samples, 'thinlv_vg_alert_critical_ratio', VG)).toBe(0.85);
  });

  test('a pool counts out the records the pass read but did not replay, as thinlv free does', async () => {
    const metrics = createMasterMetrics('vgthin', 2000);
    metrics.passDone(pass(thinlvVgMetadata(twoHostSpec()), h1Grows15(), false));
    const samples = await scrapeRegistry(metrics);
    expect(valueOf(samples, 'thinlv_master_commits_total', VG)).toBe(0);
    expect(valueOf(samples, 'thinlv_vg_host_pool_extents', { ...VG, host: 'h1' })).toBe(5);
    expect(valueOf(samples, 'thinlv_vg_committed_extents', VG)).toBe(52);
  });

  test("the VG's own alert levels are published, and a level tag out of range is counted, leaving the last figures", async () => {
    const metrics = createMasterMetrics('vgthin', 2000);
    const base = thinlvVgMetadata(twoHostSpec());
    metrics.passDone(pass({ ...base, tags: [...base.tags, `${TAG.warnPermille}600`, `${TAG.criticalPermille}905`] }, new Map()));
    let samples = await scrapeRegistry(metrics);
    expect(valueOf(samples, 'thinlv_vg_alert_warning_ratio', VG)).toBe(0.6);
    expect(valueOf(samples, 'thinlv_vg_alert_critical_ratio', VG)).toBe(0.905);

    expect(() => metrics.passDone(pass({ ...base, tags: [...base.tags, `${TAG.warnPermille}2000`] }, new Map()))).not.toThrow();
    samples = await scrapeRegistry(metrics);
    expect(valueOf(samples, 'thinlv_master_errors_total', { ...VG, code: 'UNSUPPORTED_METADATA' })).toBe(1);
    expect(valueOf(samples, 'thinlv_vg_alert_warning_ratio', VG)).toBe(0.6);
    expect(valueOf(samples, 'thinlv_vg_extents', VG)).toBe(400);
  });

  test('a host removed from the VG drops out of the per-host gauges', async () => {
    const metrics = createMasterMetrics('vgthin', 2000);
    const spec = twoHostSpec();
    metrics.passDone(pass(thinlvVgMetadata(spec), new Map()));
    expect(samplesOf(await scrapeRegistry(metrics), 'thinlv_vg_host_pool_extents').map((s) => s.labels['host'])).toEqual(['h1', 'h2']);
    metrics.passDone(pass(thinlvVgMetadata({ ...spec, hosts: spec.hosts.filter((h) => h.host === 'h1'), thinLvs: spec.thinLvs.filter((t) => t.owner === 'h1') }), new Map()));
    const samples = await scrapeRegistry(metrics);
    expect(samplesOf(samples, 'thinlv_vg_host_pool_extents').map((s) => s.labels['host'])).toEqual(['h1']);
    expect(samplesOf(samples, 'thinlv_master_replay_lag_records').map((s) => s.labels['host'])).toEqual(['h1']);
  });
});
