// A deterministic simulator in the style of TigerBeetle's VOPR: the real master
// (runPass, MasterSession, addHost, the thin LV commands) and the real host
// allocator (HostAllocator, grantFollower, unreplayedRecords, leasedJournal) run
// over simulated effects (test/sim/simLvm.ts, simDisk.ts, simKernel.ts, the fake
// device-mapper), and one seed decides every step, every interleaving, every crash,
// torn write, bit flip and armed fault point. After every step the invariants are
// checked (checks.ts); a failure names the seed, the step and the last steps.
//
//   step:  pick an action by weight (extend, pass, clock, grants poll, activate, ...)
//          run it; a master operation runs to its end, and at each of its effect
//          points the simulator may crash it, arm a fault, or run host work in
//          between (or, rarely, a second master's whole pass)
//          restart what crashed, when the workload says so
//          check the invariants; every so often, once quiet, check that passes converge

import { createHash } from 'node:crypto';
import { isJournalError } from '../../journal/index.js';
import { FakeDeviceMapper } from '../../src/dm/fakeDeviceMapper.js';
import { InvariantError, ThinlvError } from '../../src/errors.js';
import { InjectedFault, type FaultPoints } from '../../src/faults.js';
import { readThinlvVg } from '../../src/format/thinlvVg.js';
import { formatVg } from '../../src/master/formatVg.js';
import { addHost, removeHost, type RemoveHostOptions, type RemoveHostResult } from '../../src/master/hostMembership.js';
import { MasterSession, runPass, type MasterDeps, type PassResult } from '../../src/master/replayPass.js';
import { readVgMetadata } from '../../src/lvm/commitBatch.js';
import { createThinLv, deflateThinLv, removeThinLv, renameLv, setVirtualSize } from '../../src/master/thinLvs.js';
import { lvExtentCount } from '../../src/metadata/vgModel.js';
import { VIRTUAL_SIZE_RECHECK_MS, type ExtendResult } from '../../src/host/allocator.js';
import { planReplay } from '../../src/replay/planReplay.js';
import type { VgMetadata } from '../../src/metadata/vgModel.js';
import { hostLvNames } from '../../src/format/thinlvVg.js';
import { ringLocation } from '../../src/rings/ringRegions.js';
import type { JournalRecord } from '../../src/records/records.js';
import { Prng } from './prng.js';
import { AckLedger } from './ackLedger.js';
import { type CheckerReaders, checkCutUnheld, checkExtents, checkPools, checkTables, freeExtentCountOf, InvariantViolation, Layouts, readUnreplayed, thinlvOf } from './checks.js';
import { SimPv, simRegionOpener, type WritePlan } from './simDisk.js';
import { SharedReports } from './sharedReports.js';
import { SimHost, SimHostStateStore, silentLog } from './simHost.js';
import { drainMicrotasks, SimCrash, SimKernel, SimProcess } from './simKernel.js';
import { initialVgMetadata, SimLvm, UnexpectedLvmCall } from './simLvm.js';
import { ExtendTargets, SMALL_EXTEND_MAX_EXTENTS } from './extendTargets.js';
import { Freezer } from './freezer.js';
import { JournalWriters } from './journalWriters.js';

export interface SimOptions {
  readonly seed: number;
  readonly steps: number;
  /** Probability that an effect point crashes its process (hosts, master). */
  readonly hostCrashPerPoint?: number;
  readonly masterCrashPerPoint?: number;
  /** Probability that a write is torn (lands part, then its writer dies). */
  readonly tornWritePerWrite?: number;
  /** Probability that a fault point fires (throw or kill). */
  readonly faultPerPoint?: number;
  /** Bytes of the PV's metadata area (a copy may use half). */
  readonly metadataAreaBytes?: number;
  readonly peCount?: number;
  /** Run the quiet check (passes converge) every this many steps. */
  readonly quietCheckEvery?: number;
  /** Called with each trace line (the CLI prints them with --verbose). */
  readonly onTrace?: (line: string) => void;
  /** Called about every `progressEveryMs` of wall time with where the run stands (the CLI's --progress). */
  readonly onProgress?: (progress: SimProgress) => void;
  readonly progressEveryMs?: number;
  /** Work around the known stale-grant bug (hosts ignore a grant older than their metadata). */
  readonly workaroundStaleGrant?: boolean;
  /** Share of extends that go to any LV (claimed through the master, or refused), not an active one. */
  readonly oneOffExtendChance?: number;
  /** Share of clock steps that jump 1 to 6 s (claims and waits time out) rather than 5 to 300 ms. */
  readonly longClockJumpChance?: number;
  /** Share of extends larger than a pool quantum (the host journals a demand and waits). */
  readonly bigExtendChance?: number;
  readonly quantumExtents?: number;
  /** Most extends one "extend" step starts (a burst across hosts). */
  readonly extendBurst?: number;
  /** Most waves a burst runs in (each fills the LVs' queues, the next starts when they returned). */
  readonly extendWaves?: number;
  /** Weight of a scheduled master pass among the step kinds (an extend burst weighs 40; the daemon's poll, which passes when a host waits or runs low, 6). */
  readonly passWeight?: number;
  /** Multiplies the weights of host remove, declare-dead, second daemons, daemon pauses, lvrename and master deflates (issue 13). */
  readonly membershipRate?: number;
  /** Share of deactivations that deflate (`lvchange -an --deflate`). */
  readonly deflateChance?: number;
  /** Wall-clock budget; the run stops early (reporting how far it got). */
  readonly maxWallMs?: number;
  /** Below this share of the VG free (host pools not counted), storage managers delete disks four times as often. */
  readonly spareFraction?: number;
}

/**
 * `--throughput` (issue 13): a million extends with crashes in half an hour. Bursts of up
 * to 1000 extends in up to 100 waves between passes (each VM asks again as soon as its
 * extend returns), so a pass replays hundreds of records, as a production pass does; pools
 * of 512 extents (big extends are still larger than a pool: the host waits on a demand) in a
 * VG four times as large, so a burst does not empty them at once; crashes, torn writes and
 * faults per effect point rarer (each step has many more points: still about a hundred
 * crashes a minute); scheduled passes a third as often (the daemon's poll still passes as
 * soon as a host waits); the quiet check every 1000 steps. Every other step kind, the
 * membership ones included, keeps its weight, and every step is checked as in any run.
 */
export const THROUGHPUT_PROFILE = {
  extendBurst: 1000,
  extendWaves: 100,
  quantumExtents: 512,
  peCount: 24_000,
  hostCrashPerPoint: 0.0002,
  masterCrashPerPoint: 0.0005,
  tornWritePerWrite: 0.0003,
  quietCheckEvery: 1000,
  passWeight: 3,
  // Disks deleted more often below 35% free rather than 10%: at 90% full and more, the
  // whole run, free space comes back from each lvremove in pieces of a few extents between
  // other LVs', every allocation after takes them, and the text grew to 1 MB within 30
  // minutes (every commit, restore and host read pays for it). The default profile keeps
  // the full VG and its refusals.
  spareFraction: 0.35,
  // Extends from a pool several LVs share interleave, one segment each: a 1 MiB area (half
  // of it usable) filled within minutes and then refused every commit.
  metadataAreaBytes: 16 * 1024 * 1024,
} as const satisfies Partial<SimOptions>;

/** Where a run stands: what a long run prints now and then, to see its workload drift. */
export interface SimProgress {
  readonly step: number;
  readonly wallMs: number;
  readonly extendsAcknowledged: number;
  readonly outOfSpace: number;
  readonly thinLvs: number;
  readonly heldLvs: number;
  readonly members: number;
  readonly liveDaemons: number;
  readonly startingDaemons: number;
  /** The start under way the longest, if any: how many steps, and whether its host is still a member. */
  readonly oldestStart: { readonly host: string; readonly steps: number; readonly member: boolean } | undefined;
  readonly freeExtents: number;
  readonly textBytes: number;
}

export interface SimStats {
  seed: number;
  steps: number;
  extendsAcknowledged: number;
  extentsAcknowledged: number;
  extendsRefused: Record<string, number>;
  hostCrashes: number;
  masterCrashes: number;
  tornWrites: number;
  bitFlips: number;
  faultPointsHit: number;
  faultsFired: number;
  passes: number;
  commits: number;
  secondMasterPasses: number;
  hostRestarts: number;
  lvsCreated: number;
  lvsRemoved: number;
  effectPoints: number;
  simulatedMs: number;
  wallMs: number;
  traceHash: string;
  lvmCalls: Record<string, number>;
  /** The metadata text's size at the end and at its largest (bytes); restores whose text printed back as given. */
  metadataTextBytes: number;
  maxMetadataTextBytes: number;
  restoresAsGiven: number;
  /** Membership, rename and deflate operations by outcome ("host remove ok", "lvrename LV_IN_USE", ...). */
  operations: Record<string, number>;
}

