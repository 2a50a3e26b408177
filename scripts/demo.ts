// npm run demo: thinlv end to end on this machine, in about two minutes, as root.
//
// A sparse file and a loop device make a VG; `thinlv format` prepares it; a master
// and three host daemons run as their own processes; 30 thin LVs of 10 GiB virtual
// size are created on the master machine; then the hosts grow them at different
// rates through `thinlv lvextend --live`, one process per grow as tapdisk's resize
// hook runs it (the fast ones by more than a pool quantum per master pass). A
// progress line shows extends per second, pool levels and replay lag. At the end it
// prints `thinlv free` and `thinlv status`, checks that every acknowledged extent is
// in metadata exactly once (and `thinlv check`), and tears everything down: also on
// Ctrl-C or a failure. Only what it created is touched.
//
// THINLV_DEMO_SECONDS sets how long the LVs grow (default 45).

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { newRequestId, requestOnce } from '../src/host/socketServer.js';
import { readVgReport } from '../src/lvm/readVgReport.js';
import { DEFAULT_LOCAL_LOCK_DIR } from '../src/ownership/localHostLock.js';
import { createLoopVg, type LoopVg } from '../test/fixtures/loopVg.js';

const CLI = fileURLToPath(new URL('../bundle/thinlv.js', import.meta.url));
const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const HOSTS = ['h1', 'h2', 'h3'] as const;
const LV_COUNT = 30;
const GROW_SECONDS = Number(process.env['THINLV_DEMO_SECONDS'] ?? 45);
/** Grow steps by LV: every 10th LV is fast (more than a 256 MiB quantum per 2 s pass), then medium and slow ones. */
const STEP_BYTES = (lv: number): number => (lv % 10 === 0 ? 512 * MIB : lv % 3 === 0 ? 64 * MIB : 16 * MIB);
const WORKERS_PER_HOST = 2;

interface Demo {
  readonly vg: LoopVg;
  readonly dir: string;
  readonly daemons: { readonly kill: (signal: NodeJS.Signals) => void; readonly done: Promise<unknown> }[];
  stopping: boolean;
}

interface Tally {
  extends: number;
  failures: Map<string, number>;
  /** Extents each LV's acknowledged extends added. */
  readonly acknowledged: Map<string, number>;
}

/** What is missing on this machine, in one line with how to get it; undefined when nothing is. */
function missingPrerequisite(): string | undefined {
  if (process.getuid?.() !== 0) return 'npm run demo needs root (it creates a loop device and a volume group): run it as root, e.g. sudo npm run demo';
  const has = (command: string): boolean => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
  if (!has('lvm')) return 'lvm is not installed: apt-get install lvm2 (or dnf install lvm2)';
  if (!has('losetup')) return 'losetup is not installed: apt-get install mount (util-linux)';
  if (spawnSync('losetup', ['--find'], { stdio: 'ignore' }).status !== 0) return 'no free loop device (losetup --find failed): modprobe loop, or free one';
  return undefined;
}

function cliArgs(demo: Demo): string[] {
  return [...demo.vg.cliDeviceArgs, '--lvm-config', 'backup { backup = 0 archive = 0 }'];
}

/** Runs a thinlv command to completion; throws with its output when it fails. */
async function thinlv(demo: Demo, args: readonly string[]): Promise<string> {
  const result = await execa('node', [CLI, ...args, ...cliArgs(demo)], { reject: false });
  if (result.exitCode !== 0) throw new Error(`thinlv ${args.join(' ')} exited ${String(result.exitCode)}: ${String(result.stderr)}${String(result.stdout)}`);
  return String(result.stdout);
}

const socketOf = (demo: Demo, host: string): string => join(demo.dir, `${host}.sock`);

async function hostStatus(demo: Demo, host: string) {
  const reply = await requestOnce(socketOf(demo, host), { id: newRequestId(), op: 'status' }, 5000).catch(() => undefined);
  return reply?.ok === true ? reply.result : undefined;
}

async function startDaemons(demo: Demo): Promise<void> {
  const spawn = (args: string[]): void => {
    const child = execa('node', [CLI, ...args, ...cliArgs(demo)], { reject: false, stdout: 'ignore', stderr: 'ignore' });
    demo.daemons.push({ kill: (signal) => void child.kill(signal), done: child.then(() => undefined) });
  };
  spawn(['master', demo.vg.vgName, '--state-dir', join(demo.dir, 'master')]);
  for (const host of HOSTS) spawn(['host', 'run', demo.vg.vgName, host, '--socket', socketOf(demo, host), '--state-dir', join(demo.dir, host)]);
  const deadline = Date.now() + 60_000;
  for (const host of HOSTS) {
    while ((await hostStatus(demo, host)) === undefined) {
      if (Date.now() > deadline) throw new Error(`host daemon ${host} did not start within 60 s`);
      await sleep(200);
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const lvName = (i: number): string => `vm${String(i).padStart(2, '0')}`;
const hostOf = (i: number): string => HOSTS[i % HOSTS.length]!;

/** 30 thin LVs of 10 GiB virtual size, three `thinlv lvcreate` processes at a time (their commits take turns). */
async function createLvs(demo: Demo): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < LV_COUNT && !demo.stopping) await thinlv(demo, ['lvcreate', demo.vg.vgName, '-n', lvName(next++), '-V', '10g']);
  };
  await Promise.all([worker(), worker(), worker()]);
}

