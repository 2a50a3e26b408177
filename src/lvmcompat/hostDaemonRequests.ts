// The lvm-compatible commands' requests to the local host daemon: growing a thin LV and
// (de)activating one. Only the daemon knows a thin LV's unreplayed extents, so only it
// may build the LV's table (DESIGN.md, "Who runs what"); stock lvm would build it from
// metadata alone. One request per connection, as `thinlv lvextend` sends them
// (src/cli/commands/lvextend.ts), with its timeout: an extend may wait for a grant.

import { ThinlvError } from '../errors.js';
import type { ActivationResult, ExtendResult, StatusResult } from '../host/protocol.js';
import { newRequestId, requestOnce } from '../host/socketServer.js';
import { CLIENT_TIMEOUT_MS } from '../cli/commands/lvextend.js';
import { hostSocketPath } from './writeCommon.js';

/** Status replies come at once; a daemon that does not answer in this time is not serving. */
const STATUS_TIMEOUT_MS = 10_000;

function resultOf<R>(reply: { ok: true; result: R } | { ok: false; error: { code: string; message: string; data?: Record<string, unknown> } }): R {
  if (!reply.ok) throw new ThinlvError(reply.error.code, reply.error.message, reply.error.data ?? {});
  return reply.result;
}

/** Grows `lv` to at least `sizeBytes` (safe to resend: a size already reached grants nothing). */
export async function extendThinLv(vg: string, lv: string, sizeBytes: number): Promise<ExtendResult> {
  return resultOf(await requestOnce(hostSocketPath(vg), { id: newRequestId(), op: 'extend', vg, lv, sizeBytes }, CLIENT_TIMEOUT_MS));
}

/** Activates `lv` here (claiming it first), or reloads its table when it is active already. */
export async function activateThinLv(vg: string, lv: string): Promise<ActivationResult> {
  return resultOf(await requestOnce(hostSocketPath(vg), { id: newRequestId(), op: 'activate', vg, lv }, CLIENT_TIMEOUT_MS));
}

/** Removes `lv`'s table here and gives up the host's hold on it; with `deflateToBytes`, then deflates it through the master. */
export async function deactivateThinLv(vg: string, lv: string, deflateToBytes?: number): Promise<ActivationResult> {
  const deflate = deflateToBytes === undefined ? {} : { deflateToBytes };
  return resultOf(await requestOnce(hostSocketPath(vg), { id: newRequestId(), op: 'deactivate', vg, lv, ...deflate }, CLIENT_TIMEOUT_MS));
}

/** The daemon's status (which host it is), or undefined when no daemon serves `vg` here. */
export async function hostDaemonStatus(vg: string): Promise<StatusResult | undefined> {
  try {
    return resultOf(await requestOnce(hostSocketPath(vg), { id: newRequestId(), op: 'status', vg }, STATUS_TIMEOUT_MS));
  } catch (error) {
    if (error instanceof ThinlvError && error.code === 'HOST_DAEMON_UNREACHABLE') return undefined;
    throw error;
  }
}
