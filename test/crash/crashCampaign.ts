// A real-process crash campaign: a loop-backed VG formatted by the thinlv CLI, a
// master and N host daemons as their own processes, a seeded workload of extends,
// activations and LV creations and removals, and SIGKILLs of those processes at
// random moments and at named fault points (THINLV_FAULTS, src/faults.ts), torn
// journal writes included (src/host/journalWriteFaults.ts). At each quiet point
// (daemons up, the master's passes settled) it runs `thinlv check`, stock `vgck` and
// the independent checker (test/independent/) with every acknowledged extend, and
// stops at the first failure, naming the seed and the step.
//
//   step:  [arm a fault point?] -> 1..4 operations at once -> [SIGKILL someone mid-way?]
//          -> restart whatever died (a death at an armed point counts as a fault hit)
//   every QUIET_EVERY_STEPS steps, and at the end: settle, then the three checks
//
// Randomness comes from the seed alone; timing does not (processes race), so a seed
// replays the same choices, not the same interleaving. Run by scripts/crash.ts
// (`npm run crash -- --minutes N --seed S`) and test/integration/crashCampaign.test.ts.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_LOCAL_LOCK_DIR } from '../../src/ownership/localHostLock.js';
import { createLoopVg, TEST_LVM_CONFIG, type LoopVg } from '../fixtures/loopVg.js';
import { checkIndependently, type AcknowledgedExtend } from '../independent/independentChecker.js';
import { HostProcess, ManagedProcess, sleep } from './processes.js';
import { seededRandom } from '../fixtures/seededRandom.js';

export interface CampaignOptions {
  readonly minutes: number;
  readonly seed: number;
  readonly hosts?: number;
  /** Progress lines (default: console.log). */
  readonly log?: (line: string) => void;
  /** Stops the campaign early (Ctrl-C); teardown still runs. */
  readonly signal?: AbortSignal;
  /** Delete a crashed host daemon's state directory before restarting it (a host that lost its disk). */
  readonly wipeHostState?: boolean;
}

export interface CampaignSummary {
  seed: number;
  minutes: number;
  hosts: number;
  ok: boolean;
  steps: number;
  failedStep?: number;
  failure?: string;
  extendsAttempted: number;
  extendsAcknowledged: number;
  extendFailures: Record<string, number>;
  lvCreates: number;
  lvRemoves: number;
  activations: number;
  deactivations: number;
  kills: { master: number; host: number; client: number };
  faultPointsArmed: Record<string, number>;
  faultPointsHit: Record<string, number>;
  tornWrites: number;
  hostStateWipes: number;
  hostsAdded: number;
  hostsRemoved: number;
  /** Why a host removal (after its unarmed retry) did not succeed, by code. */
  membershipFailures: Record<string, number>;
  /** Daemons that exited without being killed by the campaign or at an armed point (see their logs). */
  unexpectedExits: { process: string; step: number; code: number | null; signal: string | null }[];
  quietChecks: number;
  elapsedSeconds: number;
}

export class CampaignFailure extends Error {
  constructor(
    message: string,
    readonly seed: number,
    readonly step: number,
  ) {
    super(`crash campaign failed at step ${step} (seed ${seed}): ${message}`);
  }
}

const MIB = 1024 ** 2;
const EXTENT_MIB = 4;
const QUIET_EVERY_STEPS = 10;
const MAX_LIVE_LVS = 9;
const LV_VIRTUAL = '1g';
const SETTLE_TIMEOUT_MS = 90_000;
const READY_TIMEOUT_MS = 60_000;
const COMMAND_TIMEOUT_MS = 90_000;
/** An armed process that has not died at its point after this many steps is disarmed. */
const ARMED_STEPS = 6;
/**
 * The same for a point reached only when the master refills the host's pool: a host is
 * refilled after a few extends of its own (quantum 64 MiB, low water 32 MiB), which 6
 * steps shared by every host and operation seldom give it.
 */
