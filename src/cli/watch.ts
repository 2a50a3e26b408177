// `--watch SECONDS`: a report run again and again, as watch(1) runs a command, until
// SIGINT or SIGTERM, which end the command with exit 0. How reports follow each other
// depends on where they go:
//
//   --json          one compact JSON document per line (NDJSON) and nothing else, so
//                   `thinlv free VG --watch 5 --json | jq` reads a stream of reports
//   a terminal      the screen cleared, a header line (when, how often), the report
//   a pipe or file  a blank line, the header line, the report
//
// Reports start SECONDS apart (a report that takes longer is followed at once, never
// overlapped). Once the first report is out, a report that fails with an operating
// error (lvm failed or timed out, a device gone) is reported on stderr and the watch
// goes on: the next one may succeed. The first report's error ends the command as it
// would without --watch (a VG that does not exist, bad input), and a bug (anything but
// an operating error) ends it at any time.
//
// A stop that arrives while a report is being read returns at once and drops that
// report; its lvm call, if any, still runs to its end or its --lvm-timeout-ms before
// the process exits.

import { isJournalError } from '../../journal/index.js';
import { assert, ErrorCode, InvariantError, ThinlvError, UsageError } from '../errors.js';

export const MIN_WATCH_SECONDS = 1;
/** A day: a longer period is a job for cron, not a process left running. */
export const MAX_WATCH_SECONDS = 86_400;
/** Cursor home, then erase the screen: what watch(1) and clear(1) send. */
export const CLEAR_SCREEN = '\u001b[H\u001b[2J';

/** `--watch SECONDS` as milliseconds; a usage error unless a number from MIN_WATCH_SECONDS to MAX_WATCH_SECONDS. */
export function watchIntervalMs(secondsText: string): number {
  // Plain decimals only: Number() alone would take '' as 0 and '0x10' as 16.
  const seconds = /^\d+(\.\d+)?$/.test(String(secondsText).trim()) ? Number(secondsText) : Number.NaN;
  if (!(Number.isFinite(seconds) && seconds >= MIN_WATCH_SECONDS && seconds <= MAX_WATCH_SECONDS)) {
    throw new UsageError(ErrorCode.invalidArgument, `--watch must be a number of seconds from ${MIN_WATCH_SECONDS} to ${MAX_WATCH_SECONDS}, got "${secondsText}"`, { watch: secondsText });
  }
  return Math.round(seconds * 1000);
}

export interface WatchOptions {
  readonly intervalMs: number;
  /** The command as the header names it, e.g. `thinlv free vg0`. */
  readonly title: string;
  /** Reports are JSON documents on one line each (NDJSON). */
  readonly json: boolean;
  /** stdout is a terminal: clear the screen before each report. */
  readonly tty: boolean;
}

/** What the loop does to the world, so that a test can run it without a process or a clock. */
export interface WatchEffects {
  readonly writeReport: (text: string) => void;
  readonly writeError: (text: string) => void;
  readonly nowMs: () => number;
  /** Waits `ms`, or less once `signal` is aborted. */
  readonly sleepMs: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Calls `stop` on SIGINT or SIGTERM until the returned function removes the handlers. */
  readonly onStopSignal: (stop: () => void) => () => void;
}

/**
 * Runs `runOnce` every `intervalMs` and prints what it returns (the report's text, or
 * its JSON on one line) until stopped; resolves 0 when stopped. Throws the first
 * report's error, and any later error that is not an operating error.
 */
export async function watchLoop(options: WatchOptions, runOnce: () => Promise<string>, effects: WatchEffects = processWatchEffects()): Promise<number> {
  assert(Number.isSafeInteger(options.intervalMs) && options.intervalMs > 0, 'watch interval must be a positive number of milliseconds', { intervalMs: options.intervalMs });
  const stopper = new AbortController();
  const removeHandlers = effects.onStopSignal(() => stopper.abort());
  try {
    for (let reportIndex = 0; !stopper.signal.aborted; reportIndex++) {
      const startedMs = effects.nowMs();
      const outcome = await untilStopped(runOnce(), stopper.signal);
      if (outcome.kind === 'stopped') break;
      if (outcome.kind === 'failed') {
        if (reportIndex === 0 || !isOperatingError(outcome.error)) throw outcome.error;
        effects.writeError(`thinlv: ${errorMessage(outcome.error)} (still watching, every ${options.intervalMs / 1000} s)\n`);
      } else {
        effects.writeReport(reportFrame(options, outcome.text, reportIndex, startedMs));
      }
      if (!stopper.signal.aborted) await effects.sleepMs(Math.max(0, startedMs + options.intervalMs - effects.nowMs()), stopper.signal);
    }
    return 0;
  } finally {
    removeHandlers();
  }
}

/** One report as it goes to stdout, with what separates it from the one before. */
export function reportFrame(options: WatchOptions, text: string, reportIndex: number, startedMs: number): string {
  if (options.json) {
    // NDJSON: a reader splits the stream at newlines, so a report must not contain one.
    assert(!text.includes('\n'), 'a watched JSON report must be one line', { title: options.title });
    return `${text}\n`;
  }
  const header = `Every ${options.intervalMs / 1000} s: ${options.title} at ${new Date(startedMs).toISOString().replace(/\.\d{3}Z$/, 'Z')}`;
  if (options.tty) return `${CLEAR_SCREEN}${header}\n\n${text}\n`;
  return `${reportIndex === 0 ? '' : '\n'}${header}\n${text}\n`;
}

const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** lvm failed, a device or ring could not be read: worth another try. A bug is not. */
function isOperatingError(error: unknown): boolean {
  return (error instanceof ThinlvError && !(error instanceof InvariantError)) || isJournalError(error);
}

type Outcome = { kind: 'report'; text: string } | { kind: 'failed'; error: unknown } | { kind: 'stopped' };

/** The report's outcome, or 'stopped' as soon as `signal` aborts (the report is then dropped, its error too). */
function untilStopped(report: Promise<string>, signal: AbortSignal): Promise<Outcome> {
  return new Promise<Outcome>((resolve) => {
    const onAbort = (): void => resolve({ kind: 'stopped' });
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    // Whichever comes first wins; the listener goes either way, so a long watch does not pile them up.
    void report
      .then(
        (text) => resolve({ kind: 'report', text }),
        (error: unknown) => resolve({ kind: 'failed', error }),
      )
      .finally(() => signal.removeEventListener('abort', onAbort));
  });
}

export function processWatchEffects(): WatchEffects {
  return {
    writeReport: (text) => process.stdout.write(text),
    writeError: (text) => process.stderr.write(text),
    nowMs: () => Date.now(),
    sleepMs: (ms, signal) =>
      new Promise<void>((resolve) => {
        if (signal.aborted) return resolve();
        const done = (): void => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        signal.addEventListener('abort', done, { once: true });
      }),
    onStopSignal: (stop) => {
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      return () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      };
    },
  };
}
