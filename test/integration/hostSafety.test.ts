// Membership and identity changes with daemons running: nothing a host acknowledged
// is ever lost or written where it does not belong. Real LVM on a loop device, the
// master and host daemons as processes.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { openFileRegion } from '../../journal/index.js';
import { hostLvNames, readThinlvVg } from '../../src/format/thinlvVg.js';
import { commitBatch, readVgMetadata } from '../../src/lvm/commitBatch.js';
import { computeFreeExtents } from '../../src/metadata/checkLayout.js';
import { linearSegments, type VgMetadata } from '../../src/metadata/vgModel.js';
import { HostDaemonProcess, startMasterDaemon, stopDaemon, TEST_LEASE_INTERVAL_MS } from '../fixtures/hostDaemons.js';
import { realLvmUnavailableReason } from '../fixtures/loopVg.js';
import { runCli, startCli } from '../fixtures/runCli.js';
import { createThinlvTestVg, type ThinlvTestVg } from '../fixtures/thinlvVg.js';

const skipReason = realLvmUnavailableReason();
const EXTENT_BYTES = 4 * 1024 * 1024;
const LEASE = ['--lease-interval-ms', String(TEST_LEASE_INTERVAL_MS)];

const sizeOf = (vg: VgMetadata, lv: string): number => vg.lvs.find((l) => l.name === lv)!.segments.reduce((n, s) => n + s.extentCount, 0);

/** A thin LV of one extent, held by `owner` if given (as if it had activated it). */
async function createThinLv(t: ThinlvTestVg, name: string, owner?: string, virtualBytes = 1024 ** 3): Promise<void> {
  const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
  const run = computeFreeExtents(vg).ranges().at(-1)!;
  const tags = [`thinlv_virtual_bytes=${virtualBytes}`, ...(owner === undefined ? [] : [`thinlv_owner=${owner}`])];
  await commitBatch(t.vg.lvm, vg, [{ kind: 'createLv', name, ranges: [{ pv: run.pv, firstExtent: run.firstExtent + run.extentCount - 1, extentCount: 1 }], activationSkip: true, tags }]);
}

/** Byte ranges of the host's ring LVs on the PV (its lease block included). */
function ringByteRanges(vg: VgMetadata, host: string): { offsetBytes: number; lengthBytes: number }[] {
  const pv = vg.pvs[0]!;
  return [hostLvNames(host).journal, hostLvNames(host).grants].map((name) => {
    const segment = linearSegments(vg.lvs.find((lv) => lv.name === name)!)![0]!;
    return { offsetBytes: (pv.peStartSectors + segment.firstExtent * vg.extentSizeSectors) * 512, lengthBytes: segment.extentCount * vg.extentSizeSectors * 512 };
  });
}

async function fillWithPattern(device: string, ranges: readonly { offsetBytes: number; lengthBytes: number }[]): Promise<void> {
  for (const range of ranges) {
    const region = await openFileRegion(device, range);
    const buffer = region.allocateBuffer(range.lengthBytes);
    for (let i = 0; i < buffer.length; i++) buffer[i] = (i * 31 + 7) & 0xff;
    await region.write(0, buffer);
    await region.close();
  }
}

/** Bytes of the ranges that no longer hold the pattern. */
async function bytesChanged(device: string, ranges: readonly { offsetBytes: number; lengthBytes: number }[]): Promise<number> {
  let changed = 0;
  for (const range of ranges) {
    const region = await openFileRegion(device, range);
    const data = await region.read(0, range.lengthBytes);
    for (let i = 0; i < data.length; i++) if (data[i] !== ((i * 31 + 7) & 0xff)) changed++;
    await region.close();
  }
  return changed;
}

/** Grows `lv` to `extentCount` in steps a pool of the test's quantum can serve (grants come between). */
async function growTo(host: HostDaemonProcess, lv: string, extentCount: number, fromExtentCount = 0) {
  let result = await host.extend(lv, Math.min(extentCount, fromExtentCount + 8) * EXTENT_BYTES);
  for (let size = fromExtentCount + 16; size < extentCount + 8; size += 8) result = await host.extend(lv, Math.min(size, extentCount) * EXTENT_BYTES);
  return result;
}

