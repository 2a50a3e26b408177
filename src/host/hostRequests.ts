// What the host daemon answers on its socket: each protocol request mapped to the
// allocator, with two guards the allocator cannot know about: a request naming
// another VG is refused (WRONG_VG), and an LV the master created after this daemon
// last read metadata is looked up once more before LV_NOT_FOUND. An extend whose client
// disconnects while it waits for a grant is cancelled.

import { ErrorCode, ThinlvError, UsageError } from '../errors.js';
import type { HostAllocator } from './allocator.js';
import { extendAmountOf, type ExtendRequest, type Request, type Result } from './protocol.js';

export interface HostRequestContext {
  readonly vg: string;
  readonly host: string;
  readonly allocator: HostAllocator;
  readonly extentSizeBytes: number;
  readonly lowWaterExtents: () => number;
  readonly deviceMapperPresent: boolean;
  readonly refreshMetadata: () => Promise<void>;
}

export function hostRequestHandler(context: HostRequestContext): (request: Request, signal?: AbortSignal) => Promise<Result> {
  return async (request, signal) => {
    if (request.vg !== undefined && request.vg !== context.vg) {
      throw new ThinlvError('WRONG_VG', `this daemon serves VG ${context.vg} for host ${context.host}, not VG ${request.vg}: use that VG's socket`, { vg: context.vg, asked: request.vg });
    }
    try {
      return await serve(context, request, signal);
    } catch (error) {
      if (!(error instanceof ThinlvError && error.code === 'LV_NOT_FOUND')) throw error;
      await context.refreshMetadata();
      return serve(context, request, signal);
    }
  };
}

async function serve(context: HostRequestContext, request: Request, signal: AbortSignal | undefined): Promise<Result> {
  const { allocator } = context;
  switch (request.op) {
    case 'extend': {
      // A client that goes away while its extend waits for a grant cancels it (the socket
      // server aborts the signal); one whose extend is already being written is answered
      // into the void, and its extents are its LV's.
      const { bytes, increment } = extendBytesOf(request, context.extentSizeBytes);
      const result = increment ? await allocator.extendBy(request.lv, bytes, signal) : await allocator.extend(request.lv, bytes, signal);
      return { lv: result.lv, extentsGranted: result.extentsGranted, sizeBytes: result.sizeBytes, extentSizeBytes: context.extentSizeBytes };
    }
    case 'activate':
      await allocator.activate(request.lv);
      return { lv: request.lv, active: true };
    case 'deactivate': {
      const { deflate } = await allocator.deactivate(request.lv, request.deflateToBytes);
      if (deflate === undefined) return { lv: request.lv, active: false };
      // Wait for the master's answer as a claim does, so the caller learns what was given back.
      const replayed = await allocator.awaitReplay(deflate.seq);
      const { sizeBytes, owner } = allocator.metadataSizeOf(request.lv);
      return { lv: request.lv, active: false, deflate: { ...deflate, replayed, sizeBytes, heldBy: owner ?? null } };
    }
    case 'status': {
      const status = await allocator.statusNow();
      return {
        vg: context.vg,
        host: context.host,
        poolExtentCount: status.poolExtentCount,
        lowWaterExtents: context.lowWaterExtents(),
        unreplayedRecordCount: status.unreplayedRecordCount,
        lastGrantGeneration: status.lastGrantGeneration,
        deviceMapperPresent: context.deviceMapperPresent,
        extentSizeBytes: context.extentSizeBytes,
        activeLvs: status.activeLvs,
      };
    }
  }
}

/** An extend's amount in bytes, and whether it is an increment (extents times the VG's extent size). */
function extendBytesOf(request: ExtendRequest, extentSizeBytes: number): { bytes: number; increment: boolean } {
  const { kind, value } = extendAmountOf(request);
  const bytes = kind.endsWith('Extents') ? value * extentSizeBytes : value;
  if (!Number.isSafeInteger(bytes)) throw new UsageError(ErrorCode.invalidArgument, `${kind} ${value} is more bytes than 2^53`);
  return { bytes, increment: kind.startsWith('increment') };
}
