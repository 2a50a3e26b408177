// pino loggers. The CLI logs to stderr (stdout is for data and --json);
// daemons log JSON to stdout.
//
// pino is loaded when something is first logged at an enabled level (or the logger is
// used in any other way), not when the logger is made: a command that logs nothing at
// its level, as most do at the default `warn`, never pays for loading it (process
// start-up is most of what a short CLI command costs). require, not import(), because
// a logger is made and used synchronously; pino is CommonJS, so this loads the same
// module an import would.

import { createRequire } from 'node:module';
import type { Logger, LevelWithSilent } from 'pino';

export type { Logger };

export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** pino's numeric levels: a call is written when its level is at least the logger's. */
const LEVEL_VALUES: Readonly<Record<LevelWithSilent, number>> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

const isLevelName = (key: string | symbol): key is Exclude<LevelWithSilent, 'silent'> => typeof key === 'string' && key !== 'silent' && Object.hasOwn(LEVEL_VALUES, key);

const ignore = (): void => {};

export function createLogger(level: LevelWithSilent, destinationFd: 1 | 2 = 2): Logger {
  let logger: Logger | undefined;
  const load = (): Logger => {
    if (logger === undefined) {
      const { pino } = createRequire(import.meta.url)('pino') as typeof import('pino');
      logger = pino({ level, base: { pid: process.pid } }, pino.destination({ dest: destinationFd, sync: true }));
    }
    return logger;
  };
  return new Proxy({} as Logger, {
    get(_target, key) {
      // Below the level pino would write nothing either; once pino is loaded it decides.
      if (logger === undefined && isLevelName(key) && LEVEL_VALUES[key] < LEVEL_VALUES[level]) return ignore;
      const real = load();
      const value: unknown = Reflect.get(real, key, real);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(real) : value;
    },
    set: (_target, key, value) => Reflect.set(load(), key, value),
    has: (_target, key) => Reflect.has(load(), key),
  });
}