export class SimFailure extends Error {
  constructor(
    readonly seed: number,
    readonly step: number,
    readonly reason: string,
    readonly trace: readonly string[],
  ) {
    super(`simulator failure, seed ${seed}, step ${step}: ${reason}\nreproduce: npm run sim -- --seed ${seed} --steps ${step + 1}\nlast steps:\n${trace.join('\n')}`);
  }
}

const VG = 'simvg';
const PV = '/dev/simpv0';
const EXTENT_BYTES = 4 * 1024 * 1024;
const PE_START_BYTES = 1024 * 1024;
const QUANTUM_EXTENTS = 32;
const INITIAL_HOSTS = ['h1', 'h2', 'h3'];
const SPARE_HOST_NAMES = ['h4', 'h5'];
/**
 * The hosts' lease renew interval R (the master's host removal uses the same). Short, so
 * that a daemon restarted after a crash waits out its old lease (watch 6R, settle 4R) in
 * about 30 steps, as long as the workload already kept a crashed host down.
 */
const LEASE_RENEW_MS = 50;
/** How long host remove waits for a daemon to stop (the default is 30 s). */
const STOP_WAIT_MS = 2_000;
/** Slices of simulated time a host removal's waits are cut into, host work in between. */
const WORLD_SLICE_MS = 10;
const MAX_THIN_LVS = 24;
const TRACE_KEPT = 40;
/**
 * Operations one host keeps queued on one LV at most. A VM's disk driver waits for each
 * extend before it asks again; without a bound, bursts queue thousands of extends on one
 * LV, each waiting out a full VG in turn, the LV's deactivation waits behind them, and the
 * run stops extending (and checking dm tables, which needs a quiet host).
 */
const MAX_QUEUED_OPS_PER_LV = 3;

/** Error codes an operation may legitimately end with; anything else is a bug the simulator reports. */
const EXPECTED_CODES = new Set([
  'OUT_OF_SPACE', 'VIRTUAL_SIZE_EXCEEDED', 'LV_OWNED_ELSEWHERE', 'CLAIM_TIMEOUT', 'JOURNAL_FAILED', 'JOURNAL_FULL', 'LV_NOT_FOUND',
  'LV_IN_USE', 'NOT_THIN_LV', 'HOST_REMOVED', 'SHRINK_REFUSED', 'INSUFFICIENT_EXTENTS', 'STALE_SEQNO', 'LVM_FAILED',
  'METADATA_AREA_TOO_SMALL', 'POOL_TOO_FRAGMENTED', 'LV_EXISTS', 'HOST_EXISTS', 'INVALID_ARGUMENT', 'OVERCOMMIT_LIMIT', 'CANCELLED',
  'READBACK_MISMATCH', 'DM_DEVICE_EXISTS', 'DM_NOT_FOUND', 'HOST_START_FAILED', 'UNKNOWN_HOST', 'J:IO_ERROR',
  // The host lease and host removal.
  'LEASE_HELD', 'LEASE_LOST', 'LEASE_RELEASED', 'HOST_ALIVE', 'HOST_ACTIVE', 'HOST_STILL_RUNNING', 'HOST_STILL_WRITING',
]);

class SimMaster {
  readonly session: MasterSession;
  readonly deps: MasterDeps;
  constructor(
    readonly proc: SimProcess,
    deps: MasterDeps,
  ) {
    this.session = new MasterSession({ keepJournalsOpen: true, intervalMs: 1000 });
    this.deps = deps;
  }
}

interface HostSlot {
  live: SimHost | undefined;
  /** A start of the host's daemon is under way (it may wait out an old lease). */
  starting: boolean;
  /** A second daemon for the same host by mistake (the lease must refuse it). */
  duplicate: SimHost | undefined;
  duplicateStarting: boolean;
  /** The processes of starts under way (a host powered off takes them down too). */
  readonly startingProcs: Set<SimProcess>;
  incarnation: number;
  /** Restart no earlier than this step (a host down for a while). */
  downUntilStep: number;
  /** The step the start under way began at. */
  startedAtStep: number;
}

export class Simulator {
  readonly prng: Prng;
  readonly kernel = new SimKernel();
  readonly pv: SimPv;
  readonly pvs: Map<string, SimPv>;
  readonly lvm: SimLvm;
  readonly states = new SimHostStateStore();
  private ownerIdSerial = 0;
  readonly reports = new SharedReports();
  readonly dms = new Map<string, FakeDeviceMapper>();
  readonly hosts = new Map<string, HostSlot>();
  master: SimMaster | undefined;
  private masterIncarnation = 0;
  private masterDownUntilStep = 0;
  private secondMaster: SimMaster | undefined;
  private readonly checker = new SimProcess('checker', 'checker', 0);
  private readonly checkerRegions;
  private readonly checkerReaders: CheckerReaders = new Map();
  private step = 0;
  private readonly trace: string[] = [];
  private readonly hash = createHash('sha256');
  private failure: string | undefined;
  private inMasterPoint = false;
  private readonly acks = new AckLedger();
  private readonly removalAttempted = new Set<string>();
  private lvSerial = 0;
  /** The uuid of the LV a master deflate (lvresize -L) is cutting, while it runs. */
  private masterDeflating: string | undefined;
  private readonly unfinishedAdds = new Set<string>();
  /** Daemons stopped (a paused VM, SIGSTOP): the `pauseDaemon` step, thawed at `thawAtMs`. */
  private readonly freezer = new Freezer();
  private paused: { daemon: SimHost; thawAtMs: number } | undefined;
  /** I8 on its own: who may write each host's journal. */
  private readonly journalWriters = new JournalWriters((message) => (this.failure ??= message));
  /** When each host last refused to grow an LV past its virtual size (extendTargets.ts). */
  private readonly sizeRefusedAt = new WeakMap<SimHost, Map<string, number>>();
  readonly stats: SimStats;
  /** Starts killed from outside (a host powered off): the slot no longer waits for them. */
  private readonly killedStarts = new WeakSet<SimProcess>();
  private readonly o: Required<Omit<SimOptions, 'onTrace' | 'onProgress'>> & Pick<SimOptions, 'onTrace' | 'onProgress'>;

  constructor(options: SimOptions) {
    this.o = {
      hostCrashPerPoint: 0.0015,
      masterCrashPerPoint: 0.002,
      tornWritePerWrite: 0.002,
      faultPerPoint: 0.01,
      metadataAreaBytes: 1024 * 1024,
      peCount: 6000,
      quietCheckEvery: 200,
      workaroundStaleGrant: false,
      extendBurst: 6,
      extendWaves: 1,
      passWeight: 9,
      oneOffExtendChance: 0.01,
      bigExtendChance: 0.03,
      quantumExtents: QUANTUM_EXTENTS,
      longClockJumpChance: 0.03,
      membershipRate: 1,
      deflateChance: 0.25,
      maxWallMs: Number.POSITIVE_INFINITY,
      spareFraction: 0.1,
      progressEveryMs: 30_000,
      ...options,
    };
    this.prng = new Prng(options.seed);
    this.pv = new SimPv(PV, PE_START_BYTES + this.o.peCount * EXTENT_BYTES);
    this.pvs = new Map([[PV, this.pv]]);
    this.lvm = new SimLvm(initialVgMetadata({ vgName: VG, device: PV, extentSizeBytes: EXTENT_BYTES, peCount: this.o.peCount, peStartBytes: PE_START_BYTES, metadataAreaBytes: this.o.metadataAreaBytes }), this.o.metadataAreaBytes);
    this.checkerRegions = simRegionOpener(this.pvs, this.checker, this.kernel, () => undefined);
    this.kernel.hook = (proc, label) => this.atPoint(proc, label);
    this.lvm.onCommit = (before, after) => this.followCommit(before, after);
    this.stats = {
      seed: options.seed, steps: 0, extendsAcknowledged: 0, extentsAcknowledged: 0, extendsRefused: {}, hostCrashes: 0, masterCrashes: 0,
      tornWrites: 0, bitFlips: 0, faultPointsHit: 0, faultsFired: 0, passes: 0, commits: 0, secondMasterPasses: 0, hostRestarts: 0,
      lvsCreated: 0, lvsRemoved: 0, effectPoints: 0, simulatedMs: 0, wallMs: 0, traceHash: '', lvmCalls: {}, operations: {},
      metadataTextBytes: 0, maxMetadataTextBytes: 0, restoresAsGiven: 0,
    };
  }

  // ---- trace and failure ----

  private note(line: string): void {
    const full = `${this.step} t=${this.kernel.nowMs()} ${line}`;
    this.hash.update(full + '\n');
    this.trace.push(full);
    if (this.trace.length > TRACE_KEPT) this.trace.shift();
    this.o.onTrace?.(full);
  }

