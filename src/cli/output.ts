// One way to print a command's result: a JSON object on stdout with --json,
// otherwise one human line.

import type { CommandContext } from './context.js';

export function printResult(context: CommandContext, json: Record<string, unknown>, human: string): void {
  process.stdout.write(context.options.json ? `${JSON.stringify({ ok: true, ...json })}\n` : `${human}\n`);
}
