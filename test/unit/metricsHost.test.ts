// The host daemon's metrics over a real allocator and request handler with in-memory
// effects: extends are timed and their extents counted, waiting extends and the pool
// are read at each scrape, errors are counted by code; and lvm calls are timed by
// subcommand.

import { describe, expect, test } from 'vitest';
import { LvmError } from '../../src/errors.js';
import { HostAllocator } from '../../src/host/allocator.js';
import { hostRequestHandler } from '../../src/host/hostRequests.js';
import type { Request } from '../../src/host/protocol.js';
import type { RequestHandler } from '../../src/host/socketServer.js';
import type { LvmRunner } from '../../src/lvm/runLvm.js';
import type { VgLayout } from '../../src/metadata/vgModel.js';
import { createHostMetrics, type HostMetrics } from '../../src/metrics/hostMetrics.js';
import { lvmCallHistogram, timedLvmRunner } from '../../src/metrics/lvmMetrics.js';
import type { JournalRecord } from '../../src/records/records.js';
import { Registry } from 'prom-client';
import { parseMetricsText, samplesOf, valueOf, type Sample } from '../fixtures/metricsText.js';

const PV = '/dev/sdx';
const PV_UUID = 'pv-uuid-sdx';
const EXTENT_SECTORS = 8192;
const EXTENT_BYTES = EXTENT_SECTORS * 512;
const LABELS = { vg: 'vg0', host: 'h1' };

/** VG vg0: thin LV lv0 (one extent, held by h1) and h1's pool of `poolExtents` from extent 10. */
function layout(): VgLayout {
  const lv0 = {
    name: 'lv0',
    uuid: 'uuid-lv0',
    tags: [`thinlv_virtual_bytes=${100 * EXTENT_BYTES}`, 'thinlv_owner=h1'],
    activationSkip: true,
    segments: [{ logicalStart: 0, extentCount: 1, type: 'striped', stripes: [{ pv: PV, firstExtent: 0 }] }],
  };
  const tags = ['thinlv_format=1', 'thinlv_quantum_extents=16', 'thinlv_lowwater_extents=8', 'thinlv_reserve_permille=0'];
  return { name: 'vg0', uuid: 'vg-uuid', seqno: 1, extentSizeSectors: EXTENT_SECTORS, tags, pvs: [{ device: PV, uuid: PV_UUID, peStartSectors: 2048, peCount: 1000 }], lvs: [lv0] };
}

function hostUnderTest(poolExtents: number, outOfSpaceWaitMs = 5_000) {
  const journal: JournalRecord[] = [];
  const allocator = new HostAllocator(
    { host: 'h1', vg: layout(), freeRanges: [{ pv: PV, firstExtent: 10, extentCount: poolExtents }], unreplayed: [], appliedSeq: 0, lastGrantGeneration: 0, outOfSpaceWaitMs },
    {
      journal: { append: async (record) => ({ seq: journal.push(record) }) },
      dm: { activate: async () => undefined, reload: async () => undefined, deactivate: async () => undefined },
      nowMs: () => Date.now(),
      sleepMs: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      dmName: (vg, lv) => `${vg}-${lv}`,
      refreshMetadata: async () => undefined,
    },
  );
  const metrics = createHostMetrics('vg0', 'h1');
  const handler = hostRequestHandler({ vg: 'vg0', host: 'h1', allocator, extentSizeBytes: EXTENT_BYTES, lowWaterExtents: () => 8, deviceMapperPresent: false, refreshMetadata: async () => undefined });
  metrics.watchAllocator(allocator);
  return { allocator, metrics, journal, handle: metrics.observeRequests(handler) };
}

const scrapeRegistry = async (metrics: HostMetrics): Promise<Sample[]> => parseMetricsText(await metrics.registry.metrics());
const extend = (handle: RequestHandler, extentCount: number, id = 'r') => handle({ v: 1, id, op: 'extend', lv: 'lv0', sizeBytes: extentCount * EXTENT_BYTES } as Request, new AbortController().signal);

