// A small reproduction of two bench:scale figures (issue 14): the ring I/O of an idle
// master pass over every host, and the host daemon's start-up, broken into phases.
//
//   npm run bench:start-idle -- build [--lvs N] [--hosts N]   -> prints a state file path
//   npm run bench:start-idle -- measure STATE_FILE [--starts N]
//   npm run bench:start-idle -- destroy STATE_FILE
//
// build makes a sparse loop-backed VG as bench:scale does (same space per LV), formats
// it, adds the hosts, creates the thin LVs, runs the first pass (grants every pool) and
// has host h01 journal some extends; the VG is kept so that two builds of thinlv (before
// and after a change) can be measured side by side on the same disk. measure counts every
// ring read and write (calls, bytes, ms) per ring, for an idle pass of the master's
// daemon session (kept readers) and of a fresh session (`thinlv master --once`), and runs
// the host daemon in process for h01: lvm time, ring I/O, lease I/O and sleeps, total.
// Only what build created is touched (--devices on every lvm call); destroy removes it.

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chooseExtents } from '../src/extent/chooseExtents.js';
import { ExtentSet } from '../src/extent/extentSet.js';
import { FakeDeviceMapper } from '../src/dm/fakeDeviceMapper.js';
import { noFaults } from '../src/faults.js';
import { TAG, readThinlvVg } from '../src/format/thinlvVg.js';
import { startHostDaemon } from '../src/host/hostDaemon.js';
import { commitBatch, readVgMetadata } from '../src/lvm/commitBatch.js';
import { createLvmRunner, type LvmRunner } from '../src/lvm/runLvm.js';
import { createLogger } from '../src/log.js';
import type { MetadataChange } from '../src/metadata/applyChanges.js';
import { computeFreeExtents } from '../src/metadata/checkLayout.js';
import { extentSizeBytes, type VgMetadata } from '../src/metadata/vgModel.js';
import { formatVg } from '../src/master/formatVg.js';
import { addHost } from '../src/master/hostMembership.js';
import { MasterSession, runPass, type MasterDeps } from '../src/master/replayPass.js';
import { observedRegions } from '../test/fixtures/observedRegions.js';
import { fileRegionOpener, type RegionOpener } from '../src/rings/ringRegions.js';
import { HostState, openStateDb } from '../src/state/index.js';
import { TEST_LVM_CONFIG, uniqueVgName } from '../test/fixtures/loopVg.js';
import { ScaleHost } from './scaleHosts.js';

const GIB = 1024 ** 3;
const FULL_SIZE_BYTES = 16 * 1024 * GIB - GIB;
const FULL_LVS = 10_000;
const VIRTUAL_BYTES = 100 * GIB;
const LVM_TIMEOUT_MS = 600_000;
const JOURNALED_EXTENDS = 200;

interface BuiltVg {
  readonly vgName: string;
  readonly device: string;
  readonly dir: string;
  readonly deviceMapperAvailable: boolean;
  readonly hosts: number;
  readonly lvs: number;
}

const log = (message: string): void => console.error(`benchStartIdle ${new Date().toISOString().slice(11, 19)} ${message}`);

function lvmFor(vg: { device: string; deviceMapperAvailable: boolean }): LvmRunner {
  return createLvmRunner({ devices: [vg.device], deviceMapperAvailable: vg.deviceMapperAvailable, extraConfig: TEST_LVM_CONFIG, defaultTimeoutMs: LVM_TIMEOUT_MS });
}

/** Every ring I/O, per region (keyed by ring id) and in total. */
class IoLedger {
  readonly perRing = new Map<string, { calls: number; bytes: number; ms: number; opens: number }>();
  total = { calls: 0, bytes: 0, ms: 0, opens: 0 };
  /** Wall time with at least one ring I/O in flight (the sum above counts overlapping reads twice). */
  busyMs = 0;
  private inFlight = 0;
  private busySinceMs = 0;

  reset(): void {
    this.perRing.clear();
    this.total = { calls: 0, bytes: 0, ms: 0, opens: 0 };
    this.busyMs = 0;
  }

