import { closeSync, existsSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ExtentSet } from '../../src/extent/extentSet.js';
import { hostLvNames } from '../../src/format/thinlvVg.js';
import { commitBatch, readVgMetadata } from '../../src/lvm/commitBatch.js';
import { computeFreeExtents } from '../../src/metadata/checkLayout.js';
import { linearSegments } from '../../src/metadata/vgModel.js';
import { MasterSession, runPass } from '../../src/master/replayPass.js';
import { toUuidRanges } from '../../src/replay/planReplay.js';
import { ringLocation } from '../../src/rings/ringRegions.js';
import { createLoopVg, realLvmUnavailableReason, TEST_LVM_CONFIG, type LoopVg } from '../fixtures/loopVg.js';
import { runCli, startCli } from '../fixtures/runCli.js';
import { AllocatorHost } from '../fixtures/allocatorHost.js';
import { createThinlvTestVg, holdLv, type ThinlvTestVg } from '../fixtures/thinlvVg.js';

const skipReason = realLvmUnavailableReason();
const GiB = 1024 ** 3;

async function seqno(vg: LoopVg): Promise<number> {
  return (await readVgMetadata(vg.lvm, vg.vgName)).seqno;
}

describe.skipIf(skipReason !== undefined)('metadata commands refuse bad input and write nothing', () => {
  let vg: LoopVg;
  const cli = (...args: string[]) => runCli([...args, '--json', ...vg.cliDeviceArgs, '--lvm-config', TEST_LVM_CONFIG]);
  beforeAll(async () => {
    vg = await createLoopVg({ sizeBytes: 4 * GiB, metadataSizeMiB: 1 });
  });
  afterAll(async () => {
    await vg?.destroy();
  });

  test.each([
    ['an unknown VG', ['format', 'no_such_vg_thinlv'], 3, 'VG_NOT_FOUND'],
    ['an unformatted VG (host add)', ['host', 'add', '%VG%', 'hostA'], 3, 'NOT_FORMATTED'],
    ['an unformatted VG (lvcreate)', ['lvcreate', '-n', 'd1', '-V', '1g', '%VG%'], 3, 'NOT_FORMATTED'],
    ['an invalid VG name', ['format', 'bad/vg'], 2, 'INVALID_ARGUMENT'],
    ['an invalid host name', ['host', 'add', '%VG%', 'bad_host'], 2, 'INVALID_ARGUMENT'],
    ['an unknown action', ['host', 'adopt', '%VG%', 'hostA'], 2, 'INVALID_ARGUMENT'],
    ['an invalid size', ['format', '%VG%', '--quantum', '12q'], 2, 'INVALID_ARGUMENT'],
    ['a metadata area too small for the expected LVs', ['format', '%VG%', '--expected-lvs', '100000'], 3, 'METADATA_AREA_TOO_SMALL'],
    ['a metadata area too small for the expected LVs at the expected segments', ['format', '%VG%', '--expected-lvs', '100', '--expected-segments', '5000'], 3, 'METADATA_AREA_TOO_SMALL'],
    ['a non-positive expected segment count', ['format', '%VG%', '--expected-segments', '0'], 2, 'INVALID_ARGUMENT'],
    ['a VG too full for the reserve and a quantum', ['format', '%VG%', '--quantum', '4g'], 3, 'VG_TOO_FULL'],
  ])('%s: a clear error, a non-zero exit code, nothing written', async (_what, args, exitCode, code) => {
    const before = await seqno(vg);
    const result = await cli(...args.map((a) => a.replace('%VG%', vg.vgName)));
    expect(result.exitCode, result.stdout + result.stderr).toBe(exitCode);
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: false, error: { code } });
    expect(await seqno(vg)).toBe(before);
  });

  test('once formatted: a second format, an unknown host, a bad LV, a full VG are refused and write nothing', async () => {
    expect((await cli('format', vg.vgName, '--quantum', '64m', '--expected-lvs', '100')).exitCode).toBe(0);
    const cases: [string[], number, string][] = [
      [['format', vg.vgName, '--expected-lvs', '100'], 3, 'ALREADY_FORMATTED'],
      [['host', 'remove', vg.vgName, 'ghost'], 3, 'UNKNOWN_HOST'],
      [['lvcreate', '-n', 'thinlv_mine', '-V', '1g', vg.vgName], 2, 'INVALID_ARGUMENT'],
      [['lvcreate', '-n', 'big', '-V', '100g', '-L', '50g', vg.vgName], 3, 'INSUFFICIENT_EXTENTS'],
      [['lvcreate', '-n', 'small', '-V', '1g', '-L', '2g', vg.vgName], 2, 'INVALID_ARGUMENT'],
      [['lvremove', `${vg.vgName}/nothing`], 3, 'LV_NOT_FOUND'],
      [['lvresize', `${vg.vgName}`, '-V', '2g'], 2, 'INVALID_ARGUMENT'],
    ];
    for (const [args, exitCode, code] of cases) {
      const before = await seqno(vg);
      const result = await cli(...args);
      expect(result.exitCode, `${args.join(' ')}: ${result.stdout}`).toBe(exitCode);
      expect(JSON.parse(result.stdout), args.join(' ')).toMatchObject({ ok: false, error: { code } });
      expect(await seqno(vg), args.join(' ')).toBe(before);
    }
  });
});

