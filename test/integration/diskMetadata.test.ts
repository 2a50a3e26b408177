// The VG read straight from its PVs (src/lvm/diskMetadata.ts) against lvm's own fullreport
// of the same VG, on real LVM: equal after every kind of change lvm and thinlv make, when
// the metadata text wraps round its circular buffer, and a miss (never a wrong answer)
// when the bytes are not what lvm would trust.

import { closeSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DiskMetadataMiss, readDevicePv, readVgFromDisk, readVgMetadataFromDisk } from '../../src/lvm/diskMetadata.js';
import { textPieces } from '../../src/lvm/pvLabel.js';
import { parseVgMetadata } from '../../src/lvm/metadataText.js';
import { readVgReport, vgTextKey } from '../../src/lvm/readVgReport.js';
import type { LvmRunner } from '../../src/lvm/runLvm.js';
import { VG_CACHE_DIR } from '../../src/lvm/vgReportCache.js';
import { commitBatch, readVgMetadata } from '../../src/lvm/commitBatch.js';
import { computeFreeExtents } from '../../src/metadata/checkLayout.js';
import { createLoopVg, realLvmUnavailableReason, type LoopVg } from '../fixtures/loopVg.js';
import { createThinlvTestVg, type ThinlvTestVg } from '../fixtures/thinlvVg.js';

const skip = realLvmUnavailableReason() !== undefined;

async function expectSameAsLvm(vg: LoopVg): Promise<void> {
  const fromLvm = await readVgReport(vg.lvm, vg.vgName, { via: 'lvm' });
  const fromDisk = await readVgFromDisk([vg.device], vg.vgName);
  expect(fromDisk).toEqual(fromLvm);
}

describe.skipIf(skip)('a VG read from its PVs equals lvm fullreport', () => {
  let t: ThinlvTestVg;
  beforeAll(async () => {
    t = await createThinlvTestVg({ hosts: ['h1', 'h2'], thinLvCount: 3, quantumExtents: 8, lowWaterExtents: 2 });
  }, 120_000);
  afterAll(async () => t?.destroy());

  test('a thinlv VG: hosts, rings, pools, thin LVs with tags and activation skip', async () => {
    await expectSameAsLvm(t.vg);
  });

  test('after lvm itself changes it: an LV of two segments, tags out of order, a renamed LV', async () => {
    const lvm = t.vg.lvm;
    const free = computeFreeExtents(await readVgMetadata(lvm, t.vg.vgName)).ranges().find((r) => r.extentCount >= 200)!;
    const at = (offset: number, count: number): string => `${t.vg.device}:${free.firstExtent + offset}-${free.firstExtent + offset + count - 1}`;
    await lvm.run('lvcreate', ['-n', 'plain', '-l', '3', '--addtag', 'zeta', '--addtag', 'alpha', '-an', '-Zn', '--yes', t.vg.vgName, at(0, 3)]);
    await lvm.run('lvextend', ['-l', '+2', `${t.vg.vgName}/plain`, at(100, 2)]);
    await lvm.run('lvcreate', ['-n', 'blocker', '-l', '1', '-an', '-Zn', '--yes', t.vg.vgName, at(50, 1)]);
    await lvm.run('lvrename', [t.vg.vgName, 'blocker', 'Blocker_2']);
    await lvm.run('vgchange', ['--addtag', 'aaa_first', t.vg.vgName]);
    const vg = await readVgReport(lvm, t.vg.vgName, { via: 'lvm' });
    expect(vg.lvs.find((lv) => lv.name === 'plain')!.segments.length).toBe(2);
    await expectSameAsLvm(t.vg);
  });

  test('the text read is what vgcfgbackup gives, and a byte changed in it is a miss, not an answer', async () => {
    const pv = (await readDevicePv(t.vg.device))!;
    const area = pv.areas[0]!;
    expect(pv.label.pvUuid).toBe((await readVgMetadata(t.vg.lvm, t.vg.vgName)).pvs[0]!.uuid);
    // Kept as the bytes read, not decoded whole: a parse decodes them a piece at a time.
    expect(area.text).toBeInstanceOf(Uint8Array);
    expect(parseVgMetadata(Buffer.from(area.text).toString('utf8')).seqno).toBe((await readVgMetadata(t.vg.lvm, t.vg.vgName)).seqno);
    const piece = textPieces(area.header)[0]!;
    // Flip one byte of the committed text on our own test device, check, then put it back.
    const at = piece.offsetBytes + 100;
    const fd = openSync(t.vg.device, 'r+');
    const original = Buffer.alloc(1);
    readSync(fd, original, 0, 1, at);
    try {
      writeSync(fd, Buffer.from([original[0]! ^ 0x20]), 0, 1, at);
      await expect(readVgFromDisk([t.vg.device], t.vg.vgName)).rejects.toThrow(/checksum mismatch/);
      await expect(readVgFromDisk([t.vg.device], t.vg.vgName)).rejects.toBeInstanceOf(DiskMetadataMiss);
    } finally {
      writeSync(fd, original, 0, 1, at);
      closeSync(fd);
    }
    await expectSameAsLvm(t.vg);
  });

  test('the metadata a commit reads from the PVs is what vgcfgbackup gives, its header aside', async () => {
    const fromLvm = await readVgMetadata(t.vg.lvm, t.vg.vgName, { via: 'lvm' });
    const { header: _h1, ...fromDisk } = await readVgMetadataFromDisk([t.vg.device], t.vg.vgName);
    const { header: _h2, ...expected } = fromLvm;
    expect(fromDisk).toEqual(expected);
  });

  test("a model read before is the answer while the PVs' headers say its text is the VG's, and not once anything wrote", async () => {
    const { device, vgName, lvm } = t.vg;
    const before = await readVgMetadataFromDisk([device], vgName);
    expect(await readVgMetadataFromDisk([device], vgName, before)).toBe(before);
    // A model this module did not read (here a copy) vouches for nothing: read again.
    const copy = structuredClone(before);
    const reread = await readVgMetadataFromDisk([device], vgName, copy);
    expect(reread).not.toBe(copy);
    expect(reread).toEqual(before);
    // lvm writes: a new text, so a new model.
    await lvm.run('vgchange', ['--addtag', 'unless_unchanged', vgName]);
    const afterLvm = await readVgMetadataFromDisk([device], vgName, before);
    expect(afterLvm).not.toBe(before);
    expect(afterLvm.seqno).toBe(before.seqno + 1);
    expect(afterLvm.tags).toContain('unless_unchanged');
    // A commit on the old model is refused, though the old model is what its step 3 would have reused.
    await expect(commitBatch(lvm, before, [{ kind: 'setTag', tag: 'stale_commit' }])).rejects.toMatchObject({ code: 'STALE_SEQNO' });
    // A commit's read-back is known: the next read with it parses nothing, and lvm agrees with it.
    const { metadata: committed } = await commitBatch(lvm, afterLvm, [{ kind: 'setTag', tag: 'fresh_commit' }]);
    expect(await readVgMetadataFromDisk([device], vgName, committed)).toBe(committed);
    const { header: _h1, ...fromLvm } = await readVgMetadata(lvm, vgName, { via: 'lvm' });
    const { header: _h2, ...known } = committed;
    expect(known).toEqual(fromLvm);
    // Another VG's name never takes this VG's model.
    await expect(readVgMetadataFromDisk([device], 'thinlvtest_not_this_vg', committed)).rejects.toBeInstanceOf(DiskMetadataMiss);
  });

  test("the text's key from the header sectors alone: the same until anything writes", async () => {
    const { vgName, lvm } = t.vg;
    const before = await vgTextKey(lvm, vgName);
    expect(before).toBeDefined();
    expect(await vgTextKey(lvm, vgName)).toBe(before);
    await lvm.run('vgchange', ['--addtag', 'text_key', vgName]);
    const after = await vgTextKey(lvm, vgName);
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
    // A runner that knows no devices (and remembers none): only lvm could say.
    expect(await vgTextKey({ run: lvm.run }, vgName)).toBeUndefined();
  });

  test('a command without --devices reads the PVs where lvm last found them, and asks lvm again when they are not there', async () => {
    const calls: string[] = [];
    const lvm: LvmRunner = {
      rememberPvDevices: true,
      run: (command, args, options) => {
        calls.push(command);
        return t.vg.lvm.run(command, args, options);
      },
    };
    const devicesFile = join(VG_CACHE_DIR, `${t.vg.vgName}.devices`);
    rmSync(devicesFile, { force: true });
    const first = await readVgReport(lvm, t.vg.vgName);
    expect(calls).toEqual(['fullreport']);
    expect(JSON.parse(readFileSync(devicesFile, 'utf8'))).toEqual([t.vg.device]);
    expect(await readVgReport(lvm, t.vg.vgName)).toEqual(first);
    expect(calls).toEqual(['fullreport']);
    writeFileSync(devicesFile, JSON.stringify(['/dev/null']));
    expect(await readVgReport(lvm, t.vg.vgName)).toEqual(first);
    expect(calls).toEqual(['fullreport', 'fullreport']);
    expect(JSON.parse(readFileSync(devicesFile, 'utf8'))).toEqual([t.vg.device]);
    rmSync(devicesFile, { force: true });
  });

  test('a VG name that is not on the device, and a device that is not a PV, are misses', async () => {
    await expect(readVgFromDisk([t.vg.device], `${t.vg.vgName}x`)).rejects.toThrow(/no metadata of VG/);
    await expect(readVgFromDisk(['/dev/null'], t.vg.vgName)).rejects.toBeInstanceOf(DiskMetadataMiss);
  });
});

