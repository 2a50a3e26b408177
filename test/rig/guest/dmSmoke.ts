// Runs INSIDE a rig guest (node from the tools image): real device-mapper operations
// through thinlv's DeviceMapper, and the dmsetup failures thinlv's classifier assumes,
// run for real and classified. Prints one JSON report on stdout; the host side
// (test/rig/runRig.ts) decides pass or fail from it.
//
//   node /tools/thinlv/dist/test/rig/guest/dmSmoke.js /dev/rig-lun
//
// The LUN must hold nothing: its first MiBs are written.

import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, realpathSync, statSync } from 'node:fs';

import type { DmTableLine } from '../../../src/extent/dmTable.js';
import { createDmsetupDeviceMapper, type DeviceMapper, type DmCommands } from '../../../src/dm/deviceMapper.js';
import { classifyDmsetupFailure, DmErrorCode, probeDeviceMapper } from '../../../src/dm/dmsetup.js';
import { selectDeviceMapper } from '../../../src/dm/selectDeviceMapper.js';
import { DmIoctlRunner, ioctlCommands, openDmIoctl } from '../../../src/dm/dmIoctl.js';

export interface SmokeCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

/** A dmsetup failure run for real: what it printed, and what thinlv makes of it. */
export interface ClassifierCase {
  readonly name: string;
  readonly args: readonly string[];
  readonly input: string | undefined;
  readonly exitCode: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly expectedCode: string;
  readonly classifiedCode: string;
  readonly ok: boolean;
}

export interface SmokeReport {
  readonly driver: string;
  readonly checks: readonly SmokeCheck[];
  readonly classifierCases: readonly ClassifierCase[];
}

const SECTOR_BYTES = 512;
const BLOCK_BYTES = 4096;
const DEVICE = 'rigsmoke';
const OTHER_DEVICE = 'rigsmoke2';
const MISSING_DEVICE = 'rigsmoke-missing';

const checks: SmokeCheck[] = [];
const classifierCases: ClassifierCase[] = [];

function check(name: string, ok: boolean, detail = ''): void {
  checks.push({ name, ok, detail });
}