const ARMED_STEPS_UNTIL_REFILL = 30;
const ARMED_UNTIL_REFILL = new Set(['host.afterGrantApplied:kill']);
/** Chance that a step starts by restarting a daemon armed at a fault point chosen by the seed. */
const ARM_PROBABILITY = 0.1;
/** Every this many steps a torn journal write is armed on a host holding an active LV. */
const TORN_WRITE_EVERY_STEPS = 15;
/** Where the master may be killed: its pass (src/master/replayPass.ts) and inside a batch commit, between backup and restore and after it (src/lvm/commitBatch.ts). */
const MASTER_FAULTS = ['master.afterRead', 'master.afterCommit', 'master.afterConsume', 'master.afterGrant', 'commit.afterBackup', 'commit.afterRestore'];
/** Where a host daemon may fail: a torn or killed group write, and right after it applied a grant (src/host/grantFollower.ts). */
const HOST_FAULTS = ['host.journal.groupWrite:throw', 'host.journal.groupWrite:kill', 'host.afterGrantApplied'];
/** Where `thinlv host add` and `host remove` may be killed (src/master/hostMembership.ts). */
const ADD_FAULTS = ['host.add.afterCommit', 'host.add.afterJournalRing'];
const REMOVE_FAULTS = ['host.remove.afterReplay', 'host.remove.afterLease', 'host.remove.afterStopAsked'];
/** Chance that a step adds an extra host, or removes the extra one it added. */
const MEMBERSHIP_PROBABILITY = 0.08;


/** The repository root (holds package.json), from this file in test/crash or dist/test/crash. */
function repositoryRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('crash campaign: cannot find the repository root');
    dir = parent;
  }
  return dir;
}

interface LvModel {
  readonly name: string;
  activeOn: string | undefined;
  full: boolean;
  busy: boolean;
}

interface CommandResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Everything one campaign holds, so teardown finds it all. */
class Campaign {
  readonly random: () => number;
  readonly dir: string;
  readonly cli: string;
  readonly binDir: string;
  vg: LoopVg | undefined;
  master: ManagedProcess | undefined;
  hosts: HostProcess[] = [];
  readonly lvs: LvModel[] = [];
  readonly removedLvs = new Set<string>();
  /** LVs an lvremove that did not exit 0 was run on: they may be gone, and their extends with them. */
  readonly uncertainRemovals = new Set<string>();
  readonly acknowledged: AcknowledgedExtend[] = [];
  /** Running CLI commands (pid -> name), so a client can be killed mid-way and all stopped at the end. */
  readonly clients = new Map<number, string>();
  armedAtStep = new Map<ManagedProcess, number>();
  lvCounter = 0;
  hostCounter = 0;
  step = 0;
  readonly summary: CampaignSummary;

  constructor(readonly options: CampaignOptions) {
    this.random = seededRandom(options.seed);
    this.dir = mkdtempSync(join(tmpdir(), 'thinlv-crash-'));
    this.cli = join(repositoryRoot(), 'dist', 'bundle', 'thinlv.js');
    if (!existsSync(this.cli)) throw new Error(`${this.cli} is missing: run "npm run build" first`);
    this.binDir = join(this.dir, 'bin');
    const hostCount = options.hosts ?? 3;
    this.summary = {
      seed: options.seed, minutes: options.minutes, hosts: hostCount, ok: false, steps: 0,
      extendsAttempted: 0, extendsAcknowledged: 0, extendFailures: {}, lvCreates: 0, lvRemoves: 0, activations: 0, deactivations: 0,
      kills: { master: 0, host: 0, client: 0 }, faultPointsArmed: {}, faultPointsHit: {}, tornWrites: 0, hostStateWipes: 0, hostsAdded: 0, hostsRemoved: 0, membershipFailures: {}, unexpectedExits: [], quietChecks: 0, elapsedSeconds: 0,
    };
  }

  log(line: string): void {
    (this.options.log ?? console.log)(line);
  }

  pick<T>(items: readonly T[]): T | undefined {
    return items.length === 0 ? undefined : items[Math.floor(this.random() * items.length)];
  }

  get device(): string {
    return this.vg!.device;
  }

