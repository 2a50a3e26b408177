#!/usr/bin/env node
// The thinlv command line. Commands are thin layers over src/; this file owns
// the global options and the one top-level error handler that maps errors to
// exit codes and to --json output.
//
// Exit codes: 0 ok, 1 findings (check), 2 bad input, 3 operating error
// (lvm failed, VG not found, lock busy, ...), 4 internal error (a bug), 141
// stdout or stderr closed by its reader (as a command killed by SIGPIPE).
//
// Start-up: a command is a process, and loading modules is most of what a short one
// costs (storage managers run dozens per VDI operation, tapdisk's resize hook one
// lvextend per grow). So this file imports statically only what every command needs;
// yargs, each command's module and the libraries under it (pino, SQLite, the
// journal) are imported where they are used. The lvm-compatible commands skip yargs
// altogether (bottom of this file), and so do the usual command lines of `lvextend` and
// of the read-only reports, and `--version` (fastArgv.ts). npm run bench:cli measures it.

import type { Argv } from 'yargs';
import type { LevelWithSilent } from 'pino';
import { ErrorCode, InvariantError, ThinlvError, UsageError } from '../errors.js';
import { EXIT_CODE_OF, exitClassOf } from '../errorCatalogue.js';
import { DEFAULT_LVM_TIMEOUT_MS } from '../lvm/lvmDefaults.js';
import { LOG_LEVELS } from '../log.js';
import type { CommandContext, GlobalOptions } from './context.js';
import { lvextendArgsOf, readFastArgv, type FastInvocation } from './fastArgv.js';
import { exitQuietlyOnClosedPipe } from './output.js';
import { lvmCompatInvocation, runLvmCompat } from '../lvmcompat/dispatch.js';
import { keepHeapSmall } from '../host/heapPolicy.js';

/** `thinlv [global options] host run ...` (a VG or host named "host" may match too: harmless). */
function isHostRun(args: readonly string[]): boolean {
  const index = args.indexOf('host');
  return index >= 0 && args[index + 1] === 'run';
}

export const EXIT = { ok: 0, findings: 1, usage: 2, operational: 3, internal: 4 } as const;

interface RawGlobals {
  devices?: string[] | undefined;
  'log-level': string;
  json: boolean;
  'lvm-path': string;
  'lvm-timeout-ms': number;
  'lvm-config'?: string | undefined;
}

function globalsFrom(argv: RawGlobals): GlobalOptions {
  const timeout = argv['lvm-timeout-ms'];
  if (!Number.isSafeInteger(timeout) || timeout <= 0) {
    throw new UsageError(ErrorCode.invalidArgument, `--lvm-timeout-ms must be a positive whole number of milliseconds, got ${timeout}`);
  }
  return {
    devices: argv.devices?.flatMap((d) => d.split(',')).filter((d) => d.length > 0),
    logLevel: argv['log-level'] as LevelWithSilent,
    json: argv.json,
    lvmPath: argv['lvm-path'],
    lvmTimeoutMs: timeout,
    lvmConfig: argv['lvm-config'],
  };
}

/** The journal's error test, loaded only for an error that may be one (not for a ThinlvError). */
const loadIsJournalError = async () => (await import('../../journal/index.js')).isJournalError;

/** Reads the global options and makes the command's context (logger, lvm runner, device-mapper probe: see context.ts). */
async function contextFor(argv: RawGlobals, probe: 'quick' | 'fresh' = 'quick'): Promise<CommandContext> {
  const globals = globalsFrom(argv);
  const { createCommandContext } = await import('./context.js');
  return createCommandContext(globals, probe);
}

