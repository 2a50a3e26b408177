// `thinlv status`, `thinlv hosts` and `thinlv free`'s forecast on real LVM, run as an
// operator would (the built CLI), with a master and two host daemons as real processes:
// what the master publishes on the LUN, counts read from the journals as they are now,
// a stopped daemon, a stopped master, an unreadable journal and a nearly full VG, each
// reported with what to do.

import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { openFileRegion } from '../../journal/index.js';
import { STATUS_LV, hostLvNames } from '../../src/format/thinlvVg.js';
import { readVgMetadata } from '../../src/lvm/commitBatch.js';
import type { FreeSpaceReport } from '../../src/report/freeSpace.js';
import type { HostReport, StatusReport } from '../../src/report/vgStatus.js';
import { ringLocation } from '../../src/rings/ringRegions.js';
import { MasterState, openStateDb } from '../../src/state/index.js';
import { HostDaemonProcess, stopDaemon } from '../fixtures/hostDaemons.js';
import { realLvmUnavailableReason } from '../fixtures/loopVg.js';
import { runCli, startCli } from '../fixtures/runCli.js';
import { createThinlvTestVg, fillWithOrdinaryLv, type ThinlvTestVg } from '../fixtures/thinlvVg.js';

const skipReason = realLvmUnavailableReason();
const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const MASTER_INTERVAL_MS = 200;

async function cli<T>(t: ThinlvTestVg, ...args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string; json: T }> {
  const result = await runCli([...args, ...t.cliArgs()]);
  const json = args.includes('--json') && result.exitCode <= 2 ? (JSON.parse(result.stdout) as T) : (undefined as T);
  return { ...result, json };
}

/** Polls `thinlv status --json` until `done` holds; fails with the last report after `timeoutMs`. */
async function statusUntil(t: ThinlvTestVg, done: (r: StatusReport) => boolean, timeoutMs = 30_000): Promise<StatusReport> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { json, exitCode, stderr } = await cli<StatusReport>(t, 'status', t.vg.vgName, '--json');
    expect(exitCode, stderr).toBe(0);
    if (done(json)) return json;
    if (Date.now() > deadline) throw new Error(`status never reached the expected state: ${JSON.stringify(json, null, 2)}`);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

async function freeUntil(t: ThinlvTestVg, done: (r: FreeSpaceReport) => boolean, timeoutMs = 30_000): Promise<{ json: FreeSpaceReport }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const free = await cli<FreeSpaceReport>(t, 'free', t.vg.vgName, '--json');
    expect(free.exitCode, free.stderr).toBe(0);
    if (done(free.json)) return free;
    if (Date.now() > deadline) throw new Error(`free never reached the expected state: ${JSON.stringify(free.json.growth, null, 2)}`);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

const host = (r: StatusReport, name: string): HostReport => r.hosts.find((h) => h.host === name)!;

/** Overwrites the first block of `name`'s journal ring (its header) with zeros. */
async function wipeJournalHeader(t: ThinlvTestVg, name: string): Promise<void> {
  const location = ringLocation(await readVgMetadata(t.vg.lvm, t.vg.vgName), hostLvNames(name).journal);
  const region = await openFileRegion(location.device, location);
  try {
    await region.write(0, region.allocateBuffer(4096));
  } finally {
    await region.close();
  }
}

