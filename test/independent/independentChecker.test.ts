// The independent checker (written from journal/FORMAT.md and src/records/RECORDS.md
// alone) against a real VG: host daemons journal allocations the master has not
// replayed, the checker agrees with `thinlv check`, and it finds a planted lost
// extent, a double allocation hidden in a journal and a grant the master never
// committed, none of which `thinlv check` (metadata only) can see.

import { execFile } from 'node:child_process';
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';
import { MasterSession, runPass } from '../../src/master/replayPass.js';
import { DEFAULT_LOCAL_LOCK_DIR } from '../../src/ownership/localHostLock.js';
import { HostDaemonProcess } from '../fixtures/hostDaemons.js';
import { realLvmUnavailableReason, TEST_LVM_CONFIG } from '../fixtures/loopVg.js';
import { runCli } from '../fixtures/runCli.js';
import { createThinlvTestVg, type ThinlvTestVg } from '../fixtures/thinlvVg.js';
import { checkIndependently, type AcknowledgedExtend, type IndependentReport } from './independentChecker.js';
import { crc32c } from './crc32c.js';
import { encodeAllocate } from './payloads.js';
import { readRingChain } from './ringDecode.js';
import { readMetadataText, readVgSnapshot, SECTOR_BYTES, type VgSnapshot } from './vgSnapshot.js';

const run = promisify(execFile);
const skipReason = realLvmUnavailableReason();
const MIB = 1024 ** 2;

async function thinlvCheck(t: ThinlvTestVg): Promise<{ ok: boolean; freeExtentCount: number; allocatedExtentCount: number; findings: { code: string }[] }> {
  const result = await runCli(['check', t.vg.vgName, '--json', ...t.cliArgs()]);
  return JSON.parse(result.stdout) as { ok: boolean; freeExtentCount: number; allocatedExtentCount: number; findings: { code: string }[] };
}

/** The text of LV `lv`'s section `{ ... }` inside metadata `text`: [start, end) of its body. */
function lvSection(text: string, lv: string): { start: number; end: number } {
  const open = text.search(new RegExp(`\\n\\s*${lv} \\{`));
  if (open < 0) throw new Error(`LV ${lv} not in the metadata text`);
  let depth = 0;
  for (let i = text.indexOf('{', open); i < text.length; i++) {
    if (text[i] === '{') depth++;
    if (text[i] === '}' && --depth === 0) return { start: open, end: i + 1 };
  }
  throw new Error('unbalanced metadata text');
}