async function reportError(error: unknown, json: boolean): Promise<number> {
  let code: string;
  let message: string;
  let data: unknown = {};
  let exitCode: number;
  if (error instanceof ThinlvError) {
    ({ code, message, data } = error);
    // The catalogue decides, so a code exits the same way wherever it was raised.
    const exitClass = exitClassOf(code);
    exitCode = exitClass !== undefined ? EXIT_CODE_OF[exitClass] : error instanceof UsageError ? EXIT.usage : error instanceof InvariantError ? EXIT.internal : EXIT.operational;
  } else if (error instanceof Error && (await loadIsJournalError())(error)) {
    // A ring that cannot be read or written (I/O error, damaged consumer block, wrong
    // ring): an operating condition with its own code, not a bug.
    ({ code, message, data } = error);
    exitCode = EXIT.operational;
  } else {
    code = 'INTERNAL';
    message = `internal error (a bug in thinlv, please report it): ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`;
    exitCode = EXIT.internal;
  }
  if (json) process.stdout.write(`${JSON.stringify({ ok: false, error: { code, message, data } })}\n`);
  else process.stderr.write(`thinlv: ${message}\n`);
  return exitCode;
}

type ReportCommand = Exclude<FastInvocation['command'], 'lvextend' | 'host'>;

/** The read-only reports, as both yargs' handlers below and the fast path run them. */
async function runReport(command: ReportCommand, argv: RawGlobals, vg: string, flags: { check?: boolean; watch?: string | undefined } = {}): Promise<number> {
  const context = await contextFor(argv);
  const check = flags.check ?? false;
  switch (command) {
    case 'inspect':
      return (await import('./commands/inspect.js')).runInspect(context, vg);
    case 'check':
      return (await import('./commands/check.js')).runCheck(context, vg);
    case 'free':
      return (await import('./commands/free.js')).runFree(context, { vg, check, watchSeconds: flags.watch });
    case 'status':
      return (await import('./commands/status.js')).runStatus(context, { vg, check });
    case 'hosts':
      return (await import('./commands/status.js')).runHosts(context, vg);
  }
}

/** `host run`'s options as yargs' handler below and the fast path both have them. */
interface HostRunOptions {
  readonly vg: string;
  readonly host: string;
  readonly socket?: string | undefined;
  readonly 'state-dir': string;
  readonly 'out-of-space-wait-ms': number;
  readonly 'claim-wait-ms'?: number | undefined;
  readonly 'lease-interval-ms'?: number | undefined;
  readonly 'metrics-listen'?: string | undefined;
}

/** The host daemon, as both yargs' handler below and the fast path run it. */
async function runHostRun(argv: RawGlobals, args: HostRunOptions): Promise<number> {
  // The daemon asks dmsetup itself: it decides between real and computed tables for days.
  const context = await contextFor(argv, 'fresh');
  const { runHostDaemon } = await import('./commands/hostDaemon.js');
  return runHostDaemon(context, {
    vg: args.vg,
    host: args.host,
    socket: args.socket,
    stateDir: args['state-dir'],
    outOfSpaceWaitMs: args['out-of-space-wait-ms'],
    claimWaitMs: args['claim-wait-ms'],
    leaseIntervalMs: args['lease-interval-ms'],
    metricsListen: args['metrics-listen'],
  });
}

/** `host run` as fastArgv.ts read it, with the defaults yargs' definition below gives. */
async function runFastHostRun(raw: RawGlobals, fast: FastInvocation): Promise<number> {
  const [{ HOST_STATE_DIR }, { DEFAULT_OUT_OF_SPACE_WAIT_MS }] = await Promise.all([import('./commands/hostDaemon.js'), import('../host/allocator.js')]);
  const numberOf = (field: string): number | undefined => (fast.values.has(field) ? Number(fast.values.get(field)) : undefined);
  return runHostRun(raw, {
    vg: fast.positionals[1]!,
    host: fast.positionals[2]!,
    socket: fast.values.get('socket'),
    'state-dir': fast.values.get('state-dir') ?? HOST_STATE_DIR,
    'out-of-space-wait-ms': numberOf('out-of-space-wait-ms') ?? DEFAULT_OUT_OF_SPACE_WAIT_MS,
    'claim-wait-ms': numberOf('claim-wait-ms'),
    'lease-interval-ms': numberOf('lease-interval-ms'),
    'metrics-listen': fast.values.get('metrics-listen'),
  });
}

