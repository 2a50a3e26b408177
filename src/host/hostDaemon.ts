// `thinlv host run VG HOST`: the host allocator daemon, one per host per VG.
//
//   start   1. read the VG read-only (lvm fullreport --readonly: a host never writes
//              metadata and never runs an lvm command that could "repair" it)
//           2. open its journal ring: the writer finds the tail; a reader collects the
//              records after the applied seq (what the master has not replayed yet)
//           3. open its SQLite state: last applied grant generation, active LVs
//           4. rebuild the pool (free LV less unreplayed records), reload the tables
//              of LVs active before a restart, then serve the socket
//   loop    read the grants ring (apply newer generations, honour return requests),
//           re-read metadata now and then to learn what the master replayed
//   stop    SIGTERM: stop serving, finish in-flight requests, close everything

import { MAX_FULL_WAIT_MS, isJournalError, openRingReader, openRingWriter, type BlockRegion, type RingWriter } from '../../journal/index.js';
import { ThinlvError } from '../errors.js';
import type { DeviceMapper } from '../dm/deviceMapper.js';
import { dmName } from '../dm/deviceMapper.js';
import { formatDmTable } from '../extent/dmTable.js';
import { hostLvNames, readThinlvVg } from '../format/thinlvVg.js';
import { readVgReport } from '../lvm/readVgReport.js';
import type { LvmRunner } from '../lvm/runLvm.js';
import type { Logger } from '../log.js';
import { linearSegments, type VgLayout } from '../metadata/vgModel.js';
import { decodeGrantRecord, decodeJournalRecord, encodeJournalRecord } from '../records/records.js';
import { ringLocation, type RegionOpener } from '../rings/ringRegions.js';
import type { HostState } from '../state/hostState.js';
import type { FaultPoints } from '../faults.js';
import { HostAllocator, type UnreplayedRecord } from './allocator.js';
import type { Request, Result } from './protocol.js';
import { startSocketServer, type SocketServer } from './socketServer.js';

export const DEFAULT_SOCKET_DIR = '/run/thinlv';
/** How often the grants ring is read; each read is a direct read of the ring, so not too often. */
export const DEFAULT_GRANT_POLL_MS = 250;
/** Metadata is re-read now and then to drop replayed records from the pending lists (an unknown LV triggers a read at once). */
export const DEFAULT_METADATA_REFRESH_MS = 30_000;

export const defaultSocketPath = (vg: string): string => `${DEFAULT_SOCKET_DIR}/host-${vg}.sock`;

export interface HostDaemonDeps {
  readonly lvm: LvmRunner;
  readonly regions: RegionOpener;
  readonly dm: DeviceMapper;
  readonly deviceMapperPresent: boolean;
  readonly state: HostState;
  readonly log: Logger;
  readonly nowMs: () => number;
  readonly sleepMs: (ms: number) => Promise<void>;
  readonly faults?: FaultPoints;
}

export interface HostDaemonOptions {
  readonly vg: string;
  readonly host: string;
  readonly socketPath: string;
  readonly outOfSpaceWaitMs: number;
  readonly grantPollMs?: number;
  readonly metadataRefreshMs?: number;
}

export interface RunningHostDaemon {
  readonly allocator: HostAllocator;
  readonly server: SocketServer;
  stop(): Promise<void>;
}

async function readLayout(deps: HostDaemonDeps, vgName: string, host: string) {
  const vg = await readVgReport(deps.lvm, vgName);
  const thinlv = readThinlvVg(vg);
  const info = thinlv.hosts.get(host);
  if (info === undefined) {
    throw new ThinlvError('UNKNOWN_HOST', `host ${host} is not a member of ${vgName}: run "thinlv host add ${vgName} ${host}" on the master`, { vg: vgName, host });
  }
  return { vg, thinlv, info };
}

