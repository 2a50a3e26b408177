// The lvm-compatible commands: `thinlv lvs ...`, or the thinlv program run through a
// symlink named `lvs`, `vgs`, ... (a directory of such symlinks put first in the PATH
// a storage manager uses makes thinlv a drop-in for the lvm commands it runs). One file
// per command under ./commands/, over a shared report formatter; they print and exit
// as lvm does, so they bypass thinlv's own option parser and error handler.
//
// Each command module is imported only when its command runs, so a wrapper call loads
// only what it needs (process start-up is most of what a wrapper costs).

import { basename } from 'node:path';

export interface LvmCompatCommand {
  /** Runs the command with lvm's arguments (everything after the command name); resolves to lvm's exit code. */
  run(args: readonly string[]): Promise<number>;
}

/** Loads a command's module; `symlinkOnly` commands run only through a symlink of their name. */
type CommandLoader = (() => Promise<LvmCompatCommand>) & { readonly symlinkOnly?: true };

/**
 * For the names thinlv already uses for commands of its own (`thinlv lvcreate`, `lvremove`,
 * `lvresize`, `lvextend`: yargs, thinlv's exit codes and --json, which scripts and the
 * resize hook rely on): `thinlv <name>` keeps running thinlv's command, and only a
 * program run through a symlink named so is the lvm-compatible one.
 */
const symlinkOnly = (load: () => Promise<LvmCompatCommand>): CommandLoader => Object.assign(load, { symlinkOnly: true as const });

/** Command name -> its module. Add a command here when its file exists. */
const COMMANDS: Readonly<Record<string, CommandLoader>> = {
  lvs: () => import('./commands/lvs.js'),
  vgs: () => import('./commands/vgs.js'),
  pvs: () => import('./commands/pvs.js'),
  lvdisplay: () => import('./commands/lvdisplay.js'),
  lvcreate: symlinkOnly(() => import('./commands/lvcreate.js')),
  lvremove: symlinkOnly(() => import('./commands/lvremove.js')),
  lvresize: symlinkOnly(() => import('./commands/lvresize.js')),
  lvextend: symlinkOnly(() => import('./commands/lvextend.js')),
  lvrename: () => import('./commands/lvrename.js'),
  lvchange: () => import('./commands/lvchange.js'),
  vgchange: () => import('./commands/vgchange.js'),
  pvresize: () => import('./commands/pvresize.js'),
};

export const lvmCompatCommandNames = (): string[] => Object.keys(COMMANDS).sort();

/**
 * The lvm command this process was asked to run, from `process.argv`: the program's own
 * name (a symlink `lvs` -> thinlv), or the first argument (`thinlv lvs ...`).
 */
export function lvmCompatInvocation(argv: readonly string[]): { command: string; args: string[] } | undefined {
  const program = basename(argv[1] ?? '');
  if (Object.hasOwn(COMMANDS, program)) return { command: program, args: argv.slice(2) };
  const first = argv[2];
  if (first !== undefined && Object.hasOwn(COMMANDS, first) && COMMANDS[first]!.symlinkOnly !== true) return { command: first, args: argv.slice(3) };
  return undefined;
}

export async function runLvmCompat(invocation: { command: string; args: readonly string[] }): Promise<number> {
  const load = COMMANDS[invocation.command];
  if (load === undefined) throw new Error(`no lvm-compatible command ${invocation.command}`);
  return (await load()).run(invocation.args);
}