/**
 * Activates each LV on the host that grows it, as a VM started there would: an active
 * LV is held by its host, so its extends need no master (an extend of an inactive LV
 * asks the master for it each time). Through the daemon's socket: the lvm-compatible
 * `lvchange -ay` is still to come (issue 11).
 */
async function activateLvs(demo: Demo): Promise<void> {
  await Promise.all(
    Array.from({ length: LV_COUNT }, async (_, i) => {
      const reply = await requestOnce(socketOf(demo, hostOf(i)), { id: newRequestId(), op: 'activate', lv: lvName(i) }, 60_000);
      if (!reply.ok) throw new Error(`activating ${lvName(i)} on ${hostOf(i)}: ${reply.error.code} ${reply.error.message}`);
    }),
  );
}

/** One host's grow loop: its LVs in turn, each by its step, until time is up or the LV is at its virtual size. */
async function growWorker(demo: Demo, host: string, worker: number, until: number, tally: Tally): Promise<void> {
  const mine = Array.from({ length: LV_COUNT }, (_, i) => i).filter((i) => hostOf(i) === host && Math.floor(i / HOSTS.length) % WORKERS_PER_HOST === worker);
  const full = new Set<number>();
  for (let turn = 0; Date.now() < until && !demo.stopping && full.size < mine.length; turn++) {
    const i = mine[turn % mine.length]!;
    if (full.has(i)) continue;
    const args = ['lvextend', '-L', `+${STEP_BYTES(i) / MIB}m`, `${demo.vg.vgName}/${lvName(i)}`, '--live', '--socket', socketOf(demo, host), '--json'];
    const result = await execa('node', [CLI, ...args, ...cliArgs(demo)], { reject: false });
    if (result.exitCode === 0) {
      const reply = JSON.parse(String(result.stdout)) as { extentsGranted: number };
      tally.extends += 1;
      tally.acknowledged.set(lvName(i), (tally.acknowledged.get(lvName(i)) ?? 0) + reply.extentsGranted);
    } else {
      const code = /VIRTUAL_SIZE_EXCEEDED|virtual size/.test(String(result.stderr)) ? 'at virtual size' : `exit ${String(result.exitCode)}`;
      if (code === 'at virtual size') full.add(i);
      tally.failures.set(code, (tally.failures.get(code) ?? 0) + 1);
    }
  }
}

/** One line of progress every second: extends per second, each host's pool and records not yet replayed. */
function startProgress(demo: Demo, tally: Tally, startedAt: number): () => void {
  let last = 0;
  const timer = setInterval(() => {
    void (async () => {
      const pools = await Promise.all(HOSTS.map(async (h) => {
        const s = await hostStatus(demo, h);
        return s === undefined ? `${h} ?` : `${h} pool ${String(Math.round((s.poolExtentCount * 4) / 1024 * 10) / 10).padStart(5)} GiB lag ${String(s.unreplayedRecordCount).padStart(3)}`;
      }));
      const line = `${String(Math.round((Date.now() - startedAt) / 1000)).padStart(3)} s  ${String(tally.extends).padStart(4)} extends (${tally.extends - last}/s)  ${pools.join('  ')}`;
      last = tally.extends;
      process.stdout.write(process.stdout.isTTY ? `\r${line}\u001b[K` : `${line}\n`);
    })();
  }, 1000);
  return () => {
    clearInterval(timer);
    if (process.stdout.isTTY) process.stdout.write('\n');
  };
}

/** Waits until every host's journal is replayed (the master is behind by a pass at most). */
async function waitForReplay(demo: Demo): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const statuses = await Promise.all(HOSTS.map((h) => hostStatus(demo, h)));
    if (statuses.every((s) => s !== undefined && s.unreplayedRecordCount === 0)) return;
    if (Date.now() > deadline) throw new Error('the master did not replay every journal within 60 s');
    await sleep(250);
  }
}

