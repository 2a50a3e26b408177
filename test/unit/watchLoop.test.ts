// `--watch`'s loop (src/cli/watch.ts) with an in-memory clock, output and signals: how
// reports are separated on a terminal, a pipe and in NDJSON, when they start, and which
// errors end the watch. The real command on real LVM is test/integration/freeWatch.test.ts.

import { describe, expect, test } from 'vitest';
import { InvariantError, ThinlvError, UsageError } from '../../src/errors.js';
import { CLEAR_SCREEN, watchIntervalMs, watchLoop, type WatchEffects, type WatchOptions } from '../../src/cli/watch.js';

const START_MS = Date.UTC(2026, 10, 30, 12, 0, 0);

/** Effects on a fake clock; the stop signal fires when `stopWhen` says so, checked after each sleep and write. */
function fakeEffects(stopWhen: (world: FakeWorld) => boolean) {
  const world: FakeWorld = { nowMs: START_MS, reports: [], errors: [], sleeps: [], handlersInstalled: 0 };
  let stop: (() => void) | undefined;
  const check = (): void => {
    if (stopWhen(world)) stop?.();
  };
  const effects: WatchEffects = {
    writeReport: (text) => {
      world.reports.push(text);
      check();
    },
    writeError: (text) => {
      world.errors.push(text);
      check();
    },
    nowMs: () => world.nowMs,
    sleepMs: async (ms) => {
      world.sleeps.push(ms);
      world.nowMs += ms;
      check();
    },
    onStopSignal: (onStop) => {
      stop = onStop;
      world.handlersInstalled++;
      return () => {
        stop = undefined;
        world.handlersInstalled--;
      };
    },
  };
  return { world, effects };
}

interface FakeWorld {
  nowMs: number;
  readonly reports: string[];
  readonly errors: string[];
  readonly sleeps: number[];
  handlersInstalled: number;
}

const options = (overrides: Partial<WatchOptions> = {}): WatchOptions => ({ intervalMs: 2000, title: 'thinlv free vg0', json: false, tty: false, ...overrides });

describe('watchLoop', () => {
  test('--json prints one report per line, nothing else, and a stop ends it with 0 and removes its signal handlers', async () => {
    const { world, effects } = fakeEffects((w) => w.reports.length === 3);
    let n = 0;
    const exitCode = await watchLoop(options({ json: true, tty: true }), async () => JSON.stringify({ report: ++n }), effects);
    expect(exitCode).toBe(0);
    expect(world.reports.join('')).toBe('{"report":1}\n{"report":2}\n{"report":3}\n');
    expect(world.handlersInstalled).toBe(0);
  });

  test('a JSON report that spans lines is a bug, not NDJSON', async () => {
    const { effects } = fakeEffects(() => false);
    await expect(watchLoop(options({ json: true }), async () => JSON.stringify({ a: 1 }, null, 2), effects)).rejects.toBeInstanceOf(InvariantError);
  });

  test('on a terminal each report clears the screen and starts with a header naming the command and the time', async () => {
    const { world, effects } = fakeEffects((w) => w.reports.length === 2);
    await watchLoop(options({ tty: true }), async () => 'VG vg0: ...', effects);
    expect(world.reports).toEqual([
      `${CLEAR_SCREEN}Every 2 s: thinlv free vg0 at 2026-11-30T12:00:00Z\n\nVG vg0: ...\n`,
      `${CLEAR_SCREEN}Every 2 s: thinlv free vg0 at 2026-11-30T12:00:02Z\n\nVG vg0: ...\n`,
    ]);
  });

  test('on a pipe reports are separated by a blank line and a header, with no escape codes', async () => {
    const { world, effects } = fakeEffects((w) => w.reports.length === 2);
    await watchLoop(options({ intervalMs: 1500 }), async () => 'line 1\nline 2', effects);
    expect(world.reports.join('')).toBe(
      'Every 1.5 s: thinlv free vg0 at 2026-11-30T12:00:00Z\nline 1\nline 2\n\nEvery 1.5 s: thinlv free vg0 at 2026-11-30T12:00:01Z\nline 1\nline 2\n',
    );
    expect(world.reports.join('')).not.toContain('\u001b');
  });

  test('reports start an interval apart, and one that overruns the interval is followed at once', async () => {
    const { world, effects } = fakeEffects((w) => w.reports.length === 3);
    const durations = [500, 3000, 100];
    await watchLoop(options(), async () => {
      world.nowMs += durations[world.reports.length]!;
      return 'r';
    }, effects);
    expect(world.sleeps).toEqual([1500, 0]);
  });

  test('an operating error after the first report goes to stderr and the watch goes on', async () => {
    const { world, effects } = fakeEffects((w) => w.reports.length === 2);
    let n = 0;
    const exitCode = await watchLoop(options({ json: true }), async () => {
      n++;
      if (n === 2) throw new ThinlvError('LVM_FAILED', 'lvm fullreport failed: device gone');
      return `{"n":${n}}`;
    }, effects);
    expect(exitCode).toBe(0);
    expect(world.reports).toEqual(['{"n":1}\n', '{"n":3}\n']);
    expect(world.errors).toEqual(['thinlv: lvm fullreport failed: device gone (still watching, every 2 s)\n']);
  });

  test("the first report's error ends the watch as without --watch", async () => {
    const { world, effects } = fakeEffects(() => false);
    const notFound = new ThinlvError('VG_NOT_FOUND', 'VG vg0 not found');
    await expect(watchLoop(options(), async () => Promise.reject(notFound), effects)).rejects.toBe(notFound);
    expect(world.reports).toEqual([]);
    expect(world.handlersInstalled).toBe(0);
  });

  test('a bug ends the watch at any time', async () => {
    const { effects } = fakeEffects(() => false);
    let n = 0;
    const bug = new TypeError('x is undefined');
    await expect(watchLoop(options(), async () => {
      if (++n === 3) throw bug;
      return 'r';
    }, effects)).rejects.toBe(bug);
  });

  test('a stop while a report is being read ends the watch at once, and that report is never printed', async () => {
    let stop: (() => void) | undefined;
    let finishReport: ((text: string) => void) | undefined;
    const reports: string[] = [];
    const effects: WatchEffects = {
      writeReport: (text) => reports.push(text),
      writeError: () => undefined,
      nowMs: () => START_MS,
      sleepMs: async () => undefined,
      onStopSignal: (onStop) => {
        stop = onStop;
        return () => undefined;
      },
    };
    let calls = 0;
    const watching = watchLoop(options(), () => {
      calls++;
      if (calls === 1) return Promise.resolve('first');
      return new Promise<string>((resolve) => (finishReport = resolve));
    }, effects);
    await new Promise((resolve) => setImmediate(resolve));
    expect(finishReport).toBeDefined();
    stop!();
    expect(await watching).toBe(0);
    finishReport!('second');
    await new Promise((resolve) => setImmediate(resolve));
    expect(reports).toEqual(['Every 2 s: thinlv free vg0 at 2026-11-30T12:00:00Z\nfirst\n']);
  });
});

describe('watchIntervalMs', () => {
  test('takes plain decimal seconds from 1 to 86400', () => {
    expect(watchIntervalMs('1')).toBe(1000);
    expect(watchIntervalMs('2.5')).toBe(2500);
    expect(watchIntervalMs('86400')).toBe(86_400_000);
  });

  test.each(['', '0', '0.5', '-1', '86401', 'abc', '0x10', '1e3', 'Infinity', 'NaN'])('refuses %j as a usage error', (text) => {
    expect(() => watchIntervalMs(text)).toThrow(UsageError);
  });
});