  private fail(reason: string): never {
    throw new SimFailure(this.o.seed, this.step, reason, [...this.trace]);
  }

  /** The stable code of an operation's error; a bug (not an operating error) fails the run. */
  private codeOf(error: unknown, what: string, proc?: SimProcess): string {
    if (error instanceof SimCrash) return 'CRASH';
    if (error instanceof UnexpectedLvmCall) this.failure ??= `${what}: ${error.message}`;
    // Whatever a dead process's work ends with is an echo of its crash.
    if (proc !== undefined && !proc.alive) return 'AFTER_CRASH';
    if (error instanceof InjectedFault) return 'INJECTED';
    if (error instanceof UnexpectedLvmCall) this.failure ??= `${what}: ${error.message}`;
    if (error instanceof InvariantError) this.failure ??= `${what}: thinlv asserted an invariant: ${error.message}`;
    if (error instanceof InvariantViolation) this.failure ??= `${what}: ${error.message}`;
    const code = error instanceof ThinlvError ? error.code : isJournalError(error) ? `J:${error.code}` : undefined;
    if (code === undefined) {
      this.failure ??= `${what}: unexpected ${(error as Error)?.constructor?.name ?? typeof error}: ${(error as Error)?.stack ?? String(error)}`;
      return 'BUG';
    }
    if (!EXPECTED_CODES.has(code)) this.failure ??= `${what}: unexpected error ${code}: ${(error as Error).message}`;
    return code;
  }

  // ---- processes ----

  private masterDeps(proc: SimProcess): MasterDeps {
    return {
      lvm: this.lvm.runner(proc, this.kernel, { readOnly: false }),
      regions: simRegionOpener(this.pvs, proc, this.kernel, this.writePlan),
      log: silentLog,
      faults: this.faultPoints(proc),
      nowMs: () => this.kernel.nowMs(),
      sleepMs: (ms) => this.kernel.sleep(proc, ms),
      observer: {
        timePass: (pass) => pass(),
        passDone: (pass) => {
          // I5: records already applied are never applied again: a plan over the committed
          // metadata, from the cursors it holds, finds nothing left of what this pass read.
          const thinlv = readThinlvVg(pass.vg);
          const left = new Map([...pass.records].map(([host, list]) => [host, list.filter((r) => r.seq > (thinlv.hosts.get(host)?.appliedSeq ?? 0))]));
          const again = planReplay(pass.vg, thinlv, left);
          const moved = again.changes.filter((c) => c.kind === 'moveRanges');
          if (pass.didCommit && moved.length > 0) this.failure ??= `I5: replaying the pass's records again on its own commit would move ${moved.length} more ranges`;
          for (const deflate of pass.replay.deflates) if (!deflate.applied) this.count(`deflate (host) skipped: ${deflate.reason?.startsWith('held') ? 'held by a host' : 'gone'}`);
          this.settleAcks(pass.vg);
        },
      },
    };
  }

  /** I3 as a pass ends (ackLedger.ts): acknowledged extends it applied are retired from the ledger. */
  private settleAcks(vg: VgMetadata): void {
    try {
      this.acks.settle(vg, new Map());
    } catch (error) {
      if (!(error instanceof InvariantViolation)) throw error;
      this.failure ??= `at the end of a pass: ${error.message}`;
    }
  }

  /**
   * Every commit, as it lands: a thin LV that shrank was cut on purpose only by a deflate,
   * a journal's deflate record this commit applied or the master's deflate under way; its
   * extents past the cut leave the ledger. Any other shrink is left for the checks to find.
   */
  private async followCommit(before: VgMetadata, after: VgMetadata): Promise<void> {
    const afterByUuid = new Map(after.lvs.map((lv) => [lv.uuid, lv]));
    const shrunk = before.lvs.filter((lv) => {
      const now = afterByUuid.get(lv.uuid);
      return now !== undefined && thinlvOf(before).thinLvs.has(lv.name) && lvExtentCount(now) < lvExtentCount(lv);
    });
    if (shrunk.length === 0) return;
    try {
      const replayed = [...(await readUnreplayed(before, this.checkerRegions, this.checkerReaders)).values()].flatMap((host) => {
        const info = thinlvOf(after).hosts.get(host.host);
        return info === undefined || info.journalLv.uuid !== host.journalRingId ? [] : host.records.filter((r) => r.seq <= info.appliedSeq).map((r) => ({ host: host.host, record: r.record }));
      });
      const cut = new Map<string, number>();
      for (const lv of shrunk) {
        checkCutUnheld(before, lv.name, new Set(replayed.filter(({ record: r }) => r.kind === 'release' && r.lvUuid === lv.uuid).map((r) => r.host)));
        const deflated = this.masterDeflating === lv.uuid || replayed.some(({ record: r }) => r.kind === 'deflate' && r.lvUuid === lv.uuid);
        if (deflated) cut.set(lv.uuid, lvExtentCount(afterByUuid.get(lv.uuid)!));
      }
      this.acks.settle(after, cut);
    } catch (error) {
      if (!(error instanceof InvariantViolation)) throw error;
      this.failure ??= `at a commit: ${error.message}`;
    }
  }

  private newMaster(name: string): SimMaster {
    const proc = new SimProcess(name, 'master', ++this.masterIncarnation);
    return new SimMaster(proc, this.masterDeps(proc));
  }

  private readonly writePlan: WritePlan = (proc, sectorCount) => {
    if (proc.kind === 'checker' || !this.prng.chance(this.o.tornWritePerWrite)) return undefined;
    this.stats.tornWrites += 1;
    const landed = [...Array(sectorCount).keys()].filter(() => this.prng.chance(0.5));
    this.countCrash(proc, 'torn write');
    return landed;
  };

  private faultPoints(proc: SimProcess): FaultPoints {
    return {
      hit: async (point) => {
        await this.kernel.point(proc, `fault.${point}`);
        this.stats.faultPointsHit += 1;
        if (!this.prng.chance(this.o.faultPerPoint)) return;
        this.stats.faultsFired += 1;
        if (this.prng.chance(0.5)) {
          this.note(`fault ${point} throw in ${proc}`);
          throw new InjectedFault(point);
        }
        this.note(`fault ${point} kill ${proc}`);
        this.countCrash(proc, `fault ${point}`);
        this.kernel.crash(proc);
        throw new SimCrash(proc.toString(), point);
      },
    };
  }

  private countCrash(proc: SimProcess, at: string): void {
    if (proc.kind === 'master') this.stats.masterCrashes += 1;
    else this.stats.hostCrashes += 1;
    this.note(`crash ${proc} at ${at}`);
  }

  /** The simulator's turn at an effect point: crash the process, or run other work in between. */
  private async atPoint(proc: SimProcess, label: string): Promise<void> {
    if (proc.kind === 'checker') return;
    await this.freezer.effectGate(proc);
    const crashP = proc.kind === 'master' ? this.o.masterCrashPerPoint : this.o.hostCrashPerPoint;
    if (this.prng.chance(crashP)) {
      this.countCrash(proc, label);
      this.kernel.crash(proc);
      return;
    }
    if (proc.kind !== 'master' || this.inMasterPoint || !this.prng.chance(0.12)) return;
    this.inMasterPoint = true;
    try {
      // A second master by mistake, between this one's read and its commit, or after it.
      if (label.startsWith('fault.master.') && proc.name === 'master' && this.prng.chance(0.08)) {
        await this.secondMasterPass(`inside ${proc} at ${label}`);
        return;
      }
      const count = this.prng.between(1, 4);
      for (let i = 0; i < count; i++) {
        if (this.prng.chance(0.75)) {
          if (this.startExtend() !== 'started') break;
        } else this.startPoll();
      }
      await drainMicrotasks();
    } finally {
      this.inMasterPoint = false;
    }
  }

  /** Every running daemon, in name order: each host's, then a duplicate of it if one runs. */
  private liveHosts(): SimHost[] {
    const out: SimHost[] = [];
    for (const name of [...this.hosts.keys()].sort()) {
      const slot = this.hosts.get(name)!;
      for (const daemon of [slot.live, slot.duplicate]) if (daemon !== undefined && daemon.proc.alive && !daemon.exited) out.push(daemon);
    }
    return out;
  }

  private slotOf(name: string): HostSlot {
    let slot = this.hosts.get(name);
    if (slot === undefined) {
      slot = { live: undefined, starting: false, duplicate: undefined, duplicateStarting: false, startingProcs: new Set(), incarnation: 0, downUntilStep: 0, startedAtStep: 0 };
      this.hosts.set(name, slot);
    }
    return slot;
  }