function dmsetupRaw(args: readonly string[], input?: string): { exitCode: number | null; stdout: string; stderr: string } {
  // The environment thinlv's runner gives dmsetup.
  const result = spawnSync('dmsetup', [...args], { env: { LC_ALL: 'C', LANG: 'C', PATH: process.env['PATH'] ?? '' }, input: input ?? '', encoding: 'utf8', timeout: 30_000 });
  return { exitCode: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

/**
 * Runs `dmsetup [switches] command operands` (which must fail) as thinlv's runner does
 * and records whether the classifier reads it as expected.
 */
function classifierCase(name: string, command: string, operands: readonly string[], expectedCode: string, options: { input?: string; switches?: readonly string[] } = {}): void {
  const args = [...(options.switches ?? []), command, ...operands];
  const { exitCode, stdout, stderr } = dmsetupRaw(args, options.input);
  const classifiedCode = exitCode === 0 ? '(exit 0: no error)' : classifyDmsetupFailure(command, args, exitCode ?? undefined, stderr, stdout).code;
  classifierCases.push({ name, args, input: options.input, exitCode, stdout, stderr, expectedCode, classifiedCode, ok: classifiedCode === expectedCode });
}

function pattern(block: number): Buffer {
  const buffer = Buffer.alloc(BLOCK_BYTES);
  for (let offset = 0; offset < BLOCK_BYTES; offset += 16) buffer.write(`blk${String(block).padStart(6, '0')}:${String(offset).padStart(4, '0')}|`, offset, 'latin1');
  return buffer;
}

function ddWrite(path: string, block: number): boolean {
  const result = spawnSync('dd', [`of=${path}`, `bs=${BLOCK_BYTES}`, `seek=${block}`, 'count=1', 'iflag=fullblock', 'oflag=direct', 'conv=notrunc'], { input: pattern(block) });
  return result.status === 0;
}

function ddRead(path: string, block: number): Buffer {
  const result = spawnSync('dd', [`if=${path}`, `bs=${BLOCK_BYTES}`, `skip=${block}`, 'count=1', 'iflag=direct'], { maxBuffer: 1024 * 1024 });
  return result.stdout ?? Buffer.alloc(0);
}

async function expectCode(name: string, operation: () => Promise<unknown>, expectedCode: string): Promise<void> {
  try {
    await operation();
    check(name, false, `succeeded; expected ${expectedCode}`);
  } catch (error) {
    const code = (error as { code?: string }).code ?? '(no code)';
    check(name, code === expectedCode, `${code}: ${(error as Error).message}`);
  }
}

/** "ACTIVE" or "SUSPENDED", from `dmsetup info`'s State line. */
function liveState(name: string): string {
  const { stdout } = dmsetupRaw(['info', name]);
  return /State:\s*(\S+)/.exec(stdout)?.[1] ?? `(no state: ${stdout.trim()})`;
}

/** Runs one DmCommands primitive (which must fail) over ioctls and records its class. */
async function ioctlClassifierCase(name: string, command: keyof DmCommands, run: () => Promise<unknown>, expectedCode: string): Promise<void> {
  let classifiedCode = '(no error)';
  let message = '';
  try {
    await run();
  } catch (error) {
    classifiedCode = (error as { code?: string }).code ?? '(no code)';
    message = (error as Error).message;
  }
  classifierCases.push({ name: `ioctl: ${name}`, args: ['(ioctl)', command], input: undefined, exitCode: null, stdout: '', stderr: message, expectedCode, classifiedCode, ok: classifiedCode === expectedCode });
}

/**
 * The ioctl path (src/dm/dmIoctl.ts) against dmsetup's: the same extend leaves the same
 * `dmsetup table`, and the same failures give the same DmError codes.
 */
async function ioctlPathChecks(lunPath: string, offsetSectors: number): Promise<void> {
  const opened = openDmIoctl();
  check('the ioctl addon loads and /dev/mapper/control answers DM_VERSION', opened.ok, opened.ok ? `driver ${opened.dmIoctl.driverVersion}, ${opened.dmIoctl.addonPath}` : opened.reason);
  if (!opened.ok) return;
  const selected = selectDeviceMapper();
  check('selectDeviceMapper picks the ioctls where they work', selected.backend === 'ioctl', selected.detail);
  const viaIoctl: DeviceMapper = selected.deviceMapper;
  const viaDmsetup = createDmsetupDeviceMapper();
  const commands = ioctlCommands(new DmIoctlRunner(opened.dmIoctl), { create: async () => {}, remove: async () => {} });
  const lines = (...lengths: number[]): DmTableLine[] => {
    let start = 0;
    return lengths.map((lengthSectors, index) => {
      const line: DmTableLine = { startSector: start, lengthSectors, targetType: 'linear', devicePath: lunPath, offsetSector: offsetSectors + index * 8192 };
      start += lengthSectors;
      return line;
    });
  };
  const tableText = (): string => dmsetupRaw(['table', DEVICE]).stdout;

  await viaIoctl.activate(DEVICE, lines(2048));
  // Read-ahead and size as the kernel reports them: dmsetup's resume could set read-ahead
  // (it does not by default); the ioctl resume never does.
  const blockdev = (): string => {
    const rdev = statSync(`/dev/mapper/${DEVICE}`).rdev;
    const sys = `/sys/dev/block/${Math.floor(rdev / 256)}:${rdev % 256}`;
    return `${readFileSync(`${sys}/queue/read_ahead_kb`, 'utf8').trim()} ${readFileSync(`${sys}/size`, 'utf8').trim()}`;
  };
  await viaDmsetup.reload(DEVICE, lines(2048, 1024, 512));
  const afterDmsetup = tableText();
  const blockdevAfterDmsetup = blockdev();
  const readByDmsetup = await viaDmsetup.table(DEVICE);
  await viaDmsetup.reload(DEVICE, lines(2048));
  await viaIoctl.reload(DEVICE, lines(2048, 1024, 512));
  const afterIoctl = tableText();
  const blockdevAfterIoctl = blockdev();
  check('read-ahead and size after an ioctl extend equal those after a dmsetup extend', blockdevAfterIoctl === blockdevAfterDmsetup && blockdevAfterIoctl.endsWith(' 3584'), JSON.stringify({ blockdevAfterDmsetup, blockdevAfterIoctl }));
  check('an extend through the ioctls leaves the `dmsetup table` an extend through dmsetup leaves', afterIoctl === afterDmsetup && afterIoctl.split('\n').length === 4, JSON.stringify({ afterDmsetup, afterIoctl }));
  const readByIoctl = await viaIoctl.table(DEVICE);
  check('table() through the ioctls reads what table() through dmsetup reads', JSON.stringify(readByIoctl) === JSON.stringify(readByDmsetup), JSON.stringify({ readByIoctl, readByDmsetup }));
  check('the device is active, not suspended, after an ioctl reload', liveState(DEVICE) === 'ACTIVE', liveState(DEVICE));
  check('a write past the old end goes through after an ioctl reload', ddWrite(`/dev/mapper/${DEVICE}`, 3000 / 8 + 1));
  check('exists() through the ioctls', await viaIoctl.exists(DEVICE));

  // DeviceMapper-level failures through both paths: the same codes, the device live after each.
  const lun = statSync(lunPath);
  const beyond = [{ ...lines(4096)[0]!, offsetSector: Math.floor(Number(lun.size || 0) / SECTOR_BYTES) + 1_000_000_000 }];
  for (const [label, dm] of [['dmsetup', viaDmsetup], ['ioctl', viaIoctl]] as const) {
    await expectCode(`${label}: reload with a table beyond the LUN fails as DM_INVALID_TABLE`, () => dm.reload(DEVICE, beyond), DmErrorCode.invalidTable);
    await expectCode(`${label}: reload naming a device that does not exist fails as DM_INVALID_TABLE`, () => dm.reload(DEVICE, lines(4096).map((l) => ({ ...l, devicePath: '/dev/vdz' }))), DmErrorCode.invalidTable);
    await expectCode(`${label}: reload of a missing device fails as DM_NOT_FOUND`, () => dm.reload(MISSING_DEVICE, lines(2048)), DmErrorCode.notFound);
    check(`${label}: table of a missing device is undefined`, (await dm.table(MISSING_DEVICE)) === undefined);
    check(`${label}: exists of a missing device is false`, (await dm.exists(MISSING_DEVICE)) === false);
    check(`${label}: after the refused reloads the old table is live and the device active`, tableText() === afterIoctl && liveState(DEVICE) === 'ACTIVE', `${liveState(DEVICE)} ${tableText()}`);
  }

  // The primitives, against the texts dmsetup's classifier reads (the classifier cases above).
  for (const command of ['table', 'info', 'suspend', 'resume', 'clear'] as const) {
    await ioctlClassifierCase(`${command} of a missing device`, command, () => commands[command](MISSING_DEVICE, {}), DmErrorCode.notFound);
  }
  await ioctlClassifierCase('load of a missing device', 'load', () => commands.load(MISSING_DEVICE, `0 2048 linear ${lunPath} 0\n`, {}), DmErrorCode.notFound);
  const invalidTables: [string, string][] = [
    ['an unknown target type', `0 2048 bogus ${lunPath} 0\n`],
    ['a line missing fields', '0 2048 linear\n'],
    ['a device that does not exist', `0 2048 linear /dev/vdz 0\n`],
    ['a gap between lines', `0 1024 linear ${lunPath} 0\n2048 1024 linear ${lunPath} 0\n`],
    ['a non-numeric length', `0 x linear ${lunPath} 0\n`],
  ];
  for (const [what, table] of invalidTables) {
    await ioctlClassifierCase(`load with ${what}`, 'load', () => commands.load(DEVICE, table, {}), DmErrorCode.invalidTable);
    await commands.clear(DEVICE, {});
  }
  await commands.load(DEVICE, `0 4096 linear ${lunPath} 999999999999\n`, {});
  await commands.suspend(DEVICE, {});
  await ioctlClassifierCase('resume of a loaded table beyond the end of the LUN', 'resume', () => commands.resume(DEVICE, {}), DmErrorCode.invalidTable);
  await commands.clear(DEVICE, {});
  await commands.resume(DEVICE, {});
  check('ioctl clear then resume after a refused resume brings the old table back, active', liveState(DEVICE) === 'ACTIVE' && tableText() === afterIoctl, `${liveState(DEVICE)} ${tableText()}`);
  await viaIoctl.deactivate(DEVICE);
  check('deactivate through the ioctl DeviceMapper removes the device', !(await viaIoctl.exists(DEVICE)));
}

async function main(): Promise<void> {
  const lunPath = realpathSync(process.argv[2] ?? '/dev/rig-lun');
  const lun = statSync(lunPath);
  const lunDevice = `${Math.floor(lun.rdev / 256)}:${lun.rdev % 256}`;
  const probe = await probeDeviceMapper();
  check('dmsetup version reports a kernel driver', probe.available, probe.detail);

  const dm = createDmsetupDeviceMapper();
  const offsetSectors = 2048; // 1 MiB into the LUN
  const line = (lengthSectors: number, devicePath = lunPath): DmTableLine => ({ startSector: 0, lengthSectors, targetType: 'linear', devicePath, offsetSector: offsetSectors });
  const mapper = `/dev/mapper/${DEVICE}`;

  // A device left from an earlier run of this script on the same guest.
  for (const name of [DEVICE, OTHER_DEVICE]) dmsetupRaw(['remove', name]);

  await dm.activate(DEVICE, [line(2048)]);
  check('activate creates the device', await dm.exists(DEVICE));
  let mapperIsBlockDevice = false;
  try {
    mapperIsBlockDevice = statSync(mapper).isBlockDevice();
  } catch {
    // Checked below.
  }
  check(`activate leaves ${mapper} as a block device`, mapperIsBlockDevice);
  const first = await dm.table(DEVICE);
  check('table reads back the created table', JSON.stringify(first) === JSON.stringify([{ ...line(2048), devicePath: lunDevice }]), JSON.stringify(first));

  // Data written before a reload stays where it was (design: "data written before the reload stays intact").
  const written = [0, 255].every((block) => ddWrite(mapper, block));
  check('O_DIRECT writes through /dev/mapper', written);

  await dm.reload(DEVICE, [line(4096)]);
  const second = await dm.table(DEVICE);
  check('reload (suspend, load, resume) makes the longer table live', JSON.stringify(second) === JSON.stringify([{ ...line(4096), devicePath: lunDevice }]), JSON.stringify(second));
  check('the device is active, not suspended, after a reload', liveState(DEVICE) === 'ACTIVE', liveState(DEVICE));
  check('the device is 4096 sectors after the reload', dmsetupRaw(['table', DEVICE]).stdout.trim().split(/\s+/)[1] === '4096');
  check('a write past the old end goes through', ddWrite(mapper, 300));
  for (const block of [0, 255, 300]) {
    check(`block ${block} reads back through the device`, ddRead(mapper, block).equals(pattern(block)));
    check(`block ${block} is on the LUN where the table maps it`, ddRead(lunPath, offsetSectors * SECTOR_BYTES / BLOCK_BYTES + block).equals(pattern(block)));
  }
  await dm.reload(DEVICE, [line(4096)]);
  check('reloading the live table again is harmless (idempotent)', JSON.stringify(await dm.table(DEVICE)) === JSON.stringify(second));

  // DeviceMapper's own handling of the failures.
  await expectCode('reload with a table beyond the LUN fails as DM_INVALID_TABLE', () => dm.reload(DEVICE, [{ ...line(4096), offsetSector: Math.floor(Number(lun.size || 0) / SECTOR_BYTES) + 1_000_000_000 }]), DmErrorCode.invalidTable);
  check('after a refused reload the old table is live and the device not suspended', JSON.stringify(await dm.table(DEVICE)) === JSON.stringify(second) && liveState(DEVICE) === 'ACTIVE', liveState(DEVICE));
  await expectCode('reload naming a device that does not exist fails as DM_INVALID_TABLE', () => dm.reload(DEVICE, [line(4096, '/dev/vdz')]), DmErrorCode.invalidTable);
  check('after that refused reload the device is not suspended', liveState(DEVICE) === 'ACTIVE', liveState(DEVICE));
  await expectCode('activate of a name in use fails as DM_DEVICE_EXISTS', () => dm.activate(DEVICE, [line(2048)]), DmErrorCode.deviceExists);
  await expectCode('reload of a missing device fails as DM_NOT_FOUND', () => dm.reload(MISSING_DEVICE, [line(2048)]), DmErrorCode.notFound);
  check('table of a missing device is undefined', (await dm.table(MISSING_DEVICE)) === undefined);
  check('exists of a missing device is false', (await dm.exists(MISSING_DEVICE)) === false);
  let deactivateMissing = 'ok';
  await dm.deactivate(MISSING_DEVICE).catch((error: Error) => (deactivateMissing = error.message));
  check('deactivate of a missing device succeeds (idempotent)', deactivateMissing === 'ok', deactivateMissing);

  const holder = openSync(mapper, 'r');
  try {
    await expectCode('deactivate of an open device fails as DM_DEVICE_BUSY', () => dm.deactivate(DEVICE), DmErrorCode.deviceBusy);
  } finally {
    closeSync(holder);
  }
  await dm.deactivate(DEVICE);
  check('deactivate removes the device', !(await dm.exists(DEVICE)));

  // The raw texts, run as thinlv's runner runs them.
  const good = `0 2048 linear ${lunPath} ${offsetSectors}\n`;
  for (const command of ['table', 'info', 'status', 'suspend', 'resume', 'clear']) {
    classifierCase(`${command} of a missing device`, command, [MISSING_DEVICE], DmErrorCode.notFound);
  }
  classifierCase('remove --retry of a missing device', 'remove', [MISSING_DEVICE], DmErrorCode.notFound, { switches: ['--retry'] });
  classifierCase('load of a missing device', 'load', [MISSING_DEVICE], DmErrorCode.notFound, { input: good });
  dmsetupRaw(['create', DEVICE], good);
  classifierCase('create of a name in use', 'create', [DEVICE], DmErrorCode.deviceExists, { input: good });
  dmsetupRaw(['--uuid', 'RIGSMOKE-UUID-1', 'create', OTHER_DEVICE], good);
  classifierCase('create with a uuid in use', 'create', [`${OTHER_DEVICE}x`], DmErrorCode.deviceExists, { input: good, switches: ['--uuid', 'RIGSMOKE-UUID-1'] });
  check('/dev/mapper/NAME is a block device after a raw create', statSync(mapper).isBlockDevice());
  const held = openSync(mapper, 'r');
  try {
    classifierCase('remove --retry of an open device', 'remove', [DEVICE], DmErrorCode.deviceBusy, { switches: ['--retry'] });
    classifierCase('remove of an open device', 'remove', [DEVICE], DmErrorCode.deviceBusy);
  } finally {
    closeSync(held);
  }
  const invalidTables: [string, string][] = [
    ['an unknown target type', `0 2048 bogus ${lunPath} 0\n`],
    ['a line missing fields', '0 2048 linear\n'],
    ['a device that does not exist', `0 2048 linear /dev/vdz 0\n`],
    ['a gap between lines', `0 1024 linear ${lunPath} 0\n2048 1024 linear ${lunPath} 0\n`],
    ['a non-numeric length', `0 x linear ${lunPath} 0\n`],
  ];
  for (const [what, table] of invalidTables) {
    classifierCase(`create with ${what}`, 'create', ['rigsmoke-bad'], DmErrorCode.invalidTable, { input: table });
    dmsetupRaw(['remove', 'rigsmoke-bad']);
    classifierCase(`load with ${what}`, 'load', [DEVICE], DmErrorCode.invalidTable, { input: table });
    dmsetupRaw(['clear', DEVICE]);
  }
  // The kernel checks a linear target's range against its device when the table goes
  // live: at create, but at resume (not load) for a device that already has a live table.
  const beyondLoad = dmsetupRaw(['load', DEVICE], `0 4096 linear ${lunPath} 999999999999\n`);
  check('load of a table beyond the end of the LUN on a live device succeeds (the kernel checks at resume)', beyondLoad.exitCode === 0, `exit ${beyondLoad.exitCode} ${beyondLoad.stderr.trim()}`);
  classifierCase('create with a range beyond the end of the LUN', 'create', ['rigsmoke-bad'], DmErrorCode.invalidTable, { input: `0 2048 linear ${lunPath} 999999999999\n` });
  dmsetupRaw(['remove', 'rigsmoke-bad']);
  dmsetupRaw(['suspend', DEVICE]);
  classifierCase('resume of a loaded table beyond the end of the LUN', 'resume', [DEVICE], DmErrorCode.invalidTable);
  dmsetupRaw(['clear', DEVICE]);
  dmsetupRaw(['resume', DEVICE]);
  check('clear then resume after a refused resume brings the old table back, active', liveState(DEVICE) === 'ACTIVE' && dmsetupRaw(['table', DEVICE]).stdout.includes(' 2048 linear '), `${liveState(DEVICE)} ${dmsetupRaw(['table', DEVICE]).stdout.trim()}`);
  for (const name of [DEVICE, OTHER_DEVICE]) dmsetupRaw(['remove', name]);
  check('no smoke device is left', !/rigsmoke/.test(dmsetupRaw(['ls']).stdout), dmsetupRaw(['ls']).stdout.trim());

  await ioctlPathChecks(lunPath, offsetSectors);

  const report: SmokeReport = { driver: probe.detail, checks, classifierCases };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main().catch((error: unknown) => {
  process.stdout.write(`${JSON.stringify({ driver: '', checks: [...checks, { name: 'the smoke script ran to its end', ok: false, detail: String((error as Error).stack ?? error) }], classifierCases })}\n`);
  process.exitCode = 1;
});
