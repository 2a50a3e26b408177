// The lvm-compatible commands that change metadata and activation, run as a storage
// manager runs them: through symlinks named lvcreate, lvremove, ... to the built CLI
// (the bundle, dist/bundle/thinlv.js, starts with #!/usr/bin/env node and is executable), compared
// with stock lvm on an ordinary LV of an identical VG.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, symlinkSync, truncateSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TAG } from '../../src/format/thinlvVg.js';
import { commitBatch, readVgMetadata } from '../../src/lvm/commitBatch.js';
import { computeFreeExtents } from '../../src/metadata/checkLayout.js';
import { lvExtentCount } from '../../src/metadata/vgModel.js';
import { createLoopVg, realLvmUnavailableReason, TEST_LVM_CONFIG, type LoopVg } from '../fixtures/loopVg.js';
import { CLI_PATH, runCli } from '../fixtures/runCli.js';
import { HostDaemonProcess, startMasterDaemon, stopDaemon, type Daemon } from '../fixtures/hostDaemons.js';
import { createThinlvTestVg, type ThinlvTestVg } from '../fixtures/thinlvVg.js';

const skipReason = realLvmUnavailableReason();
const GiB = 1024 ** 3;
const COMMANDS = ['lvcreate', 'lvremove', 'lvrename', 'lvchange', 'lvresize', 'lvextend', 'vgchange', 'pvresize'];

