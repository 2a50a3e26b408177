// `vgs`: stock lvm's, unchanged. A VG's numbers do not depend on what hosts have journaled
// and the master has not replayed: an allocation moves extents from a host's free LV
// (thinlv_<host>_free) to a thin LV, and both are allocated in metadata, so the VG's size,
// free space and counts are the same before and after replay.

import { runUnchanged } from '../passThrough.js';

export const run = (args: readonly string[]): Promise<number> => runUnchanged('vgs', args);