/** A command line fastArgv.ts read: yargs' defaults added, then what its handler below does. */
async function runFast(fast: FastInvocation): Promise<number> {
  const raw: RawGlobals = { 'log-level': 'warn', 'lvm-path': 'lvm', 'lvm-timeout-ms': DEFAULT_LVM_TIMEOUT_MS, ...fast.globals };
  if (fast.command === 'host') return runFastHostRun(raw, fast);
  if (fast.command !== 'lvextend') return runReport(fast.command, raw, fast.positionals[0]!, { check: fast.booleans.has('--check'), watch: fast.values.get('watch') });
  const { runLvextend } = await import('./commands/lvextend.js');
  return runLvextend({ options: globalsFrom(raw) }, lvextendArgsOf(fast));
}

/** This package's version, as yargs' --version prints it: from the package.json above this file. */
async function packageVersion(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  for (let dir = new URL('.', import.meta.url); ; dir = new URL('..', dir)) {
    const text = await readFile(new URL('package.json', dir), 'utf8').catch(() => undefined);
    if (text !== undefined) return String((JSON.parse(text) as { version?: unknown }).version);
    if (dir.pathname === '/') throw new InvariantError('no package.json above the thinlv program', {});
  }
}

function withVgPositional(y: Argv<RawGlobals>): Argv<RawGlobals & { vg: string }> {
  return y.positional('vg', { type: 'string', describe: 'volume group name', demandOption: true }) as Argv<RawGlobals & { vg: string }>;
}

