import { describe, expect, test } from 'vitest';
import { statusText } from '../../src/cli/commands/status.js';
import { growthLines } from '../../src/cli/growthText.js';
import { DEFAULT_ALERT_LEVELS, readThinlvVg } from '../../src/format/thinlvVg.js';
import type { HostStatus, MasterStatus } from '../../src/master/masterStatus.js';
import type { VgMetadata } from '../../src/metadata/vgModel.js';
import { computeFreeSpace } from '../../src/report/freeSpace.js';
import { growthReport, soonestFull } from '../../src/report/growth.js';
import type { PublishedStatus } from '../../src/report/publishedStatus.js';
import { computeStatus, type StatusReport } from '../../src/report/vgStatus.js';
import { thinlvVgMetadata, twoHostSpec } from './arbitraries/thinlvVg.js';

const NOW = 1_800_000_000_000;
const HOUR = 3_600_000;
const EXTENT_BYTES = 4 * 1024 * 1024;

function hostStatus(host: string, overrides: Partial<HostStatus> = {}): HostStatus {
  return { host, poolExtents: 20, lowWaterExtents: 8, demandExtents: 0, journalSeq: 4, journalAdvancedAtMs: NOW - 2000, lease: { state: 'held', holder: `${host} pid 1`, counter: 50, renewedAtMs: NOW - 1000 }, ...overrides };
}

function masterStatus(overrides: Partial<MasterStatus> = {}): MasterStatus {
  return {
    version: 1,
    vg: 'vgthin',
    masterHost: 'm1',
    pid: 42,
    startedAtMs: NOW - 2 * HOUR,
    writtenAtMs: NOW - 500,
    stoppedAtMs: null,
    intervalMs: 2000,
    passCount: 100,
    failedPassCount: 0,
    lastPass: { atMs: NOW - 700, durationMs: 200, ok: true, seqno: 9, replayedRecords: 0 },
    lastSuccessAtMs: NOW - 500,
    lastError: null,
    growth: {
      historySinceMs: NOW - 2 * HOUR,
      windows: [
        { name: 'hour', windowMs: HOUR, coveredMs: HOUR, extentCount: 60, topLvs: [{ lv: 'disk0', extentCount: 50 }, { lv: 'disk2', extentCount: 10 }] },
        { name: 'day', windowMs: 24 * HOUR, coveredMs: 2 * HOUR, extentCount: 80, topLvs: [{ lv: 'disk0', extentCount: 70 }] },
      ],
    },
    hosts: [hostStatus('h1'), hostStatus('h2')],
    ...overrides,
  };
}

function status(vg: VgMetadata, published: PublishedStatus, nowMs = NOW): StatusReport {
  const journals = new Map([...readThinlvVg(vg).hosts.keys()].map((h) => [h, { readable: true as const, records: [] }]));
  const free = computeFreeSpace(vg, journals, DEFAULT_ALERT_LEVELS, published);
  return computeStatus({ free, thinlv: readThinlvVg(vg), published, nowMs });
}

describe('the growth forecast', () => {
  test('time to full is free plus pools over each covered window\'s rate; the sooner counts; short history does not', () => {
    const report = growthReport({ published: true, status: masterStatus() }, 600);
    const [hour, day] = report.windows;
    expect(hour).toMatchObject({ enoughHistory: true, extentsPerHour: 60, timeToFullSeconds: 36_000 });
    // Two hours of a day is less than a tenth of it: the day's rate does not count.
    expect(day).toMatchObject({ enoughHistory: false, extentsPerHour: 40, timeToFullSeconds: null });
    expect(soonestFull(report)).toBe(36_000);
    const lines = growthLines(report, EXTENT_BYTES);
    expect(lines[0]).toBe("time to full: 10.0 h at the last hour's rate (240.00 MiB/h); last day: not enough history (2.0 h of it)");
    expect(lines[1]).toBe('grew most in the last hour: disk0 +200.00 MiB, disk2 +40.00 MiB');
  });

  test('no growth, no history kept, no status: no invented forecast, and the reason in words', () => {
    const still = masterStatus({ growth: { historySinceMs: NOW - 30 * HOUR, windows: [{ name: 'hour', windowMs: HOUR, coveredMs: HOUR, extentCount: 0, topLvs: [] }] } });
    expect(soonestFull(growthReport({ published: true, status: still }, 600))).toBeNull();
    expect(growthLines(growthReport({ published: true, status: still }, 600), EXTENT_BYTES)).toEqual(['time to full: last hour: no growth']);
    const noHistory = growthReport({ published: true, status: masterStatus({ growth: null }) }, 600);
    expect(noHistory).toMatchObject({ available: false, reason: expect.stringContaining('--no-history') });
    expect(growthLines(growthReport({ published: false, reason: 'gone' }, 600), EXTENT_BYTES)).toEqual(['time to full: not enough history (gone)']);
  });
});