describe.skipIf(skipReason !== undefined)('thin LV commands and the master daemon', () => {
  let t: ThinlvTestVg;
  const cli = (...args: string[]) => runCli([...args, '--json', ...t.cliArgs()]);
  beforeAll(async () => {
    t = await createThinlvTestVg({ hosts: ['hostA'], thinLvCount: 1, quantumExtents: 32, lowWaterExtents: 8 });
  });
  afterAll(async () => {
    await t?.destroy();
  });

  test('overcommit: past the VG size lvcreate warns; past the VG\'s limit tag lvcreate and lvresize -V refuse, writing nothing, unless --force; lowering is never refused', async () => {
    const vgName = t.vg.vgName;
    // disk0 (100 GiB virtual) on this 16 GiB VG is overcommitted already.
    const human = await runCli(['lvcreate', '-n', 'oc1', '-V', '1g', vgName, ...t.cliArgs()]);
    expect(human.exitCode, human.stderr).toBe(0);
    expect(human.stderr).toMatch(/WARNING: Sum of all thin volume sizes \(101\.00 GiB\) against the size of VG \S+ \(\d+\.\d\d GiB\): 6\.\d\dx overcommitted\./);
    await t.vg.lvm.run('vgchange', ['--addtag', 'thinlv_overcommit_limit_percent=700', vgName]);
    try {
      const before = (await readVgMetadata(t.vg.lvm, vgName)).seqno;
      const refused = await cli('lvcreate', '-n', 'oc2', '-V', '20g', vgName);
      expect(refused.exitCode).toBe(3);
      expect(JSON.parse(refused.stdout)).toMatchObject({ ok: false, error: { code: 'OVERCOMMIT_LIMIT', data: { limitPercent: 700 } } });
      expect((await readVgMetadata(t.vg.lvm, vgName)).seqno).toBe(before);
      const forced = await cli('lvcreate', '-n', 'oc2', '-V', '20g', vgName, '--force');
      expect(forced.exitCode, forced.stdout).toBe(0);
      expect(JSON.parse(forced.stdout)).toMatchObject({ ok: true, warnings: [expect.stringMatching(/^WARNING: Sum of all thin volume sizes \(121\.00 GiB\)/)] });
      expect(JSON.parse((await cli('lvresize', `${vgName}/oc1`, '-V', '+10g')).stdout)).toMatchObject({ ok: false, error: { code: 'OVERCOMMIT_LIMIT' } });
      // Still past the limit, but lower: allowed.
      expect(JSON.parse((await cli('lvresize', `${vgName}/oc2`, '-V', '2g')).stdout)).toMatchObject({ ok: true, virtualBytes: 2 * GiB });
    } finally {
      await t.vg.lvm.run('vgchange', ['--deltag', 'thinlv_overcommit_limit_percent=700', vgName]);
      for (const lv of ['oc1', 'oc2']) await cli('lvremove', `${vgName}/${lv}`);
    }
  });

  test('lvcreate, lvresize -V, deflate with -L, and lvremove, as an operator runs them', async () => {
    const created = await cli('lvcreate', '-n', 'vm9', '-V', '20g', '-L', '40m', t.vg.vgName);
    expect(created.exitCode, created.stdout).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ ok: true, virtualBytes: 20 * GiB, physicalBytes: 40 * 1024 ** 2 });
    const { stdout } = await t.vg.lvm.run('lvs', ['--reportformat', 'json', '-o', 'lv_name,lv_tags,lv_skip_activation,lv_size', '--units', 'b', '--nosuffix', `${t.vg.vgName}/vm9`]);
    expect(stdout).toContain('thinlv_virtual_bytes=21474836480');
    expect(stdout).toContain('"lv_skip_activation":"skip activation"');

    expect(JSON.parse((await cli('lvresize', `${t.vg.vgName}/vm9`, '-V', '+10g')).stdout)).toMatchObject({ virtualBytes: 30 * GiB });
    expect(JSON.parse((await cli('lvresize', `${t.vg.vgName}/vm9`, '-L', '8m')).stdout)).toMatchObject({ physicalBytes: 8 * 1024 ** 2 });
    const shrunk = (await readVgMetadata(t.vg.lvm, t.vg.vgName)).lvs.find((lv) => lv.name === 'vm9')!;
    expect(shrunk.segments.reduce((n, s) => n + s.extentCount, 0)).toBe(2);
    expect(JSON.parse((await cli('lvresize', `${t.vg.vgName}/vm9`, '-V', '4m')).stdout)).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT' } });
    expect((await cli('lvremove', `${t.vg.vgName}/vm9`)).exitCode).toBe(0);
    expect((await readVgMetadata(t.vg.lvm, t.vg.vgName)).lvs.some((lv) => lv.name === 'vm9')).toBe(false);
    expect((await runCli(['check', t.vg.vgName, ...t.cliArgs()])).exitCode).toBe(0);
  });

  test('a held LV cannot be removed; records for an LV removed behind thinlv\'s back, and return records, give their extents back to VG free space', async () => {
    await cli('lvcreate', '-n', 'doomed', '-V', '1g', t.vg.vgName);
    await holdLv(t, 'doomed', 'hostA');
    const host = await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'hostA');
    try {
      await host.applyGrants();
      const toDoomed = await host.allocate('doomed', 3);
      // thinlv refuses: hostA holds it and has extents of it not yet replayed.
      expect(JSON.parse((await cli('lvremove', `${t.vg.vgName}/doomed`)).stdout)).toMatchObject({ ok: false, error: { code: 'LV_IN_USE' } });
      // A stock lvremove would not ask.
      const current = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      await commitBatch(t.vg.lvm, current, [{ kind: 'removeLv', name: 'doomed' }]);
      const pool = (await readVgMetadata(t.vg.lvm, t.vg.vgName)).lvs.find((lv) => lv.name === hostLvNames('hostA').free)!;
      const giveBack = linearSegments(pool)!.at(-1)!;
      const returned = { pv: giveBack.pv, firstExtent: giveBack.firstExtent + giveBack.extentCount - 2, extentCount: 2 };
      await host.appendRaw({ kind: 'return', ranges: toUuidRanges(current, [returned]) });

      const pass = await runPass(t.deps(), new MasterSession(), t.vg.vgName);
      expect(pass.rejectedRecordCount).toBe(0);
      const free = computeFreeExtents(await readVgMetadata(t.vg.lvm, t.vg.vgName));
      expect(free.containsAll(ExtentSet.fromRanges(toDoomed.ranges))).toBe(true);
      expect(free.containsAll(ExtentSet.fromRanges([returned]))).toBe(true);
      expect((await runCli(['check', t.vg.vgName, ...t.cliArgs()])).exitCode).toBe(0);
    } finally {
      await host.close();
    }
  });

  test('a metadata command run away from the master machine says where to run it, and writes nothing', async () => {
    const base = await readVgMetadata(t.vg.lvm, t.vg.vgName);
    await commitBatch(t.vg.lvm, base, [{ kind: 'setTag', tag: 'thinlv_master=elsewhere.example', replacingPrefix: 'thinlv_master=' }]);
    const before = await seqno(t.vg);
    const result = await cli('lvcreate', '-n', 'vmx', '-V', '1g', t.vg.vgName);
    expect(result.exitCode).toBe(3);
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: false, error: { code: 'NOT_ON_MASTER', data: { master: 'elsewhere.example' } } });
    expect(await seqno(t.vg)).toBe(before);
    // Starting the master here takes the role over (and says so in its log).
    const master = await runCli(['master', t.vg.vgName, '--once', '--no-history', '--run-dir', t.runDir, ...t.cliArgs()]);
    expect(master.exitCode, master.stderr).toBe(0);
    expect(master.stdout).toContain('taking over as master');
    expect((await cli('lvcreate', '-n', 'vmx', '-V', '1g', t.vg.vgName)).exitCode).toBe(0);
  });

  test('the daemon replays when asked with SIGUSR1, keeps history in SQLite, and loses nothing when that file is deleted', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'thinlv-state-'));
    const host = await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'hostA');
    try {
      await runPass(t.deps(), new MasterSession(), t.vg.vgName);
      await host.applyGrants();
      // An hour between passes: only SIGUSR1 can make this daemon replay within the test.
      const daemon = startCli(['master', t.vg.vgName, '--interval-ms', '3600000', '--state-dir', stateDir, '--run-dir', t.runDir, ...t.cliArgs()]);
      try {
        await new Promise((resolve) => setTimeout(resolve, 1500));
        const allocation = await host.allocate('disk0', 2);
        daemon.kill('SIGUSR1');
        const deadline = Date.now() + 20_000;
        let replayed = false;
        while (!replayed && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 200));
          const lv = (await readVgMetadata(t.vg.lvm, t.vg.vgName)).lvs.find((l) => l.name === 'disk0')!;
          replayed = ExtentSet.fromRanges(linearSegments(lv)!).containsAll(ExtentSet.fromRanges(allocation.ranges));
        }
        expect(replayed).toBe(true);
      } finally {
        daemon.kill('SIGTERM');
        expect((await daemon).exitCode).toBe(0);
      }
      const dbPath = join(stateDir, `master-${t.vg.vgName}.db`);
      expect(existsSync(dbPath)).toBe(true);
      rmSync(stateDir, { recursive: true, force: true });
      await host.allocate('disk0', 1);
      const again = await runCli(['master', t.vg.vgName, '--once', '--state-dir', stateDir, '--run-dir', t.runDir, ...t.cliArgs()]);
      expect(again.exitCode, again.stderr).toBe(0);
      expect((await runCli(['check', t.vg.vgName, ...t.cliArgs()])).exitCode).toBe(0);
    } finally {
      await host.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(skipReason !== undefined)('a host journal that cannot be read', () => {
  test('is an operating error: --once exits 3 with the ring\'s code, the daemon logs it each pass and keeps running', async () => {
    const t = await createThinlvTestVg({ hosts: ['hostA', 'hostB'], thinLvCount: 1, quantumExtents: 8, lowWaterExtents: 2 });
    try {
      // Zero hostB's journal header block, as a bad copy onto the LUN would.
      const location = ringLocation(await readVgMetadata(t.vg.lvm, t.vg.vgName), hostLvNames('hostB').journal);
      const fd = openSync(location.device, 'r+');
      try {
        writeSync(fd, Buffer.alloc(4096), 0, 4096, location.offsetBytes);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      const once = await runCli(['master', t.vg.vgName, '--once', '--json', '--no-history', '--run-dir', t.runDir, ...t.cliArgs()]);
      expect(once.exitCode, once.stderr).toBe(3);
      // The master logs JSON lines on stdout; the error object is the last line.
      expect(JSON.parse(once.stdout.trim().split('\n').at(-1)!)).toMatchObject({ ok: false, error: { code: 'NOT_A_RING' } });

      const daemon = startCli(['master', t.vg.vgName, '--interval-ms', '100', '--no-history', '--run-dir', t.runDir, ...t.cliArgs()]);
      await new Promise((resolve) => setTimeout(resolve, 2500));
      expect(daemon.exitCode).toBeNull();
      daemon.kill('SIGTERM');
      const stopped = await daemon;
      expect(stopped.exitCode, String(stopped.stderr)).toBe(0);
      const failures = String(stopped.stdout).split('\n').filter((line) => line.includes('pass failed') && line.includes('NOT_A_RING'));
      expect(failures.length).toBeGreaterThanOrEqual(2);
    } finally {
      await t.destroy();
    }
  });
});