async function untilReplayed(t: ThinlvTestVg, lv: string, extentCount: number, timeoutMs = 30_000): Promise<VgMetadata> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
    if (sizeOf(vg, lv) >= extentCount || Date.now() > deadline) return vg;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe.skipIf(skipReason !== undefined)('one writer per host journal, removal that stops the host, one extender per LV', () => {
  test('host remove asks a running daemon to stop, then frees its rings; the daemon writes nothing after, and what it acknowledged is in metadata', async () => {
    const t = await createThinlvTestVg({ hosts: ['h1'], thinLvCount: 0, quantumExtents: 32, lowWaterExtents: 8 });
    await createThinLv(t, 'vm1', 'h1');
    const master = startMasterDaemon(t, 100);
    const host = await HostDaemonProcess.start(t, 'h1');
    try {
      expect((await host.extend('vm1', 8 * EXTENT_BYTES)).sizeBytes).toBe(8 * EXTENT_BYTES);
      const rings = ringByteRanges(await readVgMetadata(t.vg.lvm, t.vg.vgName), 'h1');
      const removed = await runCli(['host', 'remove', t.vg.vgName, 'h1', ...LEASE, '--json', ...t.cliArgs()]);
      expect(removed.exitCode, removed.stdout + removed.stderr).toBe(0);
      expect(JSON.parse(removed.stdout)).toMatchObject({ host: 'h1', daemonStopped: true });
      // The daemon stopped by itself, cleanly.
      expect((await host.process).exitCode).toBe(0);
      const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      expect(readThinlvVg(vg).hosts.has('h1')).toBe(false);
      expect(sizeOf(vg, 'vm1')).toBe(8);
      expect(vg.lvs.find((lv) => lv.name === 'vm1')!.tags.some((tag) => tag.startsWith('thinlv_owner='))).toBe(false);
      // Its ring extents are free space now: whatever is written there stays.
      await fillWithPattern(t.vg.device, rings);
      await expect(host.extend('vm1', 12 * EXTENT_BYTES)).rejects.toThrow();
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await bytesChanged(t.vg.device, rings)).toBe(0);
      expect((await runCli(['check', t.vg.vgName, ...t.cliArgs()])).exitCode).toBe(0);
    } finally {
      await stopDaemon(master);
      await host.cleanUp();
      await t.destroy();
    }
  });

  test('a host remove killed after asking the daemon to stop changes nothing lasting: the daemon starts again and serves, and the remove run again succeeds', async () => {
    const t = await createThinlvTestVg({ hosts: ['h1'], thinLvCount: 0, quantumExtents: 32, lowWaterExtents: 8 });
    await createThinLv(t, 'vm1', 'h1');
    const master = startMasterDaemon(t, 100);
    const host = await HostDaemonProcess.start(t, 'h1');
    try {
      await host.extend('vm1', 4 * EXTENT_BYTES);
      const killed = await runCli(['host', 'remove', t.vg.vgName, 'h1', ...LEASE, ...t.cliArgs()], { env: { ...process.env, THINLV_FAULTS: 'host.remove.afterStopAsked:kill' } as Record<string, string> });
      expect(killed.signal).toBe('SIGKILL');
      // The stop was for that daemon session: it stopped, cleanly.
      expect((await host.process).exitCode).toBe(0);
      // A new session ignores the stale stop record and serves.
      await host.restart();
      expect((await host.extend('vm1', 6 * EXTENT_BYTES)).sizeBytes).toBe(6 * EXTENT_BYTES);
      const removed = await runCli(['host', 'remove', t.vg.vgName, 'h1', ...LEASE, '--json', ...t.cliArgs()]);
      expect(removed.exitCode, removed.stdout + removed.stderr).toBe(0);
      expect((await host.process).exitCode).toBe(0);
      const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      expect(sizeOf(vg, 'vm1')).toBe(6);
      expect(readThinlvVg(vg).hosts.has('h1')).toBe(false);
    } finally {
      await stopDaemon(master);
      await host.cleanUp();
      await t.destroy();
    }
  });

  test('declare-dead refuses a host whose daemon renews its lease; with --fenced the daemon loses its lease and serves nothing more', async () => {
    const t = await createThinlvTestVg({ hosts: ['h1'], thinLvCount: 0, quantumExtents: 32, lowWaterExtents: 8 });
    await createThinLv(t, 'vm1', 'h1');
    const master = startMasterDaemon(t, 100);
    const host = await HostDaemonProcess.start(t, 'h1');
    try {
      await host.extend('vm1', 4 * EXTENT_BYTES);
      const refused = await runCli(['host', 'declare-dead', t.vg.vgName, 'h1', ...LEASE, '--json', ...t.cliArgs()]);
      expect(refused.exitCode).toBe(3);
      expect(JSON.parse(refused.stdout).error.code).toBe('HOST_ALIVE');
      expect((await host.extend('vm1', 5 * EXTENT_BYTES)).sizeBytes).toBe(5 * EXTENT_BYTES);

      const fenced = await runCli(['host', 'declare-dead', t.vg.vgName, 'h1', '--fenced', ...LEASE, '--json', ...t.cliArgs()]);
      expect(fenced.exitCode, fenced.stdout + fenced.stderr).toBe(0);
      // The daemon found its lease taken and stopped (a failure exit: it did not choose to).
      const exited = await host.process;
      expect(exited.exitCode).toBe(3);
      expect(String(exited.stderr)).toMatch(/lease .* was taken over/);
      const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      expect(sizeOf(vg, 'vm1')).toBe(5);
      expect((await runCli(['check', t.vg.vgName, ...t.cliArgs()])).exitCode).toBe(0);
    } finally {
      await stopDaemon(master);
      await host.cleanUp();
      await t.destroy();
    }
  });

  test('a second daemon for one host is refused: at once on the same machine, and from another machine after watching the lease', async () => {
    const t = await createThinlvTestVg({ hosts: ['h1'], thinLvCount: 0, quantumExtents: 32, lowWaterExtents: 8 });
    await createThinLv(t, 'vm1', 'h1');
    const host = await HostDaemonProcess.start(t, 'h1');
    const dir = mkdtempSync(join(tmpdir(), 'thinlv-second-'));
    try {
      const run = (env: Record<string, string> = {}) =>
        startCli(['host', 'run', t.vg.vgName, 'h1', '--socket', join(dir, 's.sock'), '--state-dir', join(dir, 'state'), ...LEASE, '--json', ...t.cliArgs()], { env: { ...process.env, ...env } as Record<string, string> });
      const sameMachine = await run();
      expect(sameMachine.exitCode).toBe(3);
      expect(String(sameMachine.stdout)).toMatch(/HOST_DAEMON_RUNNING/);
      // Another machine: its own lock directory, the same LUN.
      const otherMachine = await run({ THINLV_LOCAL_LOCK_DIR: join(dir, 'locks') });
      expect(otherMachine.exitCode).toBe(3);
      expect(String(otherMachine.stdout)).toMatch(/LEASE_HELD/);
      // The first daemon never noticed.
      expect((await host.extend('vm1', 3 * EXTENT_BYTES)).extentsGranted).toBe(2);
    } finally {
      await host.cleanUp();
      rmSync(dir, { recursive: true, force: true });
      await t.destroy();
    }
  });

  test('the master refuses to deflate or remove an LV a host holds; after the host lets go, its next extend sees the deflated LV', async () => {
    const t = await createThinlvTestVg({ hosts: ['h1'], thinLvCount: 0, quantumExtents: 128, lowWaterExtents: 32 });
    await createThinLv(t, 'v2');
    const master = startMasterDaemon(t, 100);
    const host = await HostDaemonProcess.start(t, 'h1');
    try {
      await host.activate('v2'); // a claim, granted by the master
      expect((await growTo(host, 'v2', 97)).sizeBytes).toBe(97 * EXTENT_BYTES);
      for (const args of [['lvresize', '-L', '4M', `${t.vg.vgName}/v2`], ['lvremove', `${t.vg.vgName}/v2`]]) {
        const refused = await runCli([...args, '--json', ...t.cliArgs()]);
        expect(refused.exitCode).toBe(3);
        expect(JSON.parse(refused.stdout).error.code).toBe('LV_IN_USE');
      }
      await host.deactivate('v2');
      await untilReplayed(t, 'v2', 97);
      const deflated = await runCli(['lvresize', '-L', '16M', `${t.vg.vgName}/v2`, ...t.cliArgs()]);
      expect(deflated.exitCode, deflated.stderr).toBe(0);
      // The host grows it again from what metadata now says (4 extents), not from the 97 it saw.
      expect(await host.extend('v2', 20 * EXTENT_BYTES)).toMatchObject({ sizeBytes: 20 * EXTENT_BYTES, extentsGranted: 16 });
      await growTo(host, 'v2', 100, 20);
      const vg = await untilReplayed(t, 'v2', 100);
      expect(sizeOf(vg, 'v2')).toBe(100);
      expect((await runCli(['check', t.vg.vgName, ...t.cliArgs()])).exitCode).toBe(0);
    } finally {
      await stopDaemon(master);
      await host.cleanUp();
      await t.destroy();
    }
  });

  test('deflates and removals racing one-off extends of the same LV: each is refused or lands between extends, and replay never refuses an acknowledged record', async () => {
    const t = await createThinlvTestVg({ hosts: ['h1'], thinLvCount: 0, quantumExtents: 128, lowWaterExtents: 32 });
    await createThinLv(t, 'v3');
    const master = startMasterDaemon(t, 100);
    const host = await HostDaemonProcess.start(t, 'h1');
    try {
      const acknowledged: number[] = [];
      const extending = (async () => {
        for (let i = 1; i <= 10; i++) acknowledged.push((await host.extend('v3', (4 + i * 2) * EXTENT_BYTES)).sizeBytes / EXTENT_BYTES);
      })().catch((error: unknown) => error);
      const outcomes: string[] = [];
      for (let i = 0; i < 6; i++) {
        const deflate = await runCli(['lvresize', '-L', '8M', `${t.vg.vgName}/v3`, '--json', ...t.cliArgs()]);
        outcomes.push(deflate.exitCode === 0 ? 'deflated' : (JSON.parse(deflate.stdout) as { error: { code: string } }).error.code);
      }
      expect(await extending).toBeUndefined();
      expect(outcomes.every((o) => o === 'deflated' || o === 'LV_IN_USE'), outcomes.join()).toBe(true);
      // A last extend, then: metadata holds exactly what the host said, and nothing was refused.
      const last = await host.extend('v3', 30 * EXTENT_BYTES);
      expect(last.sizeBytes).toBe(30 * EXTENT_BYTES);
      const vg = await untilReplayed(t, 'v3', 30);
      expect(sizeOf(vg, 'v3')).toBe(30);
      expect(readThinlvVg(vg).hosts.get('h1')?.rejectedCount).toBe(0);
      expect(acknowledged).toHaveLength(10);
      const check = await runCli(['check', t.vg.vgName, ...t.cliArgs()]);
      expect(check.exitCode, check.stdout).toBe(0);
      // The removal is refused while an extend holds the LV, or lands between extends.
      const removed = await runCli(['lvremove', `${t.vg.vgName}/v3`, '--json', ...t.cliArgs()]);
      expect(removed.exitCode, removed.stdout).toBe(0);
      await expect(host.extend('v3', 40 * EXTENT_BYTES)).rejects.toMatchObject({ code: 'LV_NOT_FOUND' });
    } finally {
      await stopDaemon(master);
      await host.cleanUp();
      await t.destroy();
    }
  });

  test('a host refuses to extend ring, pool and stock LVs, LVs of another VG, and past the virtual size; nothing is journaled', async () => {
    const t = await createThinlvTestVg({ hosts: ['h1', 'h2'], thinLvCount: 0, quantumExtents: 32, lowWaterExtents: 8 });
    await createThinLv(t, 'small', 'h1', 8 * EXTENT_BYTES);
    const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
    const run = computeFreeExtents(vg).ranges().at(-1)!;
    await commitBatch(t.vg.lvm, vg, [{ kind: 'createLv', name: 'stock', ranges: [{ pv: run.pv, firstExtent: run.firstExtent, extentCount: 1 }] }]);
    const host = await HostDaemonProcess.start(t, 'h1');
    try {
      const refusals: [string, string][] = [
        ['thinlv_h1_journal', 'NOT_THIN_LV'],
        ['thinlv_h2_grants', 'NOT_THIN_LV'],
        ['thinlv_h1_free', 'NOT_THIN_LV'],
        ['stock', 'NOT_THIN_LV'],
      ];
      for (const [lv, code] of refusals) await expect(host.extend(lv, 64 * EXTENT_BYTES), lv).rejects.toMatchObject({ code });
      await expect(host.extend('small', 9 * EXTENT_BYTES)).rejects.toMatchObject({ code: 'VIRTUAL_SIZE_EXCEEDED' });
      expect((await host.extend('small', 8 * EXTENT_BYTES)).sizeBytes).toBe(8 * EXTENT_BYTES);
      const otherVg = await runCli(['lvextend', '-L', '8M', 'someOtherVg/small', '--socket', host.socketPath, ...t.cliArgs()]);
      expect(otherVg.exitCode).toBe(5);
      expect(otherVg.stderr).toMatch(/serves VG/);
      expect((await host.status()).unreplayedRecordCount).toBe(1);
    } finally {
      await host.cleanUp();
      await t.destroy();
    }
  });

  test('two hosts: only the holder extends an LV, and a hand-over carries the unreplayed extents of the previous holder', async () => {
    const t = await createThinlvTestVg({ hosts: ['h1', 'h2'], thinLvCount: 0, quantumExtents: 64, lowWaterExtents: 8 });
    await createThinLv(t, 'vm1');
    let master = startMasterDaemon(t, 100);
    const [h1, h2] = await Promise.all([HostDaemonProcess.start(t, 'h1'), HostDaemonProcess.start(t, 'h2')]);
    try {
      await h1.activate('vm1');
      await expect(h2.extend('vm1', 20 * EXTENT_BYTES)).rejects.toMatchObject({ code: 'LV_OWNED_ELSEWHERE' });
      await expect(h2.activate('vm1')).rejects.toMatchObject({ code: 'LV_OWNED_ELSEWHERE' });
      // The master stops: h1's next allocations stay unreplayed.
      await stopDaemon(master);
      expect((await h1.extend('vm1', 10 * EXTENT_BYTES)).sizeBytes).toBe(10 * EXTENT_BYTES);
      await h1.deactivate('vm1');
      master = startMasterDaemon(t, 100);
      // A migration: the destination activates once the source let go; its view holds the source's extents.
      await h2.activate('vm1');
      expect(await h2.extend('vm1', 20 * EXTENT_BYTES)).toMatchObject({ sizeBytes: 20 * EXTENT_BYTES, extentsGranted: 10 });
      const vg = await untilReplayed(t, 'vm1', 20);
      expect(sizeOf(vg, 'vm1')).toBe(20);
      expect(readThinlvVg(vg).thinLvs.get('vm1')?.owner).toBe('h2');
      const check = await runCli(['check', t.vg.vgName, ...t.cliArgs()]);
      expect(check.exitCode, check.stdout).toBe(0);
    } finally {
      await stopDaemon(master);
      await Promise.all([h1.cleanUp(), h2.cleanUp()]);
      await t.destroy();
    }
  });

  test('a host removed and added again starts clean with its old state directory and applies the new grants', async () => {
    const t = await createThinlvTestVg({ hosts: ['h1'], thinLvCount: 0, quantumExtents: 32, lowWaterExtents: 8 });
    await createThinLv(t, 'vm1', 'h1');
    const master = startMasterDaemon(t, 100);
    let host = await HostDaemonProcess.start(t, 'h1');
    const dir = join(host.socketPath, '..');
    try {
      // Raise h1's grant generation well above 1.
      await growTo(host, 'vm1', 100);
      expect((await host.status()).lastGrantGeneration).toBeGreaterThan(2);
      await host.stop();
      expect((await runCli(['host', 'remove', t.vg.vgName, 'h1', ...LEASE, ...t.cliArgs()])).exitCode).toBe(0);
      expect((await runCli(['host', 'add', t.vg.vgName, 'h1', ...t.cliArgs()])).exitCode).toBe(0);
      host = await HostDaemonProcess.startIn(t, 'h1', dir);
      const deadline = Date.now() + 20_000;
      while ((await host.status()).poolExtentCount === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await host.status()).toMatchObject({ lastGrantGeneration: 1, poolExtentCount: 32 });
    } finally {
      await stopDaemon(master);
      await host.cleanUp();
      await t.destroy();
    }
  });
});
