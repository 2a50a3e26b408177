// How the host daemon keeps V8's heap near what it holds (issue 14: 100 MB at 10,000 LVs).
//
// A host daemon holds little (the VG's layout: about 6 MB at 10,000 LVs) but reads the
// whole metadata text (5.5 MB) at start and after each master commit, and parses it.
// V8's defaults, tuned for throughput, make each such read cost several times what it keeps:
//   - V8 doubles its young generation (two semi-spaces, up to 16 MB each) whenever more has
//     survived its scavenges since the last doubling than it holds. A read builds the
//     layout it keeps while it parses, so the first read of a large pool takes it to 32 MB,
//     for the daemon's life. `semi_space_growth_factor` 1 keeps it the size it is.
//   - V8 lets the old generation grow by at least 8 MB and a factor of its live size
//     between full collections, so a read's garbage (the text, the parse's promoted objects)
//     is often still there when the next read starts. `optimize_for_size` makes both
//     smaller: more, shorter full collections.
// V8 reads both flags each time it sizes a space, so setting them at run time takes effect
// (on the command line V8 raises semi_space_growth_factor to 2 when it sets its heap up:
// there it does nothing). They are set here, by the daemon itself, so whoever starts
// `thinlv host run` (the systemd unit, a test, the bench) gets the same daemon.
// test/unit/heapPolicy.test.ts checks that both still work on the Node in use: a V8 that
// stops reading them fails that test rather than a pool. Not every flag can be changed
// this way: `--single-threaded-gc` at run time stopped Node 20 with a trap.

import { setFlagsFromString } from 'node:v8';

/** Sets V8's heap policy for the rest of the process (see above); call it before the first metadata read. */
export function keepHeapSmall(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
  setFlagsFromString('--optimize-for-size');
}
