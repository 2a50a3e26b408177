import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CommitError, LvmError } from '../../src/errors.js';
import type { MetadataChange } from '../../src/metadata/applyChanges.js';
import { commitBatch, readVgMetadata } from '../../src/lvm/commitBatch.js';
import { printVgMetadata } from '../../src/lvm/metadataText.js';
import type { LvmRunner } from '../../src/lvm/runLvm.js';
import { withVgLock } from '../../src/lvm/vgLock.js';
import type { VgMetadata } from '../../src/metadata/vgModel.js';
import { createLoopVg, realLvmUnavailableReason, type LoopVg } from '../fixtures/loopVg.js';

const skipReason = realLvmUnavailableReason();

/** `lvs` as stock LVM prints it: LV name -> its PE ranges in logical order. */
async function lvsPeRanges(vg: LoopVg): Promise<Map<string, string[]>> {
  const { stdout } = await vg.lvm.run('lvs', ['--reportformat', 'json', '-o', 'lv_name,seg_start_pe,seg_pe_ranges', '--segments', vg.vgName]);
  const rows = (JSON.parse(stdout) as { report: { seg: { lv_name: string; seg_start_pe: string; seg_pe_ranges: string }[] }[] }).report[0]!.seg;
  const byLv = new Map<string, { start: number; range: string }[]>();
  for (const row of rows) {
    const list = byLv.get(row.lv_name) ?? [];
    list.push({ start: Number(row.seg_start_pe), range: row.seg_pe_ranges });
    byLv.set(row.lv_name, list);
  }
  return new Map([...byLv].map(([name, list]) => [name, list.sort((a, b) => a.start - b.start).map((s) => s.range)]));
}

function countingRunner(inner: LvmRunner): LvmRunner & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    run(command, args, options) {
      calls.push(command);
      return inner.run(command, args, options);
    },
  };
}

async function seqnoOf(vg: LoopVg): Promise<number> {
  return (await readVgMetadata(vg.lvm, vg.vgName)).seqno;
}

