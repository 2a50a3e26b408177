// `thinlv host run VG HOST`, `thinlv host status VG HOST`, and `thinlv lvextend`,
// the lvm-compatible wrapper a tapdisk resize hook or a storage manager calls.

import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ErrorCode, ThinlvError, UsageError } from '../../errors.js';
import { createDmsetupDeviceMapper, type DeviceMapper } from '../../dm/deviceMapper.js';
import { FakeDeviceMapper } from '../../dm/fakeDeviceMapper.js';
import { validateHostName } from '../../format/thinlvVg.js';
import { faultsFromSpec } from '../../faults.js';
import { MAX_OUT_OF_SPACE_WAIT_MS } from '../../host/allocator.js';
import { defaultSocketPath, startHostDaemon, type DaemonStop } from '../../host/hostDaemon.js';
import { MAX_LEASE_RENEW_MS, MIN_LEASE_RENEW_MS } from '../../ownership/index.js';
import { PROTOCOL_VERSION } from '../../host/protocol.js';
import { newRequestId, requestOnce } from '../../host/socketServer.js';
import { createLogger } from '../../log.js';
import { createHostMetrics } from '../../metrics/hostMetrics.js';
import { timedLvmRunner } from '../../metrics/lvmMetrics.js';
import { parseListenAddress, startMetricsServer, type MetricsServer } from '../../metrics/metricsServer.js';
import { fileRegionOpener } from '../../rings/ringRegions.js';
import { HostState, openStateDb, type StateDb } from '../../state/index.js';
import type { CommandContext } from '../context.js';
import { formatBytes } from '../format.js';
import { printResult } from '../output.js';
import { parseSize } from '../sizes.js';
import { validateVgName } from '../validate.js';
import { splitLvPath } from './admin.js';

export const HOST_STATE_DIR = '/var/lib/thinlv';
export const CLIENT_TIMEOUT_MS = 130_000;

export interface HostRunArgs {
  readonly vg: string;
  readonly host: string;
  readonly socket: string | undefined;
  readonly stateDir: string;
  readonly outOfSpaceWaitMs: number;
  readonly claimWaitMs?: number | undefined;
  readonly leaseIntervalMs?: number | undefined;
  /** HOST:PORT to serve Prometheus metrics on (GET /metrics); undefined: no metrics. */
  readonly metricsListen?: string | undefined;
}

export async function runHostDaemon(context: CommandContext, args: HostRunArgs): Promise<number> {
  validateVgName(args.vg);
  validateHostName(args.host);
  if (!Number.isSafeInteger(args.outOfSpaceWaitMs) || args.outOfSpaceWaitMs < 0 || args.outOfSpaceWaitMs > MAX_OUT_OF_SPACE_WAIT_MS) {
    throw new UsageError(ErrorCode.invalidArgument, `--out-of-space-wait-ms must be from 0 to ${MAX_OUT_OF_SPACE_WAIT_MS}, got ${args.outOfSpaceWaitMs}`);
  }
  const log = createLogger(context.options.logLevel === 'warn' ? 'info' : context.options.logLevel, 1);
  const socketPath = args.socket ?? defaultSocketPath(args.vg);
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o755 });
  if (args.leaseIntervalMs !== undefined && !(Number.isSafeInteger(args.leaseIntervalMs) && args.leaseIntervalMs >= MIN_LEASE_RENEW_MS && args.leaseIntervalMs <= MAX_LEASE_RENEW_MS)) {
    throw new UsageError(ErrorCode.invalidArgument, `--lease-interval-ms must be from ${MIN_LEASE_RENEW_MS} to ${MAX_LEASE_RENEW_MS}, got ${args.leaseIntervalMs}`);
  }
  const metricsAddress = args.metricsListen === undefined ? undefined : parseListenAddress(args.metricsListen);
  const metrics = metricsAddress === undefined ? undefined : createHostMetrics(args.vg, args.host);
  let metricsServer: MetricsServer | undefined;
  const dbs: StateDb[] = [];
  // Without device-mapper (a test machine) tables are computed and kept, not loaded; status says so.
  const dm: DeviceMapper = context.deviceMapper.available ? createDmsetupDeviceMapper() : new FakeDeviceMapper();
  let stop: (() => void) | undefined;
  const signalled = new Promise<DaemonStop>((resolve) => (stop = () => resolve({ reason: 'signal' })));
  process.on('SIGTERM', () => stop?.());
  process.on('SIGINT', () => stop?.());
  try {
    // Before the lease is taken: an address in use fails the start at once.
    if (metrics !== undefined && metricsAddress !== undefined) metricsServer = await startMetricsServer(metrics.registry, metricsAddress, log);
    const daemon = await startHostDaemon(
      {
        lvm: metrics === undefined ? context.lvm : timedLvmRunner(context.lvm, metrics.lvmCalls),
        regions: fileRegionOpener((level, message, data) => log[level](data ?? {}, message)),
        dm,
        deviceMapperPresent: context.deviceMapper.available,
        openState: (ringIdentity) => {
          const db = openHostStateDb(args.stateDir, args.vg, args.host, ringIdentity);
          dbs.push(db);
          return new HostState(db);
        },
        log,
        nowMs: () => Date.now(),
        sleepMs: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
        faults: faultsFromSpec(process.env['THINLV_FAULTS']),
        observer: metrics,
      },
      { vg: args.vg, host: args.host, socketPath, outOfSpaceWaitMs: args.outOfSpaceWaitMs, claimWaitMs: args.claimWaitMs, leaseRenewMs: args.leaseIntervalMs, localLockDir: process.env['THINLV_LOCAL_LOCK_DIR'] },
    );
    log.info({ vg: args.vg, socket: socketPath, protocol: PROTOCOL_VERSION, deviceMapper: context.deviceMapper.detail, ...daemon.allocator.status() }, 'host allocator serving');
    const why = await Promise.race([signalled, daemon.stopped]);
    await daemon.stop();
    log.info({ vg: args.vg, host: args.host, reason: why.reason }, 'host allocator stopped');
    // Removal is a normal end (the service should not restart it); a lost lease is not.
    if (why.error !== undefined && why.error.code !== 'HOST_REMOVED') throw why.error;
    return 0;
  } finally {
    await metricsServer?.close();
    for (const db of dbs) db.close();
  }
}

