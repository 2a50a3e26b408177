// Runs INSIDE a rig guest: the cost of extending an ACTIVE device through dmsetup (three
// processes: suspend, load, resume) against through the ioctls (src/dm/dmIoctl.ts), side
// by side in one run, with an O_DIRECT writer on the device; and one process start
// against one ioctl, to separate process cost from kernel cost. Prints one JSON report.
//
//   node /tools/thinlv/dist/test/rig/guest/dmExtendBench.js /dev/rig-lun [extendsPerRound] [rounds]
//
// Every path runs the same createDeviceMapper().reload (thinlv's sequencing); only the
// DmCommands under it differ. Rounds alternate the paths, so a drift in the machine's
// load (TCG shares two cores with other work) falls on each alike. The LUN's first
// 200 MiB are written.

import { spawn, spawnSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

import { createDeviceMapper, dmsetupCommands, type DeviceMapper, type DmCommands } from '../../../src/dm/deviceMapper.js';
import { DmIoctlRunner, ioctlCommands, openDmIoctl } from '../../../src/dm/dmIoctl.js';
import { dmRequestNumber, encodeDmIoctl } from '../../../src/dm/dmIoctlCodec.js';
import { createDmsetupRunner } from '../../../src/dm/dmsetup.js';
import type { DmTableLine } from '../../../src/extent/dmTable.js';
import { runProcess } from '../../../src/runProcess.js';

const DEVICE = 'rigbench';
const BASE_SECTORS = 64 * 2048; // 64 MiB
const STEP_SECTORS = 2048; // 1 MiB per extend, a new table line each time (as a fragmented LV grows)
const LUN_OFFSET_SECTORS = 2048;
const WRITER_MIB = 32;

export interface BenchStats {
  readonly count: number;
  readonly medianMs: number;
  readonly meanMs: number;
  readonly p90Ms: number;
  readonly minMs: number;
  readonly maxMs: number;
}

export interface ExtendBenchReport {
  readonly driver: string;
  readonly extendsPerRound: number;
  readonly rounds: number;
  /** Passes of the writer over its first WRITER_MIB MiB of the device, during the extends. */
  readonly writerPasses: number;
  readonly writerMib: number;
  /** Per path: one reload (suspend, load, resume) of an active device. */
  readonly extend: Readonly<Record<string, BenchStats>>;
  /** Per path and step (suspend, load, resume) of the extends above, with the writer. */
  readonly steps: Readonly<Record<string, BenchStats>>;
  /** The same extends with no writer (one round). */
  readonly extendIdle: Readonly<Record<string, BenchStats>>;
  /** One process start, one ioctl. */
  readonly single: Readonly<Record<string, BenchStats>>;
  readonly tablesEqual: boolean;
  readonly errors: readonly string[];
}

function stats(samples: readonly number[]): BenchStats {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  const round = (value: number): number => Math.round(value * 1000) / 1000;
  return {
    count: sorted.length,
    medianMs: round(at(0.5)),
    meanMs: round(sorted.reduce((sum, value) => sum + value, 0) / Math.max(1, sorted.length)),
    p90Ms: round(at(0.9)),
    minMs: round(sorted[0] ?? Number.NaN),
    maxMs: round(sorted[sorted.length - 1] ?? Number.NaN),
  };
}

function table(lunPath: string, extraLines: number): DmTableLine[] {
  const lines: DmTableLine[] = [{ startSector: 0, lengthSectors: BASE_SECTORS, targetType: 'linear', devicePath: lunPath, offsetSector: LUN_OFFSET_SECTORS }];
  for (let index = 0; index < extraLines; index += 1) {
    // Every other MiB of the LUN after the base, so no two lines merge.
    lines.push({ startSector: BASE_SECTORS + index * STEP_SECTORS, lengthSectors: STEP_SECTORS, targetType: 'linear', devicePath: lunPath, offsetSector: LUN_OFFSET_SECTORS + BASE_SECTORS + 2 * index * STEP_SECTORS });
  }
  return lines;
}

/** `commands` with each step's duration added to `samples[label step]`. */
function timedCommands(commands: DmCommands, label: string, samples: Record<string, number[]>, enabled: () => boolean): DmCommands {
  const timed = { ...commands };
  for (const step of ['suspend', 'load', 'resume'] as const) {
    const original = commands[step] as (...args: never[]) => Promise<void>;
    (timed as Record<string, unknown>)[step] = async (...args: never[]) => {
      const started = performance.now();
      await original(...args);
      if (enabled()) (samples[`${label}: ${step}`] ??= []).push(performance.now() - started);
    };
  }
  return timed;
}

async function timeOne(operation: () => Promise<unknown> | unknown): Promise<number> {
  const started = performance.now();
  await operation();
  return performance.now() - started;
}

async function main(): Promise<void> {
  const lunPath = realpathSync(process.argv[2] ?? '/dev/rig-lun');
  const extendsPerRound = Number(process.argv[3] ?? 40);
  const rounds = Number(process.argv[4] ?? 3);
  const errors: string[] = [];
  const opened = openDmIoctl();
  if (!opened.ok) throw new Error(`the ioctls cannot be used: ${opened.reason}`);
  const env = { LC_ALL: 'C', LANG: 'C', PATH: process.env['PATH'] ?? '' };

  const dmsetupRunner = (dmsetupPath: string) => createDmsetupRunner({ dmsetupPath, udevSync: true });
  // The guest's /usr/local/sbin/dmsetup is the rig's udev stand-in: the real dmsetup and,
  // after a resume, `dmsetup mknodes`. /tools/bin/dmsetup alone is what a host with udev runs.
  const stepSamples: Record<string, number[]> = {};
  let timingSteps = true;
  const timed = (commands: DmCommands, label: string): DeviceMapper => createDeviceMapper(timedCommands(commands, label, stepSamples, () => timingSteps));
  const paths: Record<string, DeviceMapper> = {
    'dmsetup (real binary, 3 processes)': timed(dmsetupCommands(dmsetupRunner('/tools/bin/dmsetup')), 'dmsetup'),
    'dmsetup (rig wrapper: + mknodes after resume)': createDeviceMapper(dmsetupCommands(dmsetupRunner('dmsetup'))),
    'ioctl (3 ioctls, thread pool)': timed(ioctlCommands(new DmIoctlRunner(opened.dmIoctl), dmsetupCommands(dmsetupRunner('dmsetup'))), 'ioctl'),
  };
  const setup = createDeviceMapper(dmsetupCommands(dmsetupRunner('dmsetup')));
  spawnSync('dmsetup', ['remove', DEVICE], { env });
  await setup.activate(DEVICE, table(lunPath, 0));

  // The writer: O_DIRECT writes over the device's first MiBs, one dd per pass.
  let writerPasses = 0;
  const writer = spawn('sh', ['-c', `while :; do dd if=/dev/zero of=/dev/mapper/${DEVICE} bs=64k count=${WRITER_MIB * 16} oflag=direct conv=notrunc 2> /dev/null; echo pass; done`], { env, stdio: ['ignore', 'pipe', 'ignore'] });
  writer.stdout.on('data', (chunk: Buffer) => (writerPasses += chunk.toString().split('pass').length - 1));

  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(paths).map((name) => [name, []]));
  const tables: Record<string, string> = {};
  try {
    for (let round = 0; round < rounds; round += 1) {
      for (const [name, dm] of Object.entries(paths)) {
        await setup.reload(DEVICE, table(lunPath, 0));
        for (let step = 1; step <= extendsPerRound; step += 1) {
          samples[name]!.push(await timeOne(() => dm.reload(DEVICE, table(lunPath, step))));
        }
        tables[name] = spawnSync('dmsetup', ['table', DEVICE], { env, encoding: 'utf8' }).stdout;
      }
    }
  } catch (error) {
    errors.push(String((error as Error).stack ?? error));
  } finally {
    writer.kill('SIGKILL');
  }
  await new Promise((resolve) => writer.once('exit', resolve));

  // One round with no writer: what the extend costs when there is no I/O to flush.
  timingSteps = false;
  const idleSamples: Record<string, number[]> = Object.fromEntries(Object.keys(paths).map((name) => [name, []]));
  try {
    for (const [name, dm] of Object.entries(paths)) {
      await setup.reload(DEVICE, table(lunPath, 0));
      for (let step = 1; step <= extendsPerRound; step += 1) idleSamples[name]!.push(await timeOne(() => dm.reload(DEVICE, table(lunPath, step))));
    }
  } catch (error) {
    errors.push(String((error as Error).stack ?? error));
  }

  // One process start and one ioctl.
  const single: Record<string, number[]> = { 'process: /bin/true': [], 'process: dmsetup version': [], 'ioctl DM_VERSION (thread pool)': [], 'ioctl DM_VERSION (synchronous)': [], 'ioctl DM_DEV_STATUS (thread pool)': [] };
  const runner = new DmIoctlRunner(opened.dmIoctl);
  for (let index = 0; index < 50; index += 1) {
    single['process: /bin/true']!.push(await timeOne(() => runProcess('/bin/true', [], { env, timeoutMs: 30_000, maxOutputBytes: 1024 })));
    single['process: dmsetup version']!.push(await timeOne(() => runProcess('/tools/bin/dmsetup', ['version'], { env, timeoutMs: 30_000, maxOutputBytes: 64 * 1024 })));
    single['ioctl DM_VERSION (thread pool)']!.push(await timeOne(() => opened.dmIoctl.addon.ioctl(opened.dmIoctl.controlFd, dmRequestNumber('version'), encodeDmIoctl({ name: '' }))));
    single['ioctl DM_VERSION (synchronous)']!.push(await timeOne(() => opened.dmIoctl.addon.ioctlSync(opened.dmIoctl.controlFd, dmRequestNumber('version'), encodeDmIoctl({ name: '' }))));
    single['ioctl DM_DEV_STATUS (thread pool)']!.push(await timeOne(() => runner.run('info', 'status', DEVICE, encodeDmIoctl({ name: DEVICE }), {})));
  }
  await setup.deactivate(DEVICE).catch((error: unknown) => errors.push(`deactivate: ${String(error)}`));

  const texts = Object.values(tables);
  const report: ExtendBenchReport = {
    driver: opened.dmIoctl.driverVersion,
    extendsPerRound,
    rounds,
    writerPasses,
    writerMib: WRITER_MIB,
    extend: Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, stats(values)])),
    steps: Object.fromEntries(Object.entries(stepSamples).map(([name, values]) => [name, stats(values)])),
    extendIdle: Object.fromEntries(Object.entries(idleSamples).map(([name, values]) => [name, stats(values)])),
    single: Object.fromEntries(Object.entries(single).map(([name, values]) => [name, stats(values)])),
    tablesEqual: texts.length === Object.keys(paths).length && texts.every((text) => text === texts[0] && text.length > 0),
    errors,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main().catch((error: unknown) => {
  process.stdout.write(`${JSON.stringify({ errors: [String((error as Error).stack ?? error)] })}\n`);
  process.exitCode = 1;
});
