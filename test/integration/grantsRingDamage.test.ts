// A bit flipped in a host's grants ring header (the LUN is shared, and damage lands
// anywhere): the master recreates the ring at its next write (its records are notices of
// what metadata holds) and the host's daemon, running or starting, follows the new ring.
// Before, the master's every grant write failed with HEADER_CORRUPT, so the host's pool
// was never refilled, and its daemon could not start at all, until the host was removed.
// Real LVM on a loop device; the master and the host daemon as processes.

import { closeSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { openFileRegion, openRingReader } from '../../journal/index.js';
import { hostLvNames } from '../../src/format/thinlvVg.js';
import { readVgMetadata } from '../../src/lvm/commitBatch.js';
import { MasterSession, runPass } from '../../src/master/replayPass.js';
import { type VgMetadata } from '../../src/metadata/vgModel.js';
import { ringLocation } from '../../src/rings/ringRegions.js';
import { HostDaemonProcess, startMasterDaemon, stopDaemon } from '../fixtures/hostDaemons.js';
import { realLvmUnavailableReason } from '../fixtures/loopVg.js';
import { createThinlvTestVg, type ThinlvTestVg } from '../fixtures/thinlvVg.js';

const skipReason = realLvmUnavailableReason();
const EXTENT_BYTES = 4 * 1024 * 1024;
const QUANTUM = 16;

const sizeOf = (vg: VgMetadata, lv: string): number => vg.lvs.find((l) => l.name === lv)!.segments.reduce((n, s) => n + s.extentCount, 0);

/** Flips one bit of the ring header's nonce field, on the device, as damage on the LUN would. */
async function flipGrantsHeaderBit(t: ThinlvTestVg, host: string): Promise<void> {
  const location = ringLocation(await readVgMetadata(t.vg.lvm, t.vg.vgName), hostLvNames(host).grants);
  const fd = openSync(location.device, 'r+');
  try {
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, location.offsetBytes + 40);
    byte[0] = byte[0]! ^ 0x10;
    writeSync(fd, byte, 0, 1, location.offsetBytes + 40);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
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
