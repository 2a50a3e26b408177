// npm run bench:grow
//
// Extends larger than the host's pool, on one loop-backed VG, with the master and a
// host daemon as their own processes at their default settings (master interval 2 s,
// tail poll 100 ms; host lease 1 s): each extend grows an LV by 1 GiB while the pool
// holds one quantum (82 extents, 328 MiB: the default for a 64 GiB VG), so every one
// waits for the master: the host journals its demand, the master's tail poll sees it
// and starts a pass, the pass grants the demand, the host reads its grants ring.
// Latency is request to durable reply, p50/p99 over SAMPLES extends. Beside it, in
// the same run: a stock `lvm lvextend -L +1G` on the same VG (what an operator or
// oVirt's master runs per extend), median of LVEXTEND_SAMPLES.
// Not measured here (issue 10's second part): the stall-free write rate.
// Prints a table, then one JSON line.

import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { newRequestId, requestOnce } from '../src/host/socketServer.js';
import { commitBatch, readVgMetadata } from '../src/lvm/commitBatch.js';
import { createLvmRunner } from '../src/lvm/runLvm.js';
import { computeFreeExtents } from '../src/metadata/checkLayout.js';
import { createThinlvTestVg } from '../test/fixtures/thinlvVg.js';
import { realLvmUnavailableReason } from '../test/fixtures/loopVg.js';
import { percentile, round1 } from './benchStats.js';

const CLI_PATH = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const GIB = 1024 ** 3;
const SAMPLES = 50;
const LVEXTEND_SAMPLES = 10;
const QUANTUM_EXTENTS = 82;

const spawnCli = (args: readonly string[]) => execa(process.execPath, [CLI_PATH, ...args], { reject: false, stdin: 'ignore' });

async function waitForSocket(path: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const reply = existsSync(path) ? await requestOnce(path, { id: newRequestId(), op: 'status' }, 5000).catch(() => undefined) : undefined;
    if (reply?.ok) return;
    if (Date.now() > deadline) throw new Error(`host daemon not serving on ${path} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function timeBigExtends(socketPath: string, vgName: string): Promise<number[]> {
  const latenciesMs: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const started = performance.now();
    const reply = await requestOnce(socketPath, { id: newRequestId(), op: 'extend', vg: vgName, lv: `grow${i}`, sizeBytes: GIB }, 60_000);
    if (!reply.ok) throw new Error(`extend ${i} failed: ${reply.error.code} ${reply.error.message}`);
    latenciesMs.push(performance.now() - started);
  }
  return latenciesMs.sort((a, b) => a - b);
}

async function timeStockLvextend(vg: { device: string; vgName: string; deviceMapperAvailable: boolean }): Promise<number> {
  const lvm = createLvmRunner({ devices: [vg.device], deviceMapperAvailable: vg.deviceMapperAvailable });
  const timesMs: number[] = [];
  for (let i = 0; i < LVEXTEND_SAMPLES; i++) {
    const started = performance.now();
    await lvm.run('lvextend', ['-L', '+1G', `${vg.vgName}/stocklv`]);
    timesMs.push(performance.now() - started);
  }
  return percentile(timesMs.sort((a, b) => a - b), 0.5);
}

async function main(): Promise<void> {
  const skip = realLvmUnavailableReason();
  if (skip !== undefined) throw new Error(`bench:grow needs real LVM and loop devices: ${skip}`);
  const t = await createThinlvTestVg({ sizeBytes: 128 * GIB, hosts: ['bench'], thinLvCount: 0, quantumExtents: QUANTUM_EXTENTS, lowWaterExtents: QUANTUM_EXTENTS / 2 });
  const dir = mkdtempSync(join(tmpdir(), 'thinlv-bench-grow-'));
  const socketPath = join(dir, 's.sock');
  let master: ReturnType<typeof spawnCli> | undefined;
  let host: ReturnType<typeof spawnCli> | undefined;
  try {
    const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
    const run = computeFreeExtents(vg).ranges().at(-1)!;
    await commitBatch(t.vg.lvm, vg, [
      ...Array.from({ length: SAMPLES }, (_, i) => ({
        kind: 'createLv' as const,
        name: `grow${i}`,
        ranges: [{ pv: run.pv, firstExtent: run.firstExtent + run.extentCount - 1 - i, extentCount: 1 }],
        activationSkip: true,
        tags: [`thinlv_virtual_bytes=${2 * GIB}`, 'thinlv_owner=bench'],
      })),
      { kind: 'createLv' as const, name: 'stocklv', ranges: [{ pv: run.pv, firstExtent: run.firstExtent, extentCount: 1 }] },
    ]);
    master = spawnCli(['master', t.vg.vgName, '--no-history', ...t.cliArgs()]);
    host = spawnCli(['host', 'run', t.vg.vgName, 'bench', '--socket', socketPath, '--state-dir', join(dir, 'state'), ...t.cliArgs()]);
    await waitForSocket(socketPath, 60_000);
    const latenciesMs = await timeBigExtends(socketPath, t.vg.vgName);
    const lvextendMedianMs = await timeStockLvextend(t.vg);
    report(latenciesMs, lvextendMedianMs);
  } finally {
    host?.kill('SIGTERM');
    master?.kill('SIGTERM');
    await Promise.all([host, master]);
    rmSync(dir, { recursive: true, force: true });
    removeLvmArchives(t.vg.vgName);
    await t.destroy();
  }
}

/** Removes the backup and archive files the stock lvextend wrote for this benchmark's VG, and only those. */
function removeLvmArchives(vgName: string): void {
  rmSync(join('/etc/lvm/backup', vgName), { force: true });
  if (!existsSync('/etc/lvm/archive')) return;
  for (const name of readdirSync('/etc/lvm/archive')) if (name.startsWith(`${vgName}_`)) rmSync(join('/etc/lvm/archive', name), { force: true });
}

function report(latenciesMs: readonly number[], lvextendMedianMs: number): void {
  const p50 = round1(percentile(latenciesMs, 0.5));
  const p99 = round1(percentile(latenciesMs, 0.99));
  const max = round1(latenciesMs.at(-1)!);
  console.log(`extends of 1 GiB with a pool of ${QUANTUM_EXTENTS} extents (master interval 2000 ms, tail poll 100 ms), ${SAMPLES} samples`);
  console.log(`  thinlv extend      p50 ${p50} ms   p99 ${p99} ms   max ${max} ms   (target p99 < 500 ms)`);
  console.log(`  stock lvextend     median ${round1(lvextendMedianMs)} ms  (-L +1G on the same VG, as a master would run it per extend)`);
  console.log(`  oVirt, published   0.77 s min, 1.15 s mean, 1.39 s max per extend (not measured here)`);
  console.log(JSON.stringify({ bigExtendP50Ms: p50, bigExtendP99Ms: p99, bigExtendMaxMs: max, stockLvextendMedianMs: round1(lvextendMedianMs), samples: SAMPLES, quantumExtents: QUANTUM_EXTENTS, stallFreeMiBps1: null, stallFreeMiBps30: null }));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