  get vgName(): string {
    return this.vg!.vgName;
  }

  /** Runs a command to completion (or its kill); records its pid while it runs. */
  run(file: string, args: readonly string[], env: Record<string, string> = {}, name = args[0] ?? file): Promise<CommandResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(file, args, { env: { ...process.env, LC_ALL: 'C', ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const pid = child.pid;
      if (pid !== undefined) this.clients.set(pid, name);
      const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS);
      child.once('error', (error) => {
        clearTimeout(timer);
        if (pid !== undefined) this.clients.delete(pid);
        reject(error);
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        if (pid !== undefined) this.clients.delete(pid);
        resolve({ code, signal, stdout, stderr });
      });
    });
  }

  /** `thinlv ARGS --devices DEV --lvm-config ...`, with THINLV_FAULTS when given. */
  thinlv(args: readonly string[], faults?: string): Promise<CommandResult> {
    return this.run(process.execPath, [this.cli, ...args, '--devices', this.device, '--lvm-config', TEST_LVM_CONFIG], faults ? { THINLV_FAULTS: faults } : {}, `thinlv ${args[0]}`);
  }

  /** An lvm-compatible command through its symlink, with lvm's own --devices and --config. */
  lvmCompat(command: string, args: readonly string[], host?: HostProcess): Promise<CommandResult> {
    return this.run(join(this.binDir, command), [...args, '--devices', this.device, '--config', TEST_LVM_CONFIG], host ? { THINLV_SOCKET: host.socketPath } : {}, command);
  }
}

function must(result: CommandResult, what: string): string {
  if (result.code !== 0) throw new Error(`${what} exited ${String(result.code ?? result.signal)}: ${result.stderr}${result.stdout}`);
  return result.stdout;
}

async function setUp(c: Campaign): Promise<void> {
  c.vg = await createLoopVg({ sizeBytes: 16 * 1024 ** 3, namePrefix: 'thinlvcrash' });
  c.log(`crash campaign: seed ${c.options.seed}, VG ${c.vgName} on ${c.device}, ${c.summary.hosts} hosts, ${c.options.minutes} min, logs in ${c.dir}`);
  mkdirBin(c);
  must(await c.thinlv(['format', c.vgName, '--quantum', '64m', '--low-water', '32m']), 'thinlv format');
  const hostNames = Array.from({ length: c.summary.hosts }, (_, i) => `h${i + 1}`);
  for (const host of hostNames) must(await c.thinlv(['host', 'add', c.vgName, host]), `thinlv host add ${host}`);
  const common = ['--devices', c.device, '--lvm-config', TEST_LVM_CONFIG];
  c.master = new ManagedProcess('master', c.cli, ['master', c.vgName, '--interval-ms', '300', '--poll-ms', '50', '--no-history', '--state-dir', join(c.dir, 'master'), ...common], c.dir);
  c.hosts = hostNames.map((host) => hostProcess(c, host));
  c.master.start();
  for (const host of c.hosts) host.start();
  await ensureUp(c);
  for (let i = 0; i < 6; i++) await createLv(c);
}

function hostProcess(c: Campaign, host: string): HostProcess {
  const socketPath = join(c.dir, `${host}.sock`);
  const args = ['host', 'run', c.vgName, host, '--socket', socketPath, '--state-dir', join(c.dir, host, 'state'), '--lease-interval-ms', '200', '--out-of-space-wait-ms', '3000', '--claim-wait-ms', '5000', '--devices', c.device, '--lvm-config', TEST_LVM_CONFIG];
  return new HostProcess(host, socketPath, join(c.dir, host, 'state'), c.cli, args, c.dir);
}

function mkdirBin(c: Campaign): void {
  // The lvm-compatible lvcreate and lvremove run only through symlinks of their names.
  mkdirSync(c.binDir, { recursive: true });
  for (const command of ['lvcreate', 'lvremove', 'lvchange']) symlinkSync(c.cli, join(c.binDir, command));
}

// ---- processes: up, killed, armed ----

