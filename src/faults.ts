// Named fault-injection points. Multi-step operations call `faults.hit(name)`
// between steps; in production nothing happens. Tests (and the CLI, through
// THINLV_FAULTS) arm a point so the process dies exactly there, to prove that
// a restart recovers from every intermediate state.

export interface FaultPoints {
  /** May return a promise: a test can run an lvm command "underneath" at a point. */
  hit(point: string): void | Promise<void>;
}

export const noFaults: FaultPoints = { hit() {} };

/** A point that was armed with the "throw" action raises this; tests catch it. */
export class InjectedFault extends Error {
  constructor(readonly point: string) {
    super(`injected fault at ${point}`);
  }
}

export type FaultAction = 'kill' | 'throw';

/**
 * Faults armed from a spec like "master.afterCommit:kill,host.remove.afterReplay:throw".
 * "kill" sends SIGKILL to this process (nothing after the point runs, no cleanup);
 * "throw" raises InjectedFault.
 */
export function faultsFromSpec(spec: string | undefined): FaultPoints {
  if (spec === undefined || spec.trim() === '') return noFaults;
  const armed = new Map<string, FaultAction>();
  for (const part of spec.split(',')) {
    const [point, action = 'kill'] = part.trim().split(':');
    if (!point || (action !== 'kill' && action !== 'throw')) throw new Error(`bad fault spec "${part}": use point[:kill|:throw]`);
    armed.set(point, action);
  }
  return {
    hit(point) {
      const action = armed.get(point);
      if (action === 'kill') process.kill(process.pid, 'SIGKILL');
      if (action === 'throw') throw new InjectedFault(point);
    },
  };
}