  private isMember(name: string): boolean {
    return thinlvOf(this.lvm.metadata).hosts.has(name);
  }

  private dmOf(host: string): FakeDeviceMapper {
    let dm = this.dms.get(host);
    if (dm === undefined) {
      dm = new FakeDeviceMapper();
      this.dms.set(host, dm);
    }
    return dm;
  }

  /**
   * Starts a daemon for `name`, left running: taking the lease waits on the clock (a quick
   * claim of a free lease, or watching out a crashed daemon's). `duplicate`: a second daemon
   * for the host while the first may run, on the same machine (its dm tables and SQLite
   * state) past the local flock (another lock directory, a container), which the lease must
   * refuse. (One on another machine that outlives the first would leave the first machine's
   * tables mapped with nobody holding their LVs: that is fencing's job, not the lease's.)
   * `machine`: the device-mapper of another machine the host's daemon starts on (HA
   * restarted the host there while its first daemon is paused: pauseDaemon).
   */
  private startHost(name: string, duplicate = false, machine?: FakeDeviceMapper): void {
    const slot = this.slotOf(name);
    const proc = new SimProcess(duplicate ? `${name}b` : name, 'host', ++slot.incarnation);
    if (duplicate) slot.duplicateStarting = true;
    else [slot.starting, slot.startedAtStep] = [true, this.step];
    slot.startingProcs.add(proc);
    const started = SimHost.start({
      vgName: VG,
      host: name,
      proc,
      kernel: this.kernel,
      lvm: this.lvm.runner(proc, this.kernel, { readOnly: true }),
      reports: this.reports,
      regions: simRegionOpener(this.pvs, proc, this.kernel, this.writePlan),
      dm: machine ?? this.dmOf(name),
      states: this.states,
      faults: this.faultPoints(proc),
      outOfSpaceWaitMs: 2_000,
      claimWaitMs: 3_000,
      skipStaleGrants: this.o.workaroundStaleGrant,
      leaseRenewMs: LEASE_RENEW_MS,
      newOwnerId: () => (++this.ownerIdSerial).toString(16).padStart(16, '0'),
      effectGate: (p) => this.freezer.effectGate(p),
      journalWriters: this.journalWriters,
      journalDelayMs: (record) => this.journalDelayMs(record),
    });
    void started.finally(() => slot.startingProcs.delete(proc)).catch(() => undefined);
    started.then(
      (host) => {
        // A start killed from outside that still settles says nothing about the host's next start.
        if (this.killedStarts.has(proc)) return;
        if (duplicate) {
          slot.duplicateStarting = false;
          slot.duplicate = host;
          this.count(`duplicate daemon started`);
        } else {
          slot.starting = false;
          slot.live = host;
        }
        this.note(`host ${proc} started`);
      },
      (error: unknown) => {
        if (this.killedStarts.has(proc)) return;
        if (duplicate) slot.duplicateStarting = false;
        else slot.starting = false;
        const code = this.codeOf(error, `start ${proc}`, proc);
        // A host add that crashed before initialising the rings: the operator runs it again.
        if (code === 'HOST_START_FAILED' && !duplicate) this.unfinishedAdds.add(name);
        this.count(`${duplicate ? 'duplicate daemon' : 'daemon start'} ${code}`);
        this.note(`host ${proc} start failed ${code}`);
      },
    );
  }

  private count(outcome: string): void {
    this.stats.operations[outcome] = (this.stats.operations[outcome] ?? 0) + 1;
  }

  // ---- host operations (left running; they settle in microtasks or wait on the clock) ----

  private hostOp<T>(host: SimHost, what: string, run: () => Promise<T>, done: (value: T) => string, lv?: string): void {
    host.pendingOps += 1;
    if (lv !== undefined) host.pendingByLv.set(lv, (host.pendingByLv.get(lv) ?? 0) + 1);
    const settled = () => {
      host.pendingOps -= 1;
      if (lv === undefined) return;
      const left = host.pendingByLv.get(lv)! - 1;
      if (left === 0) host.pendingByLv.delete(lv);
      else host.pendingByLv.set(lv, left);
    };
    this.freezer.whenRunning(host.proc, run).then(
      (value) => {
        settled();
        this.note(`${what} -> ${done(value)}`);
      },
      (error: unknown) => {
        settled();
        const code = this.codeOf(error, what, host.proc);
        if (what.includes(' extend ')) this.stats.extendsRefused[code] = (this.stats.extendsRefused[code] ?? 0) + 1;
        if (code === 'VIRTUAL_SIZE_EXCEEDED' && lv !== undefined) {
          const refused = this.sizeRefusedAt.get(host) ?? new Map<string, number>();
          refused.set(lv, this.kernel.nowMs());
          this.sizeRefusedAt.set(host, refused);
        }
        this.note(`${what} -> ${code}`);
      },
    );
  }

  private thinLvNames(): string[] {
    return [...thinlvOf(this.lvm.metadata).thinLvs.keys()];
  }

  /** The active LVs each live host may be asked to grow (extendTargets.ts). */
  private extendTargets(hosts: readonly SimHost[]): ExtendTargets {
    const thin = thinlvOf(this.lvm.metadata).thinLvs;
    const paused = (host: SimHost, lv: string) => {
      const at = this.sizeRefusedAt.get(host)?.get(lv);
      if (at === undefined) return false;
      if (this.kernel.nowMs() - at < VIRTUAL_SIZE_RECHECK_MS) return true;
      this.sizeRefusedAt.get(host)!.delete(lv);
      return false;
    };
    return new ExtendTargets(hosts, (lv) => (thin.get(lv)?.virtualBytes ?? 0) / EXTENT_BYTES, MAX_QUEUED_OPS_PER_LV, paused);
  }

  /**
   * Starts one extend: 'started'; 'no room' when no active LV has room, and 'queues full'
   * when every one that has is waiting for its queued extends: either way the burst stops
   * and starts an activation instead, unless `nextWave` (a wave of a burst ends, and the next
   * starts when these returned). `targets`: this wave's view of the hosts' active LVs.
   */
  private startExtend(nextWave = false, targets?: ExtendTargets): 'started' | 'queues full' | 'no room' {
    const hosts = this.liveHosts().filter((h) => h.halted === undefined);
    if (hosts.length === 0) return 'no room';
    const all = this.thinLvNames();
    if (all.length === 0) return 'no room';
    const view = targets ?? this.extendTargets(hosts);
    if (!view.anyRoom()) {
      // No active LV has room: a VM starts on a disk that has (full ones are deactivated by
      // the "deactivate" step, which picks them first, and then removed).
      this.startActivate();
      return 'no room';
    }
    const withActive = hosts.filter((h) => view.roomy(h).length > 0);
    if (withActive.length === 0) {
      if (!nextWave) this.startActivate();
      return 'queues full';
    }
    const oneOff = this.prng.chance(this.o.oneOffExtendChance);
    const host = this.prng.pick(oneOff ? hosts : withActive);
    const lv = oneOff ? this.prng.pick(all) : this.prng.pick(view.roomy(host));
    if (!this.hasRoomInQueue(host, lv)) return 'started';
    const extents = this.prng.chance(1 - this.o.bigExtendChance) ? this.prng.between(1, SMALL_EXTEND_MAX_EXTENTS) : this.prng.between(this.o.quantumExtents, 2 * this.o.quantumExtents);
    const what = `${host.proc} extend ${lv} +${extents}`;
    const journalRingId = host.journalRingId;
    this.hostOp(host, what, () => host.allocator.extendBy(lv, extents * EXTENT_BYTES), (result: ExtendResult) => {
      if (result.seq !== null && result.extentsGranted > 0) this.acknowledge(host, journalRingId, result);
      return `ok seq ${result.seq} size ${result.sizeBytes / EXTENT_BYTES}`;
    }, lv);
    return 'started';
  }

  /**
   * Up to `extendBurst` extends across hosts, in at most `extendWaves` waves: a wave fills
   * the queues of active LVs with room, and the next starts once those extends returned
   * (a VM's disk driver asks again as soon as its extend returns). Hosts' grant polls and
   * their crashes go on in between, as in any step.
   */
  private async extendBurst(): Promise<void> {
    const count = this.prng.between(1, this.o.extendBurst);
    let started = 0;
    for (let wave = 1; started < count; ) {
      const targets = this.extendTargets(this.liveHosts().filter((h) => h.halted === undefined));
      let outcome = this.startExtend(wave < this.o.extendWaves, targets);
      while (outcome === 'started' && ++started < count) outcome = this.startExtend(wave < this.o.extendWaves, targets);
      if (outcome !== 'queues full' || wave >= this.o.extendWaves) break;
      wave += 1;
      await drainMicrotasks();
    }
  }

