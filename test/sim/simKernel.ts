// The simulated machine room: processes that can crash, one clock, and the
// points where the simulator may step in.
//
// Every effect a simulated process makes (an lvm call, a ring read or write, a
// dm command, a fault point, a sleep) first passes `point(proc, label)`. There
// the simulator may crash the process (the point throws SimCrash, and so does
// every later effect of that process, so nothing it does afterwards reaches the
// disk, the metadata or the kernel), or run other processes' work in between
// (interleaving). Time moves only when the simulator advances the clock: a
// sleep is a timer that fires in (due time, creation order) order.
//
// Why this is deterministic: host work and the fakes are in-memory and settle in
// microtasks, whose order is fixed by the program. Only the master's commit path
// touches the real file system (temporary files, lvm's flock), and the simulator
// runs at most one master operation at a time outside a point (a second master
// runs only inside the first one's point, where the first one waits on us).

export class SimCrash extends Error {
  constructor(
    readonly proc: string,
    readonly at: string,
  ) {
    super(`simulated crash of ${proc} at ${at}`);
  }
}

export type ProcessKind = 'master' | 'host' | 'checker';

export class SimProcess {
  alive = true;
  constructor(
    readonly name: string,
    readonly kind: ProcessKind,
    /** Which incarnation of this process name (restarts count up). */
    readonly incarnation: number,
  ) {}

  toString(): string {
    return `${this.name}#${this.incarnation}`;
  }
}

interface Timer {
  readonly dueMs: number;
  readonly id: number;
  readonly proc: SimProcess;
  readonly resolve: () => void;
}

/** What the simulator does at a point; may crash `proc` (then the point throws). */
export type PointHook = (proc: SimProcess, label: string) => Promise<void> | void;

/** Lets every ready microtask run (a macrotask turn drains them all). */
export const drainMicrotasks = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class SimKernel {
  private now = 0;
  private timers: Timer[] = [];
  private nextTimerId = 1;
  hook: PointHook = () => undefined;
  /** Points passed, per label family, for the end-of-run summary. */
  pointCount = 0;

  nowMs(): number {
    return this.now;
  }

  /** The effect gate: throws SimCrash for a dead process, and lets the simulator act. */
  async point(proc: SimProcess, label: string): Promise<void> {
    if (!proc.alive) throw new SimCrash(proc.toString(), label);
    this.pointCount += 1;
    await this.hook(proc, label);
    if (!proc.alive) throw new SimCrash(proc.toString(), label);
  }

  /** A synchronous liveness check, for effects that cannot await (a state write). */
  check(proc: SimProcess, label: string): void {
    if (!proc.alive) throw new SimCrash(proc.toString(), label);
  }

  sleep(proc: SimProcess, ms: number): Promise<void> {
    // A dead process sleeps for ever: its code never runs again (and production code,
    // whose sleeps never fail, need not handle a rejected one).
    if (!proc.alive) return new Promise(() => undefined);
    return new Promise((resolve) => {
      this.timers.push({ dueMs: this.now + Math.max(0, ms), id: this.nextTimerId++, proc, resolve });
    });
  }

  /** The process dies: its timers never fire, its next effect throws. */
  crash(proc: SimProcess): void {
    proc.alive = false;
    this.timers = this.timers.filter((t) => t.proc !== proc);
  }

  pendingTimerCount(): number {
    return this.timers.length;
  }

  /** Moves the clock forward by `ms`, firing due timers in order and letting each one's work settle. */
  async advance(ms: number): Promise<void> {
    const target = this.now + ms;
    for (;;) {
      let next: Timer | undefined;
      for (const timer of this.timers) {
        if (timer.dueMs > target) continue;
        if (next === undefined || timer.dueMs < next.dueMs || (timer.dueMs === next.dueMs && timer.id < next.id)) next = timer;
      }
      if (next === undefined) break;
      this.timers = this.timers.filter((t) => t !== next);
      this.now = Math.max(this.now, next.dueMs);
      next.resolve();
      await drainMicrotasks();
    }
    this.now = target;
  }
}
