// The daemons' Prometheus endpoints on real LVM: a master and a host daemon as
// processes with --metrics-listen, scraped while a stream of extends runs and after;
// what they count must match what the extends got, and the master's VG figures must
// match `thinlv free --json`. Also: a bad --metrics-listen is refused, an address in
// use is a clear error, and a stopped daemon stops listening.

import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { ExtendResult } from '../../src/host/protocol.js';
import { newRequestId, requestOnce } from '../../src/host/socketServer.js';
import { TEST_LEASE_INTERVAL_MS, stopDaemon, type Daemon } from '../fixtures/hostDaemons.js';
import { realLvmUnavailableReason } from '../fixtures/loopVg.js';
import { scrape, samplesOf, valueOf, type Sample } from '../fixtures/metricsText.js';
import { pooled } from '../fixtures/pooled.js';
import { runCli, startCli } from '../fixtures/runCli.js';
import { createThinlvTestVg, type ThinlvTestVg } from '../fixtures/thinlvVg.js';

const skipReason = realLvmUnavailableReason();
const EXTENT_BYTES = 4 * 1024 * 1024;
const EXTEND_COUNT = 60;

/** A port nothing listens on now (the system's choice for port 0). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

/** Waits until `url` answers a scrape (the daemon is up), or its process has exited. */
async function waitForScrape(url: string, daemon: Daemon, timeoutMs = 30_000): Promise<Sample[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const samples = await scrape(url).catch(() => undefined);
    if (samples !== undefined) return samples;
    if (daemon.exitCode !== null && daemon.exitCode !== undefined) {
      const result = await daemon;
      throw new Error(`daemon exited ${String(result.exitCode)}: ${String(result.stdout)}${String(result.stderr)}`);
    }
    if (Date.now() > deadline) throw new Error(`${url} not up within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** `thinlv host run` with metrics on, in a directory of its own; ready when its socket answers. */
async function startHost(t: ThinlvTestVg, dir: string, metricsPort: number) {
  const socketPath = join(dir, 's.sock');
  const daemon = startCli(['host', 'run', t.vg.vgName, 'h1', '--socket', socketPath, '--state-dir', join(dir, 'state'), '--lease-interval-ms', String(TEST_LEASE_INTERVAL_MS), '--metrics-listen', `127.0.0.1:${metricsPort}`, ...t.cliArgs()]);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const reply = await requestOnce(socketPath, { id: newRequestId(), op: 'status' }, 5000).catch(() => undefined);
    if (reply?.ok) return { daemon, socketPath };
    if (daemon.exitCode !== null && daemon.exitCode !== undefined) {
      const result = await daemon;
      throw new Error(`host daemon exited ${String(result.exitCode)}: ${String(result.stdout)}${String(result.stderr)}`);
    }
    if (Date.now() > deadline) throw new Error('host daemon not ready within 30 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function extendBy(socketPath: string, lv: string, incrementBytes: number): Promise<ExtendResult> {
  const reply = await requestOnce(socketPath, { id: newRequestId(), op: 'extend', lv, incrementBytes }, 60_000);
  if (!reply.ok) throw Object.assign(new Error(reply.error.message), { code: reply.error.code });
  return reply.result;
}

/** The master's VG figures, as one comparable record. */
function vgFigures(samples: readonly Sample[]) {
  const vg = (name: string) => valueOf(samples, name);
  return {
    extentCount: vg('thinlv_vg_extents'),
    extentSizeBytes: vg('thinlv_vg_extent_size_bytes'),
    committedExtents: vg('thinlv_vg_committed_extents'),
    freeExtents: vg('thinlv_vg_free_extents'),
    reserveExtents: vg('thinlv_vg_reserve_extents'),
    virtualBytes: vg('thinlv_vg_virtual_bytes'),
    warnRatio: vg('thinlv_vg_alert_warning_ratio'),
    criticalRatio: vg('thinlv_vg_alert_critical_ratio'),
    h1PoolExtents: valueOf(samples, 'thinlv_vg_host_pool_extents', { host: 'h1' }),
  };
}

describe.skipIf(skipReason !== undefined)('Prometheus metrics of the master and a host daemon', () => {
  test('scraped during and after a stream of extends, they count what the extends did and agree with thinlv free', async () => {
    const t = await createThinlvTestVg({ hosts: ['h1'], thinLvCount: 4, quantumExtents: 16, lowWaterExtents: 8 });
    const dir = mkdtempSync(join(tmpdir(), 'thinlv-metrics-'));
    const [masterPort, hostPort] = [await freePort(), await freePort()];
    const masterUrl = `http://127.0.0.1:${masterPort}/metrics`;
    const hostUrl = `http://127.0.0.1:${hostPort}/metrics`;
    const master = startCli(['master', t.vg.vgName, '--interval-ms', '200', '--no-history', '--metrics-listen', `127.0.0.1:${masterPort}`, ...t.cliArgs()]);
    let host: Awaited<ReturnType<typeof startHost>> | undefined;
    try {
      await waitForScrape(masterUrl, master);
      host = await startHost(t, dir, hostPort);
      const socketPath = host.socketPath;
      const before = await scrape(hostUrl);
      const labels = { vg: t.vg.vgName, host: 'h1' };
      expect(valueOf(before, 'thinlv_host_extend_duration_seconds_count', labels)).toBe(0);
      expect(valueOf(before, 'thinlv_host_allocated_extents_total', labels)).toBe(0);
      expect(valueOf(before, 'thinlv_host_pool_extents', labels)).toBeGreaterThan(0);

      // 60 extends over 4 LVs, 4 at a time, by 1 to 7 extents each (180 in all): many
      // pools' worth, so the master refills while they run. Scraped all along.
      const increments = Array.from({ length: EXTEND_COUNT }, (_, i) => 1 + (i % 7));
      const tasks = increments.map((extentCount, i) => () => extendBy(socketPath, t.thinLvs[i % t.thinLvs.length]!, extentCount * EXTENT_BYTES));
      let streaming = true;
      const midStream: number[] = [];
      const scraper = (async () => {
        while (streaming) {
          const samples = await scrape(hostUrl);
          midStream.push(valueOf(samples, 'thinlv_host_allocated_extents_total', labels)!);
          await scrape(masterUrl);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })();
      const outcomes = await pooled(tasks, 4);
      streaming = false;
      await scraper;
      const results = outcomes.map((o) => {
        if (o.status === 'rejected') throw o.reason;
        return o.value;
      });
      const granted = results.reduce((sum, r) => sum + r.extentsGranted, 0);
      expect(granted).toBe(increments.reduce((sum, n) => sum + n, 0));
      expect(midStream.length).toBeGreaterThan(0);
      for (let i = 1; i < midStream.length; i++) expect(midStream[i]!).toBeGreaterThanOrEqual(midStream[i - 1]!);

      const after = await scrape(hostUrl);
      expect(valueOf(after, 'thinlv_host_allocated_extents_total', labels)).toBe(granted);
      expect(valueOf(after, 'thinlv_host_extend_duration_seconds_count', labels)).toBe(EXTEND_COUNT);
      expect(valueOf(after, 'thinlv_host_extend_duration_seconds_bucket', { ...labels, le: '+Inf' })).toBe(EXTEND_COUNT);
      expect(samplesOf(after, 'thinlv_host_errors_total').filter((s) => s.value > 0)).toEqual([]);
      expect(valueOf(after, 'thinlv_host_extends_waiting', labels)).toBe(0);
      // With --devices the host reads metadata from its PVs, not through lvm: the timed runner
      // keeps the runner's devices (it once dropped them, and every read ran lvm fullreport).
      expect(valueOf(after, 'thinlv_lvm_call_duration_seconds_count', { ...labels, command: 'fullreport' }) ?? 0).toBe(0);

      await expectMasterAgreesWithFree(t, { masterUrl, hostUrl, socketPath }, labels);
    } finally {
      await stopDaemon(master);
      if (host !== undefined) await stopDaemon(host.daemon);
      rmSync(dir, { recursive: true, force: true });
      await t.destroy();
    }
    // Stopped daemons stop listening.
    await expect(fetch(masterUrl)).rejects.toThrow();
    await expect(fetch(hostUrl)).rejects.toThrow();
  });

  test('a bad --metrics-listen is refused with INVALID_ARGUMENT (exit 2); an address in use fails the start with METRICS_LISTEN_FAILED (exit 3)', async () => {
    const t = await createThinlvTestVg({ hosts: ['h1'], thinLvCount: 1, quantumExtents: 16, lowWaterExtents: 8 });
    const dir = mkdtempSync(join(tmpdir(), 'thinlv-metrics-'));
    const blocker = createServer();
    try {
      for (const args of [
        ['master', t.vg.vgName, '--metrics-listen', '127.0.0.1'],
        ['master', t.vg.vgName, '--metrics-listen', '127.0.0.1:70000'],
        ['host', 'run', t.vg.vgName, 'h1', '--socket', join(dir, 's.sock'), '--state-dir', dir, '--metrics-listen', 'no port:x'],
      ]) {
        const result = await runCli([...args, '--json', ...t.cliArgs()]);
        expect(result.exitCode, result.stdout + result.stderr).toBe(2);
        expect(JSON.parse(result.stdout)).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT', message: expect.stringContaining('--metrics-listen') } });
      }

      await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
      const port = (blocker.address() as { port: number }).port;
      const started = Date.now();
      for (const args of [
        ['master', t.vg.vgName, '--no-history'],
        ['host', 'run', t.vg.vgName, 'h1', '--socket', join(dir, 's.sock'), '--state-dir', dir, '--lease-interval-ms', String(TEST_LEASE_INTERVAL_MS)],
      ]) {
        const result = await runCli([...args, '--metrics-listen', `127.0.0.1:${port}`, '--json', ...t.cliArgs()]);
        expect(result.exitCode, result.stdout + result.stderr).toBe(3);
        const error = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { error: { code: string; message: string } };
        expect(error.error.code).toBe('METRICS_LISTEN_FAILED');
        expect(error.error.message).toContain(`127.0.0.1:${port}`);
        expect(error.error.message).toContain('already in use');
      }
      // Refused before the host waited for its lease (4 lease intervals).
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      blocker.close();
      rmSync(dir, { recursive: true, force: true });
      await t.destroy();
    }
  });
});