  private hasRoomInQueue(host: SimHost, lv: string): boolean {
    return (host.pendingByLv.get(lv) ?? 0) < MAX_QUEUED_OPS_PER_LV;
  }

  private acknowledge(host: SimHost, journalRingId: string, result: ExtendResult): void {
    const record = host.written.get(result.seq!);
    if (record === undefined || record.kind !== 'allocate' || record.lv !== result.lv) {
      this.failure ??= `${host.proc} acknowledged extend seq ${result.seq} of ${result.lv}, but its journal write of that seq was ${record?.kind ?? 'none'}`;
      return;
    }
    const byUuid = new Map(this.lvm.metadata.pvs.map((pv) => [pv.uuid, pv.device]));
    this.acks.add({
      host: host.deps.host,
      journalRingId,
      seq: result.seq!,
      lv: record.lv,
      lvUuid: record.lvUuid,
      ranges: record.ranges.map((r) => ({ pv: byUuid.get(r.pvUuid)!, firstExtent: r.firstExtent, extentCount: r.extentCount })),
      extentCountAfter: record.extentCountAfter,
    });
    this.stats.extendsAcknowledged += 1;
    this.stats.extentsAcknowledged += result.extentsGranted;
  }

  private startPoll(): void {
    const hosts = this.liveHosts();
    if (hosts.length === 0) return;
    const host = this.prng.pick(hosts);
    this.hostOp(host, `${host.proc} poll grants`, () => host.pollGrants(), () => `pool ${host.allocator.status().poolExtentCount} gen ${host.allocator.status().lastGrantGeneration}`);
  }

  private startActivate(): void {
    const hosts = this.liveHosts().filter((h) => h.halted === undefined);
    const thin = thinlvOf(this.lvm.metadata).thinLvs;
    if (hosts.length === 0 || thin.size === 0) return;
    const host = this.prng.pick(hosts);
    // Mostly an LV nobody holds that has room to grow: a storage manager starts a VM on a
    // disk, not on one that reached its virtual size (that one waits for lvremove).
    const free = [...thin].filter(([, t]) => t.owner === undefined && t.virtualBytes / EXTENT_BYTES - lvExtentCount(t.lv) >= 2).map(([name]) => name);
    // Sometimes any LV (one held elsewhere must be refused); not over and over when none is free.
    const any = this.prng.chance(0.1);
    if (free.length === 0 && !any) return;
    const lv = any ? this.prng.pick([...thin.keys()]) : this.prng.pick(free);
    if (!this.hasRoomInQueue(host, lv)) return;
    this.hostOp(host, `${host.proc} activate ${lv}`, () => host.allocator.activate(lv), (table) => `ok ${table.length} lines`, lv);
  }

  /**
   * LVs a host could be asked to deactivate: its active ones, and those it holds without a
   * table (an activation that failed after its claim was granted, or a crash inside one,
   * leaves the LV held: by design, since a held LV may still be live in device-mapper).
   * A storage manager detaching the disk deactivates it there, which releases it.
   */
  private heldLvs(host: SimHost): string[] {
    const held = [...thinlvOf(this.lvm.metadata).thinLvs.keys()].filter((lv) => host.allocator.owns(lv));
    return [...new Set([...host.allocator.status().activeLvs, ...held])].sort();
  }

  private startDeactivate(): void {
    const hosts = this.liveHosts().filter((h) => this.heldLvs(h).length > 0);
    if (hosts.length === 0) return;
    const host = this.prng.pick(hosts);
    // Mostly the LV with least room left: it is done growing, and its space can be reclaimed.
    const thin = thinlvOf(this.lvm.metadata).thinLvs;
    const room = (name: string) => { const t = thin.get(name); return t === undefined ? 0 : t.virtualBytes / EXTENT_BYTES - lvExtentCount(t.lv); };
    const held = this.heldLvs(host).sort((a, b) => room(a) - room(b) || (a < b ? -1 : 1));
    const lv = this.prng.chance(0.7) ? held[0]! : this.prng.pick(held);
    const size = thin.get(lv) === undefined ? 0 : lvExtentCount(thin.get(lv)!.lv);
    if (size > 1 && this.prng.chance(this.o.deflateChance)) {
      // `lvchange -an --deflate`: the release, then a deflate record (planReplay phase 1b).
      const keep = Math.max(1, Math.floor((size * this.prng.between(30, 90)) / 100));
      this.hostOp(host, `${host.proc} deactivate ${lv} --deflate ${keep}`, () => host.allocator.deactivate(lv, keep * EXTENT_BYTES), (r) => {
        this.count('deflate (host) journaled');
        return `ok deflate seq ${r.deflate?.seq}`;
      }, lv);
      if (this.prng.chance(0.5)) this.startMigrationTarget(host, lv);
      return;
    }
    this.hostOp(host, `${host.proc} deactivate ${lv}`, () => host.allocator.deactivate(lv), () => 'ok', lv);
  }

  /**
   * Live migration: the VM's disk is activated on another host while the source deactivates
   * it (its claim and the source's release may reach the master in one pass, the source's
   * deflate record in a later one: see journalDelayMs).
   */
  private startMigrationTarget(source: SimHost, lv: string): void {
    const targets = this.liveHosts().filter((h) => h.halted === undefined && h.deps.host !== source.deps.host && this.hasRoomInQueue(h, lv));
    if (targets.length === 0) return;
    const target = this.prng.pick(targets);
    this.hostOp(target, `${target.proc} activate ${lv} (migration)`, () => target.allocator.activate(lv), (table) => `ok ${table.length} lines`, lv);
  }

  private startRefresh(): void {
    const hosts = this.liveHosts();
    if (hosts.length === 0) return;
    const host = this.prng.pick(hosts);
    this.hostOp(host, `${host.proc} refresh`, () => host.refresh(), () => 'ok');
  }

  // ---- master operations (each runs to its end) ----

  /** Runs `what` on the master, if it runs; returns 'ok', the error's code, or 'no master'. */
  private async masterOp<T>(what: string, run: (m: SimMaster) => Promise<T>, done: (value: T) => string): Promise<string> {
    const master = this.master;
    if (master === undefined || !master.proc.alive) return 'no master';
    try {
      const value = await run(master);
      this.note(`${master.proc} ${what} -> ${done(value)}`);
      return 'ok';
    } catch (error) {
      const code = this.codeOf(error, `${master.proc} ${what}`, master.proc);
      this.note(`${master.proc} ${what} -> ${code}`);
      return code;
    }
  }

  private async pass(): Promise<void> {
    await this.masterOp('pass', async (m) => {
      this.stats.passes += 1;
      const result = await runPass(m.deps, m.session, VG);
      if (result.committed) this.stats.commits += 1;
      return result;
    }, passText);
  }

  /** The daemon between passes (src/cli/commands/master.ts): poll the journals, pass at once if a host waits or ran low. */
  private async masterPoll(): Promise<void> {
    const master = this.master;
    if (master === undefined || !master.proc.alive) return;
    let wanted: boolean;
    try {
      wanted = await master.session.passWanted();
    } catch (error) {
      this.note(`${master.proc} poll -> ${this.codeOf(error, `${master.proc} poll`, master.proc)}`);
      return;
    }
    if (wanted) await this.pass();
  }

  private async secondMasterPass(where: string): Promise<void> {
    if (this.secondMaster === undefined || !this.secondMaster.proc.alive) this.secondMaster = this.newMaster('master2');
    const second = this.secondMaster;
    this.stats.secondMasterPasses += 1;
    try {
      const result = await runPass(second.deps, second.session, VG);
      if (result.committed) this.stats.commits += 1;
      this.note(`${second.proc} pass ${where} -> ${passText(result)}`);
    } catch (error) {
      this.note(`${second.proc} pass ${where} -> ${this.codeOf(error, `${second.proc} pass`, second.proc)}`);
    }
  }

  private async createLv(): Promise<void> {
    if (this.thinLvNames().length >= MAX_THIN_LVS) return;
    const name = `lv${++this.lvSerial}`;
    const virtualBytes = this.prng.between(100, 800) * EXTENT_BYTES;
    await this.masterOp(`lvcreate ${name}`, async (m) => {
      const summary = await createThinLv(m.deps.lvm, VG, name, virtualBytes, 0, true);
      this.stats.lvsCreated += 1;
      return summary;
    }, () => 'ok');
  }

