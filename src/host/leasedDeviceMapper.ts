// The allocator's device-mapper: a table is loaded (activate, reload) only while this
// daemon holds the host's lease, checked right before the load starts, as a journal
// write is (leasedJournal.ts).
//
// Why: a daemon that stopped for longer than its lease (a paused VM, SIGSTOP) may wake
// with requests queued and a view of metadata from before the pause, in which it still
// holds an LV. Meanwhile another daemon took the host over and released the LV, and
// another host claimed and grew it. Without this check the woken daemon loaded a table of
// that LV from its old view on its machine (the simulator found it: an activation queued
// across the pause). Its journal refused the activation's record, so the request failed,
// but the table stayed, and the SQLite state listed the LV as active here: the next
// daemon on the machine took the LV up again at start. With the lease held, this
// daemon's view of which LVs it holds is right: only its own release (in its own
// journal) or a takeover of its lease hands one of them to another host.
//
// Removing a table (deactivate) needs no lease: it only ever stops this machine using
// an LV.

import type { HeldLease } from '../ownership/index.js';
import type { HostDeviceMapper } from './allocator.js';
import { leaseGuard, type LeaseWhere } from './leasedJournal.js';

export function leasedDeviceMapper(dm: HostDeviceMapper, lease: HeldLease, where: LeaseWhere): HostDeviceMapper {
  const ensureHeld = leaseGuard(lease, where);
  return {
    activate: async (name, table) => {
      await ensureHeld();
      await dm.activate(name, table);
    },
    reload: async (name, table) => {
      await ensureHeld();
      await dm.reload(name, table);
    },
    deactivate: (name) => dm.deactivate(name),
  };
}