export async function main(argv: readonly string[]): Promise<number> {
  // `thinlv vdi` is a JSON API: its errors are JSON with or without --json.
  const wantsJson = argv.includes('--json') || argv.find((arg) => !arg.startsWith('-')) === 'vdi';
  let exitCode: number = EXIT.ok;
  try {
    if (argv.length === 1 && argv[0] === '--version') {
      process.stdout.write(`${await packageVersion()}\n`);
      return EXIT.ok;
    }
    const fast = readFastArgv(argv);
    // Exactly what the commands below do, without loading yargs.
    if (fast !== undefined) return await runFast(fast);
    const { default: yargs } = await import('yargs');
    await yargs([...argv])
      .scriptName('thinlv')
      .usage('$0 <command> [options]\n\nThin provisioning for LVM volume groups shared by many hosts.')
      .option('devices', {
        type: 'string',
        array: true,
        describe: 'restrict lvm to these PV devices (repeat or comma-separate), like lvm --devices',
      })
      .option('log-level', { type: 'string', choices: LOG_LEVELS, default: 'warn', describe: 'log level (commands log to stderr; the master and host run daemons to stdout)' })
      .option('json', { type: 'boolean', default: false, describe: 'machine-readable output on stdout' })
      .option('lvm-path', { type: 'string', default: 'lvm', describe: 'the lvm binary' })
      .option('lvm-timeout-ms', { type: 'number', default: DEFAULT_LVM_TIMEOUT_MS, describe: 'time limit for each lvm call' })
      .option('lvm-config', { type: 'string', describe: 'lvm.conf settings passed to every lvm call as --config' })
      .command(
        'inspect <vg>',
        'show the VG as thinlv sees it: PVs, extents, metadata area, LVs with segments and tags, free ranges',
        withVgPositional,
        async (args) => {
          exitCode = await runReport('inspect', args, args.vg);
        },
      )
      .command(
        'check <vg>',
        'check the VG metadata: no extent in two LVs, free plus allocated equals total, segments inside PVs, metadata area use',
        withVgPositional,
        async (args) => {
          exitCode = await runReport('check', args, args.vg);
        },
      )
      .command(
        'free <vg>',
        'how full the VG is: thin, ordinary and thinlv LVs, host pools, journaled extents not yet replayed, free space and the reserve, overcommit, and an alert level (ok, warning, critical); read-only, on any host',
        async (y) => {
          const { MAX_WATCH_SECONDS, MIN_WATCH_SECONDS } = await import('./watch.js');
          return withVgPositional(y)
            .option('check', {
              type: 'boolean',
              default: false,
              describe: 'exit 0, 1 or 2 for ok, warning or critical (Nagios-style); errors keep their exit codes',
            })
            .option('watch', {
              // A string, checked by watchIntervalMs: as a number, a bare --watch would parse as no watch at all.
              type: 'string',
              describe: `report again every SECONDS (${MIN_WATCH_SECONDS} to ${MAX_WATCH_SECONDS}) until interrupted (exit 0); with --json one report per line (NDJSON); not with --check`,
            });
        },
        async (args) => {
          exitCode = await runReport('free', args, args.vg, { check: args.check, watch: args.watch });
        },
      )
      .command(
        'status <vg>',
        "is the master passing, where, and how each host stands (daemon, pool, records not yet replayed, demand), with each problem and what to do; read-only, on any host",
        (y) => withVgPositional(y).option('check', { type: 'boolean', default: false, describe: 'exit 0, 1 or 2 when the worst problem is none, a warning or critical (Nagios-style)' }),
        async (args) => {
          exitCode = await runReport('status', args, args.vg, { check: args.check });
        },
      )
      .command(
        'hosts <vg>',
        'the hosts of the VG, one line each: daemon, pool, low-water, grant generation, records not yet replayed (read now), active LVs, demand; read-only, on any host',
        withVgPositional,
        async (args) => {
          exitCode = await runReport('hosts', args, args.vg);
        },
      )
      .command(
        'set <vg>',
        "change the VG's report and guard-rail settings (kept as VG tags), in one metadata commit on the master machine",
        (y) =>
          withVgPositional(y)
            .option('warn-percent', { type: 'number', describe: 'thinlv free: warning from this share of the VG committed (default 75)' })
            .option('critical-percent', { type: 'number', describe: 'thinlv free: critical from this share (default 85)' })
            .option('overcommit-limit-percent', { type: 'string', describe: "lvcreate and lvresize -V refuse to take the thin LVs' virtual total past this % of the VG (100 to 100000), or none" }),
        async (args) => {
          const context = await contextFor(args);
          const { runSet } = await import('./commands/settings.js');
          exitCode = await runSet(context, { vg: args.vg, warnPercent: args['warn-percent'], criticalPercent: args['critical-percent'], overcommitLimitPercent: args['overcommit-limit-percent'] });
        },
      )
      .command(
        'format <vg>',
        'prepare a VG for thinlv: format tag and pool settings, in one metadata commit',
        (y) =>
          withVgPositional(y)
            .option('quantum', { type: 'string', describe: 'extents granted per pool refill, as a size (default: 0.5% of the VG, at least 256m)' })
            .option('low-water', { type: 'string', describe: 'refill a pool that falls below this size (default: half the quantum)' })
            .option('reserve-percent', { type: 'number', describe: 'share of the VG pools are never refilled from (default 5)' })
            .option('expected-lvs', { type: 'number', describe: 'LVs the metadata area must hold (default 1000)' })
            .option('expected-segments', { type: 'number', describe: 'segments per LV the metadata area must hold them at (default 4; each costs about 160 bytes)' }),
        async (args) => {
          const context = await contextFor(args);
          const { runFormat } = await import('./commands/admin.js');
          exitCode = await runFormat(context, { vg: args.vg, quantum: args.quantum, lowWater: args['low-water'], reservePercent: args['reserve-percent'], expectedLvs: args['expected-lvs'], expectedSegments: args['expected-segments'] });
        },
      )
      .command(
        'host <action> <vg> <host>',
        'run: the host allocator daemon for this host (pino JSON logs on stdout); status: ask it how it is; add a host (creates its journal and grants rings), remove a stopped host, or declare a fenced host dead (remove and declare-dead stop its daemon or take its lease, replay its journal, then return its pool to free space); clear-rejected: forget records replay refused, once understood',
        async (y) => {
          const [{ HOST_STATE_DIR }, { DEFAULT_CLAIM_WAIT_MS, DEFAULT_OUT_OF_SPACE_WAIT_MS }, { DEFAULT_STOP_WAIT_MS }, { DEFAULT_LEASE_RENEW_MS }] = await Promise.all([
            import('./commands/hostDaemon.js'),
            import('../host/allocator.js'),
            import('../master/hostMembership.js'),
            import('../ownership/index.js'),
          ]);
          return withVgPositional(y)
            .positional('action', { type: 'string', choices: ['run', 'status', 'add', 'remove', 'declare-dead', 'clear-rejected'] as const, demandOption: true })
            .positional('host', { type: 'string', demandOption: true, describe: 'host name (letters, digits, ".", "-")' })
            .option('socket', { type: 'string', describe: 'the daemon socket (default /run/thinlv/host-<vg>.sock)' })
            .option('state-dir', { type: 'string', default: HOST_STATE_DIR, describe: "where the daemon's SQLite state lives" })
            .option('out-of-space-wait-ms', { type: 'number', default: DEFAULT_OUT_OF_SPACE_WAIT_MS, describe: 'how long an extend waits for a grant before OUT_OF_SPACE' })
            .option('claim-wait-ms', { type: 'number', describe: `run: how long activating (or a one-off extend of) an LV another host may hold waits for the master (default ${DEFAULT_CLAIM_WAIT_MS})` })
            .option('lease-interval-ms', { type: 'number', describe: `run, remove, declare-dead: the host lease's renewal interval; a daemon waits 4x it after taking the lease and 6x more to take over a silent one (default ${DEFAULT_LEASE_RENEW_MS}; every daemon and command of a VG must use the same)` })
            .option('fenced', { type: 'boolean', default: false, describe: 'declare-dead: assert the host is fenced (powered off or cut from the SAN), so its lease is taken even while it looks alive' })
            .option('stop-wait-ms', { type: 'number', describe: `remove: how long to wait for the host's daemon to stop (default ${DEFAULT_STOP_WAIT_MS})` })
            .option('metrics-listen', { type: 'string', describe: 'run: serve Prometheus metrics on HOST:PORT (GET /metrics), e.g. 127.0.0.1:9464; off by default' });
        },
        async (args) => {
          if (args.action === 'run') {
            exitCode = await runHostRun(args, args);
            return;
          }
          const context = await contextFor(args);
          const { runHostStatus } = await import('./commands/hostDaemon.js');
          const { runHostAdd, runHostClearRejected, runHostRemove } = await import('./commands/admin.js');
          switch (args.action) {
            case 'status':
              exitCode = await runHostStatus(context, args.vg, args.host, args.socket);
              break;
            case 'add':
              exitCode = await runHostAdd(context, args.vg, args.host);
              break;
            case 'clear-rejected':
              exitCode = await runHostClearRejected(context, args.vg, args.host);
              break;
            default:
              exitCode = await runHostRemove(context, args.vg, args.host, args.action as 'remove' | 'declare-dead', {
                fenced: args.fenced,
                leaseRenewMs: args['lease-interval-ms'],
                stopWaitMs: args['stop-wait-ms'],
              });
          }
        },
      )
      .command(
        'lvextend <lv>',
        'grow a thin LV (VG/LV) through this host\'s allocator, as lvm lvextend does: -L [+]SIZE or -l [+]EXTENTS; prints and exits like lvextend (0 ok, 3 bad command line, 5 failed)',
        (y) =>
          y
            .positional('lv', { type: 'string', demandOption: true, describe: 'VG/LV' })
            .option('L', { alias: 'size', type: 'string', describe: 'new size, or + an increment (k m g t, binary; default m)' })
            .option('l', { alias: 'extents', type: 'string', describe: 'new size in extents, or + a number of extents' })
            .option('live', { type: 'boolean', default: false, describe: 'accepted for compatibility: an LV active on this host always gets its new table' })
            .option('socket', { type: 'string', describe: 'the daemon socket (default /run/thinlv/host-<vg>.sock)' }),
        async (args) => {
          // Needs no lvm, logger or device-mapper: only the global options.
          const options = globalsFrom(args as RawGlobals);
          const { runLvextend } = await import('./commands/lvextend.js');
          exitCode = await runLvextend({ options }, { path: String(args.lv), size: args.L, extents: args.l, socket: args.socket });
        },
      )
      .command(
        'lvcreate <vg>',
        'create a thin LV: -n NAME -V VIRTUAL_SIZE [-L INITIAL_SIZE] (initial default: one extent, the least LVM holds)',
        (y) =>
          withVgPositional(y)
            .option('n', { alias: 'name', type: 'string', demandOption: true, describe: 'LV name' })
            .option('V', { alias: 'virtualsize', type: 'string', demandOption: true, describe: 'virtual size (k m g t, binary; default unit m)' })
            .option('L', { alias: 'size', type: 'string', describe: 'initial allocated size' })
            .option('force', { type: 'boolean', default: false, describe: "create it even past the VG's overcommit limit (tag thinlv_overcommit_limit_percent)" }),
        async (args) => {
          const context = await contextFor(args);
          const { runLvCreate } = await import('./commands/admin.js');
          exitCode = await runLvCreate(context, { vg: args.vg, name: args.n, virtualSize: args.V, size: args.L, force: args.force });
        },
      )
      .command(
        'lvremove <lv>',
        'remove a thin LV (VG/LV)',
        (y) => y.positional('lv', { type: 'string', demandOption: true, describe: 'VG/LV' }),
        async (args) => {
          const context = await contextFor(args as RawGlobals);
          const { runLvRemove } = await import('./commands/admin.js');
          exitCode = await runLvRemove(context, String(args.lv));
        },
      )
      .command(
        'lvresize <lv>',
        'change a thin LV (VG/LV): -V SIZE sets the virtual size; -L SIZE deflates (shrinks the allocated size; the LV must not be active on any host)',
        (y) =>
          y
            .positional('lv', { type: 'string', demandOption: true, describe: 'VG/LV' })
            .option('V', { alias: 'virtualsize', type: 'string', describe: 'new virtual size, or +/- a size' })
            .option('L', { alias: 'size', type: 'string', describe: 'new allocated size (deflate), or - a size' })
            .option('force', { type: 'boolean', default: false, describe: "raise the virtual size even past the VG's overcommit limit (tag thinlv_overcommit_limit_percent)" }),
        async (args) => {
          const context = await contextFor(args as RawGlobals);
          const { runLvResize } = await import('./commands/admin.js');
          exitCode = await runLvResize(context, { path: String(args.lv), virtualSize: args.V, size: args.L, force: args.force });
        },
      )
      .command(
        'master <vg>',
        'run the replayer: replay host journals into LVM metadata and refill pools (pino JSON logs on stdout)',
        async (y) => {
          const [{ DEFAULT_INTERVAL_MS, DEFAULT_POLL_MS, MASTER_STATE_DIR }, { RATE_WINDOW_MS }] = await Promise.all([import('./commands/master.js'), import('../master/masterSession.js')]);
          return withVgPositional(y)
            .option('once', { type: 'boolean', default: false, describe: 'run one pass (more while journals hold more than a pass takes), then exit' })
            .option('interval-ms', { type: 'number', default: DEFAULT_INTERVAL_MS, describe: 'time between passes; SIGUSR1 asks for a pass now' })
            .option('poll-ms', { type: 'number', default: DEFAULT_POLL_MS, describe: 'between passes, how often to look at the tail of every host journal for a host waiting for extents (a demand) or gone below low-water, which starts a pass at once' })
            .option('rate-window-ms', { type: 'number', default: RATE_WINDOW_MS, describe: "how far back a host's allocation rate looks when sizing its grants (two intervals of it); 0: grants are the VG's quantum, or what a demand needs" })
            // Accepted so existing scripts keep working; the lock no longer follows it (see masterLockPath).
            .option('run-dir', { type: 'string', deprecated: 'ignored: the one-master-per-VG lock is always /run/lock/thinlv/master-<vg>.lock', describe: 'formerly where the master lock lived' })
            .option('state-dir', { type: 'string', default: MASTER_STATE_DIR, describe: 'where the SQLite history lives (reports only; deleting it loses history, never correctness)' })
            .option('history', { type: 'boolean', default: true, describe: 'keep replay and grant history (--no-history: none)' })
            .option('metrics-listen', { type: 'string', describe: 'serve Prometheus metrics on HOST:PORT (GET /metrics), e.g. 127.0.0.1:9464; off by default' });
        },
        async (args) => {
          const context = await contextFor(args, 'fresh');
          const { runMaster } = await import('./commands/master.js');
          exitCode = await runMaster(context, { vg: args.vg, once: args.once, intervalMs: args['interval-ms'], pollMs: args['poll-ms'], rateWindowMs: args['rate-window-ms'], stateDir: args.history ? args['state-dir'] : undefined, metricsListen: args['metrics-listen'] });
        },
      )
      .command(
        'vdi <action> <vg>',
        'a JSON volume API for storage-manager plugins (xapi-storage Volume and Datapath calls): create, destroy, resize, set, unset (on the master machine), activate, deactivate (through this host\'s daemon), stat, list (anywhere); prints one JSON object (list: an array), errors as JSON',
        (y) =>
          withVgPositional(y)
            .positional('action', { type: 'string', choices: ['create', 'destroy', 'resize', 'stat', 'list', 'set', 'unset', 'activate', 'deactivate'] as const, demandOption: true })
            .option('key', { type: 'string', describe: "the volume's key (its LV name); create: generated (vdi-<12 hex>) when not given" })
            .option('name', { type: 'string', describe: 'create, set: the human name (any text)' })
            .option('description', { type: 'string', describe: 'create, set: the description (any text; set "" removes it)' })
            .option('virtual-size', { type: 'string', describe: 'create, resize: the virtual size (bytes, or with a unit: k m g t, binary)' })
            .option('k', { type: 'string', describe: 'set, unset: the key of a key-value pair' })
            .option('v', { type: 'string', describe: 'set: the value of the pair' })
            .option('socket', { type: 'string', describe: 'activate, deactivate: the daemon socket (default /run/thinlv/host-<vg>.sock)' })
            .option('force', { type: 'boolean', describe: "create, resize: even past the VG's overcommit limit" }),
        async (args) => {
          // vdi always answers in JSON, errors included (wantsJson above), whatever --json says.
          const context = await contextFor({ ...args, json: true });
          const { runVdi } = await import('./commands/vdi.js');
          exitCode = await runVdi(context, { action: args.action, vg: args.vg, key: args.key, name: args.name, description: args.description, virtualSize: args['virtual-size'], k: args.k, v: args.v, socket: args.socket, force: args.force });
        },
      )
      .demandCommand(1, 'name a command: thinlv --help lists them')
      .strict()
      .help()
      .version()
      .fail((message, error) => {
        if (error) throw error;
        throw new UsageError(ErrorCode.invalidArgument, `${message} (thinlv --help shows usage)`);
      })
      .parseAsync();
  } catch (error) {
    exitCode = await reportError(error, wantsJson);
    // The lvextend wrapper exits as lvm does, since its callers test lvm's codes.
    if (argv[0] === 'lvextend') {
      const { LVM_EXIT } = await import('./commands/lvextend.js');
      exitCode = exitCode === EXIT.usage ? LVM_EXIT.invalidCommandLine : LVM_EXIT.failed;
    }
  }
  return exitCode;
}

// A host daemon sets its heap policy before anything more is loaded (src/host/heapPolicy.ts):
// set once the command's modules are, the young generation it keeps is whatever loading them
// grew it to (1 to 8 MB from run to run). `host run` sets it again, which changes nothing.
if (isHostRun(process.argv.slice(2))) keepHeapSmall();
exitQuietlyOnClosedPipe();
// An lvm-compatible command (`lvs ...` through a symlink, or `thinlv lvs ...`) prints and
// exits as lvm does: it skips thinlv's option parser and error handler.
const lvmCompat = lvmCompatInvocation(process.argv);
(lvmCompat !== undefined ? runLvmCompat(lvmCompat) : main(process.argv.slice(2))).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`thinlv: ${String(error)}\n`);
    process.exitCode = EXIT.internal;
  },
);
