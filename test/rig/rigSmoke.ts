// The rig's smoke run: one guest, real device-mapper through thinlv's DeviceMapper, and
// the dmsetup failure texts thinlv's classifier (src/dm/dmsetup.ts) assumes, checked
// against what the guest's real dmsetup prints. The work runs in the guest
// (guest/dmSmoke.ts); this side boots the guest and judges the report.

import type { SmokeReport } from './guest/dmSmoke.js';
import { startRig, type RigConfig } from './rigHarness.js';

/** Where the tools image holds thinlv (scripts/rig/build.sh). */
export const GUEST_THINLV_DIR = '/tools/thinlv';

export interface RigStepResult {
  readonly name: string;
  readonly failures: readonly string[];
  readonly lines: readonly string[];
}

export async function runRigSmoke(config: RigConfig = {}): Promise<RigStepResult> {
  const failures: string[] = [];
  const lines: string[] = [];
  const rig = await startRig({ ...config, guestCount: 1 });
  let failed = true;
  try {
    const guest = rig.guests[0]!;
    lines.push(`boot: ${guest.lastBootMs} ms from qemu start to the agent's first answer`);
    const version = await guest.exec('dmsetup version', { timeoutMs: 30_000 });
    const driver = /Driver version:\s*(\S+)/.exec(version.stdout)?.[1];
    lines.push(`dmsetup version: exit ${version.exitCode}, driver ${driver ?? '(none)'}`);
    if (version.exitCode !== 0 || driver === undefined) failures.push(`dmsetup version reports no driver: ${version.stdout} ${version.stderr}`);

    const started = Date.now();
    const smoke = await guest.exec(`node ${GUEST_THINLV_DIR}/dist/test/rig/guest/dmSmoke.js /dev/rig-lun`, { timeoutMs: 600_000 });
    lines.push(`dmSmoke.js in the guest: exit ${smoke.exitCode} after ${Date.now() - started} ms`);
    let report: SmokeReport | undefined;
    try {
      report = JSON.parse(smoke.stdout.trim().split('\n').pop() ?? '') as SmokeReport;
    } catch {
      failures.push(`dmSmoke.js printed no report (exit ${smoke.exitCode}): stdout ${smoke.stdout.slice(-2000)} stderr ${smoke.stderr.slice(-2000)}`);
    }
    if (report !== undefined) {
      for (const check of report.checks) {
        lines.push(`${check.ok ? 'ok  ' : 'FAIL'} ${check.name}${check.detail ? ` (${check.detail.slice(0, 300).replaceAll('\n', ' / ')})` : ''}`);
        if (!check.ok) failures.push(`${check.name}: ${check.detail}`);
      }
      for (const entry of report.classifierCases) {
        const text = `${entry.stderr.trim()}${entry.stdout.trim() ? ` | stdout: ${entry.stdout.trim()}` : ''}`.replaceAll('\n', ' / ');
        const ran = entry.args[0] === '(ioctl)' ? `${entry.args.slice(1).join(' ')} over ioctls` : `dmsetup ${entry.args.join(' ')} -> exit ${entry.exitCode}`;
        lines.push(`${entry.ok ? 'ok  ' : 'MISMATCH'} classifier: ${entry.name}: ${ran}, "${text}" -> ${entry.classifiedCode} (expected ${entry.expectedCode})`);
        if (!entry.ok) failures.push(`classifier: ${entry.name}: exit ${entry.exitCode} "${text}" classified ${entry.classifiedCode}, expected ${entry.expectedCode}`);
      }
    }
    // A host crash as the SAN sees it: SIGKILL of the qemu, then a fresh boot. What the
    // guest wrote with O_DIRECT before (block 0 of the smoke device, 1 MiB into the LUN)
    // must be on the LUN.
    const pidBefore = guest.pid;
    await guest.kill();
    if (guest.running) failures.push('the guest still runs after kill()');
    await guest.boot();
    lines.push(`kill (SIGKILL of qemu pid ${pidBefore}) and boot again: agent answered after ${guest.lastBootMs} ms (qemu pid ${guest.pid})`);
    const survived = await guest.exec('dd if=/dev/rig-lun bs=4096 skip=256 count=1 iflag=direct 2>/dev/null | head -c 15', { timeoutMs: 30_000 });
    const survivedOk = survived.stdout === 'blk000000:0000|';
    lines.push(`${survivedOk ? 'ok  ' : 'FAIL'} data written before the kill is on the LUN after the reboot ("${survived.stdout}")`);
    if (!survivedOk) failures.push(`after kill and reboot the LUN holds "${survived.stdout}" where the smoke wrote "blk000000:0000|"`);
    const dmAfter = await guest.exec('dmsetup ls', { timeoutMs: 30_000 });
    if (!/No devices found/.test(dmAfter.stdout)) failures.push(`a rebooted guest has dm devices: ${dmAfter.stdout}`);
    failed = failures.length > 0;
  } finally {
    await rig.close({ keepWorkDir: failed });
  }
  return { name: 'smoke: real device-mapper in one guest', failures, lines };
}