/** Restarts whatever died (unarmed), counting deaths at armed fault points; waits until every daemon serves. */
async function ensureUp(c: Campaign): Promise<void> {
  for (const daemon of [c.master!, ...c.hosts]) {
    if (daemon.running) continue;
    restartAfterDeath(c, daemon);
  }
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (const host of c.hosts) {
    while ((await host.status()) === undefined) {
      if (!host.running) restartAfterDeath(c, host);
      if (Date.now() > deadline) throw new CampaignFailure(`host daemon ${host.host} did not serve within ${READY_TIMEOUT_MS} ms (log: ${join(c.dir, `${host.name}.log`)})`, c.options.seed, c.step);
      await sleep(100);
    }
  }
}

/**
 * Starts a dead daemon again (armed with `faults`, or not). Without device-mapper the
 * host daemon's "kernel" is in its own memory (src/dm/fakeDeviceMapper.ts), so a host
 * daemon's death is a host reboot: its devices are gone while its state directory still
 * lists its active LVs, which start-up must survive (recover()). With `wipeHostState` the
 * state directory goes too, as on a host that lost its local disk.
 */
function restartAfterDeath(c: Campaign, daemon: ManagedProcess, faults?: string): void {
  noteDeath(c, daemon);
  if (daemon instanceof HostProcess && c.options.wipeHostState === true) {
    rmSync(daemon.stateDir, { recursive: true, force: true });
    c.summary.hostStateWipes++;
  }
  daemon.start(faults);
}

/**
 * A process that died on its own while armed died at its fault point. One that died on
 * its own otherwise (an invariant assertion, a lost lease) is listed in the summary, with
 * its log: the campaign restarts it, but such an exit deserves a look.
 */
function noteDeath(c: Campaign, daemon: ManagedProcess): void {
  const armed = daemon.armedWith;
  c.armedAtStep.delete(daemon);
  const exit = daemon.lastExit;
  if (exit === undefined || daemon.signalledByUs) return;
  if (armed !== undefined && exit.signal === 'SIGKILL') {
    c.summary.faultPointsHit[armed] = (c.summary.faultPointsHit[armed] ?? 0) + 1;
    if (armed === 'host.journal.groupWrite:throw') c.summary.tornWrites++;
    daemon.armedWith = undefined;
    return;
  }
  if (c.summary.unexpectedExits.length < 20) c.summary.unexpectedExits.push({ process: daemon.name, step: c.step, code: exit.code, signal: exit.signal });
}

/** SIGKILL the master, a host daemon or a running CLI command, chosen by the seed. */
function killSomeone(c: Campaign): void {
  const r = c.random();
  if (r < 0.3) {
    if (c.master!.kill('SIGKILL')) c.summary.kills.master++;
  } else if (r < 0.85) {
    const host = c.pick(c.hosts);
    if (host?.kill('SIGKILL')) c.summary.kills.host++;
  } else {
    const pid = c.pick([...c.clients.keys()]);
    if (pid !== undefined) {
      try {
        process.kill(pid, 'SIGKILL');
        c.summary.kills.client++;
      } catch {
        // It finished in between.
      }
    }
  }
}

/** Restarts the master or a host with a fault point armed (killing the running one first). */
async function armFault(c: Campaign): Promise<void> {
  const onMaster = c.random() < 0.5;
  const target: ManagedProcess = onMaster ? c.master! : c.pick(c.hosts)!;
  const point = c.pick(onMaster ? MASTER_FAULTS : HOST_FAULTS)!;
  const spec = point.includes(':') ? point : `${point}:kill`;
  if (target.running) {
    target.kill('SIGKILL');
    if (onMaster) c.summary.kills.master++;
    else c.summary.kills.host++;
    await target.waitExit();
  }
  restartAfterDeath(c, target, spec);
  c.armedAtStep.set(target, c.step);
  c.summary.faultPointsArmed[spec] = (c.summary.faultPointsArmed[spec] ?? 0) + 1;
}