  private begin(): void {
    if (this.inFlight++ === 0) this.busySinceMs = performance.now();
  }

  private end(): void {
    if (--this.inFlight === 0) this.busyMs += performance.now() - this.busySinceMs;
  }

  private entry(ringId: string) {
    let e = this.perRing.get(ringId);
    if (e === undefined) this.perRing.set(ringId, (e = { calls: 0, bytes: 0, ms: 0, opens: 0 }));
    return e;
  }

  wrap(inner: RegionOpener): RegionOpener {
    const timedOpens: RegionOpener = {
      open: async (location) => {
        const started = performance.now();
        const region = await inner.open(location);
        const opened = performance.now() - started;
        const e = this.entry(location.ringId);
        e.opens += 1;
        e.ms += opened;
        this.total.opens += 1;
        this.total.ms += opened;
        return region;
      },
    };
    return observedRegions(timedOpens, async (call, run) => {
      const at = performance.now();
      this.begin();
      try {
        return await run();
      } finally {
        this.end();
        const ms = performance.now() - at;
        for (const t of [this.entry(call.location.ringId), this.total]) {
          t.calls += 1;
          t.bytes += call.bytes;
          t.ms += ms;
        }
      }
    });
  }
}

function timedLvm(inner: LvmRunner, calls: { command: string; ms: number }[]): LvmRunner {
  return {
    async run(command, args, options) {
      const started = performance.now();
      try {
        return await inner.run(command, args, options);
      } finally {
        calls.push({ command: `${command} ${args.filter((a) => !a.startsWith('/') && a !== '--devices').slice(0, 3).join(' ')}`, ms: performance.now() - started });
      }
    },
  };
}

function masterDeps(lvm: LvmRunner, regions: RegionOpener): MasterDeps {
  return { lvm, regions, log: createLogger('silent'), faults: noFaults, nowMs: () => Date.now(), sleepMs: (ms) => new Promise((resolve) => setTimeout(resolve, ms)) };
}

async function build(argv: readonly string[]): Promise<void> {
  const lvs = Number(argv[argv.indexOf('--lvs') + 1] ?? 1000) || 1000;
  const hosts = Number(argv[argv.indexOf('--hosts') + 1] ?? 64) || 64;
  const sizeBytes = Math.max(64 * GIB, Math.floor((FULL_SIZE_BYTES * lvs) / FULL_LVS / GIB) * GIB);
  const dir = mkdtempSync(join(tmpdir(), 'thinlv-startidle-'));
  const image = join(dir, 'pv.img');
  writeFileSync(image, '');
  execFileSync('truncate', ['-s', String(sizeBytes), image]);
  const device = execFileSync('losetup', ['--find', '--show', '--direct-io=on', image], { encoding: 'utf8' }).trim();
  const deviceMapperAvailable = spawnSync('dmsetup', ['version'], { stdio: 'ignore' }).status === 0;
  const built: BuiltVg = { vgName: uniqueVgName('thinlvstartidle'), device, dir, deviceMapperAvailable, hosts, lvs };
  const stateFile = join(dir, 'vg.json');
  writeFileSync(stateFile, JSON.stringify(built));
  log(`state ${stateFile}: ${built.vgName} on ${device}, ${sizeBytes / GIB} GiB, ${hosts} hosts, ${lvs} LVs`);
  const lvm = lvmFor(built);
  await lvm.run('pvcreate', ['--yes', '--metadatasize', '64m', device]);
  await lvm.run('vgcreate', ['--yes', '-s', '4m', built.vgName, device]);
  await formatVg(lvm, built.vgName, { expectedLvCount: lvs });
  const deps = masterDeps(lvm, fileRegionOpener());
  const hostNames = Array.from({ length: hosts }, (_, i) => `h${String(i + 1).padStart(2, '0')}`);
  for (const host of hostNames) await addHost(deps, built.vgName, host);
  log(`${hosts} hosts added`);
  let vg = await readVgMetadata(lvm, built.vgName);
  let free = computeFreeExtents(vg);
  const changes: MetadataChange[] = [];
  for (let i = 0; i < lvs; i++) {
    const chosen = chooseExtents(free, [], 1);
    if (!chosen.ok) throw new Error('VG full');
    free = free.difference(ExtentSet.fromRanges(chosen.ranges));
    changes.push({ kind: 'createLv', name: `vdi${String(i).padStart(5, '0')}`, ranges: chosen.ranges, activationSkip: true, tags: [`${TAG.virtualBytes}${VIRTUAL_BYTES}`, `${TAG.owner}${hostNames[i % hosts]!}`] });
  }
  await commitBatch(lvm, vg, changes);
  log(`${lvs} thin LVs created`);
  await runPass(deps, new MasterSession(), built.vgName);
  vg = await readVgMetadata(lvm, built.vgName);
  // h01 journals some extends (left unreplayed), as a host in service has.
  const h01 = await ScaleHost.open(fileRegionOpener(), vg, hostNames[0]!);
  await h01.afterPass(vg, readThinlvVg(vg).hosts.get(hostNames[0]!)!.appliedSeq);
  const mine = changes.filter((_, i) => i % hosts === 0).map((c) => (c as { name: string }).name);
  for (let i = 0; i < JOURNALED_EXTENDS; i++) await h01.allocator.extendBy(mine[i % mine.length]!, extentSizeBytes(vg));
  await h01.close();
  log(`h01 journaled ${JOURNALED_EXTENDS} extends; built. State file:`);
  console.log(stateFile);
}

