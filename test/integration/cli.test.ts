import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { commitBatch, readVgMetadata } from '../../src/lvm/commitBatch.js';
import type { MetadataChange } from '../../src/metadata/applyChanges.js';
import type { InspectJson } from '../../src/cli/commands/inspect.js';
import { replaceInMetadataText } from '../fixtures/editMetadataArea.js';
import { createLoopVg, realLvmUnavailableReason, type LoopVg } from '../fixtures/loopVg.js';
import { runCli } from '../fixtures/runCli.js';

const skipReason = realLvmUnavailableReason();
const MiB = 1024 * 1024;

interface LvsSegRow {
  lv_name: string;
  lv_size: string;
  lv_tags: string;
  seg_start_pe: string;
  seg_pe_ranges: string;
}

async function lvsSegments(vg: LoopVg): Promise<LvsSegRow[]> {
  const { stdout } = await vg.lvm.run('lvs', [
    '--reportformat', 'json', '--units', 'b', '--nosuffix', '--segments',
    '-o', 'lv_name,lv_size,lv_tags,seg_start_pe,seg_pe_ranges', vg.vgName,
  ]);
  return (JSON.parse(stdout) as { report: { seg: LvsSegRow[] }[] }).report[0]!.seg;
}

const rangeText = (s: { pv: string; firstExtent: number; extentCount: number }): string =>
  `${s.pv}:${s.firstExtent}-${s.firstExtent + s.extentCount - 1}`;

