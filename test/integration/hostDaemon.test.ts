import { describe, expect, test } from 'vitest';
import { formatDmTable, linearTable } from '../../src/extent/dmTable.js';
import { readThinlvVg } from '../../src/format/thinlvVg.js';
import { commitBatch, readVgMetadata } from '../../src/lvm/commitBatch.js';
import { computeFreeExtents } from '../../src/metadata/checkLayout.js';
import { linearSegments, type VgMetadata } from '../../src/metadata/vgModel.js';
import { MasterSession, runPass } from '../../src/master/replayPass.js';
import { HostState, openStateDb } from '../../src/state/index.js';
import { join } from 'node:path';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { HostDaemonProcess, startMasterDaemon, stopDaemon } from '../fixtures/hostDaemons.js';
import { realLvmUnavailableReason } from '../fixtures/loopVg.js';
import { pooled } from '../fixtures/pooled.js';
import { CLI_PATH, runCli } from '../fixtures/runCli.js';
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';

const HOOK_PATH = fileURLToPath(new URL('../../scripts/thinlv-resize-hook', import.meta.url));
import { createThinlvTestVg, type ThinlvTestVg } from '../fixtures/thinlvVg.js';

const skipReason = realLvmUnavailableReason();
const EXTENT_BYTES = 4 * 1024 * 1024;

const sizeOf = (vg: VgMetadata, lv: string): number => vg.lvs.find((l) => l.name === lv)!.segments.reduce((n, s) => n + s.extentCount, 0);

/**
 * Creates `count` thin LVs of one extent each, named prefix0.., each held by the host
 * `ownerOf(i)` names, as if that host had activated it (only the holder extends an LV).
 */
async function createThinLvs(t: ThinlvTestVg, prefix: string, count: number, ownerOf: (index: number) => string = () => 'h1'): Promise<string[]> {
  const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
  const free = computeFreeExtents(vg).ranges();
  const run = free.find((r) => r.extentCount >= count)!;
  const names = Array.from({ length: count }, (_, i) => `${prefix}${i}`);
  await commitBatch(
    t.vg.lvm,
    vg,
    names.map((name, i) => ({ kind: 'createLv' as const, name, ranges: [{ pv: run.pv, firstExtent: run.firstExtent + i, extentCount: 1 }], activationSkip: true, tags: [`thinlv_virtual_bytes=${1024 ** 3}`, `thinlv_owner=${ownerOf(i)}`] })),
  );
  return names;
}

async function replayUntilIdle(t: ThinlvTestVg): Promise<void> {
  for (let i = 0; i < 10; i++) {
    const pass = await runPass(t.deps(), new MasterSession(), t.vg.vgName);
    if (pass.replayedRecordCount === 0 && !pass.moreWaiting) return;
  }
}