function summarise(ledger: IoLedger, vg: VgMetadata) {
  const names = new Map(vg.lvs.map((lv) => [lv.uuid, lv.name]));
  const rows = [...ledger.perRing].map(([ringId, e]) => ({ ring: names.get(ringId) ?? ringId, ...e }));
  const perHost = rows.filter((r) => r.ring.endsWith('_journal'));
  const maxMs = Math.max(0, ...perHost.map((r) => r.ms));
  return {
    busyMs: round(ledger.busyMs),
    totalMs: round(ledger.total.ms),
    calls: ledger.total.calls,
    bytes: ledger.total.bytes,
    opens: ledger.total.opens,
    perJournal: perHost.length === 0 ? undefined : { calls: perHost[0]!.calls, bytes: perHost[0]!.bytes, maxMs: round(maxMs), meanMs: round(perHost.reduce((n, r) => n + r.ms, 0) / perHost.length) },
    otherRings: rows.filter((r) => !r.ring.endsWith('_journal')).map((r) => `${r.ring}: ${r.calls} calls ${r.bytes} B ${round(r.ms)} ms`),
  };
}

const round = (ms: number): number => Math.round(ms * 10) / 10;

async function idlePasses(built: BuiltVg, lvm: LvmRunner): Promise<void> {
  const ledger = new IoLedger();
  const deps = masterDeps(lvm, ledger.wrap(fileRegionOpener()));
  const vg = await readVgMetadata(lvm, built.vgName);
  const session = new MasterSession({ keepJournalsOpen: true, intervalMs: 2000 });
  for (const [label, run] of [
    ['fresh session (master --once)', () => runPass(deps, new MasterSession(), built.vgName)],
    ['daemon session, first pass (opens readers)', () => runPass(deps, session, built.vgName)],
    ['daemon session, idle pass 2', () => runPass(deps, session, built.vgName)],
    ['daemon session, idle pass 3', () => runPass(deps, session, built.vgName)],
    ['daemon session, poll between passes', () => session.passWanted()],
  ] as const) {
    ledger.reset();
    const started = performance.now();
    await run();
    const passMs = performance.now() - started;
    console.log(JSON.stringify({ measure: label, passMs: round(passMs), ringIo: summarise(ledger, vg) }));
  }
  await session.close();
}

