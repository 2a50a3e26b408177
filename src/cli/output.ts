// One way to print a command's result: a JSON object on stdout with --json,
// otherwise one human line. And what happens when nobody reads it any more.

import type { CommandContext } from './context.js';

/**
 * The status a shell reports for a command killed by SIGPIPE (128 + 13), as
 * `lvs | head -1` ends. Node ignores SIGPIPE, so we exit with it instead.
 */
export const EXIT_CLOSED_PIPE = 141;

export function printResult(context: Pick<CommandContext, 'options'>, json: Record<string, unknown>, human: string): void {
  process.stdout.write(context.options.json ? `${JSON.stringify({ ok: true, ...json })}\n` : `${human}\n`);
  // Warnings (the change was made anyway) go to stderr, as lvm's do; with --json they are in `warnings`.
  const warnings = json['warnings'];
  if (!context.options.json && Array.isArray(warnings)) for (const warning of warnings) process.stderr.write(`  ${String(warning)}\n`);
}

/**
 * Ends the process quietly when its reader closes stdout or stderr (as
 * `thinlv inspect VG | head -1` does), instead of Node's unhandled EPIPE stack
 * trace. Any other stream error stays fatal. Loggers are pino destinations,
 * which already stop writing on EPIPE, so a daemon whose log reader went away
 * keeps running.
 */
export function exitQuietlyOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      process.exit(EXIT_CLOSED_PIPE);
    });
  }
}
