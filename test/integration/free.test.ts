// `thinlv free` on real LVM on a loop device, run as an operator would (the built CLI):
// its numbers against metadata and LVM's own free count, a host's journaled extents
// not yet replayed, a journal that cannot be read, and --check's exit codes as ordinary
// LVs fill the VG past the warning and critical levels.

import { describe, expect, test } from 'vitest';
import { openFileRegion } from '../../journal/index.js';
import { TAG, hostLvNames, readThinlvVg } from '../../src/format/thinlvVg.js';
import { readVgMetadata } from '../../src/lvm/commitBatch.js';
import { readVgReport } from '../../src/lvm/readVgReport.js';
import { computeFreeExtents } from '../../src/metadata/checkLayout.js';
import { lvExtentCount, type VgMetadata } from '../../src/metadata/vgModel.js';
import { MasterSession, runPass } from '../../src/master/replayPass.js';
import { reserveExtentCount } from '../../src/pool/planRefill.js';
import type { FreeSpaceReport } from '../../src/report/freeSpace.js';
import { ringLocation } from '../../src/rings/ringRegions.js';
import { realLvmUnavailableReason } from '../fixtures/loopVg.js';
import { runCli } from '../fixtures/runCli.js';
import { AllocatorHost } from '../fixtures/allocatorHost.js';
import { createThinlvTestVg, fillWithOrdinaryLv, type ThinlvTestVg } from '../fixtures/thinlvVg.js';

const skipReason = realLvmUnavailableReason();
const GIB = 1024 ** 3;

const extentsOf = (vg: VgMetadata, name: string): number => {
  const lv = vg.lvs.find((l) => l.name === name);
  return lv === undefined ? 0 : lvExtentCount(lv);
};

async function free(t: ThinlvTestVg, ...args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string; json: FreeSpaceReport | undefined }> {
  const result = await runCli(['free', t.vg.vgName, ...args, ...t.cliArgs()]);
  return { ...result, json: args.includes('--json') && result.exitCode <= 2 ? (JSON.parse(result.stdout) as FreeSpaceReport) : undefined };
}

/** Adds an ordinary LV so that at least `permille` of the VG is committed. */
async function fillTo(t: ThinlvTestVg, permille: number, name: string): Promise<void> {
  await fillWithOrdinaryLv(t, name, (vg) => {
    const total = vg.pvs.reduce((n, pv) => n + pv.peCount, 0);
    return total - Math.ceil((total * permille) / 1000);
  });
}

/** Overwrites the first block of `host`'s journal ring (its header) with zeros. */
async function wipeJournalHeader(t: ThinlvTestVg, host: string): Promise<void> {
  const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
  const location = ringLocation(vg, hostLvNames(host).journal);
  const region = await openFileRegion(location.device, location);
  try {
    await region.write(0, region.allocateBuffer(4096));
  } finally {
    await region.close();
  }
}