/** Writes back the VG's metadata with `edit` applied, through vgcfgrestore. */
async function restoreEdited(t: ThinlvTestVg, edit: (text: string) => string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'thinlv-indep-test-'));
  try {
    const file = join(dir, 'vg.txt');
    writeFileSync(file, edit(await readMetadataText(t.vg.vgName, [t.vg.device])));
    const dm = t.vg.deviceMapperAvailable ? [] : ['--driverloaded', 'n'];
    await run('lvm', ['vgcfgrestore', '--devices', t.vg.device, ...dm, '--config', TEST_LVM_CONFIG, '--yes', '-f', file, t.vg.vgName], { env: { ...process.env, LC_ALL: 'C' } });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Appends one record after the tail of ring LV `lvName` (a journal ends with its 4 KiB
 * lease block), as its writer would (FORMAT.md "Records"): next seq, the tail's epoch,
 * the ring's nonce, CRC32C.
 */
function appendRecord(snapshot: VgSnapshot, lvName: string, payload: Uint8Array): void {
  const ringLv = snapshot.lvs.find((lv) => lv.name === lvName)!;
  const segment = ringLv.segments[0]!;
  const pv = snapshot.pvs.find((p) => p.uuid === segment.pvUuid)!;
  const extentBytes = snapshot.extentSizeSectors * SECTOR_BYTES;
  const ringOffset = pv.peStartSectors * SECTOR_BYTES + segment.firstExtent * extentBytes;
  const leaseBytes = lvName.endsWith('_journal') ? 4096 : 0;
  const chain = readRingChain(pv.device, ringOffset, segment.extentCount * extentBytes - leaseBytes, ringLv.uuid);
  const last = chain.records.at(-1);
  const record = new Uint8Array(Math.ceil((64 + payload.length) / 4096) * 4096);
  const dv = new DataView(record.buffer);
  dv.setUint32(0, 0x52564c54, true);
  dv.setUint16(4, 1, true);
  dv.setUint16(6, 64, true);
  dv.setBigUint64(8, BigInt((last?.seq ?? chain.ring.consumedSeq) + 1), true);
  dv.setBigUint64(16, BigInt(last?.epoch ?? chain.ring.consumedEpoch), true);
  dv.setBigUint64(24, chain.ring.ringNonce, true);
  dv.setUint32(32, payload.length, true);
  dv.setUint32(36, record.length / 4096, true);
  record.set(payload, 64);
  dv.setUint32(60, crc32c(record.subarray(0, 60), payload), true);
  const fd = openSync(pv.device, 'r+');
  try {
    writeSync(fd, record, 0, record.length, ringOffset + chain.stopOffsetBytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

const codes = (report: IndependentReport): string[] => report.findings.map((f) => f.code);
const describeReport = (report: IndependentReport): string => JSON.stringify(report.findings, null, 1);

describe.skipIf(skipReason !== undefined)('an independent checker written from the specs', () => {
  test('agrees with thinlv check on a VG with unreplayed allocations, and finds a planted lost extent, a double allocation hidden in a journal and an uncommitted grant', async () => {
    const t = await createThinlvTestVg({ sizeBytes: 4 * 1024 ** 3, hosts: ['h1', 'h2'], thinLvCount: 4, quantumExtents: 32, lowWaterExtents: 16 });
    const daemons: HostDaemonProcess[] = [];
    try {
      daemons.push(await HostDaemonProcess.start(t, 'h1'), await HostDaemonProcess.start(t, 'h2'));
      const [h1, h2] = daemons as [HostDaemonProcess, HostDaemonProcess];
      // No master runs: these allocations stay in the journals, unreplayed.
      const acknowledged: AcknowledgedExtend[] = [];
      for (const [daemon, lv, sizeBytes] of [[h1, 'disk0', 40 * MIB], [h2, 'disk1', 60 * MIB], [h1, 'disk2', 20 * MIB], [h1, 'disk0', 48 * MIB]] as const) {
        const result = await daemon.extend(lv, sizeBytes);
        acknowledged.push({ lv, sizeBytes: result.sizeBytes });
      }
      const options = { vgName: t.vg.vgName, devices: [t.vg.device], acknowledged };

      const unreplayed = await checkIndependently(options);
      expect(unreplayed.ok, describeReport(unreplayed)).toBe(true);
      expect(unreplayed.acknowledgedChecked).toBe(4);
      const pending = unreplayed.hosts.reduce((n, h) => n + h.unreplayedAllocatedExtents, 0);
      expect(pending).toBe(9 + 14 + 4 + 2); // each thin LV starts at one extent
      expect(unreplayed.hosts.every((h) => h.unreplayedRecordCount > 0 && h.stopReason === 'empty')).toBe(true);
      expect(unreplayed.hosts.every((h) => h.grantGeneration >= 1 && (h.unconsumedGrantGeneration ?? 0) <= h.grantGeneration)).toBe(true);
      // thinlv check reads metadata only: its free space is ours (nothing was returned),
      // and everything it counts as allocated is in a pool or an LV for us.
      const theirs = await thinlvCheck(t);
      expect(theirs.ok).toBe(true);
      expect(unreplayed.freeExtentCount).toBe(theirs.freeExtentCount);
      expect(unreplayed.poolExtentCount + unreplayed.lvExtentCount).toBe(theirs.allocatedExtentCount);

      // Every record replayed: nothing is unreplayed, the answers are the same.
      for (const daemon of daemons) await daemon.stop();
      for (let i = 0; i < 5; i++) if ((await runPass(t.deps(), new MasterSession(), t.vg.vgName)).replayedRecordCount === 0) break;
      const replayed = await checkIndependently(options);
      expect(replayed.ok, describeReport(replayed)).toBe(true);
      expect(replayed.hosts.every((h) => h.unreplayedRecordCount === 0 && h.consumedSeq === h.appliedSeq)).toBe(true);
      expect(replayed.lvExtentCount).toBe(unreplayed.lvExtentCount);

      // A lost extent: disk1's last segment loses an extent behind thinlv's back. LVM
      // and thinlv check see a consistent VG; the acknowledged 60 MiB are not all there.
      await restoreEdited(t, (text) => {
        const { start, end } = lvSection(text, 'disk1');
        const body = text.slice(start, end);
        const counts = [...body.matchAll(/extent_count = ([0-9]+)/g)];
        const last = counts.at(-1)!;
        const at = start + last.index;
        return `${text.slice(0, at)}extent_count = ${Number(last[1]) - 1}${text.slice(at + last[0].length)}`;
      });
      expect((await thinlvCheck(t)).ok).toBe(true);
      const lost = await checkIndependently(options);
      expect(lost.ok).toBe(false);
      expect(codes(lost)).toEqual(['ACKNOWLEDGED_EXTENT_LOST']);
      expect(lost.findings[0]!.invariant).toBe('I3');

      // A double allocation, as xenvm's bugs made them: host h1 journals an allocation of
      // an extent that disk3 already holds. LVM refuses overlapping segments in metadata
      // (vgcfgrestore: "PV segments corrupted"), so the journal is where one can hide;
      // thinlv check reads metadata only and does not see it.
      const before = await readVgSnapshot(t.vg.vgName, [t.vg.device]);
      const disk0 = before.lvs.find((lv) => lv.name === 'disk0')!;
      const disk3 = before.lvs.find((lv) => lv.name === 'disk3')!;
      appendRecord(before, 'thinlv_h1_journal', encodeAllocate('disk0', disk0.uuid, [{ pvUuid: disk3.segments[0]!.pvUuid!, firstExtent: disk3.segments[0]!.firstExtent, extentCount: 1 }], disk0.extentCount + 1));
      // And a grant the master never committed: a generation above h2's thinlv_grant_gen.
      const h2Generation = Number(before.lvs.find((lv) => lv.name === 'thinlv_h2_grants')!.tags.find((tag) => tag.startsWith('thinlv_grant_gen='))!.split('=')[1]);
      appendRecord(before, 'thinlv_h2_grants', new TextEncoder().encode(JSON.stringify({ v: 1, kind: 'grant', generation: h2Generation + 1, appliedSeq: 0, freeRanges: [] })));
      const double = await checkIndependently(options);
      expect(double.ok).toBe(false);
      expect(codes(double).sort()).toEqual(['ACKNOWLEDGED_EXTENT_LOST', 'GRANT_AHEAD_OF_METADATA', 'UNREPLAYED_OUTSIDE_POOL']);
      expect(double.findings.find((f) => f.code === 'GRANT_AHEAD_OF_METADATA')!.invariant).toBe('I4');
      const hidden = double.findings.find((f) => f.code === 'UNREPLAYED_OUTSIDE_POOL')!;
      expect(hidden.invariant).toBe('I1');
      expect(hidden.message).toContain('in disk3');
      expect((await thinlvCheck(t)).ok).toBe(true);
    } finally {
      for (const daemon of daemons) await daemon.cleanUp();
      await t.destroy();
      for (const host of ['h1', 'h2']) rmSync(join(DEFAULT_LOCAL_LOCK_DIR, `host-${t.vg.vgName}-${host}.lock`), { force: true });
    }
  });
});