/** A torn group write, on a host that holds an active LV (so an extend will soon write there). */
async function armTornWrite(c: Campaign): Promise<void> {
  const holders = c.hosts.filter((h) => liveLvs(c).some((lv) => lv.activeOn === h.host));
  const target = c.pick(holders.length > 0 ? holders : c.hosts)!;
  if (c.armedAtStep.has(target)) return;
  const spec = 'host.journal.groupWrite:throw';
  if (target.running) {
    target.kill('SIGKILL');
    c.summary.kills.host++;
    await target.waitExit();
  }
  restartAfterDeath(c, target, spec);
  c.armedAtStep.set(target, c.step);
  c.summary.faultPointsArmed[spec] = (c.summary.faultPointsArmed[spec] ?? 0) + 1;
}

/** An armed process whose point never came within ARMED_STEPS (or ARMED_STEPS_UNTIL_REFILL) is restarted unarmed. */
async function disarmStale(c: Campaign): Promise<void> {
  for (const [daemon, step] of c.armedAtStep) {
    const limit = ARMED_UNTIL_REFILL.has(daemon.armedWith ?? '') ? ARMED_STEPS_UNTIL_REFILL : ARMED_STEPS;
    if (c.step - step < limit || !daemon.running) continue;
    daemon.kill('SIGKILL');
    await daemon.waitExit();
    c.armedAtStep.delete(daemon);
    daemon.armedWith = undefined;
    restartAfterDeath(c, daemon);
  }
}

// ---- the workload ----

const liveLvs = (c: Campaign): LvModel[] => c.lvs.filter((lv) => !c.removedLvs.has(lv.name));
const hostNamed = (c: Campaign, name: string | undefined): HostProcess | undefined => c.hosts.find((h) => h.host === name);

async function createLv(c: Campaign): Promise<void> {
  const name = `lv${String(c.lvCounter++).padStart(4, '0')}`;
  const lv: LvModel = { name, activeOn: undefined, full: false, busy: true };
  c.lvs.push(lv);
  const result = await c.lvmCompat('lvcreate', ['-n', name, '-V', LV_VIRTUAL, c.vgName, '-an']);
  lv.busy = false;
  if (result.code === 0) c.summary.lvCreates++;
  // A create that failed may still have committed (a killed master holds no lock over it):
  // the LV is kept in the model and the checks read the truth from metadata.
}

async function removeLv(c: Campaign, lv: LvModel): Promise<void> {
  const result = await c.lvmCompat('lvremove', ['-f', `${c.vgName}/${lv.name}`]);
  if (result.code === 0) {
    c.summary.lvRemoves++;
    c.removedLvs.add(lv.name);
  } else if (/Failed to find logical volume/.test(result.stderr)) {
    // An earlier attempt, killed or failed after its commit, did remove it.
    c.removedLvs.add(lv.name);
  } else {
    // Killed (or failed) after its commit, perhaps: the LV may be gone, with its extends.
    c.uncertainRemovals.add(lv.name);
  }
}

async function activate(c: Campaign, lv: LvModel, host: HostProcess): Promise<void> {
  const result = await c.lvmCompat('lvchange', ['-ay', `${c.vgName}/${lv.name}`], host);
  if (result.code === 0) {
    lv.activeOn = host.host;
    c.summary.activations++;
  }
}

async function deactivate(c: Campaign, lv: LvModel): Promise<void> {
  const host = hostNamed(c, lv.activeOn)!;
  const result = await c.lvmCompat('lvchange', ['-an', `${c.vgName}/${lv.name}`], host);
  if (result.code === 0) {
    lv.activeOn = undefined;
    c.summary.deactivations++;
  }
}

