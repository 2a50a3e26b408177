// `lvextend -L|-l SIZE LVPATH`, run through a symlink named lvextend: see ../resizeLv.ts
// (shared with lvresize). `thinlv lvextend` is thinlv's own command (src/cli/commands/
// lvextend.ts, the resize hook's fast path), which this does not replace.

import { runResize } from '../resizeLv.js';

export const run = (args: readonly string[]): Promise<number> => runResize('lvextend', args);
