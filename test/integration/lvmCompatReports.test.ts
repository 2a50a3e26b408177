// The lvm-compatible report commands (`lvs`, `vgs`, `pvs`, `lvdisplay`) on real LVM, each
// command line a storage manager runs (XCP-ng SM's drivers/lvutil.py, blktap's
// `vhd-util scan`), run through stock lvm and through thinlv on the same VG:
//   - nothing unreplayed: identical stdout and exit code, through `thinlv lvs ...` and
//     through a symlink named `lvs` found first in PATH;
//   - hosts' allocations journaled but not replayed: thin LVs show their sizes with them,
//     and exactly what stock lvm shows once the master has replayed them; nothing else
//     changes, and nothing is written;
//   - bad command lines and missing VGs or LVs: lvm's exit codes.

import { chmodSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readVgReport } from '../../src/lvm/readVgReport.js';
import { MasterSession, runPass } from '../../src/master/replayPass.js';
import { realLvmUnavailableReason, TEST_LVM_CONFIG } from '../fixtures/loopVg.js';
import { CLI_PATH, runCli } from '../fixtures/runCli.js';
import { AllocatorHost } from '../fixtures/allocatorHost.js';
import { createThinlvTestVg, type ThinlvTestVg } from '../fixtures/thinlvVg.js';

const skipReason = realLvmUnavailableReason();
const GIB = 1024 ** 3;
const EXTENT_BYTES = 4 * 1024 * 1024;

interface Output {
  readonly stdout: string;
  readonly exitCode: number;
  readonly stderr: string;
}

/** The command lines under test, for a VG `vg` on PV `dev`. */
function commandLines(vg: string, dev: string): [string, string[]][] {
  const segments = 'lv_name,lv_size,segtype,seg_count,seg_start,seg_size,devices';
  return [
    ['lvs', ['--noheadings', '--units', 'b', '-o', '+lv_tags', `/dev/${vg}`]],
    ['lvs', ['--noheadings', `/dev/${vg}/disk0`]],
    ['lvs', [vg, '--noheadings', '--nosuffix', '--units=b', `--options=${segments}`, '--unbuffered']],
    ['lvs', [vg]],
    ['lvs', [vg, '--units', 'h', '-o', '+lv_tags']],
    ['lvs', ['--separator', ' ', '--noheadings', '-o', 'lv_name,lv_size,seg_count', vg]],
    ['lvs', ['--segments', '--units', 'b', vg]],
    ['vgs', ['--noheadings', '--nosuffix', '--units', 'b', vg]],
    ['vgs', ['--readonly', vg]],
    ['vgs', [vg, '--noheadings', '--nosuffix', '--units=b', '--options=vg_name,vg_extent_size,lv_count,pv_count,pv_name,pe_start', '--unbuffered']],
    ['vgs', [vg]],
    ['pvs', ['--noheadings', '--nosuffix', '--units', 'b', dev]],
    ['pvs', ['--noheadings', '-o', 'vg_name', dev]],
    ['pvs', ['--separator', ' ', '--noheadings', '-o', 'pv_name,vg_name']],
    ['pvs', ['--noheadings', '-S', `vg_name=${vg}`, '-o', 'name']],
    ['pvs', [dev]],
    ['lvdisplay', [`/dev/${vg}/disk0`]],
    ['lvdisplay', ['-c', `/dev/${vg}/disk0`]],
    ['lvdisplay', [vg]],
  ];
}