/** `thinlv lvextend -L +N --live` on the LV's host (or any host, for a one-off extend); exit 0 is an acknowledgement. */
async function extend(c: Campaign, lv: LvModel): Promise<void> {
  const host = hostNamed(c, lv.activeOn) ?? c.pick(c.hosts)!;
  const extents = 1 + Math.floor(c.random() * 4);
  c.summary.extendsAttempted++;
  const result = await c.thinlv(['lvextend', '-L', `+${extents * EXTENT_MIB}m`, `${c.vgName}/${lv.name}`, '--live', '--socket', host.socketPath, '--json']);
  if (result.code === 0) {
    const reply = JSON.parse(result.stdout) as { lv: string; sizeBytes: number };
    c.acknowledged.push({ lv: lv.name, sizeBytes: reply.sizeBytes });
    c.summary.extendsAcknowledged++;
    return;
  }
  const code = result.signal ? `killed` : (/"code":\s*"([A-Z_]+)"/.exec(result.stdout + result.stderr)?.[1] ?? `exit ${String(result.code)}`);
  if (code === 'VIRTUAL_SIZE_EXCEEDED') lv.full = true;
  // The model lost track of the holder (a killed lvchange, a restart that dropped an
  // activation): follow what the host says, so later extends go where they can succeed.
  const owner = code === 'LV_OWNED_ELSEWHERE' ? /held by host ([A-Za-z0-9.-]+)/.exec(result.stdout + result.stderr)?.[1] : undefined;
  if (owner !== undefined && hostNamed(c, owner) !== undefined) lv.activeOn = owner;
  c.summary.extendFailures[code] = (c.summary.extendFailures[code] ?? 0) + 1;
}

/** One operation chosen by the seed, on an LV no other operation of this step touches. */
function chooseOperation(c: Campaign): (() => Promise<void>) | undefined {
  const free = liveLvs(c).filter((lv) => !lv.busy);
  const r = c.random();
  const take = (lv: LvModel | undefined, op: (lv: LvModel) => Promise<void>): (() => Promise<void>) | undefined => {
    if (lv === undefined) return undefined;
    lv.busy = true;
    return () => op(lv).finally(() => (lv.busy = false));
  };
  if (r < 0.65) {
    const growable = free.filter((lv) => !lv.full);
    const active = growable.filter((lv) => lv.activeOn !== undefined);
    return take(c.pick(active.length > 0 && c.random() < 0.8 ? active : growable), (lv) => extend(c, lv));
  }
  if (r < 0.75) return take(c.pick(free.filter((lv) => lv.activeOn === undefined && !lv.full)), (lv) => activate(c, lv, c.pick(c.hosts)!));
  if (r < 0.83) return take(c.pick(free.filter((lv) => lv.activeOn !== undefined)), (lv) => deactivate(c, lv));
  if (r < 0.91) return liveLvs(c).length < MAX_LIVE_LVS ? () => createLv(c) : undefined;
  const inactive = free.filter((lv) => lv.activeOn === undefined);
  const full = inactive.filter((lv) => lv.full);
  return take(c.pick(full.length > 0 ? full : inactive), (lv) => removeLv(c, lv));
}

async function runStep(c: Campaign): Promise<void> {
  c.step++;
  c.summary.steps = c.step;
  // Membership changes run alone, before the step's operations (its kill may still land during them).
  if (c.random() < MEMBERSHIP_PROBABILITY) await changeMembership(c);
  if (c.step % TORN_WRITE_EVERY_STEPS === 1) await armTornWrite(c);
  else if (c.random() < ARM_PROBABILITY) await armFault(c);
  const operations = Array.from({ length: 1 + Math.floor(c.random() * 4) }, () => chooseOperation(c)).filter((op) => op !== undefined);
  // Full LVs active somewhere are let go, so they can be removed and replaced.
  for (const lv of liveLvs(c).filter((l) => l.full && l.activeOn !== undefined && !l.busy).slice(0, 1)) {
    lv.busy = true;
    operations.push(() => deactivate(c, lv).finally(() => (lv.busy = false)));
  }
  const killAfterMs = c.random() < 0.15 ? c.random() * 600 : undefined;
  const killer = killAfterMs === undefined ? undefined : sleep(killAfterMs).then(() => killSomeone(c));
  await Promise.all([...operations.map((op) => op()), killer]);
  await disarmStale(c);
  await ensureUp(c);
}

// ---- membership: an extra host comes and goes ----

/**
 * A membership command, perhaps killed at one of its fault points first, then run again
 * unarmed until it completes: each is safe to repeat (hostMembership.ts says why).
 */
