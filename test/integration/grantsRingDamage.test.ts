// A bit flipped in a host's grants ring header (the LUN is shared, and damage lands
// anywhere): the master recreates the ring at its next write (its records are notices of
// what metadata holds) and the host's daemon, running or starting, follows the new ring.
// Before, the master's every grant write failed with HEADER_CORRUPT, so the host's pool
// was never refilled, and its daemon could not start at all, until the host was removed.
// Real LVM on a loop device; the master and the host daemon as processes.

import { describe, expect, test } from 'vitest';
import { openFileRegion, openRingReader } from '../../journal/index.js';
import { hostLvNames, readThinlvVg } from '../../src/format/thinlvVg.js';
import { readVgMetadata } from '../../src/lvm/commitBatch.js';
import { MasterSession, runPass } from '../../src/master/replayPass.js';
import { type VgMetadata } from '../../src/metadata/vgModel.js';
import { decodeGrantRecord } from '../../src/records/records.js';
import { ringLocation } from '../../src/rings/ringRegions.js';
import { AllocatorHost } from '../fixtures/allocatorHost.js';
import { flipBitOnDevice } from '../fixtures/flipBit.js';
import { expectInvariantsAfterReplay } from '../fixtures/invariants.js';
import { HostDaemonProcess, startMasterDaemon, stopDaemon } from '../fixtures/hostDaemons.js';
import { realLvmUnavailableReason } from '../fixtures/loopVg.js';
import { runCli } from '../fixtures/runCli.js';
import { createThinlvTestVg, type ThinlvTestVg } from '../fixtures/thinlvVg.js';

const skipReason = realLvmUnavailableReason();
const EXTENT_BYTES = 4 * 1024 * 1024;
const QUANTUM = 16;

const sizeOf = (vg: VgMetadata, lv: string): number => vg.lvs.find((l) => l.name === lv)!.segments.reduce((n, s) => n + s.extentCount, 0);

/** Flips one bit of the ring header's nonce field, on the device, as damage on the LUN would. */
async function flipGrantsHeaderBit(t: ThinlvTestVg, host: string): Promise<void> {
  const location = ringLocation(await readVgMetadata(t.vg.lvm, t.vg.vgName), hostLvNames(host).grants);
  flipBitOnDevice(location.device, location.offsetBytes + 40);
}

/** Whether the host's grants ring opens (its header and consumer block are whole). */
async function grantsRingOpens(t: ThinlvTestVg, host: string): Promise<boolean> {
  const location = ringLocation(await readVgMetadata(t.vg.lvm, t.vg.vgName), hostLvNames(host).grants);
  const region = await openFileRegion(location.device, location);
  try {
    await openRingReader(region, { ringId: location.ringId });
    return true;
  } catch {
    return false;
  } finally {
    await region.close();
  }
}

/** Grows `lv` from `from` to `to` extents, 8 at a time: more than one pool, so grants must arrive. */
async function grow(host: HostDaemonProcess, lv: string, from: number, to: number): Promise<void> {
  for (let size = from + 8; size <= to; size += 8) await host.extend(lv, size * EXTENT_BYTES);
}

describe.skipIf(skipReason !== undefined)('a damaged grants ring header', () => {
  test('the master recreates the ring; a running daemon and a starting one both follow it, and extends beyond the pool succeed', async () => {
    const t = await createThinlvTestVg({ hosts: ['h1'], thinLvCount: 1, quantumExtents: QUANTUM, lowWaterExtents: 4 });
    try {
      await damageAndGrow(t);
      for (let i = 0; i < 5; i++) await runPass(t.deps(), new MasterSession(), t.vg.vgName);
      expect(sizeOf(await readVgMetadata(t.vg.lvm, t.vg.vgName), 'disk0')).toBe(8 * QUANTUM);
    } finally {
      await t.destroy();
    }
  }, 120_000);
});