/** Every acknowledged extent is in metadata exactly once: each LV is its first extent plus what its extends were told. */
async function verify(demo: Demo, tally: Tally): Promise<void> {
  const report = await readVgReport(demo.vg.lvm, demo.vg.vgName);
  const wrong: string[] = [];
  for (let i = 0; i < LV_COUNT; i++) {
    const lv = report.lvs.find((l) => l.name === lvName(i));
    const extents = lv === undefined ? 0 : lv.segments.reduce((sum, s) => sum + s.extentCount, 0);
    const expected = 1 + (tally.acknowledged.get(lvName(i)) ?? 0);
    if (extents !== expected) wrong.push(`${lvName(i)}: ${extents} extents in metadata, ${expected} acknowledged`);
  }
  if (wrong.length > 0) throw new Error(`acknowledged extents and metadata disagree:\n  ${wrong.join('\n  ')}`);
  await thinlv(demo, ['check', demo.vg.vgName]);
  const total = [...tally.acknowledged.values()].reduce((a, b) => a + b, 0);
  console.log(`\nverified: ${tally.extends} acknowledged extends (${total} extents, ${(total * 4) / 1024} GiB) are in metadata exactly once, in the LVs they were given to; thinlv check finds no extent in two LVs.`);
}

async function tearDown(demo: Demo): Promise<void> {
  for (const daemon of demo.daemons) daemon.kill('SIGTERM');
  await Promise.all(demo.daemons.map((d) => d.done.catch(() => undefined)));
  await demo.vg.destroy();
  rmSync(demo.dir, { recursive: true, force: true });
  // The lock files of this VG: one daemon per host, one master, metadata commands take turns (flocks, released on exit).
  for (const name of [`master-${demo.vg.vgName}.lock`, `metadata-${demo.vg.vgName}.lock`, ...HOSTS.map((h) => `host-${demo.vg.vgName}-${h}.lock`)]) rmSync(join(DEFAULT_LOCAL_LOCK_DIR, name), { force: true });
  console.log('torn down: daemons stopped, VG removed, loop device detached, files deleted');
}

async function run(demo: Demo): Promise<void> {
  console.log(`VG ${demo.vg.vgName} on ${demo.vg.device} (64 GiB sparse file); formatting it and adding hosts ${HOSTS.join(', ')}`);
  await thinlv(demo, ['format', demo.vg.vgName]);
  for (const host of HOSTS) await thinlv(demo, ['host', 'add', demo.vg.vgName, host]);
  console.log('starting the master and three host daemons, each its own process');
  await startDaemons(demo);
  console.log(`creating ${LV_COUNT} thin LVs of 10 GiB virtual size`);
  await createLvs(demo);
  if (demo.stopping) return;
  console.log(`activating each on the host that grows it (${HOSTS.map((h) => `${h}: ${LV_COUNT / HOSTS.length} LVs`).join(', ')})`);
  await activateLvs(demo);
  console.log(`growing them for ${GROW_SECONDS} s with thinlv lvextend --live, one process per grow (every 10th LV by 512 MiB a step, more than a pool quantum)`);
  const tally: Tally = { extends: 0, failures: new Map(), acknowledged: new Map() };
  const startedAt = Date.now();
  const stopProgress = startProgress(demo, tally, startedAt);
  try {
    const until = startedAt + GROW_SECONDS * 1000;
    await Promise.all(HOSTS.flatMap((host) => Array.from({ length: WORKERS_PER_HOST }, (_, w) => growWorker(demo, host, w, until, tally))));
  } finally {
    stopProgress();
  }
  if (demo.stopping) return;
  const failures = [...tally.failures].map(([why, n]) => `${n} ${why}`).join(', ');
  console.log(`${tally.extends} extends in ${Math.round((Date.now() - startedAt) / 1000)} s${failures === '' ? '' : `; refused: ${failures}`}`);
  await waitForReplay(demo);
  console.log(`\n$ thinlv free ${demo.vg.vgName}\n${await thinlv(demo, ['free', demo.vg.vgName])}`);
  console.log(`\n$ thinlv status ${demo.vg.vgName}\n${await thinlv(demo, ['status', demo.vg.vgName])}`);
  await verify(demo, tally);
}

async function main(): Promise<number> {
  const missing = missingPrerequisite();
  if (missing !== undefined) {
    console.error(`thinlv demo: ${missing}`);
    return 1;
  }
  const vg = await createLoopVg({ sizeBytes: 64 * GIB, namePrefix: 'thinlvdemo' });
  const demo: Demo = { vg, dir: mkdtempSync(join(tmpdir(), 'thinlv-demo-')), daemons: [], stopping: false };
  const onSignal = (): void => {
    if (demo.stopping) return;
    demo.stopping = true;
    console.error('\nthinlv demo: interrupted; tearing down');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await run(demo);
    if (demo.stopping) return 130;
    console.log('demo done');
    return 0;
  } catch (error) {
    if (demo.stopping) return 130;
    console.error(`thinlv demo failed: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    await tearDown(demo);
  }
}

process.exitCode = await main();
