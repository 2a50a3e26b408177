// `thinlv vdi` on real LVM: the JSON volume API a storage-manager plugin calls, run as
// a process. Metadata calls on this machine (the master's: no master tag, or this
// hostname), activation through a real host daemon, sizes with unreplayed allocations.

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readVgMetadata } from '../../src/lvm/commitBatch.js';
import { extentSizeBytes, lvExtentCount } from '../../src/metadata/vgModel.js';
import { MasterSession, runPass } from '../../src/master/replayPass.js';
import type { Volume } from '../../src/vdi/volume.js';
import { HostDaemonProcess, startMasterDaemon, stopDaemon } from '../fixtures/hostDaemons.js';
import { realLvmUnavailableReason } from '../fixtures/loopVg.js';
import { runCli, runningDaemonsLog } from '../fixtures/runCli.js';
import { createThinlvTestVg, type ThinlvTestVg } from '../fixtures/thinlvVg.js';

const skipReason = realLvmUnavailableReason();
const GiB = 1024 ** 3;

describe.skipIf(skipReason !== undefined)('thinlv vdi: a JSON volume API on real LVM', () => {
  let t: ThinlvTestVg;
  let vgName: string;
  let extentBytes: number;
  // No --json: vdi answers in JSON, errors included, without it.
  const vdi = (action: string, ...args: string[]) => runCli(['vdi', action, vgName, ...args, ...t.cliArgs()]);
  const metadata = () => readVgMetadata(t.vg.lvm, vgName);
  const seqno = async () => (await metadata()).seqno;

  /** Runs a call that must succeed and returns its JSON. */
  async function ok<T = Volume>(action: string, ...args: string[]): Promise<T> {
    const result = await vdi(action, ...args);
    expect(result.exitCode, `vdi ${action} ${args.join(' ')}: ${result.stdout}${result.stderr}${runningDaemonsLog()}`).toBe(0);
    return JSON.parse(result.stdout) as T;
  }

  /** Runs a call that must fail with `code` and `exitCode`, writing nothing. */
  async function refused(code: string, exitCode: number, action: string, ...args: string[]): Promise<void> {
    const before = await seqno();
    const result = await vdi(action, ...args);
    const what = `vdi ${action} ${args.join(' ')}: ${result.stdout}${result.stderr}`;
    expect(result.exitCode, what).toBe(exitCode);
    expect(JSON.parse(result.stdout), what).toMatchObject({ ok: false, error: { code, message: expect.any(String) } });
    expect(await seqno(), what).toBe(before);
  }

  beforeAll(async () => {
    t = await createThinlvTestVg({ sizeBytes: 2 * GiB, hosts: ['h1'], thinLvCount: 0, quantumExtents: 16, lowWaterExtents: 4 });
    vgName = t.vg.vgName;
    extentBytes = extentSizeBytes(await metadata());
  });
  afterAll(async () => {
    await t?.destroy();
  });

  test('create with a name, a description and a key; stat and list show it; the tags are ones stock lvm reads', async () => {
    const name = 'Disk 1: été = "ok" / 😀';
    const description = 'line one\nline two, with : and =';
    const created = await ok('create', '--key', 'disk-a', '--name', name, '--description', description, '--virtual-size', String(GiB));
    const lv = (await metadata()).lvs.find((l) => l.name === 'disk-a')!;
    expect(created).toEqual({
      key: 'disk-a', uuid: lv.uuid, name, description, read_write: true, sharable: false,
      virtual_size: GiB, physical_utilisation: extentBytes, uri: [`block:///dev/${vgName}/disk-a`], keys: {},
    });
    expect(lv.activationSkip).toBe(true);
    expect(await ok('stat', '--key', 'disk-a')).toEqual(created);

    // Stock lvm reads the VG and shows the encoded tags.
    const { stdout } = await t.vg.lvm.run('lvs', ['--reportformat', 'json', '-o', 'lv_name,lv_tags', `${vgName}/disk-a`]);
    expect(stdout).toContain('thinlv_vdi_name=Disk:201:3A:20:C3:A9t:C3:A9:20:3D:20:22ok:22:20/:20:F0:9F:98:80');
    await t.vg.lvm.run('vgck', [vgName]);

    // A generated key, an empty name, a size with a unit.
    const generated = await ok('create', '--name', '', '--virtual-size', '512m');
    expect(generated).toMatchObject({ name: '', description: '', virtual_size: 512 * 1024 ** 2 });
    expect(generated.key).toMatch(/^vdi-[0-9a-f]{12}$/);
    // A thin LV made by thinlv lvcreate is a volume too, named after its LV.
    expect((await runCli(['lvcreate', '-n', 'plain', '-V', '1g', vgName, ...t.cliArgs()])).exitCode).toBe(0);

    const list = await ok<Volume[]>('list');
    expect(list.map((v) => v.key)).toEqual(['disk-a', 'plain', generated.key].sort());
    expect(list.find((v) => v.key === 'disk-a')).toEqual(created);
    expect(list.find((v) => v.key === 'plain')).toMatchObject({ name: 'plain', description: '', virtual_size: GiB });

    for (const key of ['plain', generated.key]) await ok('destroy', '--key', key);
    expect((await ok<Volume[]>('list')).map((v) => v.key)).toEqual(['disk-a']);
  });

  test('set and unset keep key-value pairs as tags; set also renames; an unset of a missing key writes nothing', async () => {
    expect((await ok('set', '--key', 'disk-a', '--k', 'vm uuid', '--v', 'a=b:c')).keys).toEqual({ 'vm uuid': 'a=b:c' });
    expect((await ok('set', '--key', 'disk-a', '--k', 'empty', '--v', '')).keys).toEqual({ empty: '', 'vm uuid': 'a=b:c' });
    // Setting a key again replaces its value.
    expect((await ok('set', '--key', 'disk-a', '--k', 'vm uuid', '--v', 'second')).keys).toEqual({ empty: '', 'vm uuid': 'second' });
    const renamed = await ok('set', '--key', 'disk-a', '--name', 'renamed', '--description', '');
    expect(renamed).toMatchObject({ name: 'renamed', description: '', keys: { empty: '', 'vm uuid': 'second' } });
    expect((await metadata()).lvs.find((l) => l.name === 'disk-a')!.tags.filter((tag) => tag.startsWith('thinlv_vdi_kv='))).toHaveLength(2);

    expect((await ok('unset', '--key', 'disk-a', '--k', 'vm uuid')).keys).toEqual({ empty: '' });
    const before = await seqno();
    expect((await ok('unset', '--key', 'disk-a', '--k', 'never set')).keys).toEqual({ empty: '' });
    // The same value again commits nothing either.
    await ok('set', '--key', 'disk-a', '--k', 'empty', '--v', '');
    expect(await seqno()).toBe(before);
    expect(await ok('stat', '--key', 'disk-a')).toMatchObject({ name: 'renamed', keys: { empty: '' } });
  });

  test('resize raises the virtual size; below what is allocated it is refused and nothing is written', async () => {
    expect(await ok('resize', '--key', 'disk-a', '--virtual-size', '2g')).toMatchObject({ key: 'disk-a', virtual_size: 2 * GiB, physical_utilisation: extentBytes });
    await refused('INVALID_ARGUMENT', 2, 'resize', '--key', 'disk-a', '--virtual-size', String(extentBytes - 1));
    expect(await ok('stat', '--key', 'disk-a')).toMatchObject({ virtual_size: 2 * GiB });
  });

  test('read_write follows the LV permission in metadata (lvchange -p r)', async () => {
    await t.vg.lvm.run('lvchange', ['-p', 'r', `${vgName}/disk-a`]);
    expect(await ok('stat', '--key', 'disk-a')).toMatchObject({ read_write: false });
    await t.vg.lvm.run('lvchange', ['-p', 'rw', `${vgName}/disk-a`]);
    expect(await ok('stat', '--key', 'disk-a')).toMatchObject({ read_write: true });
  });

  test('bad input and unknown volumes: a JSON error with its code and exit code, nothing written', async () => {
    await refused('LV_NOT_FOUND', 3, 'stat', '--key', 'no-such-volume');
    await refused('LV_NOT_FOUND', 3, 'destroy', '--key', 'no-such-volume');
    await refused('LV_NOT_FOUND', 3, 'set', '--key', 'no-such-volume', '--k', 'a', '--v', 'b');
    await refused('LV_NOT_FOUND', 3, 'resize', '--key', 'no-such-volume', '--virtual-size', '1g');
    await refused('LV_EXISTS', 3, 'create', '--key', 'disk-a', '--name', 'again', '--virtual-size', '1g');
    await refused('NOT_THIN_LV', 3, 'stat', '--key', 'thinlv_h1_journal');
    await refused('NOT_THIN_LV', 3, 'destroy', '--key', 'thinlv_h1_journal');
    await refused('INVALID_ARGUMENT', 2, 'create', '--key', 'bad name', '--name', 'x', '--virtual-size', '1g');
    await refused('INVALID_ARGUMENT', 2, 'create', '--key', 'thinlv_mine', '--name', 'x', '--virtual-size', '1g');
    await refused('INVALID_ARGUMENT', 2, 'create', '--key', 'snapshot1', '--name', 'x', '--virtual-size', '1g');
    await refused('INVALID_ARGUMENT', 2, 'create', '--name', 'x');
    await refused('INVALID_ARGUMENT', 2, 'create', '--name', 'x', '--virtual-size', '+1g');
    await refused('INVALID_ARGUMENT', 2, 'create', '--name', 'x', '--virtual-size', '1q');
    await refused('INVALID_ARGUMENT', 2, 'create', '--key', 'long', '--name', 'é'.repeat(200), '--virtual-size', '1g');
    await refused('INVALID_ARGUMENT', 2, 'set', '--key', 'disk-a', '--k', 'big', '--v', 'x'.repeat(1024));
    await refused('INVALID_ARGUMENT', 2, 'set', '--key', 'disk-a', '--k', '', '--v', 'x');
    await refused('INVALID_ARGUMENT', 2, 'set', '--key', 'disk-a', '--k', 'only-k');
    await refused('INVALID_ARGUMENT', 2, 'stat', '--key', 'disk-a', '--name', 'not for stat');
    await refused('INVALID_ARGUMENT', 2, 'stat');
    await refused('INVALID_ARGUMENT', 2, 'explode', '--key', 'disk-a');
    await refused('INVALID_ARGUMENT', 2, 'stat', '--key', 'disk-a', '--no-such-option');
    expect((await ok<Volume[]>('list')).map((v) => v.key)).toEqual(['disk-a']);
  });

  test('too many key-value pairs are refused before anything is written', async () => {
    const { MAX_KEY_VALUE_PAIRS } = await import('../../src/vdi/volumeTags.js');
    const { commitBatch } = await import('../../src/lvm/commitBatch.js');
    const { keyValueTag } = await import('../../src/vdi/volumeTags.js');
    // The pairs up to the limit, in one commit (a call per pair would take a minute).
    const base = await metadata();
    const present = base.lvs.find((l) => l.name === 'disk-a')!.tags.filter((tag) => tag.startsWith('thinlv_vdi_kv=')).length;
    await commitBatch(t.vg.lvm, base, Array.from({ length: MAX_KEY_VALUE_PAIRS - present }, (_, i) => ({ kind: 'setTag' as const, lv: 'disk-a', tag: keyValueTag(`k${i}`, String(i)) })));
    expect(Object.keys((await ok('stat', '--key', 'disk-a')).keys)).toHaveLength(MAX_KEY_VALUE_PAIRS);
    await refused('INVALID_ARGUMENT', 2, 'set', '--key', 'disk-a', '--k', 'one-more', '--v', 'x');
    // Replacing a value keeps the count, so it is allowed.
    expect((await ok('set', '--key', 'disk-a', '--k', 'k0', '--v', 'changed')).keys['k0']).toBe('changed');
    const full = await metadata();
    const added = full.lvs.find((l) => l.name === 'disk-a')!.tags.filter((tag) => tag.startsWith('thinlv_vdi_kv=k'));
    await commitBatch(t.vg.lvm, full, added.map((tag) => ({ kind: 'removeTag' as const, lv: 'disk-a', tag })));
    expect(Object.keys((await ok('stat', '--key', 'disk-a')).keys)).toHaveLength(present);
  });

  test('activate and deactivate go through the host daemon; physical_utilisation counts an extend not replayed yet; destroy waits for the release', async () => {
    await ok('create', '--key', 'disk-live', '--name', 'live', '--virtual-size', '1g');
    await refused('HOST_DAEMON_UNREACHABLE', 3, 'activate', '--key', 'disk-live', '--socket', '/run/thinlv-test-no-such.sock');
    const daemon = await HostDaemonProcess.start(t, 'h1');
    let master = startMasterDaemon(t);
    try {
      // Activation claims the LV for h1, which the master grants.
      const active = await ok('activate', '--key', 'disk-live', '--socket', daemon.socketPath);
      expect(active).toMatchObject({ key: 'disk-live', name: 'live', physical_utilisation: extentBytes });
      expect((await metadata()).lvs.find((l) => l.name === 'disk-live')!.tags).toContain('thinlv_owner=h1');
      await stopDaemon(master);

      // With no master, the extend is journaled and not replayed: metadata still shows one extent.
      await daemon.extend('disk-live', 5 * extentBytes);
      expect(lvExtentCount((await metadata()).lvs.find((l) => l.name === 'disk-live')!)).toBe(1);
      expect(await ok('stat', '--key', 'disk-live')).toMatchObject({ physical_utilisation: 5 * extentBytes });
      expect((await ok<Volume[]>('list')).find((v) => v.key === 'disk-live')).toMatchObject({ physical_utilisation: 5 * extentBytes });

      // Held by h1: the master machine refuses to destroy it or shrink its virtual size.
      await refused('LV_IN_USE', 3, 'destroy', '--key', 'disk-live');
      await refused('LV_IN_USE', 3, 'resize', '--key', 'disk-live', '--virtual-size', '512m');

      expect(await ok('deactivate', '--key', 'disk-live', '--socket', daemon.socketPath)).toMatchObject({ physical_utilisation: 5 * extentBytes });
      // The master replays the extend and the release.
      master = startMasterDaemon(t);
      await waitFor(async () => !(await metadata()).lvs.find((l) => l.name === 'disk-live')!.tags.some((tag) => tag.startsWith('thinlv_owner=')));
      await stopDaemon(master);
      expect(lvExtentCount((await metadata()).lvs.find((l) => l.name === 'disk-live')!)).toBe(5);

      const destroyed = await ok('destroy', '--key', 'disk-live');
      expect(destroyed).toMatchObject({ key: 'disk-live', physical_utilisation: 5 * extentBytes });
      expect((await metadata()).lvs.some((l) => l.name === 'disk-live')).toBe(false);
      await refused('LV_NOT_FOUND', 3, 'stat', '--key', 'disk-live');
      await refused('LV_NOT_FOUND', 3, 'activate', '--key', 'disk-live', '--socket', daemon.socketPath);
    } finally {
      await stopDaemon(master);
      await daemon.cleanUp();
      await runPass(t.deps(), new MasterSession(), vgName);
    }
  });

  test('destroy removes the volume and prints it as it was', async () => {
    const before = await ok('stat', '--key', 'disk-a');
    expect(await ok('destroy', '--key', 'disk-a')).toEqual(before);
    expect(await ok<Volume[]>('list')).toEqual([]);
    await refused('LV_NOT_FOUND', 3, 'stat', '--key', 'disk-a');
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