async function daemonStart(built: BuiltVg, lvm: LvmRunner, run: number, leaseRenewMs: number | undefined): Promise<void> {
  const ledger = new IoLedger();
  const lvmCalls: { command: string; ms: number }[] = [];
  let sleptMs = 0;
  const stateDir = mkdtempSync(join(tmpdir(), 'thinlv-startidle-state-'));
  const host = 'h01';
  const socketPath = join(stateDir, 'h.sock');
  const vgBefore = await readVgMetadata(lvm, built.vgName);
  const started = performance.now();
  const daemon = await startHostDaemon(
    {
      lvm: timedLvm(lvm, lvmCalls),
      regions: ledger.wrap(fileRegionOpener()),
      dm: new FakeDeviceMapper(),
      deviceMapperPresent: false,
      openState: (ringIdentity) => new HostState(openStateDb(join(stateDir, `host-${ringIdentity}.db`))),
      log: createLogger(process.env['BENCH_LOG_LEVEL'] === 'debug' ? 'debug' : 'silent'),
      nowMs: () => Date.now(),
      sleepMs: (ms) => {
        sleptMs += ms;
        return new Promise((resolve) => setTimeout(resolve, ms));
      },
    },
    { vg: built.vgName, host, socketPath, outOfSpaceWaitMs: 1000, leaseRenewMs, localLockDir: stateDir },
  );
  const startMs = performance.now() - started;
  const io = summarise(ledger, vgBefore);
  await daemon.stop();
  rmSync(stateDir, { recursive: true, force: true });
  console.log(JSON.stringify({ measure: `daemon start ${run}${leaseRenewMs === undefined ? '' : ` (lease ${leaseRenewMs} ms)`}`, startMs: round(startMs), sleptMs, lvm: lvmCalls.map((c) => `${c.command}: ${round(c.ms)} ms`), ringIo: { busyMs: io.busyMs, totalMs: io.totalMs, calls: io.calls, bytes: io.bytes, opens: io.opens, rings: io.otherRings, journal: io.perJournal } }));
}

async function measure(stateFile: string, argv: readonly string[]): Promise<void> {
  const built = JSON.parse(readFileSync(stateFile, 'utf8')) as BuiltVg;
  const lvm = lvmFor(built);
  const starts = Number(argv[argv.indexOf('--starts') + 1] ?? 2) || 2;
  console.log(JSON.stringify({ uptime: execFileSync('uptime', { encoding: 'utf8' }).trim(), hosts: built.hosts, lvs: built.lvs }));
  await idlePasses(built, lvm);
  for (let i = 1; i <= starts; i++) await daemonStart(built, lvm, i, undefined);
  await daemonStart(built, lvm, starts + 1, 100);
}

/** As bench:scale before its idle passes: every host journals extends, one pass replays them, then idle passes. */
async function busyThenIdle(stateFile: string, argv: readonly string[]): Promise<void> {
  const built = JSON.parse(readFileSync(stateFile, 'utf8')) as BuiltVg;
  const lvm = lvmFor(built);
  const extendsPerHost = Number(argv[argv.indexOf('--extends') + 1] ?? 150) || 150;
  console.log(JSON.stringify({ uptime: execFileSync('uptime', { encoding: 'utf8' }).trim(), hosts: built.hosts, lvs: built.lvs, extendsPerHost }));
  const ledger = new IoLedger();
  const regions = ledger.wrap(fileRegionOpener());
  const lvmCalls: { command: string; ms: number }[] = [];
  const deps = masterDeps(timedLvm(lvm, lvmCalls), regions);
  const session = new MasterSession({ keepJournalsOpen: true, intervalMs: 2000 });
  await runPass(deps, session, built.vgName);
  let vg = await readVgMetadata(lvm, built.vgName);
  const thinlv = readThinlvVg(vg);
  const hosts: ScaleHost[] = [];
  for (const host of thinlv.hosts.keys()) hosts.push(await ScaleHost.open(fileRegionOpener(), vg, host));
  const afterPass = async (): Promise<void> => {
    vg = session.lastPass?.metadata ?? (await readVgMetadata(lvm, built.vgName));
    const info = readThinlvVg(vg);
    for (const host of hosts) await host.afterPass(vg, info.hosts.get(host.host)!.appliedSeq);
  };
  await afterPass();
  const lvsOf = new Map<string, string[]>();
  for (const lv of thinlv.thinLvs.values()) {
    const owner = lv.owner;
    if (owner !== undefined) lvsOf.set(owner, [...(lvsOf.get(owner) ?? []), lv.lv.name]);
  }
  await Promise.all(hosts.map(async (host) => {
    const mine = lvsOf.get(host.host) ?? [];
    for (let i = 0; i < extendsPerHost && mine.length > 0; i++) await host.allocator.extendBy(mine[i % mine.length]!, extentSizeBytes(vg)).catch(() => undefined);
  }));
  for (const label of ['replay pass', 'idle pass 1', 'idle pass 2', 'idle pass 3']) {
    ledger.reset();
    lvmCalls.length = 0;
    const started = performance.now();
    const result = await runPass(deps, session, built.vgName);
    const passMs = performance.now() - started;
    console.log(JSON.stringify({ measure: label, passMs: round(passMs), records: result.replayedRecordCount, granted: result.grantedHosts.length, committed: result.committed, lvm: lvmCalls.map((c) => `${c.command}: ${round(c.ms)} ms`), ringIo: summarise(ledger, vg) }).slice(0, 900));
    await afterPass();
  }
  await session.close();
  for (const host of hosts) await host.close();
}