/** Own journal records after `appliedSeq`, read back from the ring. */
async function unreplayedRecords(region: BlockRegion, ringId: string, appliedSeq: number, lastSeq: number): Promise<UnreplayedRecord[]> {
  const reader = await openRingReader(region, { ringId });
  const records: UnreplayedRecord[] = [];
  let fromSeq = Math.max(appliedSeq + 1, reader.consumedSeq + 1);
  while (fromSeq <= lastSeq) {
    const { records: batch } = await reader.read({ fromSeq });
    if (batch.length === 0) break;
    for (const record of batch) {
      const decoded = decodeJournalRecord(record.payload);
      // This host wrote every record here, so one it cannot read is corruption.
      if (!decoded.ok) throw new ThinlvError('JOURNAL_CORRUPT', `record ${record.seq} of this host's journal is unreadable: ${decoded.reason}`, { seq: record.seq });
      records.push({ seq: record.seq, record: decoded.record });
    }
    fromSeq = batch[batch.length - 1]!.seq + 1;
  }
  if (fromSeq <= lastSeq) {
    throw new ThinlvError('JOURNAL_CORRUPT', `this host's journal ends at seq ${fromSeq - 1} though its writer found seq ${lastSeq}`, { lastSeq });
  }
  return records;
}

function freeRangesOf(vg: VgLayout, host: string) {
  const free = vg.lvs.find((lv) => lv.name === hostLvNames(host).free);
  return free ? (linearSegments(free) ?? []) : [];
}

