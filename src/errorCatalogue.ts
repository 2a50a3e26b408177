// Every error code thinlv reports, with its exit class and what it means. The CLI's
// error handler takes the exit code from here, so a code always exits the same way
// whichever part of the program raised it; README.md lists the same codes, and
// test/unit/errorCatalogue.test.ts checks that every code in the source is here and
// there. Codes are stable: scripts match on them; never rename one.
//
// Exit classes: usage 2 (bad input, nothing done), operational 3 (the world is not as
// needed: lvm failed, a host is busy, space ran out...), internal 4 (a bug).
// Codes of the host daemon's socket protocol reach a client as the error of its request.

export type ExitClass = 'usage' | 'operational' | 'internal';

export const EXIT_CODE_OF: Readonly<Record<ExitClass, number>> = { usage: 2, operational: 3, internal: 4 };

type Entry = readonly [ExitClass, string];

const O = 'operational';

export const ERROR_CATALOGUE: Readonly<Record<string, Entry>> = {
  // Input.
  INVALID_ARGUMENT: ['usage', 'a bad name, size, option value or request; nothing was done'],
  // lvm and metadata.
  VG_NOT_FOUND: [O, 'lvm does not see the VG (check --devices)'],
  LV_NOT_FOUND: [O, 'no LV of that name in the VG'],
  LV_EXISTS: [O, 'an LV of that name exists already'],
  LV_IN_USE: [O, 'the LV is held by a host (active there); deactivate it first'],
  INSUFFICIENT_EXTENTS: [O, 'the VG has too few free (or contiguous free) extents'],
  METADATA_AREA_TOO_SMALL: [O, "the VG's metadata area cannot hold the LVs asked for"],
  VG_METADATA_CORRUPT: [O, "lvm's metadata of the VG does not read back as valid"],
  LOCK_BUSY: [O, 'another command holds the VG lock or a thinlv lock; try again'],
  LVM_TIMEOUT: [O, 'an lvm call ran past --lvm-timeout-ms'],
  LVM_MISSING: [O, 'the lvm binary was not found (--lvm-path)'],
  LVM_FAILED: [O, "an lvm call failed; its stderr is in the error's data"],
  LVM_OUTPUT_INVALID: [O, 'lvm printed something thinlv cannot read'],
  METADATA_PARSE: [O, "lvm's metadata text could not be parsed"],
  STALE_SEQNO: [O, 'the VG changed between reading and committing; the commit was refused'],
  INVALID_BATCH: [O, 'a metadata change does not apply to the VG as read'],
  READBACK_MISMATCH: [O, 'the committed metadata did not read back as written'],
  UNSUPPORTED_METADATA: [O, 'the VG holds something thinlv does not handle (run thinlv check)'],
  NOT_FORMATTED: [O, 'the VG is not formatted for thinlv (thinlv format)'],
  ALREADY_FORMATTED: [O, 'the VG is formatted for thinlv already'],
  FORMAT_VERSION: [O, 'the VG has a thinlv format this version does not read'],
  VG_TOO_FULL: [O, 'the VG has no room for what thinlv format needs'],
  NOT_ON_MASTER: [O, "a metadata command run away from the VG's master machine"],
  MASTER_RUNNING: [O, 'a master for the VG runs on this machine already'],
  OVERCOMMIT_LIMIT: [O, "the thin LVs' virtual total would pass the VG's overcommit limit (--force overrides)"],
  NOT_THIN_LV: [O, 'the LV is not a thin LV (or is one of thinlv\'s own)'],
  // Hosts, pools and leases.
  UNKNOWN_HOST: [O, 'no such host in the VG'],
  HOST_EXISTS: [O, 'the host was added already'],
  HOST_ACTIVE: [O, 'the host has active LVs; deactivate them first'],
  HOST_ALIVE: [O, "the host's lease is being renewed; it is not dead (--fenced if it is fenced)"],
  HOST_STILL_RUNNING: [O, "the host's daemon did not stop within --stop-wait-ms"],
  HOST_STILL_WRITING: [O, "the host's journal kept growing while it was being removed"],
  HOST_REMOVED: [O, 'the host was removed from the VG; its daemon stopped'],
  HOST_START_FAILED: [O, 'the host daemon could not read a consistent start state'],
  HOST_DAEMON_RUNNING: [O, 'a daemon for this VG and host runs on this machine already'],
  HOST_DAEMON_UNREACHABLE: [O, "the host daemon's socket does not answer (is thinlv host run up?)"],
  HOST_DAEMON_TIMEOUT: [O, 'the host daemon did not answer in time'],
  HOST_DAEMON_BAD_REPLY: [O, 'the host daemon answered something that is not the protocol'],
  HOST_SOCKET_IN_USE: [O, "another process serves the daemon's socket path"],
  HOST_SOCKET_PATH_INVALID: [O, 'the socket path is unusable (too long, or not a socket)'],
  LEASE_HELD: [O, "another daemon holds the host's lease (the same host name on another machine?)"],
  LEASE_LOST: [O, "the host's lease was taken over; the daemon halted"],
  LEASE_RELEASED: [O, 'the lease was released by its holder'],
  LEASE_IO: [O, 'the lease block could not be read or written'],
  LV_OWNED_ELSEWHERE: [O, 'another host holds the LV'],
  LV_NOT_OWNED: [O, 'the host does not hold the LV it journaled for'],
  CLAIM_TIMEOUT: [O, 'the master did not grant the LV to this host in time'],
  OUT_OF_SPACE: [O, "no extents for the extend in time; data.reason says why (vg-full, shared, master-not-answering)"],
  SHRINK_REFUSED: [O, 'an extend cannot shrink an LV (use thinlv lvresize -L on the master machine)'],
  VIRTUAL_SIZE_EXCEEDED: [O, "the extend would pass the LV's virtual size"],
  SIZE_MISMATCH: [O, "a record's size does not match the LV's"],
  POOL_TOO_FRAGMENTED: [O, "the pool holds the extents only in too many pieces for one record; extend by less"],
  WRONG_VG: [O, 'the request names another VG than the daemon serves'],
  JOURNAL_FULL: [O, "the host's journal has no room: the master is not replaying it"],
  JOURNAL_FAILED: [O, 'a journal write failed; the daemon serves no extends until restarted'],
  JOURNAL_CORRUPT: [O, "the host's journal holds records that do not read back"],
  CANCELLED: [O, 'the request was cancelled (the client went away)'],
  METRICS_LISTEN_FAILED: [O, 'the --metrics-listen address cannot be served'],
  // The host daemon's socket protocol.
  BAD_JSON: [O, 'a request line is not JSON'],
  BAD_REQUEST: [O, 'a request is not one the protocol knows'],
  DUPLICATE_ID: [O, 'a request id is already in flight on the connection'],
  LINE_TOO_LONG: [O, 'a request line is longer than the protocol allows'],
  SHUTTING_DOWN: [O, 'the daemon is stopping'],
  TOO_MANY_CONNECTIONS: [O, 'the daemon has too many clients'],
  TOO_MANY_IN_FLIGHT: [O, 'the connection has too many requests in flight'],
  UNKNOWN_OP: [O, 'the request names an operation the daemon does not know'],
  UNSUPPORTED_VERSION: [O, 'the client speaks another protocol version'],
  // The journal library.
  REGION_INVALID: [O, 'a ring region is misplaced or misaligned'],
  NOT_A_RING: [O, 'no thinlv ring where one should be'],
  HEADER_CORRUPT: [O, "a ring's header is damaged"],
  RING_VERSION: [O, 'a ring has a format this version does not read'],
  RING_ID_MISMATCH: [O, 'a ring belongs to another LV (stale extents)'],
  RING_EXISTS: [O, 'a ring exists already where one was to be created'],
  CONSUMER_CORRUPT: [O, "a ring's consumer block is damaged or disagrees with its writer"],
  CONSUMER_AHEAD: [O, "a ring's consumer points past its records"],
  RECORD_VERSION: [O, 'a record has a format this version does not read'],
  PAYLOAD_TOO_LARGE: [O, 'a record is larger than a ring takes'],
  RING_FULL: [O, 'a ring has no room'],
  APPEND_QUEUE_FULL: [O, "a ring writer's queue is full"],
  WRITER_FAILED: [O, 'a ring writer failed and takes no more records'],
  WRITER_CLOSED: [O, 'a ring writer was closed'],
  SEQ_ALREADY_CONSUMED: [O, 'a read asked for records already consumed'],
  SEQ_NOT_READ: [O, 'a consume named records not read yet'],
  IO_ERROR: [O, 'a read or write of the LUN failed'],
  // device-mapper.
  DM_FAILED: [O, 'a dmsetup call failed'],
  DM_MISSING: [O, 'dmsetup was not found'],
  DM_TIMEOUT: [O, 'a dmsetup call timed out'],
  DM_UNAVAILABLE: [O, 'the kernel has no device-mapper'],
  DM_NOT_FOUND: [O, 'no such device-mapper device'],
  DM_DEVICE_EXISTS: [O, 'the device-mapper device exists already'],
  DM_DEVICE_BUSY: [O, 'the device-mapper device is open'],
  DM_INVALID_TABLE: [O, 'the kernel refused a table'],
  DM_LEFT_SUSPENDED: [O, 'a device was left suspended after a failed reload (resume it)'],
  DM_OUTPUT_INVALID: [O, 'dmsetup printed something thinlv cannot read'],
  DM_QUEUE_FULL: [O, 'too many device-mapper operations are queued'],
  // Local state (SQLite).
  STATE_DB_FAILED: [O, "the daemon's SQLite file could not be opened or written"],
  STATE_DB_SCHEMA: [O, 'the SQLite file was written by a newer thinlv'],
  STATE_INVALID_ARGUMENT: [O, 'a value refused by the state database'],
  STATE_LIMIT_REACHED: [O, 'the state database reached a row limit'],
  // Extent math refusing its input (from damaged metadata, or a bug).
  EXTENT_INVALID_ARGUMENT: [O, 'extent math was given a bad argument'],
  EXTENT_DOUBLE_USE: [O, 'extent math found an extent used twice'],
  EXTENT_NOT_PRESENT: [O, 'extent math was asked for an extent it does not hold'],
  EXTENT_SECTOR_OVERFLOW: [O, 'a sector offset is past what is exact'],
  // Bugs.
  EXTENT_INVARIANT_BROKEN: ['internal', 'an extent invariant broke'],
  INVARIANT_BROKEN: ['internal', 'an invariant broke; the command stopped before writing more'],
  INTERNAL: ['internal', 'an unexpected error'],
};

/** The exit class of `code`, or undefined for a code not in the catalogue. */
export function exitClassOf(code: string): ExitClass | undefined {
  return Object.hasOwn(ERROR_CATALOGUE, code) ? ERROR_CATALOGUE[code]![0] : undefined;
}
