// The host's side of its grants ring (master -> host): apply newer grant
// snapshots, hand back extents when asked, learn why a demand is not covered
// (shortage), and stop when the master says the host is being removed. One poll reads whatever arrived since the last one.

import type { RingReader } from '../../journal/index.js';
import type { FaultPoints } from '../faults.js';
import type { Logger } from '../log.js';
import { decodeGrantRecord, type GrantRecord } from '../records/records.js';
import type { HostState } from '../state/hostState.js';
import type { HostAllocator } from './allocator.js';

export interface GrantFollowerDeps {
  /** The grants ring's reader now (followedRing.ts: a new one once the master recreated the ring); undefined while it cannot be read. */
  readonly ring: { current(): Promise<RingReader | undefined> };
  readonly allocator: HostAllocator;
  readonly state: HostState;
  readonly log: Logger;
  readonly faults?: FaultPoints | undefined;
  /** Called before this host writes to the ring (its consumer block): the lease must be ours. */
  readonly beforeWrite: () => Promise<void>;
  /** This daemon's lease session: a stop record names the session it is for. */
  readonly ownerId: string;
  /** The master asked this daemon to stop (host remove). */
  readonly onStop: (reason: string) => void;
}

/** Returns a function that reads and applies the grants ring's new records once. */
export function grantFollower(deps: GrantFollowerDeps): () => Promise<void> {
  return async () => {
    const reader = await deps.ring.current();
    if (reader === undefined) return;
    const { records } = await reader.read({ fromSeq: reader.consumedSeq + 1 });
    for (const record of records) {
      const decoded = decodeGrantRecord(record.payload);
      if (!decoded.ok) {
        deps.log.warn({ seq: record.seq, reason: decoded.reason }, 'unreadable grant record skipped');
        continue;
      }
      if (decoded.record.kind === 'stop') {
        // A stop for an earlier session (a host remove killed after asking, then the daemon
        // started again) is consumed and ignored: it would keep the host from ever running.
        if (decoded.record.ownerId !== deps.ownerId) {
          deps.log.warn({ seq: record.seq, ownerId: decoded.record.ownerId, reason: decoded.record.reason }, 'stop request for an earlier daemon session ignored');
          continue;
        }
        // Nothing after it is applied, and the ring is not consumed past it.
        deps.onStop(decoded.record.reason);
        return;
      }
      await apply(deps, decoded.record);
    }
    const last = records.at(-1);
    if (last !== undefined) {
      await deps.beforeWrite();
      await reader.consume(last.seq);
    }
  };
}

async function apply(deps: GrantFollowerDeps, record: Exclude<GrantRecord, { kind: 'stop' }>): Promise<void> {
  if (record.kind === 'grant') {
    // SQLite first would be wrong: a crash after it would skip this grant on restart.
    // A crash after applying and before recording is harmless: the ring is consumed
    // only after this, so a restart reads this grant again and applies it.
    if (deps.allocator.applyGrant(record)) {
      await deps.faults?.hit('host.afterGrantApplied');
      deps.state.setGrantGeneration(record.generation);
      deps.log.info({ generation: record.generation, poolExtentCount: deps.allocator.status().poolExtentCount }, 'grant applied');
    }
    return;
  }
  if (record.kind === 'shortage') {
    deps.allocator.noteShortage(record);
    deps.log.warn({ ...record }, 'the master cannot grant all this host waits for');
    return;
  }
  const returned = await deps.allocator.returnExtents(record.extentCount);
  deps.log.info({ asked: record.extentCount, returned }, 'extents returned to the master');
}