  private async removeLv(): Promise<void> {
    const thin = thinlvOf(this.lvm.metadata).thinLvs;
    if (thin.size === 0) return;
    // Mostly the biggest LV nobody holds; sometimes any (a held one must be refused).
    const unowned = [...thin].filter(([, t]) => t.owner === undefined).sort(([, a], [, b]) => lvExtentCount(b.lv) - lvExtentCount(a.lv));
    if (unowned.length === 0 && this.vgShort() && this.prng.chance(0.85)) {
      // Every LV is held and the VG is full: a storage manager deleting a disk detaches it first.
      const biggest = [...thin].sort(([, a], [, b]) => lvExtentCount(b.lv) - lvExtentCount(a.lv))[0]![1];
      const holder = this.liveHosts().find((h) => h.deps.host === biggest.owner && h.halted === undefined);
      if (holder !== undefined && this.hasRoomInQueue(holder, biggest.lv.name)) {
        this.hostOp(holder, `${holder.proc} deactivate ${biggest.lv.name}`, () => holder.allocator.deactivate(biggest.lv.name), () => 'ok', biggest.lv.name);
        return;
      }
    }
    const name = unowned.length > 0 && this.prng.chance(0.85) ? unowned[0]![0] : this.prng.pick([...thin.keys()]);
    const uuid = thin.get(name)!.lv.uuid;
    this.removalAttempted.add(uuid);
    await this.masterOp(`lvremove ${name}`, async (m) => {
      const result = await removeThinLv(m.deps.lvm, VG, name);
      this.stats.lvsRemoved += 1;
      return result;
    }, () => 'ok');
  }

  private memberCount(): number {
    return thinlvOf(this.lvm.metadata).hosts.size;
  }

  /** Less than a tenth of the VG is free in metadata (host pools not counted): time to delete disks. */
  private vgShort(): boolean {
    const vg = this.lvm.metadata;
    return freeExtentCountOf(vg) < this.o.spareFraction * vg.pvs.reduce((sum, pv) => sum + pv.peCount, 0);
  }

  private async resizeLv(): Promise<void> {
    const thin = thinlvOf(this.lvm.metadata).thinLvs;
    if (thin.size === 0) return;
    // Mostly the LV nearest its virtual size (what a storage manager grows next).
    const byHeadroom = [...thin].sort(([, a], [, b]) => a.virtualBytes / EXTENT_BYTES - lvExtentCount(a.lv) - (b.virtualBytes / EXTENT_BYTES - lvExtentCount(b.lv)));
    const name = this.prng.chance(0.7) ? byHeadroom[0]![0] : this.prng.pick([...thin.keys()]);
    const current = thin.get(name)!;
    const extents = Math.max(1, Math.round((current.virtualBytes / EXTENT_BYTES) * (this.prng.chance(0.8) ? 1.5 : 0.7)));
    await this.masterOp(`lvresize -V ${name} ${extents}`, (m) => setVirtualSize(m.deps.lvm, VG, name, extents * EXTENT_BYTES, true), () => 'ok');
  }

  private async addSpareHost(): Promise<void> {
    const members = thinlvOf(this.lvm.metadata).hosts;
    // A removed host comes back under its old name first (its state is keyed by the new journal's uuid).
    const name = [...this.unfinishedAdds].sort()[0] ?? [...INITIAL_HOSTS, ...SPARE_HOST_NAMES].find((h) => !members.has(h));
    this.unfinishedAdds.delete(name ?? '');
    if (name === undefined) return;
    const again = this.hosts.has(name) ? ' (again)' : '';
    this.count(`host add${again} ${await this.masterOp(`host add ${name}${again}`, (m) => addHost(m.deps, VG, name), () => 'ok')}`);
    if (thinlvOf(this.lvm.metadata).hosts.has(name) && !this.hosts.has(name)) this.slotOf(name).downUntilStep = this.step + 1;
  }

  /**
   * `host remove` or `host declare-dead` of a member, its daemon left running (issue 13).
   * remove: a storage manager mostly evacuates the host first (deactivates what it holds),
   * then the master stops the daemon through its grants ring and takes its lease.
   * declare-dead: the daemon still runs (refused while it renews its lease), or the host
   * was fenced (powered off: its daemon and its dm tables are gone), or the operator says
   * --fenced while the daemon in fact still runs (its next renewal finds the lease taken).
   */
  private async removeHostStep(mode: 'remove' | 'declare-dead'): Promise<void> {
    const members = [...thinlvOf(this.lvm.metadata).hosts.keys()].sort();
    if (members.length <= 2) return;
    const host = this.prng.pick(members);
    const slot = this.slotOf(host);
    let fenced = false;
    let how = '';
    if (mode === 'remove') {
      if (this.prng.chance(0.9)) {
        for (const daemon of this.liveHosts().filter((d) => d.deps.host === host && d.halted === undefined)) {
          for (const lv of this.heldLvs(daemon)) if (this.hasRoomInQueue(daemon, lv)) this.hostOp(daemon, `${daemon.proc} deactivate ${lv} (evacuate)`, () => daemon.allocator.deactivate(lv), () => 'ok', lv);
        }
        await drainMicrotasks();
      }
    } else {
      const variant = this.prng.between(1, 3);
      if (variant === 2) {
        fenced = true;
        how = ' (powered off)';
        for (const daemon of [slot.live, slot.duplicate]) if (daemon !== undefined && daemon.proc.alive) this.kernel.crash(daemon.proc);
        for (const proc of slot.startingProcs) this.kernel.crash(proc);
        // A start killed while it waits (on the lease, the clock) never settles: a dead
        // process sleeps for ever. Left marked as starting, the host was never started again
        // (one host after another, late in long runs, until few daemons served extends).
        for (const proc of slot.startingProcs) this.killedStarts.add(proc);
        slot.startingProcs.clear();
        [slot.starting, slot.duplicateStarting] = [false, false];
        this.dms.set(host, new FakeDeviceMapper());
      } else if (variant === 3) {
        fenced = true;
        how = ' (still running)';
      }
    }
    const what = `host ${mode} ${host}${fenced ? ' --fenced' : ''}${how}`;
    const outcome = await this.masterOp(what, (m) => this.withWorldTime(m, (deps) => removeHost(deps, VG, host, mode, { fenced, leaseRenewMs: LEASE_RENEW_MS, stopWaitMs: STOP_WAIT_MS, leaseClock: this.leaseClock(m) })), (r: RemoveHostResult) => {
      return `ok replayed ${r.replayedRecordCount} returned ${r.returnedExtentCount}${r.daemonStopped ? ', daemon stopped' : ''}`;
    });
    this.count(`host ${mode}${fenced ? ' --fenced' : ''}${how} ${outcome}${outcome !== 'ok' && !this.isMember(host) ? ' after its commit' : ''}`);
  }

  /**
   * Runs a master operation that waits (lease watches, a daemon's stop): its sleeps, and
   * each lvm command it runs, advance the simulated clock in slices, hosts working in
   * between, so the operation still runs to its end inside one step (only one master
   * operation at a time touches the real file system). The host lease it takes keeps the
   * simulated clock (leaseClock), its renewal loop sleeping on a timer as every other
   * process does.
   */
  private async withWorldTime<T>(m: SimMaster, run: (deps: MasterDeps) => Promise<T>): Promise<T> {
    const proc = m.proc;
    const sleepMs = async (ms: number): Promise<void> => {
      await this.worldTime(ms);
      // A master that crashed meanwhile never wakes up.
      if (!proc.alive) await new Promise(() => undefined);
    };
    // An lvm command takes 20 to 100 ms here (40 to 500 on real SANs): the world goes on meanwhile.
    const lvm: MasterDeps['lvm'] = { ...m.deps.lvm, run: async (...args: Parameters<MasterDeps['lvm']['run']>) => {
      await this.worldTime(this.prng.between(20, 100));
      return m.deps.lvm.run(...args);
    } };
    return run({ ...m.deps, sleepMs, lvm });
  }

  /** The host lease a removal takes: the simulated clock; waits through deps.sleepMs (world time), renewals on a timer. */
  private leaseClock(m: SimMaster): RemoveHostOptions['leaseClock'] {
    return { nowMs: () => this.kernel.nowMs(), renewSleepMs: (ms) => this.kernel.sleep(m.proc, ms) };
  }

  /** `ms` of simulated time, in slices, with extends and grant polls (a daemon sees a stop record only when it polls). */
  private async worldTime(ms: number): Promise<void> {
    for (let passed = 0; passed < ms; passed += WORLD_SLICE_MS) {
      if (this.prng.chance(0.3)) this.startExtend();
      if (this.prng.chance(0.3)) this.startPoll();
      await drainMicrotasks();
      await this.kernel.advance(Math.min(WORLD_SLICE_MS, ms - passed));
    }
  }