describe.skipIf(skip)('a small metadata area', () => {
  let vg: LoopVg;
  beforeAll(async () => {
    vg = await createLoopVg({ sizeBytes: 4 * 1024 ** 3, extentSizeMiB: 1, metadataSizeMiB: 1 });
  }, 120_000);
  afterAll(async () => vg?.destroy());

  test('is read right as commits go round its circular buffer', async () => {
    // Each commit writes the text after the previous copy; 200 LVs more per commit fill a
    // 1 MiB area within a few commits, and the next copy starts again at its beginning.
    // (lvm 2.03 starts a copy that would not fit at the beginning rather than wrapping
    // it; a wrapped copy from another lvm is read as the unit tests show.)
    const offsets: number[] = [];
    for (let round = 0; round < 12 && !offsets.some((o, i) => i > 0 && o < offsets[i - 1]!); round++) {
      const base = await readVgMetadata(vg.lvm, vg.vgName);
      const free = computeFreeExtents(base).ranges()[0]!;
      const names = Array.from({ length: 200 }, (_, i) => `r${round}_${i}_${'x'.repeat(40)}`);
      await commitBatch(vg.lvm, base, names.map((name, i) => ({ kind: 'createLv' as const, name, ranges: [{ pv: free.pv, firstExtent: free.firstExtent + i, extentCount: 1 }], tags: [`t${round}`] })));
      offsets.push((await readDevicePv(vg.device))!.areas[0]!.header.text!.offsetBytes);
      await expectSameAsLvm(vg);
    }
    expect(offsets.some((o, i) => i > 0 && o < offsets[i - 1]!), `text offsets ${offsets.join(', ')}`).toBe(true);
  }, 300_000);
});
