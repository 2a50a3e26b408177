// Builds native/dmIoctl/build/dmIoctl.node, thinlv's device-mapper ioctl addon, with the C
// compiler and Node's own headers: one `cc` run, no node-gyp, Python or download. Run by
// `npm ci` / `npm install` (package.json "install") and by scripts/rig/build.sh.
//
// Best effort by design: the addon only makes live extends faster, and thinlv falls back
// to dmsetup without it (src/dm/selectDeviceMapper.ts), so an install on a machine with no
// compiler or no Node headers must still succeed. It prints why it built nothing and exits
// 0, unless THINLV_DM_ADDON_REQUIRED=1 (the rig's build) makes that an error.
//
//   node native/dmIoctl/build.mjs

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const source = join(here, 'dmIoctl.c');
const output = join(here, 'build', 'dmIoctl.node');
const required = process.env.THINLV_DM_ADDON_REQUIRED === '1';

function skip(reason) {
  process.stderr.write(`thinlv: device-mapper ioctl addon not built (${reason}); thinlv will use dmsetup\n`);
  process.exit(required ? 1 : 0);
}

if (process.platform !== 'linux') skip(`device-mapper is Linux only; this is ${process.platform}`);
// Node's headers: next to the binary in official builds and distribution packages
// (<prefix>/bin/node, <prefix>/include/node), or where npm_config_nodedir points.
const candidates = [process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'), join(dirname(dirname(process.execPath)), 'include', 'node'), '/usr/include/node', '/usr/local/include/node'];
const includeDir = candidates.find((dir) => dir && existsSync(join(dir, 'node_api.h')));
if (includeDir === undefined) skip(`no node_api.h in ${candidates.filter(Boolean).join(', ')}`);
if (!existsSync('/usr/include/linux/dm-ioctl.h')) skip('no /usr/include/linux/dm-ioctl.h (install linux-libc-dev)');

// Up to date: newer than its source and this script (so the rig's tools image, which
// depends on the file's time, is not rebuilt for nothing).
const mtimeMs = (path) => (existsSync(path) ? statSync(path).mtimeMs : 0);
if (mtimeMs(output) > Math.max(mtimeMs(source), mtimeMs(fileURLToPath(import.meta.url))) && process.env.THINLV_DM_ADDON_FORCE !== '1') {
  process.stderr.write(`thinlv: ${output} is up to date\n`);
  process.exit(0);
}

const compiler = process.env.CC || 'cc';
mkdirSync(dirname(output), { recursive: true });
const temporary = `${output}.${process.pid}.tmp`;
const args = ['-O2', '-Wall', '-Wextra', '-Werror', '-std=gnu11', '-fPIC', '-shared', '-DNODE_GYP_MODULE_NAME=dmIoctl', `-I${includeDir}`, source, '-o', temporary];
const result = spawnSync(compiler, args, { stdio: ['ignore', 'inherit', 'inherit'], timeout: 120_000 });
if (result.error !== undefined || result.status !== 0) {
  rmSync(temporary, { force: true });
  skip(result.error !== undefined ? `${compiler}: ${result.error.message}` : `${compiler} exited with ${result.status ?? result.signal}`);
}
// Renamed into place whole, so a process that loads the addon never sees half a file.
renameSync(temporary, output);
process.stderr.write(`thinlv: built ${output}\n`);
