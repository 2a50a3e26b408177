// `thinlv lvextend -L [+]SIZE | -l [+]EXTENTS VG/LV`: the lvm-compatible wrapper that
// tapdisk's resize hook and storage managers run, as a process, once per grow. It asks
// the host daemon over its socket and prints and exits like lvm's lvextend.
//
// Start-up is most of what it costs, so this file imports only the socket client and
// small helpers: no daemon code, no lvm runner, no logger, no SQLite (src/cli/main.ts
// parses its usual command lines without yargs, see fastArgv.ts). One request per
// extend, `-l` included: the daemon takes extents as well as bytes.

import { ErrorCode, ThinlvError, UsageError } from '../../errors.js';
import { defaultSocketPath } from '../../host/socketPath.js';
import { extendAmountOf, type ExtendRequest } from '../../host/protocol.js';
import { newRequestId, requestOnce } from '../../host/socketServer.js';
import type { CommandContext } from '../context.js';
import { formatBytes } from '../format.js';
import { printResult } from '../output.js';
import { parseSize } from '../sizes.js';
import { splitLvPath } from '../validate.js';

/** How long a client waits for the host daemon's answer (an extend may wait for a grant). */
export const CLIENT_TIMEOUT_MS = 130_000;

export interface LvextendArgs {
  readonly path: string;
  readonly size: string | undefined;
  readonly extents: string | undefined;
  readonly socket: string | undefined;
}

/** lvm's own exit codes, which callers of an lvextend wrapper test for. */
export const LVM_EXIT = { ok: 0, invalidCommandLine: 3, failed: 5 } as const;

/** `thinlv lvextend -L [+]SIZE | -l [+]EXTENTS VG/LV`: prints and exits like lvm's lvextend. */
export async function runLvextend(context: Pick<CommandContext, 'options'>, args: LvextendArgs): Promise<number> {
  const { vg, lv } = splitLvPath(args.path);
  if ((args.size === undefined) === (args.extents === undefined)) {
    throw new UsageError(ErrorCode.invalidArgument, 'give exactly one of -L SIZE or -l EXTENTS');
  }
  const socketPath = args.socket ?? defaultSocketPath(vg);
  const id = newRequestId();
  let request: ExtendRequest;
  if (args.size !== undefined) {
    const size = parseSize(args.size, '-L');
    if (size.relative === '-') throw new UsageError(ErrorCode.invalidArgument, 'lvextend cannot shrink: use thinlv lvresize -L on the master');
    request = size.relative === '+' ? { id, op: 'extend' as const, vg, lv, incrementBytes: size.bytes } : { id, op: 'extend' as const, vg, lv, sizeBytes: size.bytes };
  } else {
    const match = /^(\+?)([0-9]+)$/.exec(args.extents!.trim());
    const extents = match === null ? Number.NaN : Number(match[2]);
    if (!Number.isSafeInteger(extents) || extents <= 0) throw new UsageError(ErrorCode.invalidArgument, `-l takes a positive whole number of extents, optionally with +, got "${args.extents}"`);
    request = match![1] === '+' ? { id, op: 'extend' as const, vg, lv, incrementExtents: extents } : { id, op: 'extend' as const, vg, lv, sizeExtents: extents };
  }
  let reply = await requestOnce(socketPath, request, CLIENT_TIMEOUT_MS);
  if (!reply.ok && isExtentFormRefused(reply.error)) reply = await requestOnce(socketPath, await inBytes(socketPath, vg, request), CLIENT_TIMEOUT_MS);
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

/** A daemon started before the protocol's extent forms refuses them as unknown fields (until it is restarted after an upgrade). */
function isExtentFormRefused(error: { readonly code: string; readonly data?: Readonly<Record<string, unknown>> | undefined }): boolean {
  return error.code === 'BAD_REQUEST' && (error.data?.['field'] === 'incrementExtents' || error.data?.['field'] === 'sizeExtents');
}

/** `request` with its extents as bytes, at the extent size the daemon's status gives. */
async function inBytes(socketPath: string, vg: string, request: ExtendRequest): Promise<ExtendRequest> {
  const status = await requestOnce(socketPath, { id: newRequestId(), op: 'status' as const, vg }, CLIENT_TIMEOUT_MS);
  if (!status.ok) throw new ThinlvError(status.error.code, status.error.message, status.error.data ?? {});
  const { kind, value } = extendAmountOf(request);
  const bytes = value * status.result.extentSizeBytes;
  if (!Number.isSafeInteger(bytes)) throw new UsageError(ErrorCode.invalidArgument, `${value} extents is more bytes than 2^53`);
  const base = { id: newRequestId(), op: 'extend' as const, vg, lv: request.lv };
  return kind === 'incrementExtents' ? { ...base, incrementBytes: bytes } : kind === 'sizeExtents' ? { ...base, sizeBytes: bytes } : request;
}
