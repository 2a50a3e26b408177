// `pvs`: stock lvm's, unchanged. A PV's size and free space do not depend on unreplayed
// allocations: they move extents between two allocated LVs (a host's free LV and a thin
// LV), never to or from the PV's free space.

import { runUnchanged } from '../passThrough.js';

export const run = (args: readonly string[]): Promise<number> => runUnchanged('pvs', args);