describe.skipIf(skipReason !== undefined)('thinlv inspect and thinlv check on a real VG', () => {
  let vg: LoopVg;
  beforeAll(async () => {
    vg = await createLoopVg({ sizeBytes: 2 * 1024 ** 3 });
    const pv = vg.device;
    const base = await readVgMetadata(vg.lvm, vg.vgName);
    await commitBatch(vg.lvm, base, [
      { kind: 'createLv', name: 'vm1_disk', ranges: [{ pv, firstExtent: 0, extentCount: 10 }, { pv, firstExtent: 40, extentCount: 3 }], tags: ['thinlv_virtual=10737418240'], activationSkip: true },
      { kind: 'createLv', name: 'vm2_disk', ranges: [{ pv, firstExtent: 10, extentCount: 5 }, { pv, firstExtent: 100, extentCount: 1 }, { pv, firstExtent: 20, extentCount: 2 }] },
      { kind: 'createLv', name: 'plain', ranges: [{ pv, firstExtent: 200, extentCount: 7 }], tags: ['a', 'b'] },
      { kind: 'setTag', tag: 'pool=gold' },
    ]);
  });
  afterAll(async () => {
    await vg?.destroy();
  });

  test('inspect --json agrees with lvs -o seg_pe_ranges for every LV', async () => {
    const result = await runCli(['inspect', vg.vgName, ...vg.cliDeviceArgs, '--json']);
    expect(result.exitCode, result.stderr).toBe(0);
    const view = JSON.parse(result.stdout) as InspectJson;
    const rows = await lvsSegments(vg);

    expect(view.name).toBe(vg.vgName);
    expect(view.tags).toEqual(['pool=gold']);
    expect(view.extentSizeBytes).toBe(4 * MiB);
    expect(view.pvs.map((p) => p.device)).toEqual([vg.device]);
    expect(new Set(view.lvs.map((lv) => lv.name))).toEqual(new Set(rows.map((r) => r.lv_name)));
    for (const lv of view.lvs) {
      const lvRows = rows.filter((r) => r.lv_name === lv.name).sort((a, b) => Number(a.seg_start_pe) - Number(b.seg_start_pe));
      expect(lv.segments.map(rangeText), lv.name).toEqual(lvRows.map((r) => r.seg_pe_ranges));
      expect(lv.segments.map((s) => s.logicalStart), lv.name).toEqual(lvRows.map((r) => Number(r.seg_start_pe)));
      expect(lv.sizeBytes, lv.name).toBe(Number(lvRows[0]!.lv_size));
      expect(lv.tags.join(','), lv.name).toBe(lvRows[0]!.lv_tags);
    }
    expect(view.lvs.find((lv) => lv.name === 'vm1_disk')?.activationSkip).toBe(true);
    expect(view.lvs.find((lv) => lv.name === 'plain')?.activationSkip).toBe(false);
    const allocated = view.lvs.reduce((sum, lv) => sum + lv.extentCount, 0);
    expect(view.freeRanges.reduce((sum, r) => sum + r.extentCount, 0)).toBe(view.extentCount - allocated);
    expect(view.freeExtentCount).toBe(view.extentCount - allocated);
  });

  test('inspect without --json prints a table an operator can read', async () => {
    const result = await runCli(['inspect', vg.vgName, ...vg.cliDeviceArgs]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toContain(`VG ${vg.vgName}`);
    expect(result.stdout).toMatch(new RegExp(`vm2_disk\\s+32\\.00 MiB\\s+${vg.device}:10-14 ${vg.device}:100 ${vg.device}:20-21`));
  });

  test('check passes on a clean VG', async () => {
    const result = await runCli(['check', vg.vgName, ...vg.cliDeviceArgs, '--json']);
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as { ok: boolean; findings: unknown[]; extentCount: number; freeExtentCount: number };
    expect(report.ok).toBe(true);
    expect(report.findings).toEqual([]);
    expect(report.extentCount).toBeGreaterThan(0);
    const human = await runCli(['check', vg.vgName, ...vg.cliDeviceArgs]);
    expect(human.exitCode).toBe(0);
    expect(human.stdout).toContain('clean (0 errors, 0 warnings)');
  });

  test('logs go to stderr as pino JSON lines, so stdout holds the one --json document even at --log-level trace', async () => {
    const result = await runCli(['inspect', vg.vgName, ...vg.cliDeviceArgs, '--json', '--log-level', 'trace']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect((JSON.parse(result.stdout) as InspectJson).name).toBe(vg.vgName);
    const logLines = result.stderr.split('\n').filter((line) => line.length > 0);
    expect(logLines.length).toBeGreaterThan(0);
    for (const line of logLines) expect(JSON.parse(line)).toMatchObject({ level: expect.any(Number), msg: expect.any(String) });
    expect(logLines.some((line) => line.includes('device-mapper probe'))).toBe(true);
  });

  test('bad input gives one clear line and a non-zero exit code, and a JSON error with --json', async () => {
    const unknown = await runCli(['inspect', 'no_such_vg_thinlv', ...vg.cliDeviceArgs]);
    expect(unknown.exitCode).toBe(3);
    expect(unknown.stderr.trim().split('\n')).toHaveLength(1);
    expect(unknown.stderr).toContain('no_such_vg_thinlv');

    const unknownJson = await runCli(['check', 'no_such_vg_thinlv', ...vg.cliDeviceArgs, '--json']);
    expect(unknownJson.exitCode).toBe(3);
    expect(JSON.parse(unknownJson.stdout)).toMatchObject({ ok: false, error: { code: 'VG_NOT_FOUND' } });

    const badName = await runCli(['inspect', 'bad/name', '--json']);
    expect(badName.exitCode).toBe(2);
    expect(JSON.parse(badName.stdout)).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT' } });

    const noLvm = await runCli(['inspect', vg.vgName, '--lvm-path', '/nonexistent/lvm', '--json']);
    expect(noLvm.exitCode).toBe(3);
    expect(JSON.parse(noLvm.stdout)).toMatchObject({ error: { code: 'LVM_MISSING' } });

    const noCommand = await runCli([]);
    expect(noCommand.exitCode).toBe(2);
    expect(noCommand.stderr).toContain('thinlv');
  });
});

describe.skipIf(skipReason !== undefined)('thinlv check on VGs made inconsistent by hand', () => {
  test('two LVs mapped onto the same extents by a hand edit of the on-disk metadata are reported', async () => {
    const vg = await createLoopVg({ sizeBytes: 1024 ** 3 });
    try {
      const pv = vg.device;
      await commitBatch(vg.lvm, await readVgMetadata(vg.lvm, vg.vgName), [
        { kind: 'createLv', name: 'first', ranges: [{ pv, firstExtent: 10, extentCount: 10 }] },
        { kind: 'createLv', name: 'second', ranges: [{ pv, firstExtent: 30, extentCount: 10 }] },
      ]);
      expect((await runCli(['check', vg.vgName, ...vg.cliDeviceArgs])).exitCode).toBe(0);

      // Point "second" at extents 15-24, which "first" holds.
      replaceInMetadataText(vg.device, '"pv0", 30', '"pv0", 15');

      const result = await runCli(['check', vg.vgName, ...vg.cliDeviceArgs, '--json']);
      expect(result.exitCode, result.stdout + result.stderr).toBe(1);
      const report = JSON.parse(result.stdout) as { ok: boolean; findings: { code: string; severity: string }[] };
      expect(report.ok).toBe(false);
      expect(report.findings).toContainEqual(expect.objectContaining({ code: 'VG_METADATA_CORRUPT', severity: 'error' }));
    } finally {
      await vg.destroy();
    }
  });

  test('a metadata area filled past 80% by hand-made LVs is reported as an error', async () => {
    const vg = await createLoopVg({ sizeBytes: 4 * 1024 ** 3, metadataSizeMiB: 1 });
    try {
      const pv = vg.device;
      const longTag = 'note_'.padEnd(1000, 'x');
      let next = 0;
      let usedRatio = 0;
      for (let round = 0; round < 60 && usedRatio < 0.8; round++) {
        const changes: MetadataChange[] = Array.from({ length: 20 }, () => {
          const i = next++;
          return { kind: 'createLv' as const, name: `filler${i}`, ranges: [{ pv, firstExtent: i, extentCount: 1 }], tags: [`${longTag}${i}`] };
        });
        await commitBatch(vg.lvm, await readVgMetadata(vg.lvm, vg.vgName), changes);
        const inspect = JSON.parse((await runCli(['inspect', vg.vgName, ...vg.cliDeviceArgs, '--json'])).stdout) as InspectJson;
        usedRatio = inspect.metadataArea.usedRatio;
        if (round === 0) expect(usedRatio).toBeLessThan(0.5);
      }
      expect(usedRatio).toBeGreaterThanOrEqual(0.8);
      // Stock LVM is still content with the VG: this is thinlv's own early warning.
      await vg.lvm.run('vgck', [vg.vgName]);

      const result = await runCli(['check', vg.vgName, ...vg.cliDeviceArgs, '--json']);
      expect(result.exitCode).toBe(1);
      const report = JSON.parse(result.stdout) as { ok: boolean; findings: { code: string; severity: string }[] };
      expect(report.findings).toContainEqual(expect.objectContaining({ code: 'METADATA_AREA_FULL', severity: 'error' }));
    } finally {
      await vg.destroy();
    }
  });
});
