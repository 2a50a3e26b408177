// Argument checks shared by CLI commands: refuse bad input before any lvm call.

import { ErrorCode, UsageError } from '../errors.js';
import { invalidNameReason } from '../metadata/names.js';

export function validateVgName(vgName: string): void {
  const problem = invalidNameReason(vgName, 'VG');
  if (problem) throw new UsageError(ErrorCode.invalidArgument, `invalid VG name: ${problem}`, { vg: vgName });
}