/**
 * Once the master has replayed everything (its lag at 0) and the host has its last
 * grant, the master's counters reflect the passes, its VG figures are `thinlv free
 * --json`'s, and its view of h1's pool is the host's own (which the host's status also
 * reports). A pass or a grant may land between two reads: they are compared once reads
 * around `free` agree.
 */
async function expectMasterAgreesWithFree(t: ThinlvTestVg, at: { masterUrl: string; hostUrl: string; socketPath: string }, labels: { vg: string; host: string }): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const first = await scrape(at.masterUrl);
    const host = await scrape(at.hostUrl);
    const status = await requestOnce(at.socketPath, { id: newRequestId(), op: 'status' }, 5000);
    if (!status.ok) throw new Error(status.error.message);
    const free = await runCli(['free', t.vg.vgName, '--json', ...t.cliArgs()]);
    expect(free.exitCode, free.stderr).toBe(0);
    const second = await scrape(at.masterUrl);
    const hostPool = valueOf(host, 'thinlv_host_pool_extents', labels);
    // (Not the host's own unreplayed count: it drops only at the host's next metadata read, up to 30 s later.)
    const settled =
      valueOf(first, 'thinlv_master_replay_lag_records', { host: 'h1' }) === 0 &&
      JSON.stringify(vgFigures(first)) === JSON.stringify(vgFigures(second)) &&
      valueOf(first, 'thinlv_master_commits_total') === valueOf(second, 'thinlv_master_commits_total') &&
      hostPool === status.result.poolExtentCount &&
      hostPool === vgFigures(second).h1PoolExtents;
    if (settled) {
      const report = JSON.parse(free.stdout) as { extentCount: number; extentSizeBytes: number; committedExtents: number; freeExtents: number; reserveExtents: number; virtualBytes: number; warnRatio: number; criticalRatio: number; unreplayedExtents: number; hosts: { host: string; poolExtents: number }[] };
      expect(report.unreplayedExtents).toBe(0);
      expect(vgFigures(second)).toEqual({
        extentCount: report.extentCount,
        extentSizeBytes: report.extentSizeBytes,
        committedExtents: report.committedExtents,
        freeExtents: report.freeExtents,
        reserveExtents: report.reserveExtents,
        virtualBytes: report.virtualBytes,
        warnRatio: report.warnRatio,
        criticalRatio: report.criticalRatio,
        h1PoolExtents: report.hosts.find((h) => h.host === 'h1')!.poolExtents,
      });
      expectPassCounters(second);
      return;
    }
    if (Date.now() > deadline) throw new Error(`the figures did not settle: ${JSON.stringify({ first: vgFigures(first), second: vgFigures(second), hostPool, status: status.result })}`);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

