// npm run build, after tsc: bundles the CLI (src/cli/main.ts) into dist/bundle/, the
// package's bin. A command is a process, and Node spends most of a short command's time
// finding, reading and compiling modules: one file per command path (esbuild's code
// splitting turns each dynamic import() into a chunk, so a command still loads only
// what it needs) costs a fraction of the hundreds of small files under node_modules.
//
// Left out of the bundle, and loaded from node_modules as before:
// - better-sqlite3 and @ronomon/direct-io: native addons, found from their package.
// - yargs: it finds its locale files and the package's version from its own place in
//   node_modules; bundled it would find neither, and print other messages.
// - pino: src/log.ts loads it with require() when a logger first writes, which esbuild
//   leaves as it is.
//
// tsc's output (dist/src/cli/main.js) stays, runs the same code, and is what the unit
// tests import; the integration tests run the bundle, as the bin (test/fixtures/runCli.ts).
//
// A build replaces the bundle under running commands and daemons (a `git pull && npm run
// build` on a host, a test run beside another): chunks are named by their content and
// written before the entry, each file written aside and renamed into place, so a process
// that started from the old entry still finds every chunk it imports, and one that starts
// now finds the new entry whole. Chunks no build has named for a day are deleted.

import { mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BUNDLE_DIR = `${ROOT}dist/bundle`;
const BUNDLE_ENTRY = `${BUNDLE_DIR}/thinlv.js`;

/** A chunk no build has written for this long belongs to no running process's bundle any more. */
const STALE_CHUNK_MS = 24 * 60 * 60 * 1000;

/** Packages resolved from node_modules at run time (see above). */
const EXTERNAL = ['better-sqlite3', '@ronomon/direct-io', 'yargs', 'pino'];

// Bundled CommonJS dependencies (execa's cross-spawn, prom-client, ...) call require(),
// which an ES module does not have: each chunk makes its own.
const REQUIRE_SHIM = "import { createRequire as __thinlvCreateRequire } from 'node:module'; const require = __thinlvCreateRequire(import.meta.url);";

const result = await build({
  absWorkingDir: ROOT,
  entryPoints: { thinlv: 'src/cli/main.ts' },
  outdir: BUNDLE_DIR,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: EXTERNAL,
  banner: { js: REQUIRE_SHIM },
  chunkNames: 'chunk-[hash]',
  write: false,
  logLevel: 'warning',
});
if (result.errors.length > 0) throw new Error(`esbuild failed: ${result.errors.map((e) => e.text).join('; ')}`);
const entry = result.outputFiles.find((file) => file.path === BUNDLE_ENTRY);
if (entry === undefined) throw new Error(`esbuild wrote no ${BUNDLE_ENTRY}`);

mkdirSync(BUNDLE_DIR, { recursive: true });
const written = new Set<string>();
for (const file of [...result.outputFiles.filter((f) => f !== entry), entry]) {
  const aside = `${file.path}.${process.pid}.tmp`;
  writeFileSync(aside, file.contents, { mode: file === entry ? 0o755 : 0o644 });
  renameSync(aside, file.path);
  written.add(basename(file.path));
}
for (const name of readdirSync(BUNDLE_DIR)) {
  const path = join(BUNDLE_DIR, name);
  if (!written.has(name) && Date.now() - statSync(path).mtimeMs > STALE_CHUNK_MS) rmSync(path, { force: true });
}