/** Idle passes of a daemon session (kept readers) after a warm-up pass: ring I/O wall time and sum of call times, per pass. */
async function idleOnly(stateFile: string, argv: readonly string[]): Promise<void> {
  const built = JSON.parse(readFileSync(stateFile, 'utf8')) as BuiltVg;
  const lvm = lvmFor(built);
  const passes = Number(argv[argv.indexOf('--passes') + 1] ?? 5) || 5;
  const ledger = new IoLedger();
  const deps = masterDeps(lvm, ledger.wrap(fileRegionOpener()));
  const session = new MasterSession({ keepJournalsOpen: true, intervalMs: 2000 });
  await runPass(deps, session, built.vgName);
  const samples: { busyMs: number; sumMs: number; calls: number }[] = [];
  for (let i = 0; i < passes; i++) {
    ledger.reset();
    await runPass(deps, session, built.vgName);
    samples.push({ busyMs: round(ledger.busyMs), sumMs: round(ledger.total.ms), calls: ledger.total.calls });
  }
  await session.close();
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  console.log(JSON.stringify({ measure: 'idle passes, kept readers', uptime: execFileSync('uptime', { encoding: 'utf8' }).trim(), threadpool: process.env['UV_THREADPOOL_SIZE'] ?? '4 (default)', medianBusyMs: median(samples.map((x) => x.busyMs)), medianSumMs: median(samples.map((x) => x.sumMs)), samples }));
}

function destroy(stateFile: string): void {
  const built = JSON.parse(readFileSync(stateFile, 'utf8')) as BuiltVg;
  const args = ['vgremove', '--force', '--yes', '--devices', built.device, '--config', `global { } ${TEST_LVM_CONFIG}`, ...(built.deviceMapperAvailable ? [] : ['--driverloaded', 'n']), built.vgName];
  spawnSync('lvm', args, { stdio: 'inherit' });
  spawnSync('losetup', ['-d', built.device], { stdio: 'inherit' });
  rmSync(built.dir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const [mode, ...rest] = process.argv.slice(2);
  if (mode === 'build') await build(rest);
  else if (mode === 'measure' && rest[0] !== undefined) await measure(rest[0], rest.slice(1));
  else if (mode === 'busy' && rest[0] !== undefined) await busyThenIdle(rest[0], rest.slice(1));
  else if (mode === 'idle' && rest[0] !== undefined) await idleOnly(rest[0], rest.slice(1));
  else if (mode === 'destroy' && rest[0] !== undefined) destroy(rest[0]);
  else throw new Error('usage: benchStartIdle build [--lvs N] [--hosts N] | measure STATE_FILE [--starts N] | destroy STATE_FILE');
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