describe('host metrics', () => {
  test('each extend is timed once and the extents it took are counted; a no-op extend is timed and takes none', async () => {
    const { metrics, handle } = hostUnderTest(20);
    let samples = await scrapeRegistry(metrics);
    expect(valueOf(samples, 'thinlv_host_pool_extents', LABELS)).toBe(20);
    expect(valueOf(samples, 'thinlv_host_allocated_extents_total', LABELS)).toBe(0);
    expect(valueOf(samples, 'thinlv_host_extend_duration_seconds_count', LABELS)).toBe(0);

    await extend(handle, 4); // 1 -> 4 extents: 3 taken
    await extend(handle, 9); // 4 -> 9: 5 taken
    await extend(handle, 9); // already 9: none
    samples = await scrapeRegistry(metrics);
    expect(valueOf(samples, 'thinlv_host_allocated_extents_total', LABELS)).toBe(8);
    expect(valueOf(samples, 'thinlv_host_extend_duration_seconds_count', LABELS)).toBe(3);
    expect(valueOf(samples, 'thinlv_host_extend_duration_seconds_bucket', { ...LABELS, le: '+Inf' })).toBe(3);
    expect(valueOf(samples, 'thinlv_host_pool_extents', LABELS)).toBe(12);
    expect(valueOf(samples, 'thinlv_host_unreplayed_records', LABELS)).toBe(2);
  });

  test('other requests are not timed as extends; failed requests are counted by their code and not timed', async () => {
    const { metrics, handle } = hostUnderTest(4);
    await handle({ v: 1, id: 's', op: 'status' } as Request, new AbortController().signal);
    await expect(handle({ v: 1, id: 'w', op: 'status', vg: 'other' } as Request, new AbortController().signal)).rejects.toMatchObject({ code: 'WRONG_VG' });
    await extend(handle, 3);
    await expect(extend(handle, 2)).rejects.toMatchObject({ code: 'SHRINK_REFUSED' });
    await expect(handle({ v: 1, id: 'n', op: 'extend', lv: 'nope', sizeBytes: EXTENT_BYTES } as Request, new AbortController().signal)).rejects.toMatchObject({ code: 'LV_NOT_FOUND' });
    await expect(handle({ v: 1, id: 'n2', op: 'extend', lv: 'nope', sizeBytes: EXTENT_BYTES } as Request, new AbortController().signal)).rejects.toMatchObject({ code: 'LV_NOT_FOUND' });
    const samples = await scrapeRegistry(metrics);
    expect(valueOf(samples, 'thinlv_host_errors_total', { ...LABELS, code: 'WRONG_VG' })).toBe(1);
    expect(valueOf(samples, 'thinlv_host_errors_total', { ...LABELS, code: 'SHRINK_REFUSED' })).toBe(1);
    expect(valueOf(samples, 'thinlv_host_errors_total', { ...LABELS, code: 'LV_NOT_FOUND' })).toBe(2);
    expect(valueOf(samples, 'thinlv_host_extend_duration_seconds_count', LABELS)).toBe(1);
    expect(valueOf(samples, 'thinlv_host_allocated_extents_total', LABELS)).toBe(2);
  });

  test('an extend the pool cannot serve shows as waiting until a grant serves it, and its wait is in its latency', async () => {
    const { allocator, metrics, handle, journal } = hostUnderTest(2);
    const waiting = extend(handle, 11); // needs 10, the pool has 2
    await new Promise((resolve) => setTimeout(resolve, 150));
    let samples = await scrapeRegistry(metrics);
    expect(valueOf(samples, 'thinlv_host_extends_waiting', LABELS)).toBe(1);
    expect(valueOf(samples, 'thinlv_host_extend_duration_seconds_count', LABELS)).toBe(0);

    allocator.applyGrant({ kind: 'grant', generation: 1, appliedSeq: journal.length, freeRanges: [{ pvUuid: PV_UUID, firstExtent: 10, extentCount: 30 }] });
    await waiting;
    samples = await scrapeRegistry(metrics);
    expect(valueOf(samples, 'thinlv_host_extends_waiting', LABELS)).toBe(0);
    expect(valueOf(samples, 'thinlv_host_allocated_extents_total', LABELS)).toBe(10);
    expect(valueOf(samples, 'thinlv_host_pool_extents', LABELS)).toBe(20);
    // It waited at least 150 ms: not in the buckets up to 0.1 s.
    expect(valueOf(samples, 'thinlv_host_extend_duration_seconds_bucket', { ...LABELS, le: '0.1' })).toBe(0);
    expect(valueOf(samples, 'thinlv_host_extend_duration_seconds_sum', LABELS)).toBeGreaterThanOrEqual(0.15);
  });

  test('an extend that waits in vain is an OUT_OF_SPACE error, and stops waiting', async () => {
    const { metrics, handle } = hostUnderTest(2, 200);
    await expect(extend(handle, 11)).rejects.toMatchObject({ code: 'OUT_OF_SPACE' });
    const samples = await scrapeRegistry(metrics);
    expect(valueOf(samples, 'thinlv_host_errors_total', { ...LABELS, code: 'OUT_OF_SPACE' })).toBe(1);
    expect(valueOf(samples, 'thinlv_host_extends_waiting', LABELS)).toBe(0);
    expect(valueOf(samples, 'thinlv_host_extend_duration_seconds_count', LABELS)).toBe(0);
  });

  test('before the allocator serves, its gauges have no sample (a 0 would read as an empty pool)', async () => {
    const metrics = createHostMetrics('vg0', 'h1');
    const samples = await scrapeRegistry(metrics);
    expect(samplesOf(samples, 'thinlv_host_pool_extents')).toEqual([]);
    expect(samplesOf(samples, 'thinlv_host_extends_waiting')).toEqual([]);
    expect(valueOf(samples, 'thinlv_host_allocated_extents_total', LABELS)).toBe(0);
  });

  test('two daemons in one process keep their own registries', async () => {
    const a = hostUnderTest(20);
    const b = hostUnderTest(20);
    await extend(a.handle, 3);
    expect(valueOf(await scrapeRegistry(a.metrics), 'thinlv_host_allocated_extents_total', LABELS)).toBe(2);
    expect(valueOf(await scrapeRegistry(b.metrics), 'thinlv_host_allocated_extents_total', LABELS)).toBe(0);
  });
});