async function membershipCommand(c: Campaign, args: readonly string[], points: readonly string[]): Promise<CommandResult> {
  if (c.random() < 0.6) {
    const spec = `${c.pick(points)!}:kill`;
    c.summary.faultPointsArmed[spec] = (c.summary.faultPointsArmed[spec] ?? 0) + 1;
    const armed = await c.thinlv(args, spec);
    if (armed.signal === 'SIGKILL') c.summary.faultPointsHit[spec] = (c.summary.faultPointsHit[spec] ?? 0) + 1;
    else return armed;
  }
  return c.thinlv(args);
}

/** Adds host x<N> and starts its daemon, or deactivates the extra host's LVs and removes it. */
async function changeMembership(c: Campaign): Promise<void> {
  const extra = c.hosts.find((h) => h.host.startsWith('x'));
  if (extra === undefined) {
    const host = `x${++c.hostCounter}`;
    const added = await membershipCommand(c, ['host', 'add', c.vgName, host], ADD_FAULTS);
    if (added.code !== 0) return;
    c.summary.hostsAdded++;
    const daemon = hostProcess(c, host);
    c.hosts.push(daemon);
    daemon.start();
    return;
  }
  await ensureUp(c);
  for (const lv of liveLvs(c).filter((l) => l.activeOn === extra.host)) await deactivate(c, lv);
  const removed = await membershipCommand(c, ['host', 'remove', c.vgName, extra.host, '--lease-interval-ms', '200', '--stop-wait-ms', '20000'], REMOVE_FAULTS);
  if (removed.code !== 0) {
    const code = /"code":\s*"([A-Z_]+)"/.exec(removed.stdout + removed.stderr)?.[1] ?? (/^thinlv: (.{0,60})/m.exec(removed.stderr)?.[1] ?? `exit ${String(removed.code ?? removed.signal)}`);
    c.summary.membershipFailures[code] = (c.summary.membershipFailures[code] ?? 0) + 1;
    return;
  }
  c.summary.hostsRemoved++;
  c.hosts.splice(c.hosts.indexOf(extra), 1);
  // The removal asked the daemon to stop; it should be gone, or going.
  await extra.stop(10_000);
  extra.closeLog();
  for (const lv of c.lvs) if (lv.activeOn === extra.host) lv.activeOn = undefined;
}

// ---- quiet points ----

/** Waits until no host has records the master has not replayed. */
async function settle(c: Campaign): Promise<void> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  for (;;) {
    await ensureUp(c);
    const statuses = await Promise.all(c.hosts.map((h) => h.status()));
    if (statuses.every((s) => s !== undefined && s.unreplayedRecordCount === 0)) return;
    if (Date.now() > deadline) {
      throw new CampaignFailure(`the master did not replay every journal within ${SETTLE_TIMEOUT_MS} ms: ${JSON.stringify(statuses)} (log: ${join(c.dir, 'master.log')})`, c.options.seed, c.step);
    }
    await sleep(200);
  }
}

async function quietCheck(c: Campaign): Promise<void> {
  await settle(c);
  const failures: string[] = [];
  const check = await c.thinlv(['check', c.vgName, '--json']);
  const report = JSON.parse(check.stdout || '{}') as { ok?: boolean; findings?: { severity: string; code: string; message: string }[] };
  if (report.ok !== true) failures.push(`thinlv check: ${JSON.stringify(report.findings ?? check.stderr)}`);
  const vgck = await c.run('lvm', ['vgck', '--devices', c.device, ...(c.vg!.deviceMapperAvailable ? [] : ['--driverloaded', 'n']), '--config', TEST_LVM_CONFIG, c.vgName], { LVM_SUPPRESS_FD_WARNINGS: '1' }, 'vgck');
  if (vgck.code !== 0) failures.push(`vgck exited ${String(vgck.code)}: ${vgck.stderr}`);
  const independent = await checkIndependently({ vgName: c.vgName, devices: [c.device], acknowledged: c.acknowledged, removedLvs: new Set([...c.removedLvs, ...c.uncertainRemovals]) });
  if (!independent.ok) failures.push(`independent checker: ${JSON.stringify(independent.findings)}`);
  c.summary.quietChecks++;
  if (failures.length > 0) throw new CampaignFailure(failures.join('; '), c.options.seed, c.step);
}