  /**
   * Stops a running daemon past its lease (issue 13): the host's VM is paused, its renewals
   * stop and requests to it wait in its socket; mostly, HA restarts the host elsewhere (the
   * same SQLite state, another machine's device-mapper) and that daemon takes the lease
   * over and serves meanwhile. Thawed 0.6 to 4 s later (thawIfDue), the first must halt
   * without writing its journal again (I8) or acknowledging what it cannot keep (I3).
   * (On one machine the local flock keeps a second daemon out while the first is stopped.)
   */
  private pauseDaemon(): void {
    const hosts = [...this.hosts.keys()].sort().filter((name) => {
      const slot = this.hosts.get(name)!;
      const daemon = slot.live;
      return daemon !== undefined && daemon.proc.alive && !daemon.exited && daemon.halted === undefined && slot.duplicate === undefined && !slot.duplicateStarting && this.isMember(name);
    });
    if (hosts.length === 0) return;
    const host = this.prng.pick(hosts);
    const daemon = this.slotOf(host).live!;
    this.freezer.freeze(daemon.proc);
    this.paused = { daemon, thawAtMs: this.kernel.nowMs() + this.prng.between(600, 4_000) };
    const takeover = this.prng.chance(0.8);
    this.note(`${daemon.proc} paused until t=${this.paused.thawAtMs}${takeover ? ', a second daemon takes over' : ''}`);
    this.count(`daemon paused${takeover ? ', taken over' : ''}`);
    if (takeover) this.startHost(host, true, new FakeDeviceMapper());
  }

  /** Thaws the paused daemon once due (at once if it died): its queued requests or its woken timers first. */
  private async thawIfDue(): Promise<void> {
    const paused = this.paused;
    if (paused === undefined || (paused.daemon.proc.alive && this.kernel.nowMs() < paused.thawAtMs)) return;
    this.paused = undefined;
    const requestsFirst = this.prng.chance(0.5);
    this.note(`${paused.daemon.proc} thawed, ${requestsFirst ? 'queued requests' : 'timers'} first`);
    await this.freezer.thaw(paused.daemon.proc, requestsFirst, drainMicrotasks);
    await drainMicrotasks();
    const daemon = paused.daemon;
    this.count(`paused daemon ${!daemon.proc.alive && daemon.halted === undefined ? 'crashed' : daemon.halted !== undefined ? `halted on thawing (${daemon.halted})` : 'ran on'}`);
  }

  /**
   * A slow journal write (a SAN stall): half of the deflate records of `lvchange -an
   * --deflate` start 0.2 to 3 s after the release before them, while the master may replay
   * the release and another host claim the LV: the deflate then reaches the master for an
   * LV another host holds, which replay must leave alone (I8).
   */
  private journalDelayMs(record: JournalRecord): number {
    return record.kind === 'deflate' && this.prng.chance(0.5) ? this.prng.between(200, 3_000) : 0;
  }

  /** A second daemon for a member host (issue 13): the host lease must refuse it while the first runs. */
  private startDuplicate(): void {
    const candidates = [...thinlvOf(this.lvm.metadata).hosts.keys()].sort().filter((h) => {
      const slot = this.slotOf(h);
      return slot.duplicate === undefined && !slot.duplicateStarting;
    });
    if (candidates.length === 0) return;
    const host = this.prng.pick(candidates);
    this.note(`second daemon for ${host} starting elsewhere`);
    this.startHost(host, true);
  }

  /** lvrename of a thin LV (issue 13): mostly one nobody holds; sometimes a held one, which must be refused. */
  private async renameLv(): Promise<void> {
    const thin = thinlvOf(this.lvm.metadata).thinLvs;
    if (thin.size === 0) return;
    const unowned = [...thin].filter(([, t]) => t.owner === undefined).map(([name]) => name);
    const name = unowned.length > 0 && this.prng.chance(0.7) ? this.prng.pick(unowned) : this.prng.pick([...thin.keys()]);
    const to = `lv${++this.lvSerial}`;
    this.count(`lvrename ${await this.masterOp(`lvrename ${name} ${to}`, async (m) => renameLv(m.deps.lvm, await readVgMetadata(m.deps.lvm, VG), name, to), () => 'ok')}`);
  }

  /** `lvresize -L` down of a thin LV, the master's deflate (issue 13): a held one must be refused. */
  private async deflateLv(): Promise<void> {
    const thin = thinlvOf(this.lvm.metadata).thinLvs;
    if (thin.size === 0) return;
    const unowned = [...thin].filter(([, t]) => t.owner === undefined).map(([name]) => name);
    const name = unowned.length > 0 && this.prng.chance(0.7) ? this.prng.pick(unowned) : this.prng.pick([...thin.keys()]);
    const { lv } = thin.get(name)!;
    const before = lvExtentCount(lv);
    const keep = Math.max(1, Math.floor((before * this.prng.between(30, 90)) / 100));
    this.masterDeflating = lv.uuid;
    try {
      this.count(`lvresize -L (deflate) ${await this.masterOp(`lvresize -L ${name} ${keep}`, (m) => deflateThinLv(m.deps, VG, name, keep * EXTENT_BYTES), () => 'ok')}`);
    } finally {
      this.masterDeflating = undefined;
    }
  }

  private bitFlip(): void {
    // Grants rings only: a flipped bit in an acknowledged, unreplayed journal record is data
    // loss no design can undo; in a grants ring it must cost at most a skipped or re-sent grant.
    const hosts = [...thinlvOf(this.lvm.metadata).hosts.keys()];
    if (hosts.length === 0) return;
    const host = this.prng.pick(hosts);
    const location = ringLocation(this.lvm.metadata, hostLvNames(host).grants);
    if (this.pv.flipBit(this.prng, location.offsetBytes, location.lengthBytes)) {
      this.stats.bitFlips += 1;
      this.note(`bit flip in ${host}'s grants ring`);
    }
  }

  // ---- the run ----

  async setUp(): Promise<void> {
    this.master = this.newMaster('master');
    const boot = this.master;
    // Set-up runs without faults: it is the VG an operator prepared.
    const saved = { ...this.o };
    Object.assign(this.o, { hostCrashPerPoint: 0, masterCrashPerPoint: 0, tornWritePerWrite: 0, faultPerPoint: 0 });
    try {
      await formatVg(boot.deps.lvm, VG, { quantumExtents: this.o.quantumExtents, lowWaterExtents: Math.max(1, Math.floor(this.o.quantumExtents / 2)), reservePermille: 50, expectedLvCount: 100 });
      for (const host of INITIAL_HOSTS) await addHost(boot.deps, VG, host);
      for (let i = 0; i < 6; i++) await createThinLv(boot.deps.lvm, VG, `lv${++this.lvSerial}`, 200 * EXTENT_BYTES, 0, true);
      await runPass(boot.deps, boot.session, VG);
      for (const host of INITIAL_HOSTS) this.startHost(host);
      while (INITIAL_HOSTS.some((h) => this.slotOf(h).starting)) await this.kernel.advance(LEASE_RENEW_MS);
    } finally {
      Object.assign(this.o, saved);
    }
    this.note('set up');
  }

  private async oneStep(): Promise<void> {
    const masterUp = this.master !== undefined && this.master.proc.alive;
    const rate = this.o.membershipRate;
    const action = this.prng.weighted({
      extend: 40,
      pass: masterUp ? this.o.passWeight : 0,
      masterPoll: masterUp ? 6 : 0,
      clock: 10,
      poll: 10,
      refresh: 2,
      activate: 5,
      deactivate: 3,
      lvcreate: masterUp ? 2.5 : 0,
      lvremove: masterUp ? (this.vgShort() ? 8 : 2) : 0,
      lvresize: masterUp ? 3 : 0,
      hostCrash: 0.4,
      masterCrash: masterUp ? 0.2 : 0,
      masterDown: masterUp ? 0.05 : 0,
      secondMaster: 0.2,
      hostAdd: masterUp ? (this.unfinishedAdds.size > 0 || this.memberCount() < INITIAL_HOSTS.length ? 2 : 0.05) : 0,
      bitFlip: 0.1,
      hostRemove: masterUp ? 0.2 * rate : 0,
      declareDead: masterUp ? 0.15 * rate : 0,
      duplicateDaemon: 0.15 * rate,
      lvrename: masterUp ? 0.5 * rate : 0,
      lvdeflate: masterUp ? 0.4 * rate : 0,
      pauseDaemon: this.paused === undefined ? 0.1 * rate : 0,
    });
    switch (action) {
      case 'extend':
        await this.extendBurst();
        break;
      case 'pass':
        await this.pass();
        break;
      case 'masterPoll':
        await this.masterPoll();
        break;
      case 'clock':
        await this.kernel.advance(this.prng.chance(1 - this.o.longClockJumpChance) ? this.prng.between(5, 300) : this.prng.between(1_000, 6_000));
        break;
      case 'poll':
        this.startPoll();
        break;
      case 'refresh':
        this.startRefresh();
        break;
      case 'activate':
        this.startActivate();
        break;
      case 'deactivate':
        this.startDeactivate();
        break;
      case 'lvcreate':
        await this.createLv();
        break;
      case 'lvremove':
        await this.removeLv();
        break;
      case 'lvresize':
        await this.resizeLv();
        break;
      case 'hostCrash': {
        const hosts = this.liveHosts();
        if (hosts.length === 0) break;
        const host = this.prng.pick(hosts);
        this.countCrash(host.proc, 'workload');
        this.kernel.crash(host.proc);
        break;
      }
      case 'masterCrash':
        this.countCrash(this.master!.proc, 'workload');
        this.kernel.crash(this.master!.proc);
        break;
      case 'masterDown':
        this.masterDownUntilStep = this.step + this.prng.between(50, 400);
        this.countCrash(this.master!.proc, `workload (down until step ${this.masterDownUntilStep})`);
        this.kernel.crash(this.master!.proc);
        break;
      case 'secondMaster':
        await this.secondMasterPass('alongside');
        break;
      case 'hostAdd':
        await this.addSpareHost();
        break;
      case 'bitFlip':
        this.bitFlip();
        break;
      case 'hostRemove':
        await this.removeHostStep('remove');
        break;
      case 'declareDead':
        await this.removeHostStep('declare-dead');
        break;
      case 'duplicateDaemon':
        this.startDuplicate();
        break;
      case 'lvrename':
        await this.renameLv();
        break;
      case 'lvdeflate':
        await this.deflateLv();
        break;
      case 'pauseDaemon':
        this.pauseDaemon();
        break;
    }
    await drainMicrotasks();
    await this.thawIfDue();
    await this.restartWhatCrashed();
  }