describe.skipIf(skipReason !== undefined)('thinlv status, hosts and the free forecast on a real VG', () => {
  test('a running master publishes its passes, hosts and history; counts are current; a stopped daemon and a stopped master are reported with what to do', async () => {
    const t = await createThinlvTestVg({ sizeBytes: 4 * GIB, hosts: ['h1', 'h2'], thinLvCount: 2, quantumExtents: 16, lowWaterExtents: 8 });
    // History that began two hours ago, as on a master that has run that long: the hour's rate counts.
    const stateDir = join(t.runDir, 'state');
    const db = openStateDb(join(stateDir, `master-${t.vg.vgName}.db`));
    new MasterState(db).historySinceMs(Date.now() - 2 * 3_600_000);
    db.close();
    const master = startCli(['master', t.vg.vgName, '--interval-ms', String(MASTER_INTERVAL_MS), '--state-dir', stateDir, ...t.cliArgs()]);
    const daemons: HostDaemonProcess[] = [];
    try {
      daemons.push(await HostDaemonProcess.start(t, 'h1'), await HostDaemonProcess.start(t, 'h2'));
      const [h1, h2] = daemons as [HostDaemonProcess, HostDaemonProcess];
      await h1.extend('disk0', 96 * MIB);
      await h2.extend('disk1', 24 * MIB);

      const running = await statusUntil(t, (r) => r.master.running === true && r.hosts.every((h) => h.daemon === 'running' && h.unreplayedRecords === 0 && h.lastSeenAgeSeconds !== null));
      expect(running).toMatchObject({ vg: t.vg.vgName, level: 'ok', problems: [], master: { host: hostname(), running: true, statusReadable: true, lastPassOk: true, failedPassCount: 0 } });
      expect(running.master.passCount).toBeGreaterThan(0);
      expect(running.master.lastPassAgeSeconds).toBeLessThan(10);
      for (const name of ['h1', 'h2']) {
        expect(host(running, name)).toMatchObject({ daemon: 'running', replayLagSeconds: 0, journalReadable: true, demandExtents: 0 });
        expect(host(running, name).poolExtents).toBeGreaterThan(0);
        expect(host(running, name).lowWaterExtents).toBeGreaterThan(0);
        expect(host(running, name).grantGeneration).toBeGreaterThan(0);
        expect(host(running, name).leaseHolder).toMatch(/ pid \d+$/);
      }
      expect((await readVgMetadata(t.vg.lvm, t.vg.vgName)).lvs.map((lv) => lv.name)).toContain(STATUS_LV);

      // The forecast: the master's history covers the last hour, disk0 grew most.
      // History is summed at most once a second after a replay: wait for the pass after it.
      const free = await freeUntil(t, (r) => (r.growth.windows[0]?.extentCount ?? 0) >= 28);
      const hour = free.json.growth.windows.find((w) => w.name === 'hour')!;
      expect(free.json.growth).toMatchObject({ available: true, masterHost: hostname() });
      expect(hour).toMatchObject({ enoughHistory: true, windowMs: 3_600_000, coveredMs: 3_600_000 });
      // 4 MiB extents: disk0 grew from 1 extent to 96 MiB, disk1 from 1 to 24 MiB.
      expect(hour.extentCount).toBe(28);
      expect(hour.topLvs).toEqual([{ lv: 'disk0', extentCount: 23 }, { lv: 'disk1', extentCount: 5 }]);
      expect(free.json.timeToFullSeconds).toBe(hour.timeToFullSeconds);
      const expectedSeconds = ((free.json.freeExtents + free.json.poolExtents) * hour.coveredMs) / hour.extentCount / 1000;
      expect(free.json.timeToFullSeconds).toBeCloseTo(expectedSeconds, -1);
      const freeText = await cli(t, 'free', t.vg.vgName);
      expect(freeText.stdout).toMatch(/time to full: [\d.]+ (s|min|h|days) at the last hour's rate/);
      expect(freeText.stdout).toMatch(/grew most in the last hour: disk0 \+[\d.]+ MiB, disk1 \+/);
      console.log(`thinlv free with a master's history:\n${freeText.stdout}`);

      const text = await cli(t, 'status', t.vg.vgName);
      expect(text.exitCode, text.stderr).toBe(0);
      expect(text.stdout).toContain(`VG ${t.vg.vgName}: ok`);
      expect(text.stdout).toMatch(new RegExp(`master: running on ${hostname()} \\(pid \\d+\\), last pass`));
      expect(text.stdout).toMatch(/h1 +running +/);
      console.log(`thinlv status, all well:\n${text.stdout}`);

      // A small extend that needs no grant: once replayed, the daemon's own status says so,
      // read from its ring's consumer, without reading metadata. `thinlv status` counts from
      // the metadata's applied seq, which the master commits just before it consumes the
      // ring: between the two the daemon still counts the record, so it gets a few seconds.
      await h2.extend('disk1', 28 * MIB);
      await statusUntil(t, (r) => host(r, 'h2').unreplayedRecords === 0 && r.master.running === true);
      const consumedBy = Date.now() + 10_000;
      while ((await h2.status()).unreplayedRecordCount !== 0 && Date.now() < consumedBy) await new Promise((resolve) => setTimeout(resolve, 50));
      expect((await h2.status()).unreplayedRecordCount).toBe(0);

      // A stopped daemon: its lease is released, and the master says so at its next pass.
      await h2.stop();
      const h2Stopped = await statusUntil(t, (r) => host(r, 'h2').daemon === 'stopped');
      expect(host(h2Stopped, 'h1').daemon).toBe('running');

      // A stopped master: allocations journaled since are counted at once, and status turns critical.
      await stopDaemon(master);
      await h1.extend('disk0', 128 * MIB);
      const hosts = await cli<HostReport[]>(t, 'hosts', t.vg.vgName, '--json');
      expect(hosts.exitCode, hosts.stderr).toBe(0);
      expect(hosts.json.map((h) => h.host)).toEqual(['h1', 'h2']);
      expect(hosts.json[0]!.unreplayedRecords).toBeGreaterThan(0);
      expect(hosts.json[0]!.unreplayedExtents).toBe(8);
      // The master published that it stopped: no waiting for it to fall silent.
      const down = await statusUntil(t, (r) => r.master.running === false, 1);
      expect(down.master.stoppedAgeSeconds).not.toBeNull();
      expect(down.level).toBe('critical');
      expect(down.problems).toContainEqual(expect.objectContaining({ severity: 'critical', code: 'MASTER_DOWN', action: expect.stringContaining(`systemctl start thinlv-master@${t.vg.vgName}`) }));
      expect(host(down, 'h1').replayLagSeconds).toEqual(expect.any(Number));
      const check = await cli(t, 'status', t.vg.vgName, '--check');
      expect(check.exitCode).toBe(2);
      expect(check.stdout).toMatch(/critical MASTER_DOWN: the master on .* stopped \d+ s ago/);
      expect(check.stdout).toMatch(/what to do: start it on /);
      const table = await cli(t, 'hosts', t.vg.vgName);
      expect(table.stdout).toMatch(/^host +daemon +pool +low-water +grant +unreplayed +lag +active +demand +last record$/m);
      console.log(`thinlv status with the master stopped:\n${check.stdout}`);

      // `thinlv host status` lists what is active on the host (an LV h1 holds needs no master).
      await h1.activate('disk0');
      const hostStatus = await cli<{ activeLvs: string[] }>(t, 'host', 'status', t.vg.vgName, 'h1', '--socket', h1.socketPath, '--json');
      expect(hostStatus.exitCode, hostStatus.stderr).toBe(0);
      expect(hostStatus.json.activeLvs).toEqual(['disk0']);
      expect((await cli(t, 'host', 'status', t.vg.vgName, 'h1', '--socket', h1.socketPath)).stdout).toContain('active LVs (1): disk0');
    } finally {
      for (const daemon of daemons) await daemon.cleanUp();
      await stopDaemon(master);
      await t.destroy();
    }
  });

  test('an unreadable journal, a VG past warning, and a VG no master ever ran on are each reported with what to do', async () => {
    const t = await createThinlvTestVg({ sizeBytes: 2 * GIB, hosts: ['h1', 'h2'], thinLvCount: 1, quantumExtents: 16, lowWaterExtents: 8 });
    try {
      await wipeJournalHeader(t, 'h2');
      await fillWithOrdinaryLv(t, 'filler', (vg) => {
        const total = vg.pvs.reduce((n, pv) => n + pv.peCount, 0);
        return total - Math.ceil(total * 0.8);
      });
      const result = await cli<StatusReport>(t, 'status', t.vg.vgName, '--json', '--check');
      expect(result.exitCode, result.stderr).toBe(2);
      const codes = result.json.problems.map((p) => [p.code, p.host, p.severity]);
      expect(codes).toEqual([
        ['MASTER_DOWN', null, 'critical'],
        ['VG_WARNING', null, 'warning'],
        ['JOURNAL_UNREADABLE', 'h2', 'critical'],
      ]);
      expect(result.json.master).toMatchObject({ running: false, statusReadable: false, statusError: expect.stringContaining('no master has run') });
      expect(host(result.json, 'h2')).toMatchObject({ journalReadable: false, daemon: 'unknown' });
      const text = await cli(t, 'status', t.vg.vgName);
      expect(text.exitCode).toBe(0);
      expect(text.stdout).toMatch(/critical JOURNAL_UNREADABLE: host h2's journal cannot be read: [A-Z_]+: /);
      expect(text.stdout).toContain(`what to do: run thinlv check ${t.vg.vgName}; on h2, see journalctl -u thinlv-host@${t.vg.vgName}`);
      expect(text.stdout).toMatch(/warning VG_WARNING: VG \S+ is 8\d\.\d% committed \(warning\)/);
      console.log(`thinlv status with problems:\n${text.stdout}`);
      const missing = await cli(t, 'status', 'thinlv_no_such_vg');
      expect(missing.exitCode).toBe(3);
    } finally {
      await t.destroy();
    }
  });
});