/** Records on the host's grants ring, decoded (the ring must open). */
async function grantsOnRing(t: ThinlvTestVg, host: string) {
  const location = ringLocation(await readVgMetadata(t.vg.lvm, t.vg.vgName), hostLvNames(host).grants);
  const region = await openFileRegion(location.device, location);
  try {
    const reader = await openRingReader(region, { ringId: location.ringId });
    return (await reader.read({ fromSeq: reader.consumedSeq + 1 })).records.map((r) => decodeGrantRecord(r.payload));
  } finally {
    await region.close();
  }
}

describe.skipIf(skipReason !== undefined)('the master killed right after recreating a grants ring', () => {
  test('a restarted master writes the grant to the recreated ring, and the refill happened once', async () => {
    const t = await createThinlvTestVg({ hosts: ['h1'], thinLvCount: 2, quantumExtents: QUANTUM, lowWaterExtents: 8 });
    const host = await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'h1');
    try {
      expect(await host.applyGrants()).toBe(true);
      for (let i = 0; i < 5; i++) await host.allocate('disk0', 2); // below low water: the next pass refills
      const generation = readThinlvVg(await readVgMetadata(t.vg.lvm, t.vg.vgName)).hosts.get('h1')!.grantGeneration;
      await flipGrantsHeaderBit(t, 'h1');

      const killed = await masterOnce(t, 'master.grantsRingRecreated:kill');
      expect(killed.signal, killed.stderr).toBe('SIGKILL');
      expect(await grantsOnRing(t, 'h1')).toEqual([]); // recreated, empty: the grant was not written
      const restarted = await masterOnce(t);
      expect(restarted.exitCode, restarted.stderr).toBe(0);

      const after = readThinlvVg(await readVgMetadata(t.vg.lvm, t.vg.vgName)).hosts.get('h1')!.grantGeneration;
      expect(after).toBe(generation + 1);
      const grants = (await grantsOnRing(t, 'h1')).filter((g) => g.ok && g.record.kind === 'grant').map((g) => g.ok && g.record.kind === 'grant' && g.record.generation);
      expect(grants).toEqual([after]);
      await expectInvariantsAfterReplay(t.vg, [host], 1);
      // A host started now reads the recreated ring: its grant is its free LV in metadata.
      const reopened = await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'h1');
      try {
        expect(await reopened.applyGrants()).toBe(true);
        expect(reopened.poolExtentCount).toBe(sizeOf(await readVgMetadata(t.vg.lvm, t.vg.vgName), hostLvNames('h1').free));
      } finally {
        await reopened.close();
      }
    } finally {
      await host.close();
      await t.destroy();
    }
  }, 120_000);
});

async function masterOnce(t: ThinlvTestVg, faults?: string): Promise<Awaited<ReturnType<typeof runCli>>> {
  return runCli(['master', t.vg.vgName, '--once', '--no-history', '--run-dir', t.runDir, ...t.cliArgs()], {
    ...(faults ? { env: { ...process.env, THINLV_FAULTS: faults } as Record<string, string> } : {}),
  });
}

/** The master and h1's daemon as processes: grow disk0 across a damaged header twice, once under the running daemon, once before its start. */
async function damageAndGrow(t: ThinlvTestVg): Promise<void> {
  const master = startMasterDaemon(t);
  // Waiting extends wait for grants up to 20 s: the daemon looks at the header every 2 s.
  const host = await HostDaemonProcess.start(t, 'h1', 20_000);
  try {
    await host.activate('disk0');
    await grow(host, 'disk0', 0, 8);
    // Under the running daemon.
    await flipGrantsHeaderBit(t, 'h1');
    expect(await grantsRingOpens(t, 'h1')).toBe(false);
    await grow(host, 'disk0', 8, 4 * QUANTUM);
    expect(await grantsRingOpens(t, 'h1')).toBe(true);

    // Before the daemon's start.
    await host.kill();
    await flipGrantsHeaderBit(t, 'h1');
    await host.restart();
    await grow(host, 'disk0', 4 * QUANTUM, 8 * QUANTUM);
    expect(await grantsRingOpens(t, 'h1')).toBe(true);
  } finally {
    await stopDaemon(master);
    await host.cleanUp();
  }
}
