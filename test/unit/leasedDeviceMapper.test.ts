// A daemon loads a table only while it holds the host's lease (src/host/leasedDeviceMapper.ts):
// a daemon woken from a pause past its lease must not map an LV from its old view.

import { describe, expect, test } from 'vitest';
import { ThinlvError } from '../../src/errors.js';
import type { HostDeviceMapper } from '../../src/host/allocator.js';
import { leasedDeviceMapper } from '../../src/host/leasedDeviceMapper.js';
import type { HeldLease } from '../../src/ownership/index.js';

function recordingDm(): HostDeviceMapper & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    activate: async (name) => void calls.push(`activate ${name}`),
    reload: async (name) => void calls.push(`reload ${name}`),
    deactivate: async (name) => void calls.push(`deactivate ${name}`),
  };
}

function leaseThat(held: () => boolean): HeldLease {
  return {
    ensureHeld: async () => {
      if (!held()) throw new ThinlvError('LEASE_LOST', 'another daemon took the lease over', {});
    },
  } as Partial<HeldLease> as HeldLease;
}

const TABLE = [{ startSector: 0, lengthSectors: 8192, targetType: 'linear' as const, devicePath: '/dev/sdb', offsetSector: 2048 }];
const WHERE = { vg: 'vg0', host: 'h1' };

describe('leasedDeviceMapper', () => {
  test('loads tables while the lease is held', async () => {
    const dm = recordingDm();
    const leased = leasedDeviceMapper(dm, leaseThat(() => true), WHERE);
    await leased.activate('vg0-lv1', TABLE);
    await leased.reload('vg0-lv1', TABLE);
    expect(dm.calls).toEqual(['activate vg0-lv1', 'reload vg0-lv1']);
  });

  test('once the lease is lost, loads nothing and says so; removing a table still works', async () => {
    let held = true;
    const dm = recordingDm();
    const leased = leasedDeviceMapper(dm, leaseThat(() => held), WHERE);
    held = false;
    await expect(leased.activate('vg0-lv1', TABLE)).rejects.toMatchObject({ code: 'LEASE_LOST', data: { host: 'h1', notWritten: true } });
    await expect(leased.reload('vg0-lv1', TABLE)).rejects.toMatchObject({ code: 'LEASE_LOST' });
    expect(dm.calls).toEqual([]);
    await leased.deactivate('vg0-lv1');
    expect(dm.calls).toEqual(['deactivate vg0-lv1']);
  });
});
