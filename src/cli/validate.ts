// Argument checks shared by CLI commands: refuse bad input before any lvm call.

import { ErrorCode, UsageError } from '../errors.js';
import { invalidNameReason } from '../metadata/names.js';

export function validateVgName(vgName: string): void {
  const problem = invalidNameReason(vgName, 'VG');
  if (problem) throw new UsageError(ErrorCode.invalidArgument, `invalid VG name: ${problem}`, { vg: vgName });
}

/** Splits "VG/LV", refusing anything else. */
export function splitLvPath(path: string): { vg: string; lv: string } {
  const match = /^([^/]+)\/([^/]+)$/.exec(path);
  if (!match) throw new UsageError(ErrorCode.invalidArgument, `expected VG/LV, got "${path}"`, { value: path });
  validateVgName(match[1]!);
  return { vg: match[1]!, lv: match[2]! };
}