describe('lvm call timing', () => {
  test('each call is observed under its subcommand, failed ones too, and the runner\'s answer and errors pass through', async () => {
    const registry = new Registry();
    const calls: string[] = [];
    const runner: LvmRunner = {
      async run(command, args) {
        calls.push(`${command} ${args.join(' ')}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
        if (command === 'vgcfgrestore') throw new LvmError('LVM_FAILED', 'lvm vgcfgrestore failed');
        return { stdout: `out of ${command}`, stderr: '' };
      },
    };
    const timed = timedLvmRunner(runner, lvmCallHistogram(registry));
    expect(await timed.run('fullreport', ['--readonly', 'vg0'])).toEqual({ stdout: 'out of fullreport', stderr: '' });
    await timed.run('fullreport', ['vg0']);
    await timed.run('vgcfgbackup', ['-f', '-', 'vg0']);
    await expect(timed.run('vgcfgrestore', ['vg0'])).rejects.toMatchObject({ code: 'LVM_FAILED' });
    expect(calls).toEqual(['fullreport --readonly vg0', 'fullreport vg0', 'vgcfgbackup -f - vg0', 'vgcfgrestore vg0']);
    const samples = parseMetricsText(await registry.metrics());
    expect(valueOf(samples, 'thinlv_lvm_call_duration_seconds_count', { command: 'fullreport' })).toBe(2);
    expect(valueOf(samples, 'thinlv_lvm_call_duration_seconds_count', { command: 'vgcfgbackup' })).toBe(1);
    expect(valueOf(samples, 'thinlv_lvm_call_duration_seconds_count', { command: 'vgcfgrestore' })).toBe(1);
    expect(valueOf(samples, 'thinlv_lvm_call_duration_seconds_sum', { command: 'fullreport' })).toBeGreaterThanOrEqual(0.035);
  });

  test('what the runner says of itself passes through: its devices, and whether it remembers PV devices (a daemon with --metrics-listen once lost its direct PV reads)', () => {
    const runner: LvmRunner = { devices: ['/dev/loop7'], rememberPvDevices: true, run: () => Promise.resolve({ stdout: '', stderr: '' }) };
    const timed = timedLvmRunner(runner, lvmCallHistogram(new Registry()));
    expect(timed.devices).toEqual(['/dev/loop7']);
    expect(timed.rememberPvDevices).toBe(true);
  });
});