  private async restartWhatCrashed(): Promise<void> {
    if ((this.master === undefined || !this.master.proc.alive) && this.step >= this.masterDownUntilStep && this.prng.chance(0.3)) {
      this.master = this.newMaster('master');
      this.note(`${this.master.proc} started (new MasterSession)`);
    }
    for (const name of [...this.hosts.keys()].sort()) {
      const slot = this.hosts.get(name)!;
      // A daemon that stopped by itself (removed, stop record, lease lost) is restarted like a crashed one.
      if (slot.live !== undefined && (!slot.live.proc.alive || slot.live.exited)) {
        slot.live = undefined;
        slot.downUntilStep = this.step + this.prng.between(0, 20);
      }
      if (slot.duplicate !== undefined && (!slot.duplicate.proc.alive || slot.duplicate.exited)) slot.duplicate = undefined;
      // A second daemon that took the lease over (the first was paused, or died while it watched) serves the host.
      if (slot.live === undefined && slot.duplicate !== undefined) {
        [slot.live, slot.duplicate] = [slot.duplicate, undefined];
        this.dms.set(name, slot.live.deps.dm);
      }
      if (slot.live === undefined && !slot.starting && this.isMember(name) && this.step >= slot.downUntilStep && this.prng.chance(0.3)) {
        this.stats.hostRestarts += 1;
        this.startHost(name);
      }
    }
    await drainMicrotasks();
  }

  /** I1, I2, I3, I4, I6 on the world as it stands. */
  async check(full: boolean): Promise<void> {
    const vg = this.lvm.metadata;
    const unreplayed = await readUnreplayed(vg, this.checkerRegions, this.checkerReaders);
    checkExtents(vg, unreplayed);
    // A paused daemon does nothing; what it would find on thawing is checked when it runs again.
    const live = this.liveHosts().filter((h) => !this.freezer.isFrozen(h.proc));
    checkPools(vg, unreplayed, live);
    const layouts = new Layouts(vg, unreplayed);
    // I3 first: a lost extend also leaves a table that disagrees, and the loss is the finding.
    this.acks.check(layouts, unreplayed, this.removalAttempted, full);
    for (const host of live) {
      if (host.pendingOps === 0 && host.halted === undefined) checkTables(vg, layouts, host, host.deps.dm);
    }
  }

  /** Once quiet: passes converge, and one more pass changes nothing. */
  private async quietCheck(): Promise<void> {
    if (this.master === undefined || !this.master.proc.alive) return;
    if (this.liveHosts().some((h) => h.pendingOps > 0)) return;
    const saved = { ...this.o };
    Object.assign(this.o, { hostCrashPerPoint: 0, masterCrashPerPoint: 0, tornWritePerWrite: 0, faultPerPoint: 0 });
    const quietMaster = this.master;
    const savedInPoint = this.inMasterPoint;
    this.inMasterPoint = true; // no interleaving: the world is quiet
    try {
      let last: PassResult | undefined;
      for (let i = 0; i < 8; i++) {
        last = await runPass(quietMaster.deps, quietMaster.session, VG);
        if (!last.committed && !last.moreWaiting) break;
      }
      const seqno = this.lvm.metadata.seqno;
      const again = await runPass(quietMaster.deps, quietMaster.session, VG);
      if (again.committed || this.lvm.metadata.seqno !== seqno) this.fail(`quiet: a further master pass still changed the VG (${passText(again)}) after ${passText(last!)}`);
      this.note(`quiet check ok at seqno ${seqno}`);
    } catch (error) {
      if (error instanceof SimFailure) throw error;
      this.note(`quiet check skipped: ${this.codeOf(error, 'quiet check')}`);
    } finally {
      this.inMasterPoint = savedInPoint;
      Object.assign(this.o, saved);
    }
  }

  private oldestStart(): SimProgress['oldestStart'] {
    const starting = [...this.hosts].filter(([, slot]) => slot.starting).sort(([, a], [, b]) => a.startedAtStep - b.startedAtStep);
    if (starting.length === 0) return undefined;
    const [host, slot] = starting[0]!;
    return { host, steps: this.step - slot.startedAtStep, member: this.isMember(host) };
  }

  private progress(wallMs: number): SimProgress {
    const vg = this.lvm.metadata;
    const thin = [...thinlvOf(vg).thinLvs.values()];
    return {
      step: this.step, wallMs, extendsAcknowledged: this.stats.extendsAcknowledged, outOfSpace: this.stats.extendsRefused['OUT_OF_SPACE'] ?? 0, thinLvs: thin.length,
      heldLvs: thin.filter((t) => t.owner !== undefined).length, members: this.memberCount(), liveDaemons: this.liveHosts().length,
      startingDaemons: [...this.hosts.values()].filter((slot) => slot.starting).length,
      oldestStart: this.oldestStart(),
      freeExtents: freeExtentCountOf(vg), textBytes: this.lvm.metadataTextBytes,
    };
  }

  async run(): Promise<SimStats> {
    const started = Date.now();
    let lastProgress = started;
    const onUnhandled = (reason: unknown) => {
      this.failure ??= `unhandled rejection: ${(reason as Error)?.stack ?? String(reason)}`;
    };
    process.on('unhandledRejection', onUnhandled);
    try {
      await this.setUp();
      await this.check(true);
      for (this.step = 1; this.step <= this.o.steps; this.step++) {
        try {
          await this.oneStep();
          if (this.failure !== undefined) this.fail(this.failure);
          await this.check(this.step % this.o.quietCheckEvery === 0);
          if (this.step % this.o.quietCheckEvery === 0) await this.quietCheck();
        } catch (error) {
          if (error instanceof SimFailure) throw error;
          this.fail(error instanceof InvariantViolation ? error.message : `the simulator itself failed: ${(error as Error).stack ?? String(error)}`);
        }
        this.stats.steps = this.step;
        if (this.o.onProgress !== undefined && Date.now() - lastProgress >= this.o.progressEveryMs) {
          lastProgress = Date.now();
          this.o.onProgress(this.progress(lastProgress - started));
        }
        if (Date.now() - started > this.o.maxWallMs) break;
      }
      this.step = this.stats.steps;
      await this.check(true);
      if (this.failure !== undefined) this.fail(this.failure);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      this.stats.wallMs = Date.now() - started;
      this.stats.simulatedMs = this.kernel.nowMs();
      this.stats.effectPoints = this.kernel.pointCount;
      this.stats.lvmCalls = Object.fromEntries(this.lvm.calls);
      this.stats.metadataTextBytes = this.lvm.metadataTextBytes;
      this.stats.maxMetadataTextBytes = this.lvm.maxTextBytes;
      this.stats.restoresAsGiven = this.lvm.restoresAsGiven;
      this.stats.traceHash = this.hash.copy().digest('hex').slice(0, 16);
    }
    return this.stats;
  }
}

function passText(result: PassResult): string {
  return `${result.committed ? 'committed' : 'no commit'} ${result.seqnoBefore}->${result.seqnoAfter} replayed ${result.replayedRecordCount} rejected ${result.rejectedRecordCount} granted [${result.grantedHosts.join(',')}]${result.moreWaiting ? ' more' : ''}`;
}

export async function runSimulation(options: SimOptions): Promise<SimStats> {
  return new Simulator(options).run();
}