export async function startHostDaemon(deps: HostDaemonDeps, options: HostDaemonOptions): Promise<RunningHostDaemon> {
  const { vg: vgName, host } = options;
  const { vg, thinlv, info } = await readLayout(deps, vgName, host);
  const journalLocation = ringLocation(vg, hostLvNames(host).journal);
  const journalRegion = await deps.regions.open(journalLocation);
  const grantsLocation = ringLocation(vg, hostLvNames(host).grants);
  const grantsRegion = await deps.regions.open(grantsLocation);
  let writer: RingWriter | undefined;
  let server: SocketServer | undefined;
  try {
    // A full journal waits (bounded) for the master to consume before an extend fails.
    writer = await openRingWriter(journalRegion, { ringId: journalLocation.ringId, onFull: { waitMs: Math.max(1, Math.min(options.outOfSpaceWaitMs, MAX_FULL_WAIT_MS)) } });
    const unreplayed = await unreplayedRecords(journalRegion, journalLocation.ringId, info.appliedSeq, writer.lastSeq);
    const journalWriter = writer;
    const allocator = new HostAllocator(
      {
        host,
        vg,
        freeRanges: freeRangesOf(vg, host),
        unreplayed,
        lastGrantGeneration: deps.state.grantGeneration(),
        activeLvs: deps.state.listActiveLvs().map((a) => a.lv),
        outOfSpaceWaitMs: options.outOfSpaceWaitMs,
      },
      {
        journal: {
          append: (record) =>
            journalWriter.append(encodeJournalRecord(record)).catch((error: unknown) => {
              // These refusals happen before anything is written, so the allocator may
              // keep the extents in its pool.
              if (isJournalError(error) && ['RING_FULL', 'APPEND_QUEUE_FULL', 'PAYLOAD_TOO_LARGE'].includes(error.code)) {
                throw new ThinlvError(
                  'JOURNAL_FULL',
                  `host ${host}'s journal has no room (${error.code}): the master has not replayed it; check that "thinlv master ${vgName}" runs`,
                  { vg: vgName, host, notWritten: true, journalCode: error.code },
                );
              }
              throw error;
            }),
        },
        dm: deps.dm,
        nowMs: deps.nowMs,
        sleepMs: deps.sleepMs,
        dmName,
        onTableLoaded: (lv, table) => deps.state.setActiveLv({ lv, tableText: formatDmTable(table), loadedAtMs: deps.nowMs() }),
        onActivityChange: async (activeLvs, changed) => {
          if (changed.table === null) deps.state.unsetActiveLv(changed.lv);
          else deps.state.setActiveLv({ lv: changed.lv, tableText: formatDmTable(changed.table), loadedAtMs: deps.nowMs() });
          // The master keeps the latest count; host removal refuses a host that has any.
          await journalWriter.append(encodeJournalRecord({ kind: 'activity', activeLvCount: activeLvs.length }));
        },
      },
    );
    await allocator.recover();

    const grantsReader = await openRingReader(grantsRegion, { ringId: grantsLocation.ringId });
    const pollGrants = async (): Promise<void> => {
      const { records } = await grantsReader.read({ fromSeq: grantsReader.consumedSeq + 1 });
      for (const record of records) {
        const decoded = decodeGrantRecord(record.payload);
        if (!decoded.ok) {
          deps.log.warn({ seq: record.seq, reason: decoded.reason }, 'unreadable grant record skipped');
          continue;
        }
        if (decoded.record.kind === 'grant') {
          // SQLite first would be wrong: a crash after it would skip this grant on restart.
          // A crash after applying and before recording is harmless: the ring is consumed
          // only below, so a restart reads this grant again and applies it.
          if (allocator.applyGrant(decoded.record)) {
            await deps.faults?.hit('host.afterGrantApplied');
            deps.state.setGrantGeneration(decoded.record.generation);
            deps.log.info({ generation: decoded.record.generation, poolExtentCount: allocator.status().poolExtentCount }, 'grant applied');
          }
        } else {
          const returned = await allocator.returnExtents(decoded.record.extentCount);
          deps.log.info({ asked: decoded.record.extentCount, returned }, 'extents returned to the master');
        }
      }
      if (records.length > 0) await grantsReader.consume(records[records.length - 1]!.seq);
    };
    await pollGrants();

    // One metadata read at a time; callers arriving meanwhile share it.
    let refreshing: Promise<void> | undefined;
    const refreshMetadata = (): Promise<void> => {
      refreshing ??= (async () => {
        try {
          const fresh = await readLayout(deps, vgName, host);
          await allocator.refreshMetadata(fresh.vg, fresh.info.appliedSeq);
        } finally {
          refreshing = undefined;
        }
      })();
      return refreshing;
    };

    // An LV the master created after this daemon last read metadata is unknown here:
    // re-read once before answering LV_NOT_FOUND.
    const withFreshMetadataOnUnknownLv = async <T>(fn: () => Promise<T>): Promise<T> => {
      try {
        return await fn();
      } catch (error) {
        if (!(error instanceof ThinlvError && error.code === 'LV_NOT_FOUND')) throw error;
        await refreshMetadata();
        return fn();
      }
    };
    const handler = (request: Request): Promise<Result> => withFreshMetadataOnUnknownLv(() => serve(request));
    const serve = async (request: Request): Promise<Result> => {
      switch (request.op) {
        case 'extend': {
          const result =
            request.sizeBytes !== undefined ? await allocator.extend(request.lv, request.sizeBytes) : await allocator.extendBy(request.lv, request.incrementBytes!);
          return { lv: result.lv, extentsGranted: result.extentsGranted, sizeBytes: result.sizeBytes, extentSizeBytes: vg.extentSizeSectors * 512 };
        }
        case 'activate':
          await allocator.activate(request.lv);
          return { lv: request.lv, active: true };
        case 'deactivate':
          await allocator.deactivate(request.lv);
          return { lv: request.lv, active: false };
        case 'status': {
          const status = allocator.status();
          return {
            vg: vgName,
            host,
            poolExtentCount: status.poolExtentCount,
            lowWaterExtents: thinlv.settings.lowWaterExtents,
            unreplayedRecordCount: status.unreplayedRecordCount,
            lastGrantGeneration: status.lastGrantGeneration,
            deviceMapperPresent: deps.deviceMapperPresent,
            extentSizeBytes: vg.extentSizeSectors * 512,
          };
        }
      }
    };
    server = await startSocketServer({ path: options.socketPath, handler, log: deps.log });

    let stopping = false;
    const loops = (async () => {
      let lastRefreshMs = deps.nowMs();
      while (!stopping) {
        await deps.sleepMs(options.grantPollMs ?? DEFAULT_GRANT_POLL_MS);
        if (stopping) break;
        try {
          await pollGrants();
          if (deps.nowMs() - lastRefreshMs >= (options.metadataRefreshMs ?? DEFAULT_METADATA_REFRESH_MS)) {
            lastRefreshMs = deps.nowMs();
            await refreshMetadata();
          }
        } catch (error) {
          deps.log.error({ err: error }, 'background step failed; retrying');
        }
      }
    })();

    const runningServer = server;
    return {
      allocator,
      server: runningServer,
      async stop() {
        stopping = true;
        await runningServer.close();
        await loops;
        await journalWriter.close();
        await journalRegion.close();
        await grantsRegion.close();
      },
    };
  } catch (error) {
    await server?.close();
    await writer?.close();
    await journalRegion.close();
    await grantsRegion.close();
    if (error instanceof ThinlvError) throw error;
    throw new ThinlvError('HOST_START_FAILED', `host daemon for ${vgName}/${host} could not start: ${(error as Error).message}`, { vg: vgName, host }, { cause: error });
  }
}
