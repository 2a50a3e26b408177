// `thinlv host run VG HOST` and `thinlv host status VG HOST`. `thinlv lvextend`, the
// lvm-compatible wrapper a tapdisk resize hook or a storage manager calls, is in
// lvextend.ts, so that it loads none of the daemon; it is re-exported here.

import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ErrorCode, ThinlvError, UsageError } from '../../errors.js';
import type { DeviceMapper } from '../../dm/deviceMapper.js';
import { selectDeviceMapper } from '../../dm/selectDeviceMapper.js';
import { FakeDeviceMapper } from '../../dm/fakeDeviceMapper.js';
import { validateHostName } from '../../format/thinlvVg.js';
import { faultsFromSpec } from '../../faults.js';
import { MAX_OUT_OF_SPACE_WAIT_MS } from '../../host/allocator.js';
import { startHostDaemon, type DaemonStop } from '../../host/hostDaemon.js';
import { defaultSocketPath } from '../../host/socketPath.js';
import { keepHeapSmall } from '../../host/heapPolicy.js';
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
import { printResult } from '../output.js';
import { validateVgName } from '../validate.js';
import { CLIENT_TIMEOUT_MS } from './lvextend.js';

export { CLIENT_TIMEOUT_MS, LVM_EXIT, runLvextend, type LvextendArgs } from './lvextend.js';

export const HOST_STATE_DIR = '/var/lib/thinlv';

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
  // Before anything of the VG is read: see heapPolicy.ts (issue 14's 100 MB).
  keepHeapSmall();
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
  // Real dm through its ioctls where the addon loads (src/dm/selectDeviceMapper.ts), else dmsetup.
  const selected = context.deviceMapper.available ? selectDeviceMapper() : undefined;
  const dm: DeviceMapper = selected?.deviceMapper ?? new FakeDeviceMapper();
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
    log.info({ vg: args.vg, socket: socketPath, protocol: PROTOCOL_VERSION, deviceMapper: context.deviceMapper.detail, deviceMapperBackend: selected?.detail ?? 'none (tables kept, not loaded)', ...daemon.allocator.status() }, 'host allocator serving');
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
    `${s.vg}/${s.host}: pool ${s.poolExtentCount} extents (low-water ${s.lowWaterExtents}), ${s.unreplayedRecordCount} journal records not yet replayed, grant generation ${s.lastGrantGeneration}, device-mapper ${s.deviceMapperPresent ? 'present' : 'absent (tables kept, not loaded)'}\n` +
      `active LVs (${(s.activeLvs ?? []).length}): ${(s.activeLvs ?? []).join(' ') || 'none'}`,
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