export async function runHostStatus(context: CommandContext, vg: string, host: string, socket: string | undefined): Promise<number> {
  validateVgName(vg);
  validateHostName(host);
  const reply = await requestOnce(socket ?? defaultSocketPath(vg), { id: newRequestId(), op: 'status' as const }, CLIENT_TIMEOUT_MS);
  if (!reply.ok) throw new ThinlvError(reply.error.code, reply.error.message, reply.error.data ?? {});
  const s = reply.result;
  printResult(
    context,
    { ...s },
    `${s.vg}/${s.host}: pool ${s.poolExtentCount} extents (low-water ${s.lowWaterExtents}), ${s.unreplayedRecordCount} journal records not yet replayed, grant generation ${s.lastGrantGeneration}, device-mapper ${s.deviceMapperPresent ? 'present' : 'absent (tables kept, not loaded)'}`,
  );
  return 0;
}

/**
 * The host's SQLite file belongs to one journal ring (its LV uuid): a host removed
 * and added again gets new rings and so a clean state (grant generations restart
 * at 1 on a new grants ring). Files of earlier rings of this host are deleted.
 */
function openHostStateDb(stateDir: string, vg: string, host: string, ringIdentity: string): StateDb {
  const prefix = `host-${vg}-${host}-`;
  const name = `${prefix}${ringIdentity}.db`;
  if (existsSync(stateDir)) {
    for (const file of readdirSync(stateDir)) {
      if (file.startsWith(prefix) && !file.startsWith(name) && /\.db(-wal|-shm)?$/.test(file)) rmSync(join(stateDir, file), { force: true });
    }
  }
  return openStateDb(join(stateDir, name));
}

export interface LvextendArgs {
  readonly path: string;
  readonly size: string | undefined;
  readonly extents: string | undefined;
  readonly socket: string | undefined;
}

/** lvm's own exit codes, which callers of an lvextend wrapper test for. */
export const LVM_EXIT = { ok: 0, invalidCommandLine: 3, failed: 5 } as const;

/** `thinlv lvextend -L [+]SIZE | -l [+]EXTENTS VG/LV`: prints and exits like lvm's lvextend. */
export async function runLvextend(context: CommandContext, args: LvextendArgs): Promise<number> {
  const { vg, lv } = splitLvPath(args.path);
  if ((args.size === undefined) === (args.extents === undefined)) {
    throw new UsageError(ErrorCode.invalidArgument, 'give exactly one of -L SIZE or -l EXTENTS');
  }
  const socketPath = args.socket ?? defaultSocketPath(vg);
  const id = newRequestId();
  let request;
  if (args.size !== undefined) {
    const size = parseSize(args.size, '-L');
    if (size.relative === '-') throw new UsageError(ErrorCode.invalidArgument, 'lvextend cannot shrink: use thinlv lvresize -L on the master');
    request = size.relative === '+' ? { id, op: 'extend' as const, vg, lv, incrementBytes: size.bytes } : { id, op: 'extend' as const, vg, lv, sizeBytes: size.bytes };
  } else {
    const match = /^(\+?)([0-9]+)$/.exec(args.extents!.trim());
    if (!match) throw new UsageError(ErrorCode.invalidArgument, `-l takes a whole number of extents, optionally with +, got "${args.extents}"`);
    // The daemon speaks bytes; its status says the VG's extent size.
    const status = await requestOnce(socketPath, { id: newRequestId(), op: 'status' as const, vg }, CLIENT_TIMEOUT_MS);
    if (!status.ok) throw new ThinlvError(status.error.code, status.error.message, status.error.data ?? {});
    const bytes = Number(match[2]) * status.result.extentSizeBytes;
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new UsageError(ErrorCode.invalidArgument, `-l ${args.extents} is not a usable extent count`);
    request = match[1] === '+' ? { id, op: 'extend' as const, vg, lv, incrementBytes: bytes } : { id, op: 'extend' as const, vg, lv, sizeBytes: bytes };
  }
  const reply = await requestOnce(socketPath, request, CLIENT_TIMEOUT_MS);
  if (!reply.ok) throw new ThinlvError(reply.error.code, reply.error.message, reply.error.data ?? {});
  const { sizeBytes, extentsGranted, extentSizeBytes } = reply.result;
  const extentsAfter = sizeBytes / extentSizeBytes;
  const extentsBefore = extentsAfter - extentsGranted;
  if (context.options.json) {
    printResult(context, { vg, ...reply.result }, '');
  } else if (extentsGranted === 0) {
    process.stdout.write(`  New size (${extentsAfter} extents) matches existing size (${extentsAfter} extents).\n`);
  } else {
    process.stdout.write(
      `  Size of logical volume ${vg}/${lv} changed from ${formatBytes(extentsBefore * extentSizeBytes)} (${extentsBefore} extents) to ${formatBytes(sizeBytes)} (${extentsAfter} extents).\n` +
        `  Logical volume ${vg}/${lv} successfully resized.\n`,
    );
  }
  return LVM_EXIT.ok;
}
