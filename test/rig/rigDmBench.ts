// The rig's dm-bench run (issue 15): extending an active device through dmsetup against
// through the ioctls, in one guest (guest/dmExtendBench.ts does the work), and the same
// process-start cost on this machine, to scale the guest's TCG figures to a real host.
//
//   node dist/test/rig/runRig.js dm-bench          (THINLV_DM_BENCH="extendsPerRound rounds")

import { performance } from 'node:perf_hooks';

import type { BenchStats, ExtendBenchReport } from './guest/dmExtendBench.js';
import { startRig, type RigConfig } from './rigHarness.js';
import { GUEST_THINLV_DIR, type RigStepResult } from './rigSmoke.js';
import { runProcess } from '../../src/runProcess.js';
import { findDmAddon, type DmNativeAddon } from '../../src/dm/dmIoctl.js';
import { dmRequestNumber, encodeDmIoctl } from '../../src/dm/dmIoctlCodec.js';
import { closeSync } from 'node:fs';
import { createRequire } from 'node:module';

const HOST_SAMPLES = 50;

function describe(name: string, stat: BenchStats): string {
  return `${name}: median ${stat.medianMs.toFixed(2)} ms, mean ${stat.meanMs.toFixed(2)}, p90 ${stat.p90Ms.toFixed(2)}, min ${stat.minMs.toFixed(2)}, max ${stat.maxMs.toFixed(2)} (n=${stat.count})`;
}

async function hostSpawnMs(file: string, args: readonly string[]): Promise<number[]> {
  const samples: number[] = [];
  const env = { LC_ALL: 'C', LANG: 'C', PATH: process.env['PATH'] ?? '' };
  for (let index = 0; index < HOST_SAMPLES; index += 1) {
    const started = performance.now();
    await runProcess(file, args, { env, timeoutMs: 30_000, maxOutputBytes: 64 * 1024 });
    samples.push(performance.now() - started);
  }
  return samples.sort((a, b) => a - b);
}

/**
 * The ioctl path's fixed cost on this machine, which has no device-mapper: the addon's
 * thread-pool round trip for an ioctl the kernel refuses at once (ENOTTY on /dev/null).
 */
export async function hostIoctlRoundTrip(): Promise<string[]> {
  const addonPath = findDmAddon();
  if (addonPath === undefined) return ['this machine: no ioctl addon built, no round-trip figure'];
  const addon = createRequire(import.meta.url)(addonPath) as DmNativeAddon;
  const fd = addon.openControl('/dev/null');
  const asyncMs: number[] = [];
  const syncMs: number[] = [];
  for (let index = 0; index < HOST_SAMPLES * 4; index += 1) {
    let started = performance.now();
    await addon.ioctl(fd, dmRequestNumber('version'), encodeDmIoctl({ name: '' }));
    asyncMs.push(performance.now() - started);
    started = performance.now();
    addon.ioctlSync(fd, dmRequestNumber('version'), encodeDmIoctl({ name: '' }));
    syncMs.push(performance.now() - started);
  }
  closeSync(fd);
  const median = (values: number[]): string => ([...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN).toFixed(3);
  return [
    `this machine (no qemu, no dm: ENOTTY on /dev/null): an ioctl through the addon's thread pool: median ${median(asyncMs)} ms; synchronous: median ${median(syncMs)} ms (n=${asyncMs.length})`,
  ];
}

export async function runRigDmBench(config: RigConfig = {}): Promise<RigStepResult> {
  const failures: string[] = [];
  const lines: string[] = [];
  // This machine first, before qemu loads it: a process start here is what a real host pays.
  for (const [file, args] of [['/bin/true', []], ['dmsetup', ['--version']]] as const) {
    const samples = await hostSpawnMs(file, args);
    const median = samples[Math.floor(samples.length / 2)] ?? Number.NaN;
    lines.push(`this machine (no qemu): process ${file} ${args.join(' ')}: median ${median.toFixed(2)} ms, min ${(samples[0] ?? Number.NaN).toFixed(2)} (n=${samples.length})`);
  }
  // The same from a shell loop (fork and exec, no Node child_process in between).
  const loop = await runProcess('bash', ['-c', `s=$(date +%s%N); for i in $(seq ${HOST_SAMPLES}); do dmsetup --version > /dev/null 2>&1; done; e=$(date +%s%N); echo $(( (e - s) / ${HOST_SAMPLES} / 1000 ))`], { env: { LC_ALL: 'C', PATH: process.env['PATH'] ?? '' }, timeoutMs: 60_000, maxOutputBytes: 1024 });
  lines.push(`this machine (no qemu): dmsetup --version from a bash loop: mean ${(Number(loop.stdout.trim()) / 1000).toFixed(2)} ms (n=${HOST_SAMPLES})`);
  lines.push(...(await hostIoctlRoundTrip()));
  const [perRound, rounds] = (process.env['THINLV_DM_BENCH'] ?? '40 3').split(/\s+/).map(Number);
  const rig = await startRig({ ...config, guestCount: 1 });
  let failed = true;
  try {
    const guest = rig.guests[0]!;
    const started = Date.now();
    const result = await guest.exec(`node ${GUEST_THINLV_DIR}/dist/test/rig/guest/dmExtendBench.js /dev/rig-lun ${perRound} ${rounds}`, { timeoutMs: 1_500_000 });
    lines.push(`dmExtendBench.js in the guest: exit ${result.exitCode} after ${Date.now() - started} ms`);
    let report: Partial<ExtendBenchReport> | undefined;
    try {
      report = JSON.parse(result.stdout.trim().split('\n').pop() ?? '') as Partial<ExtendBenchReport>;
    } catch {
      failures.push(`dmExtendBench.js printed no report: ${result.stdout.slice(-2000)} ${result.stderr.slice(-2000)}`);
    }
    if (report !== undefined) {
      lines.push(`guest: driver ${report.driver}, ${report.extendsPerRound} extends per path per round, ${report.rounds} rounds, writer ${report.writerPasses} passes of ${report.writerMib} MiB (O_DIRECT) during them`);
      for (const [name, stat] of Object.entries(report.extend ?? {})) lines.push(`guest extend, ${describe(name, stat)}`);
      for (const [name, stat] of Object.entries(report.steps ?? {})) lines.push(`guest step, ${describe(name, stat)}`);
      for (const [name, stat] of Object.entries(report.extendIdle ?? {})) lines.push(`guest extend, no writer, ${describe(name, stat)}`);
      for (const [name, stat] of Object.entries(report.single ?? {})) lines.push(`guest single, ${describe(name, stat)}`);
      const extend = report.extend ?? {};
      const ioctl = Object.entries(extend).find(([name]) => name.startsWith('ioctl'))?.[1];
      for (const [name, stat] of Object.entries(extend)) {
        if (ioctl !== undefined && !name.startsWith('ioctl')) lines.push(`ratio ${name} / ioctl: ${(stat.medianMs / ioctl.medianMs).toFixed(1)}x (medians)`);
      }
      if (report.tablesEqual !== true) failures.push('the paths left different tables after the same extends');
      for (const error of report.errors ?? []) failures.push(`guest: ${error}`);
    }
    failed = failures.length > 0;
  } finally {
    await rig.close({ keepWorkDir: failed });
  }
  return { name: 'dm-bench: extend an active device, dmsetup against ioctls', failures, lines };
}