function expectPassCounters(samples: readonly Sample[]): void {
  const passes = valueOf(samples, 'thinlv_master_passes_total')!;
  const commits = valueOf(samples, 'thinlv_master_commits_total')!;
  expect(passes).toBeGreaterThan(0);
  expect(valueOf(samples, 'thinlv_master_pass_duration_seconds_count')).toBe(passes);
  expect(samplesOf(samples, 'thinlv_master_errors_total').filter((s) => s.value > 0)).toEqual([]);
  const lastPass = valueOf(samples, 'thinlv_master_last_successful_pass_timestamp_seconds')!;
  expect(Date.now() / 1000 - lastPass).toBeLessThan(10);
  expect(Date.now() / 1000 - lastPass).toBeGreaterThanOrEqual(-1);
  // Each replay of the stream is a commit, and each commit one vgcfgrestore.
  expect(commits).toBeGreaterThan(0);
  expect(valueOf(samples, 'thinlv_lvm_call_duration_seconds_count', { command: 'vgcfgrestore' })).toBe(commits);
  expect(valueOf(samples, 'thinlv_master_replayed_records_total', { host: 'h1' })).toBeGreaterThanOrEqual(EXTEND_COUNT);
  expect(valueOf(samples, 'thinlv_master_grants_total', { host: 'h1' })).toBeGreaterThan(0);
  expect(valueOf(samples, 'thinlv_master_granted_extents_total', { host: 'h1' })).toBeGreaterThan(0);
  expect(valueOf(samples, 'thinlv_master_pass_interval_seconds')).toBe(0.2);
}