describe.skipIf(skipReason !== undefined)('thinlv free on a real VG', () => {
  test('--json agrees with metadata and LVM, counts a host\'s unreplayed allocations, and writes nothing', async () => {
    const t = await createThinlvTestVg({ sizeBytes: 4 * GIB, hosts: ['h1', 'h2', 'h3'], thinLvCount: 2, quantumExtents: 16, lowWaterExtents: 8 });
    let host: AllocatorHost | undefined;
    try {
      host = await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'h1');
      await host.applyGrants();
      await host.allocate('disk0', 3);
      await host.allocate('disk0', 2);
      const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      const thinlv = readThinlvVg(vg);

      const result = await free(t, '--json');
      expect(result.exitCode, result.stderr).toBe(0);
      const r = result.json!;
      const extentCount = vg.pvs.reduce((n, pv) => n + pv.peCount, 0);
      const rings = ['h1', 'h2', 'h3'].reduce((n, h) => n + extentsOf(vg, hostLvNames(h).journal) + extentsOf(vg, hostLvNames(h).grants), 0);
      const pool = (h: string): number => extentsOf(vg, hostLvNames(h).free);
      expect(r).toMatchObject({
        vg: t.vg.vgName,
        seqno: vg.seqno,
        extentSizeBytes: 4 * 1024 * 1024,
        extentCount,
        thinLvCount: 2,
        thinAllocatedExtents: extentsOf(vg, 'disk0') + extentsOf(vg, 'disk1'),
        otherAllocatedExtents: 0,
        thinlvMetadataExtents: rings,
        poolExtents: pool('h1') + pool('h2') + pool('h3') - 5,
        unreplayedExtents: 5,
        freeExtents: computeFreeExtents(vg).extentCount,
        reserveExtents: reserveExtentCount(vg, thinlv.settings.reservePermille),
        virtualBytes: 200 * GIB,
        level: 'ok',
        timeToFullSeconds: null,
      });
      // LVM's own count of free extents, from its report.
      expect(r.freeExtents).toBe((await readVgReport(t.vg.lvm, t.vg.vgName)).freeExtentCount);
      expect(r.overcommitRatio).toBeCloseTo((200 * GIB) / (extentCount * 4 * 1024 * 1024), 10);
      expect(r.hosts.map((h) => [h.host, h.poolExtents, h.unreplayedExtents, h.unreplayedRecords, h.journalReadable])).toEqual([
        ['h1', pool('h1') - 5, 5, 2, true],
        ['h2', pool('h2'), 0, 0, true],
        ['h3', pool('h3'), 0, 0, true],
      ]);
      expect(pool('h1')).toBe(16);
      const human = await free(t);
      expect(human.exitCode, human.stderr).toBe(0);
      expect(human.stdout).toMatch(/journaled, not replayed +20\.00 MiB +5\n/);
      expect(human.stdout).toMatch(/h1 +44\.00 MiB +11 +5 +2 +\[#+\.+\]/);
      console.log(`thinlv free, human output with unreplayed allocations:\n${human.stdout}`);

      // Nothing written: the metadata is where it was, and the master still finds both records to replay.
      expect((await readVgMetadata(t.vg.lvm, t.vg.vgName)).seqno).toBe(vg.seqno);
      // check warns (exit 0) that a table from metadata alone would map disk0 five extents short.
      const unreplayed = (json: string) => (JSON.parse(json) as { findings: { code: string; data: Record<string, unknown> }[] }).findings.filter((f) => f.code === 'UNREPLAYED_EXTENTS');
      const checked = await runCli(['check', t.vg.vgName, '--json', ...t.cliArgs()]);
      expect(checked.exitCode, checked.stderr).toBe(0);
      expect(unreplayed(checked.stdout).map((f) => f.data)).toEqual([{ lv: 'disk0', extentCount: extentsOf(vg, 'disk0') + 5, metadataExtentCount: extentsOf(vg, 'disk0'), missingBytes: 5 * 4 * 1024 * 1024 }]);
      const pass = await runPass(t.deps(), new MasterSession(), t.vg.vgName);
      expect(pass.replayedRecordCount).toBe(2);
      expect(unreplayed((await runCli(['check', t.vg.vgName, '--json', ...t.cliArgs()])).stdout)).toEqual([]);
      const afterReplay = (await free(t, '--json')).json!;
      expect(afterReplay).toMatchObject({ unreplayedExtents: 0, thinAllocatedExtents: r.thinAllocatedExtents + 5 });
      expect(afterReplay.hosts[0]).toMatchObject({ host: 'h1', unreplayedExtents: 0, appliedSeq: 2 });
    } finally {
      await host?.close();
      await t.destroy();
    }
  });

  test('a host journal that cannot be read is reported, and the rest of the report stands', async () => {
    const t = await createThinlvTestVg({ sizeBytes: 2 * GIB, hosts: ['h1', 'h2'], thinLvCount: 1, quantumExtents: 16, lowWaterExtents: 8 });
    try {
      await wipeJournalHeader(t, 'h2');
      const result = await free(t, '--json', '--check');
      expect(result.exitCode, result.stderr).toBe(0);
      expect(result.json!.hosts).toEqual([
        expect.objectContaining({ host: 'h1', journalReadable: true, journalError: null, poolExtents: 16 }),
        expect.objectContaining({ host: 'h2', journalReadable: false, journalError: expect.stringMatching(/^[A-Z_]+: /), poolExtents: 16, unreplayedExtents: 0 }),
      ]);
      const human = await free(t);
      expect(human.exitCode, human.stderr).toBe(0);
      expect(human.stdout).toMatch(/warning: host h2's journal could not be read/);
      console.log(`thinlv free, human output with an unreadable journal:\n${human.stdout}`);
    } finally {
      await t.destroy();
    }
  });

  test('--check exits 0, 1 and 2 as ordinary LVs fill the VG past 75% and 85%; the VG tags move the levels; errors keep their codes', async () => {
    const t = await createThinlvTestVg({ sizeBytes: 2 * GIB, hosts: ['h1'], thinLvCount: 1, quantumExtents: 16, lowWaterExtents: 8 });
    try {
      expect((await free(t, '--check')).exitCode).toBe(0);
      await fillTo(t, 800, 'filler1');
      const warning = await free(t, '--check');
      expect(warning.exitCode, warning.stderr).toBe(1);
      expect(warning.stdout).toMatch(/committed \[#+\.+\] 8\d\.\d%: warning \(warning at 75\.0%, critical at 85\.0%\)/);
      expect(warning.stdout).toContain(`time to full: not enough history (no master has run on VG ${t.vg.vgName}`);
      // stdout is a pipe here: no colour.
      expect(warning.stdout).not.toContain('\u001b[');
      console.log(`thinlv free, human output at warning:\n${warning.stdout}`);
      // Without --check the level changes nothing in the exit code.
      expect((await free(t)).exitCode).toBe(0);

      await fillTo(t, 900, 'filler2');
      const critical = await free(t, '--check', '--json');
      expect(critical.exitCode).toBe(2);
      expect(critical.json).toMatchObject({ level: 'critical', warnRatio: 0.75, criticalRatio: 0.85 });
      expect(critical.json!.committedRatio).toBeGreaterThanOrEqual(0.9);
      expect(critical.json!.otherAllocatedExtents).toBeGreaterThan(0);

      // The operator moves the critical level with a VG tag, as README says.
      await t.vg.lvm.run('vgchange', ['--addtag', `${TAG.criticalPermille}950`, t.vg.vgName]);
      const moved = await free(t, '--check', '--json');
      expect(moved.exitCode).toBe(1);
      expect(moved.json).toMatchObject({ level: 'warning', criticalRatio: 0.95 });

      // ... or with thinlv set, which replaces the tag; a warning above critical is refused, nothing written.
      const set = await runCli(['set', t.vg.vgName, '--warn-percent', '92.5', '--critical-percent', '97', '--json', ...t.cliArgs()]);
      expect(set.exitCode, set.stdout + set.stderr).toBe(0);
      expect(JSON.parse(set.stdout)).toMatchObject({ ok: true, warnPercent: 92.5, criticalPercent: 97 });
      expect(await free(t, '--check', '--json')).toMatchObject({ exitCode: 0, json: { level: 'ok', warnRatio: 0.925, criticalRatio: 0.97 } });
      const seqnoBefore = (await readVgMetadata(t.vg.lvm, t.vg.vgName)).seqno;
      const inverted = await runCli(['set', t.vg.vgName, '--warn-percent', '99', ...t.cliArgs()]);
      expect(inverted.exitCode).not.toBe(0);
      expect(inverted.stderr).toMatch(/^thinlv: /);
      expect((await readVgMetadata(t.vg.lvm, t.vg.vgName)).seqno).toBe(seqnoBefore);
      expect((await runCli(['set', t.vg.vgName, '--warn-percent', '0', ...t.cliArgs()])).exitCode).toBe(2);
      expect((await runCli(['set', t.vg.vgName, ...t.cliArgs()])).exitCode).toBe(2);
      // The overcommit limit: set, then removed with none.
      expect((await runCli(['set', t.vg.vgName, '--overcommit-limit-percent', '300', ...t.cliArgs()])).exitCode).toBe(0);
      expect((await readVgMetadata(t.vg.lvm, t.vg.vgName)).tags).toContain(`${TAG.overcommitLimitPercent}300`);
      expect((await runCli(['set', t.vg.vgName, '--overcommit-limit-percent', 'none', ...t.cliArgs()])).exitCode).toBe(0);
      expect((await readVgMetadata(t.vg.lvm, t.vg.vgName)).tags.some((tag) => tag.startsWith(TAG.overcommitLimitPercent))).toBe(false);

      const missing = await runCli(['free', 'thinlv_no_such_vg', '--check', ...t.cliArgs()]);
      expect(missing.exitCode).toBe(3);
      expect(missing.stderr).toMatch(/^thinlv: /);
    } finally {
      await t.destroy();
    }
  });
});