describe('thinlv status', () => {
  const vg = thinlvVgMetadata(twoHostSpec());

  test('a master that passes and live daemons: ok, no problems', () => {
    const r = status(vg, { published: true, status: masterStatus() });
    expect(r).toMatchObject({ level: 'ok', problems: [], master: { running: true, host: 'm1', lastPassAgeSeconds: 1, passCount: 100 } });
    expect(r.hosts.map((h) => [h.host, h.daemon, h.lowWaterExtents, h.lastSeenAgeSeconds])).toEqual([
      ['h1', 'running', 8, 2],
      ['h2', 'running', 8, 2],
    ]);
    expect(statusText(r)).toMatch(/^VG vgthin: ok\nmaster: running on m1 \(pid 42\), last pass 1 s ago \(200 ms\), 100 passes, 0 failed/);
  });

  test('a master silent for 5 intervals plus the skew allowance is down; one silent for less is not', () => {
    const published: PublishedStatus = { published: true, status: masterStatus({ writtenAtMs: NOW - 14_000 }) };
    expect(status(vg, published).master.running).toBe(true);
    const down = status(vg, published, NOW + 2_000);
    expect(down.master.running).toBe(false);
    expect(down.level).toBe('critical');
    expect(down.problems[0]).toMatchObject({ code: 'MASTER_DOWN', message: expect.stringContaining('has not passed for'), action: expect.stringContaining('start it on m1') });
    // Nobody watches leases while the master is down.
    expect(down.hosts.every((h) => h.daemon === 'unknown')).toBe(true);
  });

  test('a failing pass, a released lease with active LVs, an empty pool with free space, refused records', () => {
    const vgWithActivity = thinlvVgMetadata(twoHostSpec({ h2: { pool: [] } }));
    const published: PublishedStatus = {
      published: true,
      status: masterStatus({
        lastPass: { atMs: NOW - 700, durationMs: 90, ok: false, seqno: null, replayedRecords: 0 },
        lastError: { atMs: NOW - 700, code: 'LVM_FAILED', message: 'vgcfgrestore failed' },
        hosts: [hostStatus('h1', { lease: { state: 'released', holder: 'h1 pid 1', counter: 50, renewedAtMs: NOW - 60_000 } }), hostStatus('h2', { poolExtents: 0 })],
      }),
    };
    const withTags = { ...vgWithActivity, lvs: vgWithActivity.lvs.map((lv) => (lv.name === 'thinlv_h1_journal' ? { ...lv, tags: [...lv.tags.filter((t) => !t.startsWith('thinlv_active_lvs=') && !t.startsWith('thinlv_rejected=')), 'thinlv_active_lvs=2', 'thinlv_rejected=3'] } : lv)) };
    const r = status(withTags, published);
    expect(r.problems.map((p) => [p.code, p.host, p.severity])).toEqual([
      ['MASTER_PASS_FAILING', null, 'warning'],
      ['DAEMON_STOPPED', 'h1', 'warning'],
      ['RECORDS_REJECTED', 'h1', 'warning'],
      ['POOL_EMPTY', 'h2', 'warning'],
    ]);
    expect(r.level).toBe('warning');
    expect(r.problems[0]!.message).toBe("the master's last pass failed: LVM_FAILED vgcfgrestore failed");
  });
});