describe.skipIf(skipReason !== undefined)('lvm-compatible report commands on a real VG', () => {
  let t: ThinlvTestVg;
  let binDir: string;
  let restrict: string[];

  beforeAll(async () => {
    t = await createThinlvTestVg({ sizeBytes: 2 * GIB, hosts: ['h1', 'h2'], thinLvCount: 3, quantumExtents: 16, lowWaterExtents: 8 });
    restrict = ['--devices', t.vg.device, '--config', TEST_LVM_CONFIG];
    // A directory of symlinks put first in PATH, as an operator installs them. The build
    // output is not executable (tsc does not set the bit; npm install -g does).
    if ((statSync(CLI_PATH).mode & 0o111) === 0) chmodSync(CLI_PATH, 0o755);
    binDir = mkdtempSync(join(tmpdir(), 'thinlv-lvm-bin-'));
    for (const command of ['lvs', 'vgs', 'pvs', 'lvdisplay']) symlinkSync(CLI_PATH, join(binDir, command));
  });
  afterAll(async () => {
    rmSync(binDir, { recursive: true, force: true });
    await t?.destroy();
  });

  /** Stock lvm, restricted to the test's device as every test lvm call is. */
  async function stock(command: string, args: readonly string[]): Promise<Output> {
    const result = await t.vg.lvm.run(command, args, { allowFailure: true });
    return { stdout: result.stdout, stderr: result.stderr, exitCode: result.exitCode ?? -1 };
  }
  /** `thinlv <command> ...` (runCli strips one final newline, as execa does). */
  async function thinlv(command: string, args: readonly string[]): Promise<Output> {
    const result = await runCli([command, ...args, ...restrict]);
    return { stdout: result.stdout === '' ? '' : `${result.stdout}\n`, stderr: result.stderr, exitCode: result.exitCode };
  }
  /** `<command> ...` found through PATH: the symlink. */
  async function viaSymlink(command: string, args: readonly string[]): Promise<Output> {
    const result = await execa(command, [...args, ...restrict], { reject: false, stdin: 'ignore', stripFinalNewline: false, env: { PATH: `${binDir}:${process.env['PATH'] ?? ''}` } });
    return { stdout: String(result.stdout), stderr: String(result.stderr), exitCode: result.exitCode ?? -1 };
  }

  test('with nothing unreplayed, every command line prints what stock lvm prints, with its exit code, and writes nothing', async () => {
    const seqnoBefore = (await readVgReport(t.vg.lvm, t.vg.vgName)).seqno;
    for (const [command, args] of commandLines(t.vg.vgName, t.vg.device)) {
      const expected = await stock(command, args);
      expect(expected.exitCode, `${command} ${args.join(' ')}: ${expected.stderr}`).toBe(0);
      expect(expected.stdout.length).toBeGreaterThan(0);
      const through = await thinlv(command, args);
      expect({ stdout: through.stdout, exitCode: through.exitCode }, `thinlv ${command} ${args.join(' ')}: ${through.stderr}`).toEqual({ stdout: expected.stdout, exitCode: 0 });
      const linked = await viaSymlink(command, args);
      expect({ stdout: linked.stdout, exitCode: linked.exitCode }, `${command} ${args.join(' ')} via symlink: ${linked.stderr}`).toEqual({ stdout: expected.stdout, exitCode: 0 });
    }
    expect((await readVgReport(t.vg.lvm, t.vg.vgName)).seqno).toBe(seqnoBefore);
  });

  test('bad command lines exit 3 and missing VGs and LVs exit 5, as stock lvm does', async () => {
    const vg = t.vg.vgName;
    const cases: [string, string[], number][] = [
      ['lvs', ['--bogus', vg], 3],
      ['lvs', ['-Q', vg], 3],
      ['lvs', ['--units'], 3],
      ['lvs', ['nosuchvg'], 5],
      ['lvs', ['--noheadings', `/dev/${vg}/nosuch`], 5],
      ['lvs', [`${vg}/disk0`, `${vg}/nosuch`], 5],
      ['vgs', ['nosuchvg'], 5],
      ['vgs', ['--bogus'], 3],
      ['pvs', ['/dev/nosuchdevice'], 5],
      ['lvdisplay', [`${vg}/nosuch`], 5],
      ['lvdisplay', ['--bogus', `${vg}/disk0`], 3],
    ];
    for (const [command, args, exitCode] of cases) {
      const expected = await stock(command, args);
      expect(expected.exitCode, `stock ${command} ${args.join(' ')}`).toBe(exitCode);
      const through = await thinlv(command, args);
      expect({ stdout: through.stdout, exitCode: through.exitCode }, `thinlv ${command} ${args.join(' ')}: ${through.stderr}`).toEqual({ stdout: expected.stdout, exitCode });
    }
    const unknown = await thinlv('lvs', ['--bogus', vg]);
    expect(unknown.stderr).toContain("lvs: unrecognized option '--bogus'");
    const missing = await viaSymlink('lvs', ['--noheadings', `/dev/${vg}/nosuch`]);
    expect(missing.exitCode).toBe(5);
    expect(missing.stderr).toContain(`Failed to find logical volume "${vg}/nosuch"`);
    // Options lvm knows but thinlv cannot reproduce are refused, never ignored.
    for (const args of [['--rows', vg], ['--nameprefixes', vg], ['--units', '4k', vg], ['--reportformat', 'json', vg]]) {
      const refused = await thinlv('lvs', args);
      expect(refused.exitCode, args.join(' ')).toBe(3);
      expect(refused.stdout).toBe('');
    }
    const maps = await thinlv('lvdisplay', ['-m', `${vg}/disk0`]);
    expect(maps.exitCode).toBe(3);
    expect(maps.stderr).toContain('--maps is not supported');
  });

  test('thin LVs include every host\'s unreplayed allocations, as stock lvm shows them after replay; nothing else changes and nothing is written', async () => {
    const vg = t.vg.vgName;
    const h1 = await AllocatorHost.open(t.vg.lvm, vg, 'h1');
    const h2 = await AllocatorHost.open(t.vg.lvm, vg, 'h2');
    try {
      // disk0 and disk2 are held by h1, disk1 by h2 (the fixture's owners).
      await h1.applyGrants();
      await h2.applyGrants();
      await h1.allocate('disk0', 3);
      await h1.allocate('disk2', 1);
      await h1.allocate('disk0', 2);
      await h2.allocate('disk1', 4);
    } finally {
      await h1.close();
      await h2.close();
    }
    const expectedExtents: Record<string, number> = { disk0: 6, disk1: 5, disk2: 2 };
    const thinNames = Object.keys(expectedExtents);
    const seqnoBefore = (await readVgReport(t.vg.lvm, vg)).seqno;
    const lines = commandLines(vg, t.vg.device);
    const stockBefore = await Promise.all(lines.map(([command, args]) => stock(command, args)));
    const thinBefore: Output[] = [];
    for (const [command, args] of lines) thinBefore.push(await thinlv(command, args));
    const linked = await viaSymlink('lvs', lines[0]![1]);
    expect((await readVgReport(t.vg.lvm, vg)).seqno, 'no metadata write').toBe(seqnoBefore);

    // The sizes themselves: metadata (one extent each) plus the unreplayed extents.
    const sizes = new Map(thinBefore[0]!.stdout.trim().split('\n').map((line) => line.trim().split(/\s+/)).map((cells) => [cells[0]!, cells[3]!]));
    for (const name of thinNames) expect(sizes.get(name), name).toBe(`${expectedExtents[name]! * EXTENT_BYTES}B`);
    expect(linked.stdout).toBe(thinBefore[0]!.stdout);
    expect(thinBefore[1]!.exitCode).toBe(0);

    // What stock lvm prints once the master has replayed the journals.
    const pass = await runPass(t.deps(), new MasterSession(), vg);
    expect(pass.replayedRecordCount).toBe(4);
    const stockAfter = await Promise.all(lines.map(([command, args]) => stock(command, args)));

    const isThinRow = (line: string): boolean => thinNames.includes(line.trim().split(/\s+/)[0]!);
    const rowsOf = (output: Output, thin: boolean): string[] => output.stdout.split('\n').filter((line) => line !== '' && isThinRow(line) === thin);
    const tokens = (rows: string[]): string[][] => rows.map((row) => row.trim().split(/\s+/));
    lines.forEach(([command, args], index) => {
      const what = `${command} ${args.join(' ')}`;
      const before = thinBefore[index]!;
      expect(before.exitCode, `${what}: ${before.stderr}`).toBe(stockBefore[index]!.exitCode);
      if (command === 'vgs' || command === 'pvs') {
        expect(before.stdout, what).toBe(stockBefore[index]!.stdout);
      } else if (command === 'lvdisplay') {
        // A thin LV's lines are all about the thin LV: after replay, stock prints exactly them.
        if (args[0] === vg) expect(lvdisplayBlocks(before.stdout, thinNames), what).toEqual(lvdisplayBlocks(stockAfter[index]!.stdout, thinNames));
        else expect(before.stdout, what).toBe(stockAfter[index]!.stdout);
      } else if (args.includes('--unbuffered')) {
        // No alignment across rows: each thin row is byte for byte stock's after replay, each other row stock's now.
        expect(rowsOf(before, true), what).toEqual(rowsOf(stockAfter[index]!, true));
        expect(rowsOf(before, false), what).toEqual(rowsOf(stockBefore[index]!, false));
      } else {
        expect(tokens(rowsOf(before, true)), what).toEqual(tokens(rowsOf(stockAfter[index]!, true)));
        expect(tokens(rowsOf(before, false)), what).toEqual(tokens(rowsOf(stockBefore[index]!, false)));
      }
    });
    // Once replayed, there is nothing left to add: thinlv prints stock lvm's bytes again.
    for (const [index, [command, args]] of lines.entries()) {
      const now = await thinlv(command, args);
      expect({ stdout: now.stdout, exitCode: now.exitCode }, `${command} ${args.join(' ')} after replay`).toEqual({ stdout: stockAfter[index]!.stdout, exitCode: 0 });
    }
  });
});

/** lvdisplay's blocks of the given LVs, by LV name. */
function lvdisplayBlocks(stdout: string, names: readonly string[]): Record<string, string> {
  const blocks: Record<string, string> = {};
  for (const block of stdout.split('  --- Logical volume ---\n')) {
    const name = /^ {2}LV Name +(\S+)$/m.exec(block)?.[1];
    if (name !== undefined && names.includes(name)) blocks[name] = block;
  }
  return blocks;
}