function progressLine(c: Campaign, startedAt: number): string {
  const s = c.summary;
  const hits = Object.values(s.faultPointsHit).reduce((a, b) => a + b, 0);
  return `${String(Math.round((Date.now() - startedAt) / 1000)).padStart(4)} s  step ${s.steps}  extends ${s.extendsAcknowledged}/${s.extendsAttempted} acked  kills m${s.kills.master} h${s.kills.host} c${s.kills.client}  fault points hit ${hits}  torn writes ${s.tornWrites}  checks ${s.quietChecks}  LVs +${s.lvCreates} -${s.lvRemoves}`;
}

// ---- teardown ----

async function tearDown(c: Campaign): Promise<void> {
  for (const pid of c.clients.keys()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  await Promise.all([c.master, ...c.hosts].filter((p) => p !== undefined).map((p) => p.stop()));
  for (const p of [c.master, ...c.hosts]) p?.closeLog();
  const vgName = c.vg?.vgName;
  await c.vg?.destroy();
  if (vgName !== undefined) {
    // Every host this campaign ever ran (added hosts included); the VG name is unique to it.
    const hostLocks = existsSync(DEFAULT_LOCAL_LOCK_DIR) ? readdirSync(DEFAULT_LOCAL_LOCK_DIR).filter((name) => name.startsWith(`host-${vgName}-`)) : [];
    for (const name of [`master-${vgName}.lock`, `metadata-${vgName}.lock`, ...hostLocks]) rmSync(join(DEFAULT_LOCAL_LOCK_DIR, name), { force: true });
  }
}

/**
 * Runs the campaign for `minutes` and tears everything down, also on failure or abort.
 * Resolves with the summary when every check passed; rejects with a CampaignFailure
 * (seed and step in its message, the summary in `summary`) at the first that did not.
 */
export async function runCrashCampaign(options: CampaignOptions): Promise<CampaignSummary> {
  const c = new Campaign(options);
  const startedAt = Date.now();
  let lastProgress = startedAt;
  let failure: unknown;
  try {
    await setUp(c);
    const until = startedAt + options.minutes * 60_000;
    while (Date.now() < until && options.signal?.aborted !== true) {
      await runStep(c);
      if (c.step % QUIET_EVERY_STEPS === 0) await quietCheck(c);
      if (Date.now() - lastProgress >= 5000) {
        c.log(progressLine(c, startedAt));
        lastProgress = Date.now();
      }
    }
    await disarmAll(c);
    await quietCheck(c);
    c.log(progressLine(c, startedAt));
  } catch (error) {
    failure = error instanceof CampaignFailure ? error : new CampaignFailure(error instanceof Error ? (error.stack ?? error.message) : String(error), options.seed, c.step);
    c.summary.failedStep = c.step;
    c.summary.failure = (failure as Error).message;
    c.log(`FAILED: ${(failure as Error).message}\n  logs kept in ${c.dir}`);
  } finally {
    c.summary.elapsedSeconds = Math.round((Date.now() - startedAt) / 1000);
    await tearDown(c).catch((error: unknown) => c.log(`teardown: ${String(error)}`));
    if (failure === undefined) rmSync(c.dir, { recursive: true, force: true });
  }
  c.summary.ok = failure === undefined;
  if (failure !== undefined) throw Object.assign(failure as Error, { summary: c.summary });
  return c.summary;
}

/** Before the final check: nothing stays armed, so the settle is not cut short. */
async function disarmAll(c: Campaign): Promise<void> {
  for (const daemon of c.armedAtStep.keys()) {
    if (daemon.running) {
      daemon.kill('SIGKILL');
      await daemon.waitExit();
    }
    daemon.armedWith = undefined;
  }
  c.armedAtStep.clear();
  await ensureUp(c);
}