describe.skipIf(skipReason !== undefined)('host allocator daemons on a real VG', () => {
  test('3 host daemons extend 300 LVs concurrently; after replay every acknowledged extent is in metadata once and every active table equals its metadata', async () => {
    const t = await createThinlvTestVg({ sizeBytes: 32 * 1024 ** 3, hosts: ['h1', 'h2', 'h3'], thinLvCount: 0, quantumExtents: 256, lowWaterExtents: 64 });
    const lvs = await createThinLvs(t, 'vm', 300, (i) => `h${(i % 3) + 1}`);
    const master = startMasterDaemon(t);
    const hosts = await Promise.all(['h1', 'h2', 'h3'].map((h) => HostDaemonProcess.start(t, h)));
    try {
      // Each host owns 100 LVs: it activates them and grows each in three steps.
      const mine = (i: number) => lvs.filter((_, n) => n % 3 === i);
      await Promise.all(hosts.map(async (host, i) => pooled(mine(i).map((lv) => () => host.activate(lv)), 16)));
      const acknowledged = new Map<string, number>();
      const results = await Promise.all(
        hosts.map(async (host, i) =>
          pooled(
            mine(i).flatMap((lv) => [2, 3, 5].map((extents) => async () => {
              const result = await host.extend(lv, extents * EXTENT_BYTES);
              acknowledged.set(lv, Math.max(acknowledged.get(lv) ?? 0, result.sizeBytes / EXTENT_BYTES));
              return result;
            })),
            64,
          ),
        ),
      );
      const failures = results.flat().filter((r) => r.status === 'rejected');
      expect(failures, JSON.stringify(failures.slice(0, 3))).toEqual([]);
      expect(acknowledged.size).toBe(300);

      await stopDaemon(master);
      await replayUntilIdle(t);
      const check = await runCli(['check', t.vg.vgName, ...t.cliArgs()]);
      expect(check.exitCode, check.stdout).toBe(0);
      const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      for (const lv of lvs) expect(sizeOf(vg, lv), lv).toBe(acknowledged.get(lv));

      // The tables each host loaded (written to its state at a clean stop, as dm is absent here) equal metadata now.
      for (const [i, host] of hosts.entries()) {
        await host.stop();
        // The state file is named for the host's journal ring (its LV uuid).
        const file = readdirSync(host.stateDir).find((f) => f.startsWith(`host-${t.vg.vgName}-${host.host}-`) && f.endsWith('.db'))!;
        const db = openStateDb(join(host.stateDir, file));
        try {
          const state = new HostState(db);
          for (const lv of mine(i)) {
            const segments = linearSegments(vg.lvs.find((l) => l.name === lv)!)!;
            const pvs = new Map(vg.pvs.map((pv) => [pv.device, { devicePath: pv.device, peStartSectors: pv.peStartSectors }]));
            expect(state.activeLv(lv)?.tableText, lv).toBe(formatDmTable(linearTable(segments, pvs, vg.extentSizeSectors)));
          }
        } finally {
          db.close();
        }
      }
    } finally {
      await stopDaemon(master);
      for (const host of hosts) await host.cleanUp();
      await t.destroy();
    }
  });

  test('extending an active LV writes nothing to the host state database (only activate and deactivate do)', async () => {
    const t = await createThinlvTestVg({ hosts: ['h1'], thinLvCount: 0, quantumExtents: 256, lowWaterExtents: 16 });
    const [lv] = await createThinLvs(t, 'vm', 1);
    await runPass(t.deps(), new MasterSession(), t.vg.vgName);
    const host = await HostDaemonProcess.start(t, 'h1');
    try {
      await host.activate(lv!);
      const file = readdirSync(host.stateDir).find((f) => f.startsWith(`host-${t.vg.vgName}-h1-`) && f.endsWith('.db'))!;
      const watcher = openStateDb(join(host.stateDir, file), { readonly: true });
      try {
        // data_version changes when another connection commits to the database.
        const version = () => (watcher.pragma('data_version', { simple: true }) as number);
        const before = version();
        for (let n = 2; n <= 40; n++) await host.extend(lv!, n * EXTENT_BYTES);
        expect(version()).toBe(before);
        await host.deactivate(lv!);
        expect(version()).not.toBe(before);
      } finally {
        watcher.close();
      }
    } finally {
      await host.cleanUp();
      await t.destroy();
    }
  });

  test('a host daemon killed in a stream of extends and restarted loses no acknowledged extent and uses none twice', async () => {
    const t = await createThinlvTestVg({ hosts: ['h1'], thinLvCount: 0, quantumExtents: 256, lowWaterExtents: 16 });
    const lvs = await createThinLvs(t, 'vm', 20);
    await runPass(t.deps(), new MasterSession(), t.vg.vgName);
    const host = await HostDaemonProcess.start(t, 'h1');
    try {
      const acknowledged = new Map<string, number>();
      let completed = 0;
      const stream = pooled(
        Array.from({ length: 10 }, (_, step) => step + 2).flatMap((n) => lvs.map((lv) => async () => {
          const result = await host.extend(lv, n * EXTENT_BYTES);
          completed++;
          acknowledged.set(lv, Math.max(acknowledged.get(lv) ?? 0, result.sizeBytes / EXTENT_BYTES));
        })),
        8,
      );
      // Kill it once the stream is well under way, with requests in flight.
      while (completed < 40) await new Promise((resolve) => setTimeout(resolve, 5));
      await host.kill();
      const outcomes = await stream;
      expect(outcomes.filter((o) => o.status === 'rejected').length, 'the kill landed mid-stream').toBeGreaterThan(0);
      expect(acknowledged.size).toBeGreaterThan(0);
      await host.restart();
      // After the restart the daemon knows what it journaled: asking each LV for its
      // acknowledged size grants nothing (it is that size, or larger when a record was
      // durable but its reply was lost to the kill), and growing further works.
      for (const [lv, extents] of acknowledged) {
        const again: { extentsGranted?: number; code?: string } = await host.extend(lv, extents * EXTENT_BYTES).catch((error: { code?: string }) => error);
        if (again.extentsGranted === undefined) expect(again.code, lv).toBe('SHRINK_REFUSED');
        else expect(again.extentsGranted, lv).toBe(0);
      }
      await host.extend(lvs[0]!, 40 * EXTENT_BYTES);
      await replayUntilIdle(t);
      const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      for (const [lv, extents] of acknowledged) expect(sizeOf(vg, lv), lv).toBeGreaterThanOrEqual(extents);
      expect(sizeOf(vg, lvs[0]!)).toBe(40);
      const check = await runCli(['check', t.vg.vgName, ...t.cliArgs()]);
      expect(check.exitCode, check.stdout).toBe(0);
    } finally {
      await host.cleanUp();
      await t.destroy();
    }
  });

  test('a host daemon killed after applying a grant but before recording it applies that grant again on restart', async () => {
    const t = await createThinlvTestVg({ hosts: ['h1'], thinLvCount: 0, quantumExtents: 24, lowWaterExtents: 8 });
    const [lv] = await createThinLvs(t, 'vm', 1);
    const dir = mkdtempSync(join(tmpdir(), 'thinlv-h1-'));
    let host: HostDaemonProcess | undefined;
    try {
      // The first grant is read at start-up; the daemon dies right after applying it.
      const killed = await HostDaemonProcess.runWithFault(t, 'h1', 'host.afterGrantApplied:kill', dir);
      expect(killed.signal, String(killed.stderr)).toBe('SIGKILL');
      host = await HostDaemonProcess.startIn(t, 'h1', dir);
      expect(await host.status()).toMatchObject({ lastGrantGeneration: 1, poolExtentCount: 24 });
      expect((await host.extend(lv!, 25 * EXTENT_BYTES)).extentsGranted).toBe(24);
      await replayUntilIdle(t);
      expect(sizeOf(await readVgMetadata(t.vg.lvm, t.vg.vgName), lv!)).toBe(25);
      expect((await runCli(['check', t.vg.vgName, ...t.cliArgs()])).exitCode).toBe(0);
    } finally {
      await host?.stop();
      rmSync(dir, { recursive: true, force: true });
      await t.destroy();
    }
  });

  test('with the master stopped hosts serve from their pools, fail cleanly within the bound once empty, and converge when it returns', async () => {
    const t = await createThinlvTestVg({ hosts: ['h1'], thinLvCount: 0, quantumExtents: 16, lowWaterExtents: 8 });
    const [lv] = await createThinLvs(t, 'vm', 1);
    await runPass(t.deps(), new MasterSession(), t.vg.vgName);
    const host = await HostDaemonProcess.start(t, 'h1', 1500);
    try {
      expect((await host.extend(lv!, 17 * EXTENT_BYTES)).extentsGranted).toBe(16);
      const started = Date.now();
      const error = await host.extend(lv!, 18 * EXTENT_BYTES).catch((e: unknown) => e);
      const waitedMs = Date.now() - started;
      expect(error).toMatchObject({ code: 'OUT_OF_SPACE' });
      expect((error as Error).message).toMatch(/h1/);
      expect(waitedMs).toBeGreaterThanOrEqual(1400);
      expect(waitedMs).toBeLessThan(10_000);

      const master = startMasterDaemon(t, 100);
      try {
        // The master replays, sees the empty pool and grants; extends succeed again.
        let grown: { sizeBytes: number } | undefined;
        const deadline = Date.now() + 30_000;
        while (grown === undefined && Date.now() < deadline) {
          grown = await host.extend(lv!, 20 * EXTENT_BYTES).catch(() => undefined);
        }
        expect(grown?.sizeBytes).toBe(20 * EXTENT_BYTES);
      } finally {
        await stopDaemon(master);
      }
      await replayUntilIdle(t);
      const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      expect(sizeOf(vg, lv!)).toBe(20);
      expect(readThinlvVg(vg).hosts.get('h1')?.grantGeneration).toBeGreaterThanOrEqual(2);
      expect((await runCli(['check', t.vg.vgName, ...t.cliArgs()])).exitCode).toBe(0);
      expect((await host.status()).deviceMapperPresent).toBe(false);
    } finally {
      await host.cleanUp();
      await t.destroy();
    }
  });

  test('the lvextend wrapper prints and exits like lvm; thousands of malformed requests leave the daemon serving correctly', async () => {
    const t = await createThinlvTestVg({ hosts: ['h1'], thinLvCount: 0, quantumExtents: 64, lowWaterExtents: 8 });
    const [lv] = await createThinLvs(t, 'vm', 1);
    await runPass(t.deps(), new MasterSession(), t.vg.vgName);
    const host = await HostDaemonProcess.start(t, 'h1', 500);
    try {
      // An LV created after the daemon started is found: the daemon re-reads metadata once.
      const [late] = await createThinLvs(t, 'late', 1);
      expect((await host.extend(late!, 3 * EXTENT_BYTES)).extentsGranted).toBe(2);
      await expect(host.extend('never_created', 3 * EXTENT_BYTES)).rejects.toMatchObject({ code: 'LV_NOT_FOUND' });

      const cli = (...args: string[]) => runCli(['lvextend', ...args, '--socket', host.socketPath, ...t.cliArgs()]);
      const grown = await cli('-L', '+12m', `${t.vg.vgName}/${lv}`, '--live');
      expect(grown.exitCode, grown.stderr).toBe(0);
      expect(grown.stdout).toBe(
        `  Size of logical volume ${t.vg.vgName}/${lv} changed from 4.00 MiB (1 extents) to 16.00 MiB (4 extents).\n  Logical volume ${t.vg.vgName}/${lv} successfully resized.`,
      );
      expect((await cli('-l', '6', `${t.vg.vgName}/${lv}`)).stdout).toContain('to 24.00 MiB (6 extents)');
      expect((await cli('-l', '+1', `${t.vg.vgName}/${lv}`)).stdout).toContain('(7 extents)');
      expect((await cli('-L', '28m', `${t.vg.vgName}/${lv}`)).stdout).toContain('matches existing size (7 extents)');
      expect((await cli('-L', '8m', `${t.vg.vgName}/${lv}`)).exitCode).toBe(5);
      expect((await cli('-L', '100g', `${t.vg.vgName}/${lv}`)).exitCode).toBe(5);
      expect((await cli('-L', 'lots', `${t.vg.vgName}/${lv}`)).exitCode).toBe(3);
      expect((await cli('-L', '1g', `${t.vg.vgName}/nothing`)).exitCode).toBe(5);

      // The tapdisk resize hook grows by a quantum through the wrapper, only when needed.
      const hook = (...args: string[]) =>
        execa('bash', [HOOK_PATH, t.vg.vgName, lv!, ...args], {
          reject: false,
          env: { THINLV: `${process.execPath} ${CLI_PATH}`, THINLV_SOCKET: host.socketPath, THINLV_HOOK_QUANTUM_BYTES: String(2 * EXTENT_BYTES) },
        });
      const MiB = 1024 * 1024;
      expect((await hook(String(40 * MiB), String(28 * MiB), String(4 * MiB))).stdout).toBe('');
      const grewByQuantum = await hook(String(40 * MiB), String(28 * MiB), String(27 * MiB));
      expect(grewByQuantum.exitCode, String(grewByQuantum.stderr)).toBe(0);
      expect(grewByQuantum.stdout).toContain('to 36.00 MiB (9 extents)');
      expect((await hook(String(40 * MiB), String(36 * MiB), String(36 * MiB))).stdout).toContain('to 40.00 MiB (10 extents)');
      expect((await hook('40', 'x', '1')).exitCode).toBe(3);
      expect((await host.extend(lv!, 10 * EXTENT_BYTES)).extentsGranted).toBe(0);

      // Fuzz: garbage, near-misses and valid requests on several connections at once.
      let seed = 12345;
      const random = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
      const lines = Array.from({ length: 3000 }, (_, i) => {
        switch (random(6)) {
          case 0: return randomBytes(random(200)).toString('latin1').replace(/\n/g, ' ');
          case 1: return JSON.stringify({ v: 1, id: `f${i}`, op: 'extend', lv, sizeBytes: -random(5) });
          case 2: return JSON.stringify({ v: 2, id: `f${i}`, op: 'status' });
          case 3: return JSON.stringify({ v: 1, id: `f${i}`, op: 'status', extra: true });
          case 4: return '{"v":1,"id":"x","op":"ext';
          default: return JSON.stringify({ v: 1, id: `f${i}`, op: 'status' });
        }
      });
      await Promise.all(
        Array.from({ length: 6 }, (_, c) =>
          new Promise<void>((resolve) => {
            const socket = connect(host.socketPath, () => {
              socket.end(lines.filter((_, i) => i % 6 === c).join('\n') + '\n');
            });
            socket.on('data', () => undefined);
            socket.on('close', () => resolve());
            socket.on('error', () => resolve());
          }),
        ),
      );
      expect(host.process.exitCode ?? null).toBeNull();
      const status = await host.status();
      expect(status).toMatchObject({ host: 'h1', vg: t.vg.vgName, deviceMapperPresent: false });
      expect((await host.extend(lv!, 12 * EXTENT_BYTES)).sizeBytes).toBe(12 * EXTENT_BYTES);
      await replayUntilIdle(t);
      expect(sizeOf(await readVgMetadata(t.vg.lvm, t.vg.vgName), lv!)).toBe(12);
    } finally {
      await host.cleanUp();
      await t.destroy();
    }
  });
});