describe.skipIf(skipReason !== undefined)('atomic batch commit on real LVM', () => {
  let vg: LoopVg;
  beforeAll(async () => {
    vg = await createLoopVg({ sizeBytes: 16 * 1024 ** 3 });
  });
  afterAll(async () => {
    await vg?.destroy();
  });

  test('a batch of 1,000 changes lands as exactly one seqno increment and lvs shows exactly the planned segments', async () => {
    const base = await readVgMetadata(vg.lvm, vg.vgName);
    const pv = vg.device;
    const lvCount = 250;
    const changes: MetadataChange[] = [];
    const expected = new Map<string, string[]>();
    for (let i = 0; i < lvCount; i++) {
      const name = `batch${i}`;
      changes.push({ kind: 'createLv', name, ranges: [{ pv, firstExtent: i * 2, extentCount: 1 }], tags: [`n${i}`], activationSkip: true });
      expected.set(name, [`${pv}:${i * 2}-${i * 2}`]);
    }
    // 750 appends, 3 per LV, far apart so each becomes its own segment.
    for (let j = 0; j < 3 * lvCount; j++) {
      const name = `batch${j % lvCount}`;
      const firstExtent = 600 + j * 2;
      changes.push({ kind: 'appendRanges', lv: name, ranges: [{ pv, firstExtent, extentCount: 1 }] });
      expected.get(name)!.push(`${pv}:${firstExtent}-${firstExtent}`);
    }
    expect(changes).toHaveLength(1000);

    const result = await commitBatch(vg.lvm, base, changes);

    expect(result.seqno).toBe(base.seqno + 1);
    expect(await seqnoOf(vg)).toBe(base.seqno + 1);
    const actual = await lvsPeRanges(vg);
    for (const [name, ranges] of expected) expect(actual.get(name), name).toEqual(ranges);
    expect([...actual.keys()].filter((n) => n.startsWith('batch'))).toHaveLength(lvCount);
    const { stdout } = await vg.lvm.run('lvs', ['--reportformat', 'json', '-o', 'lv_name,lv_tags,lv_skip_activation', 'batch7'.replace(/^/, `${vg.vgName}/`)]);
    expect(stdout).toContain('"lv_tags":"n7"');
    expect(stdout).toContain('"lv_skip_activation":"skip activation"');
    await vg.lvm.run('vgck', [vg.vgName]);
  });

  test('a commit from a stale seqno is refused and changes nothing', async () => {
    const base = await readVgMetadata(vg.lvm, vg.vgName);
    // Someone else writes the VG after we read it.
    await vg.lvm.run('lvcreate', ['-an', '-Zn', '-l', '1', '-n', 'byhand', vg.vgName]);
    const afterHand = await readVgMetadata(vg.lvm, vg.vgName);
    expect(afterHand.seqno).toBe(base.seqno + 1);

    const free = 3900;
    const attempt = commitBatch(vg.lvm, base, [{ kind: 'createLv', name: 'stale', ranges: [{ pv: vg.device, firstExtent: free, extentCount: 1 }] }]);
    await expect(attempt).rejects.toMatchObject({ code: 'STALE_SEQNO', data: { expectedSeqno: base.seqno, currentSeqno: base.seqno + 1 } });

    const after = await readVgMetadata(vg.lvm, vg.vgName);
    expect(after.seqno).toBe(afterHand.seqno);
    expect(after.lvs.map((lv) => lv.name)).not.toContain('stale');
    expect(after).toEqual({ ...afterHand, header: after.header });
  });

  test('a batch that would put one extent in two LVs is refused before lvm runs', async () => {
    const base = await readVgMetadata(vg.lvm, vg.vgName);
    const counting = countingRunner(vg.lvm);
    const taken = base.lvs.find((lv) => lv.name === 'batch3')!.segments[0]!.stripes[0]!;
    const overlapping: MetadataChange[][] = [
      [
        { kind: 'createLv', name: 'ov1', ranges: [{ pv: vg.device, firstExtent: 3950, extentCount: 3 }] },
        { kind: 'createLv', name: 'ov2', ranges: [{ pv: vg.device, firstExtent: 3952, extentCount: 3 }] },
      ],
      [{ kind: 'appendRanges', lv: 'batch1', ranges: [{ pv: vg.device, firstExtent: taken.firstExtent, extentCount: 1 }] }],
      [{ kind: 'createLv', name: 'beyond', ranges: [{ pv: vg.device, firstExtent: 100_000, extentCount: 1 }] }],
    ];
    for (const changes of overlapping) {
      await expect(commitBatch(counting, base, changes)).rejects.toMatchObject({ code: 'INVALID_BATCH' });
    }
    expect(counting.calls).toEqual([]);
    expect(await seqnoOf(vg)).toBe(base.seqno);
  });

  test('metadata printed by thinlv is accepted by vgcfgrestore and reads back identical', async () => {
    const base = await readVgMetadata(vg.lvm, vg.vgName);
    const edited: VgMetadata = { ...base, tags: [...base.tags, 'thinlv_roundtrip'] };
    const dir = mkdtempSync(join(tmpdir(), 'thinlv-rt-'));
    try {
      const file = join(dir, 'vg.txt');
      writeFileSync(file, printVgMetadata(edited));
      await vg.lvm.run('vgcfgrestore', ['--yes', '-f', file, vg.vgName]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const back = await readVgMetadata(vg.lvm, vg.vgName);
    expect(back.seqno).toBe(base.seqno + 1);
    expect({ ...back, header: [], seqno: 0 }).toEqual({ ...edited, header: [], seqno: 0 });
  });

  test('moving ranges between LVs and tags on the VG land together in one commit', async () => {
    const base = await readVgMetadata(vg.lvm, vg.vgName);
    const pv = vg.device;
    await commitBatch(vg.lvm, base, [
      { kind: 'createLv', name: 'pool', ranges: [{ pv, firstExtent: 3700, extentCount: 40 }] },
      { kind: 'createLv', name: 'target', ranges: [{ pv, firstExtent: 3699, extentCount: 1 }] },
      { kind: 'setTag', tag: 'thinlv_applied_hostA=1' },
    ]);
    const mid = await readVgMetadata(vg.lvm, vg.vgName);
    await commitBatch(vg.lvm, mid, [
      { kind: 'moveRanges', fromLv: 'pool', toLv: 'target', ranges: [{ pv, firstExtent: 3700, extentCount: 5 }, { pv, firstExtent: 3720, extentCount: 2 }] },
      { kind: 'releaseRanges', lv: 'pool', ranges: [{ pv, firstExtent: 3735, extentCount: 5 }] },
      { kind: 'setTag', tag: 'thinlv_applied_hostA=2', replacingPrefix: 'thinlv_applied_hostA=' },
    ]);
    const after = await readVgMetadata(vg.lvm, vg.vgName);
    expect(after.seqno).toBe(mid.seqno + 1);
    expect(after.tags).toContain('thinlv_applied_hostA=2');
    expect(after.tags).not.toContain('thinlv_applied_hostA=1');
    const ranges = await lvsPeRanges(vg);
    // 3699 then 3700-3704 are contiguous, so LVM (and thinlv) keep them as one segment.
    expect(ranges.get('target')).toEqual([`${pv}:3699-3704`, `${pv}:3720-3721`]);
    expect(ranges.get('pool')).toEqual([`${pv}:3705-3719`, `${pv}:3722-3734`]);
    await vg.lvm.run('vgck', [vg.vgName]);
  });

  test("holding the VG lock blocks other lvm commands on this machine until it is released", async () => {
    const started = Date.now();
    await withVgLock(vg.vgName, async () => {
      await expect(vg.lvm.run('vgs', [vg.vgName], { timeoutMs: 1500 })).rejects.toMatchObject({ code: 'LVM_TIMEOUT' });
    });
    await vg.lvm.run('vgs', [vg.vgName], { timeoutMs: 30_000 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
  });

  test('lvm failures are classified: an unknown VG is VG_NOT_FOUND', async () => {
    const error = await vg.lvm.run('vgs', ['no_such_vg_for_thinlv']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LvmError);
    expect(error).toMatchObject({ code: 'VG_NOT_FOUND' });
  });
});

describe.skipIf(skipReason !== undefined)('a VG whose metadata area is too small', () => {
  let vg: LoopVg;
  beforeAll(async () => {
    vg = await createLoopVg({ sizeBytes: 9 * 1024 ** 3, metadataSizeMiB: 1 });
  });
  afterAll(async () => {
    await vg?.destroy();
  });

  test('a batch that does not fit is refused with METADATA_AREA_TOO_SMALL and nothing is written', async () => {
    const base = await readVgMetadata(vg.lvm, vg.vgName);
    const longTag = 'x'.repeat(1000);
    const changes: MetadataChange[] = Array.from({ length: 2000 }, (_, i) => ({
      kind: 'createLv' as const,
      name: `big${i}`,
      ranges: [{ pv: vg.device, firstExtent: i, extentCount: 1 }],
      tags: [`${longTag}${i}`],
    }));
    const error = await commitBatch(vg.lvm, base, changes).catch((e: unknown) => e);
    expect(error, String(error)).toMatchObject({ code: 'METADATA_AREA_TOO_SMALL' });
    const after = await readVgMetadata(vg.lvm, vg.vgName);
    expect(after.seqno).toBe(base.seqno);
    expect(after.lvs).toEqual([]);
    expect(error).not.toBeInstanceOf(CommitError);
  });
});
