// pino loggers. The CLI logs to stderr (stdout is for data and --json);
// daemons log JSON to stdout.

import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function createLogger(level: LevelWithSilent, destinationFd: 1 | 2 = 2): Logger {
  return pino({ level, base: { pid: process.pid } }, pino.destination({ dest: destinationFd, sync: true }));
}