interface Ran {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

describe.skipIf(skipReason !== undefined)('lvm-compatible lvcreate, lvremove, lvrename, lvchange, lvresize, lvextend, vgchange', () => {
  let t: ThinlvTestVg;
  let plain: LoopVg;
  let bin: string;
  let socket: string | undefined;
  const vgOf = () => t.vg.vgName;
  /** A wrapper through its symlink, with lvm's own --devices and --config after the positionals. */
  const wrapper = async (command: string, args: string[], input?: string): Promise<Ran> => {
    const result = await execa(join(bin, command), [...args, '--devices', t.vg.device, '--config', TEST_LVM_CONFIG], {
      reject: false,
      timeout: 120_000,
      stripFinalNewline: false,
      env: { ...process.env, ...(socket === undefined ? {} : { THINLV_SOCKET: socket }) },
      ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
    });
    return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
  };
  /** Stock lvm on the plain VG, as thinlv's runner runs it (--driverloaded n without device-mapper). */
  const stock = async (command: string, args: string[]): Promise<Ran> => {
    const result = await plain.lvm.run(command, args, { allowFailure: true });
    return { exitCode: result.exitCode ?? 0, stdout: result.stdout, stderr: result.stderr };
  };
  const seqno = async () => (await readVgMetadata(t.vg.lvm, vgOf())).seqno;
  const lvNamed = async (name: string) => (await readVgMetadata(t.vg.lvm, vgOf())).lvs.find((l) => l.name === name);
  /** The lines of lvm's stderr that say what happened (its device-mapper and backup warnings aside). */
  // The thinlv VG's free extent count differs (its rings and pools), so that number is masked.
  const said = (stderr: string) =>
    stderr
      .split('\n')
      .filter((l) => l.trim() !== '' && !/WARNING: (Activation disabled|This metadata update is NOT backed up|Logical volume .* not zeroed|Skipping zeroing)/.test(l))
      .map((l) => l.replace(/insufficient free space \(\d+ extents\)/, 'insufficient free space (N extents)'));

  beforeAll(async () => {
    t = await createThinlvTestVg({ sizeBytes: 2 * GiB, hosts: ['h1'], thinLvCount: 0, quantumExtents: 16, lowWaterExtents: 4 });
    plain = await createLoopVg({ sizeBytes: 2 * GiB });
    bin = mkdtempSync(join(tmpdir(), 'thinlv-lvm-bin-'));
    for (const command of COMMANDS) symlinkSync(CLI_PATH, join(bin, command));
  }, 120_000);
  afterAll(async () => {
    if (bin !== undefined) rmSync(bin, { recursive: true, force: true });
    await plain?.destroy();
    await t?.destroy();
  });

  test('on an ordinary LV, each command prints and exits as stock lvm does', async () => {
    const steps: [string, (vg: string) => string[]][] = [
      ['lvcreate', (vg) => ['-n', 'ord', '-L', '5M', vg, '--addtag', 'sm_tag', '-W', 'n', '-an']],
      ['lvcreate', (vg) => ['-n', 'ord', '-L', '8M', vg, '-W', 'n', '-an']],
      ['lvcreate', (vg) => ['-n', 'huge', '-L', '64G', vg, '-W', 'n', '-an']],
      ['lvrename', (vg) => [`${vg}/ord`, 'ord2']],
      ['lvrename', (vg) => [vg, 'ord2', 'ord']],
      ['lvrename', (vg) => [`/dev/${vg}/nosuch`, 'x']],
      ['lvchange', (vg) => ['-p', 'r', `${vg}/ord`]],
      ['lvchange', (vg) => ['-p', 'r', `/dev/${vg}/ord`]],
      ['lvchange', (vg) => ['-p', 'rw', `${vg}/ord`]],
      ['lvchange', (vg) => [`${vg}/ord`, '--addtag', 'more', '--deltag', 'sm_tag']],
      ['lvchange', (vg) => ['--addtag', 'x', `${vg}/nosuch`]],
      ['lvchange', (vg) => ['-ay', `${vg}/ord`]],
      ['lvchange', (vg) => ['-an', `${vg}/ord`]],
      ['lvresize', (vg) => ['-L', '16M', `${vg}/ord`]],
      ['lvresize', (vg) => ['-L', '16M', `${vg}/ord`]],
      ['lvresize', (vg) => ['-L', '6M', `${vg}/ord`]],
      ['lvextend', (vg) => ['-l', '+1', `${vg}/ord`]],
      ['lvextend', (vg) => ['-L', '4M', `${vg}/ord`]],
      ['lvresize', (vg) => ['-L', '8M', `${vg}/nosuch`]],
      ['vgchange', (vg) => ['-ay', vg]],
      ['lvremove', (vg) => ['-f', `${vg}/ord`]],
      ['lvremove', (vg) => ['-f', `${vg}/ord`]],
    ];
    for (const [command, args] of steps) {
      const ours = await wrapper(command, args(vgOf()));
      const theirs = await stock(command, args(plain.vgName));
      const what = `${command} ${args('VG').join(' ')}`;
      expect(ours.exitCode, `${what}: ${ours.stderr}`).toBe(theirs.exitCode);
      expect(ours.stdout.replaceAll(vgOf(), 'VG'), what).toBe(theirs.stdout.replaceAll(plain.vgName, 'VG'));
      expect(said(ours.stderr.replaceAll(vgOf(), 'VG')), what).toEqual(said(theirs.stderr.replaceAll(plain.vgName, 'VG')));
    }
    expect((await runCli(['check', vgOf(), ...t.cliArgs()])).exitCode).toBe(0);
  }, 300_000);

  test('bad input: lvm exit codes, nothing written; off the master machine, refused naming it', async () => {
    // A thin LV host h1 holds (its records and its table name it): lvrename refuses it.
    const withHeld = await readVgMetadata(t.vg.lvm, vgOf());
    const free = computeFreeExtents(withHeld).ranges()[0]!;
    await commitBatch(t.vg.lvm, withHeld, [{ kind: 'createLv', name: 'held', ranges: [{ pv: free.pv, firstExtent: free.firstExtent, extentCount: 1 }], activationSkip: true, tags: [`${TAG.virtualBytes}${GiB}`, `${TAG.owner}h1`] }]);
    const before = await seqno();
    const renameHeld = await wrapper('lvrename', [`${vgOf()}/held`, 'held2']);
    expect(renameHeld.exitCode).toBe(5);
    expect(renameHeld.stderr).toContain(`Logical volume ${vgOf()}/held is in use by host h1`);
    expect((await wrapper('lvcreate', ['-n', 'x', '-L', '8m', vgOf(), '--bogus'])).exitCode).toBe(3);
    expect((await wrapper('lvchange', ['--frobnicate', `${vgOf()}/x`])).exitCode).toBe(3);
    expect((await wrapper('lvresize', ['-L', '8m', `${vgOf()}/nosuch`])).exitCode).toBe(5);
    expect((await wrapper('lvremove', ['-f', `${vgOf()}/nosuch`])).exitCode).toBe(5);
    expect((await wrapper('lvcreate', ['-n', 'thinlv_mine', '-L', '8m', vgOf()])).exitCode).toBe(5);
    expect((await wrapper('lvremove', ['-f', `${vgOf()}/thinlv_h1_journal`])).exitCode).toBe(5);
    expect((await wrapper('lvchange', ['--addtag', `${TAG.owner}h9`, `${vgOf()}/thinlv_h1_journal`])).exitCode).toBe(5);
    expect(await seqno()).toBe(before);
    await commitBatch(t.vg.lvm, await readVgMetadata(t.vg.lvm, vgOf()), [{ kind: 'removeLv', name: 'held' }]);

    const metadata = await readVgMetadata(t.vg.lvm, vgOf());
    await commitBatch(t.vg.lvm, metadata, [{ kind: 'setTag', tag: `${TAG.master}elsewhere-master`, replacingPrefix: TAG.master }]);
    try {
      const off = await seqno();
      for (const [command, args] of [
        ['lvcreate', ['-n', 'x', '-L', '8m', vgOf(), '-an']],
        ['lvchange', ['--addtag', 'y', `${vgOf()}/thinlv_status`]],
        ['lvrename', [vgOf(), 'a', 'b']],
      ] as const) {
        const result = await wrapper(command, [...args]);
        expect(result.exitCode, result.stderr).toBe(5);
        if (command !== 'lvchange') expect(result.stderr).toContain('elsewhere-master');
        expect(result.stderr).not.toContain(hostname() === 'elsewhere-master' ? '\u0000' : 'internal error');
      }
      expect(await seqno()).toBe(off);
    } finally {
      const now = await readVgMetadata(t.vg.lvm, vgOf());
      await commitBatch(t.vg.lvm, now, [{ kind: 'removeTag', tag: `${TAG.master}elsewhere-master` }]);
    }
  }, 120_000);

  test('a storage-manager-like sequence on a thin LV: create, tag, rename, grow through the host daemon, activate, refresh, deactivate, shrink answering y, remove', async () => {
    const master: Daemon = startMasterDaemon(t);
    const daemon = await HostDaemonProcess.start(t, 'h1');
    socket = daemon.socketPath;
    try {
      const vg = vgOf();
      const ok = async (command: string, args: string[], input?: string) => {
        const result = await wrapper(command, args, input);
        expect(result.exitCode, `${command} ${args.join(' ')}: ${result.stderr}`).toBe(0);
        return result;
      };
      expect((await ok('lvcreate', ['-n', 'vdi', '-L', '1G', vg, '--addtag', 'thinlv_thin', '-W', 'n', '--inactive'])).stdout).toBe('  Logical volume "vdi" created.\n');
      const created = await lvNamed('vdi');
      expect(created?.tags).toContain(`${TAG.virtualBytes}${GiB}`);
      expect(created?.activationSkip).toBe(true);
      expect(lvExtentCount(created!)).toBe(1);
      await ok('lvchange', ['--addtag', 'vdi_type=vhd', `/dev/${vg}/vdi`]);
      expect((await ok('lvrename', [`/dev/${vg}/vdi`, 'vdi2'])).stdout).toBe(`  Renamed "vdi" to "vdi2" in volume group "${vg}"\n`);
      const grown = await ok('lvresize', ['-L', '64M', `/dev/${vg}/vdi2`]);
      expect(grown.stdout).toBe(`  Size of logical volume ${vg}/vdi2 changed from 4.00 MiB (1 extents) to 64.00 MiB (16 extents).\n  Logical volume ${vg}/vdi2 successfully resized.\n`);
      await ok('lvchange', ['-ay', `/dev/${vg}/vdi2`]);
      expect((await daemon.status()).host).toBe('h1');
      await ok('lvextend', ['-l', '+2', `${vg}/vdi2`]);
      await ok('lvchange', ['--refresh', `/dev/${vg}/vdi2`]);
      // A held LV cannot be shrunk or removed: refused, nothing written.
      const held = await wrapper('lvremove', ['-f', `${vg}/vdi2`]);
      expect(held.exitCode).toBe(5);
      expect(held.stderr).toContain('h1');
      await ok('lvchange', ['-an', `/dev/${vg}/vdi2`]);
      const shrunk = await ok('lvresize', ['-L', '8M', `/dev/${vg}/vdi2`], 'y\n');
      expect(shrunk.stdout).toContain('(18 extents) to 8.00 MiB (2 extents)');
      expect(lvExtentCount((await lvNamed('vdi2'))!)).toBe(2);
      await ok('vgchange', ['-ay', vg]);
      expect((await ok('lvremove', ['-f', `/dev/${vg}/vdi2`])).stdout).toBe('  Logical volume "vdi2" successfully removed.\n');
      expect(await lvNamed('vdi2')).toBeUndefined();
    } finally {
      socket = undefined;
      await daemon.cleanUp();
      await stopDaemon(master);
    }
    const check = await runCli(['check', vgOf(), ...t.cliArgs()]);
    expect(check.exitCode, check.stdout + check.stderr).toBe(0);
  }, 300_000);

  test('pvresize: off the master machine refused naming it; after the device grows, the PV takes the new extents and prints what stock lvm prints', async () => {
    const extents = async () => (await readVgMetadata(t.vg.lvm, vgOf())).pvs.reduce((n, pv) => n + pv.peCount, 0);
    const metadata = await readVgMetadata(t.vg.lvm, vgOf());
    await commitBatch(t.vg.lvm, metadata, [{ kind: 'setTag', tag: `${TAG.master}elsewhere-master`, replacingPrefix: TAG.master }]);
    try {
      const off = await seqno();
      const refused = await wrapper('pvresize', [t.vg.device]);
      expect(refused.exitCode, refused.stderr).toBe(5);
      expect(refused.stderr).toContain('elsewhere-master');
      expect(await seqno()).toBe(off);
    } finally {
      const now = await readVgMetadata(t.vg.lvm, vgOf());
      await commitBatch(t.vg.lvm, now, [{ kind: 'removeTag', tag: `${TAG.master}elsewhere-master` }]);
    }
    const before = await extents();
    for (const vg of [t.vg, plain]) {
      truncateSync(vg.imagePath, statSync(vg.imagePath).size + 256 * 1024 ** 2);
      expect(spawnSync('losetup', ['-c', vg.device]).status).toBe(0);
    }
    const ours = await wrapper('pvresize', [t.vg.device]);
    const theirs = await stock('pvresize', [plain.device]);
    expect(ours.exitCode, ours.stderr).toBe(0);
    expect(ours.stdout.replaceAll(t.vg.device, 'PV')).toBe(theirs.stdout.replaceAll(plain.device, 'PV'));
    expect(said(ours.stderr)).toEqual(said(theirs.stderr));
    expect(await extents()).toBe(before + 64); // 256 MiB of 4 MiB extents
    const check = await runCli(['check', vgOf(), ...t.cliArgs()]);
    expect(check.exitCode, check.stdout + check.stderr).toBe(0);
  }, 120_000);
});
