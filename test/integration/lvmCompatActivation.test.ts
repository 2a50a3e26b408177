// A storage manager's view of one thin LV, through one directory of symlinks put first in
// PATH (lvs, vgs, lvdisplay, lvcreate, lvchange, lvresize, lvremove): what it reads while
// the LV has extents its host journaled and the master has not replayed, what the host
// maps when it (re)activates and refreshes the LV then, and `lvchange -an --deflate`
// giving extents back through the master. Real LVM on a loop device; the host daemon and
// the master run as processes. Without device-mapper the daemon computes tables and keeps
// them; it writes them to its state at a clean stop, which is where this test reads them.

import { mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { formatDmTable, linearTable } from '../../src/extent/dmTable.js';
import { readVgMetadata } from '../../src/lvm/commitBatch.js';
import { linearSegments, lvExtentCount, type VgMetadata } from '../../src/metadata/vgModel.js';
import { HostState, openStateDb } from '../../src/state/index.js';
import { realLvmUnavailableReason, TEST_LVM_CONFIG } from '../fixtures/loopVg.js';
import { CLI_PATH, runCli, runningDaemonsLog } from '../fixtures/runCli.js';
import { HostDaemonProcess, startMasterDaemon, stopDaemon, type Daemon } from '../fixtures/hostDaemons.js';
import { createThinlvTestVg, type ThinlvTestVg } from '../fixtures/thinlvVg.js';

const skipReason = realLvmUnavailableReason();
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const EXTENT_BYTES = 4 * MiB;
const COMMANDS = ['lvs', 'vgs', 'lvdisplay', 'lvcreate', 'lvchange', 'lvresize', 'lvremove'];

interface Ran {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

describe.skipIf(skipReason !== undefined)('a thin LV through a PATH of lvm-compatible symlinks: unreplayed extents, activation, refresh, deflate', () => {
  let t: ThinlvTestVg;
  let bin: string;
  let daemon: HostDaemonProcess;
  let master: Daemon | undefined;
  const vg = () => t.vg.vgName;
  /** A command found by name in PATH (the symlink directory first), with lvm's --devices and --config after the positionals. */
  const sm = async (command: string, args: string[], input?: string): Promise<Ran> => {
    const result = await execa(command, [...args, '--devices', t.vg.device, '--config', TEST_LVM_CONFIG], {
      reject: false,
      timeout: 120_000,
      stripFinalNewline: false,
      env: { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? ''}`, THINLV_SOCKET: daemon.socketPath },
      ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
    });
    return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
  };
  const ok = async (command: string, args: string[], input?: string): Promise<Ran> => {
    const result = await sm(command, args, input);
    expect(result.exitCode, `${command} ${args.join(' ')}: ${result.stderr}${runningDaemonsLog()}`).toBe(0);
    return result;
  };
  /** `lvs -o lv_size` in bytes: through the symlink (thinlv's), or stock lvm's own report. */
  const sizeVia = async (lv: string) => Number((await ok('lvs', ['--noheadings', '--nosuffix', '--units', 'b', '-o', 'lv_size', `${vg()}/${lv}`])).stdout.trim());
  const stockSize = async (lv: string) => Number((await t.vg.lvm.run('lvs', ['--noheadings', '--nosuffix', '--units', 'b', '-o', 'lv_size', `${vg()}/${lv}`, '--readonly'])).stdout.trim());
  const metadataOf = () => readVgMetadata(t.vg.lvm, vg());
  const startMaster = () => {
    master = startMasterDaemon(t, 100);
  };
  const stopMaster = async () => {
    if (master !== undefined) await stopDaemon(master);
    master = undefined;
  };
  /** The table the daemon had loaded for `lv` at its last clean stop (its state file, named for its journal ring). */
  const tableAtStop = (lv: string): string | undefined => {
    const file = readdirSync(daemon.stateDir).find((f) => f.startsWith(`host-${vg()}-h1-`) && f.endsWith('.db'))!;
    const db = openStateDb(join(daemon.stateDir, file));
    try {
      return new HostState(db).activeLv(lv)?.tableText;
    } finally {
      db.close();
    }
  };
  const tableOf = (metadata: VgMetadata, lv: string): string => {
    const pvs = new Map(metadata.pvs.map((pv) => [pv.device, { devicePath: pv.device, peStartSectors: pv.peStartSectors }]));
    return formatDmTable(linearTable(linearSegments(metadata.lvs.find((l) => l.name === lv)!)!, pvs, metadata.extentSizeSectors));
  };

  beforeAll(async () => {
    t = await createThinlvTestVg({ sizeBytes: 2 * GiB, hosts: ['h1'], thinLvCount: 0, quantumExtents: 32, lowWaterExtents: 4 });
    bin = mkdtempSync(join(tmpdir(), 'thinlv-sm-path-'));
    for (const command of COMMANDS) symlinkSync(CLI_PATH, join(bin, command));
    daemon = await HostDaemonProcess.start(t, 'h1');
  }, 120_000);
  afterAll(async () => {
    await stopMaster();
    await daemon?.cleanUp();
    if (bin !== undefined) rmSync(bin, { recursive: true, force: true });
    await t?.destroy();
  });

  test('reads show unreplayed extents; -ay and --refresh map them; -an --deflate gives the tail back through the master', async () => {
    startMaster();
    expect((await ok('vgs', ['--noheadings', '--nosuffix', '--units', 'b', vg()])).stdout).toContain(vg());
    await ok('lvcreate', ['-n', 'vdi', '-L', '1G', vg(), '--addtag', 'thinlv_thin', '-W', 'n', '--inactive']);
    expect((await sm('lvs', ['--noheadings', `/dev/${vg()}/vdi`])).exitCode).toBe(0);
    await ok('lvchange', ['--addtag', 'vdi_type=vhd', `/dev/${vg()}/vdi`]);
    expect((await ok('lvs', ['--noheadings', '--units', 'b', '-o', '+lv_tags', `/dev/${vg()}`])).stdout).toMatch(/vdi .*thinlv_virtual_bytes=1073741824.*vdi_type=vhd/);
    await ok('lvchange', ['-ay', `/dev/${vg()}/vdi`]);

    // The master stops: what the host grows now stays in its journal, unreplayed.
    await stopMaster();
    await ok('lvresize', ['-L', '40M', `/dev/${vg()}/vdi`]);
    expect(await sizeVia('vdi')).toBe(40 * MiB);
    expect(await stockSize('vdi')).toBe(EXTENT_BYTES);
    expect((await ok('lvdisplay', [`/dev/${vg()}/vdi`])).stdout).toMatch(/LV Size\s+40\.00 MiB/);
    expect((await daemon.status()).unreplayedRecordCount).toBeGreaterThan(0);

    // Activating again (it is active) and refreshing reload thinlv's table: metadata plus unreplayed.
    await ok('lvchange', ['-ay', `/dev/${vg()}/vdi`]);
    await ok('lvchange', ['--refresh', `/dev/${vg()}/vdi`]);
    await daemon.stop();
    const mapped = tableAtStop('vdi');
    expect(mapped?.split('\n').filter((line) => line !== '').reduce((sectors, line) => sectors + Number(line.split(' ')[1]), 0)).toBe((40 * MiB) / 512);
    // Without device-mapper the daemon's tables die with it, as a reboot's do: the restarted
    // daemon finds no device for vdi, forgets it as active and releases it.
    await daemon.restart();
    expect((await daemon.status()).activeLvs).toEqual([]);

    // Once replayed, metadata is exactly what the host mapped (I6), and stock lvm agrees.
    startMaster();
    await expect.poll(() => stockSize('vdi'), { timeout: 30_000, interval: 200 }).toBe(40 * MiB);
    expect(mapped).toBe(tableOf(await metadataOf(), 'vdi'));

    // Deactivate and give back all but 8 MiB, through the master, which replays the deflate.
    const deflated = await ok('lvchange', ['-an', '--deflate', '8M', `/dev/${vg()}/vdi`]);
    expect(deflated.stdout).toBe(`  Logical volume ${vg()}/vdi deactivated and deflated: ${8 * MiB} bytes allocated.\n`);
    expect(await stockSize('vdi')).toBe(8 * MiB);
    expect(await sizeVia('vdi')).toBe(8 * MiB);
    const after = await metadataOf();
    const vdi = after.lvs.find((l) => l.name === 'vdi')!;
    expect(lvExtentCount(vdi)).toBe(2);
    expect(vdi.tags).toContain('thinlv_virtual_bytes=1073741824');
    expect(vdi.tags.some((tag) => tag.startsWith('thinlv_owner='))).toBe(false);
    expect((await daemon.status()).activeLvs).toEqual([]);

    // Bad input: refused with lvm's exit codes, nothing written.
    const seqno = after.seqno;
    expect((await sm('lvchange', ['-ay', '--deflate', '8M', `${vg()}/vdi`])).exitCode).toBe(3);
    expect((await sm('lvchange', ['-an', '--deflate', '0', `${vg()}/vdi`])).exitCode).toBe(3);
    expect((await sm('lvchange', ['-an', '--deflate', '-4M', `${vg()}/vdi`])).exitCode).toBe(3);
    const thick = await sm('lvchange', ['-an', '--deflate', '4M', `${vg()}/thinlv_h1_journal`]);
    expect(thick.exitCode).toBe(5);
    expect(thick.stderr).toContain('not a thin LV');
    expect((await metadataOf()).seqno).toBe(seqno);

    await ok('lvremove', ['-f', `/dev/${vg()}/vdi`]);
    expect((await sm('lvs', ['--noheadings', `/dev/${vg()}/vdi`])).exitCode).toBe(5);
    await stopMaster();
    const check = await runCli(['check', vg(), ...t.cliArgs()]);
    expect(check.exitCode, check.stdout + check.stderr).toBe(0);
  }, 300_000);
});
