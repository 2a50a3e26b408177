// I8, "at most one daemon writes a host's journal", checked on its own rather than
// through the losses it causes: every write a daemon starts on a host's journal ring
// must come from the daemon that last took that host's lease. A daemon that lost
// its lease (another took it over while it was frozen, or it never noticed) and
// writes anyway is reported at the write, before any record it lands is replayed.
//
// Why the last taker is the right writer: a taker uses the ring only after its claim
// settled, and a holder starts no write after its validity ends, which comes before
// the taker's settle does (src/ownership/hostLease.ts); in the simulator a write
// lands when it starts, so any write by anyone else after the take is a violation.

export class JournalWriters {
  /** Lease id (the journal LV's uuid) -> the daemon (process name and incarnation) that took it last. */
  private readonly holders = new Map<string, string>();

  constructor(private readonly onViolation: (message: string) => void) {}

  /** `daemon` took the lease `leaseId` (its settle is done): from now on only it may write the ring. */
  took(leaseId: string, daemon: string): void {
    this.holders.set(leaseId, daemon);
  }

  /** `daemon` starts a write on the journal ring behind `leaseId`. */
  writes(leaseId: string, daemon: string, host: string): void {
    const holder = this.holders.get(leaseId);
    if (holder !== daemon) this.onViolation(`I8: ${daemon} writes ${host}'s journal while ${holder ?? 'no daemon'} holds its lease`);
  }
}
