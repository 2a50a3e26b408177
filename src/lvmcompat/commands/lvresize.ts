// `lvresize -L|-l SIZE LVPATH`: see ../resizeLv.ts (shared with lvextend).

import { runResize } from '../resizeLv.js';

export const run = (args: readonly string[]): Promise<number> => runResize('lvresize', args);
