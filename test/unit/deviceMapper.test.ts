import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { fc, test } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect } from 'vitest';

import {
  classifyDmsetupFailure,
  createDmsetupRunner,
  MAX_DM_STDERR_KEPT_CHARS,
  probeDeviceMapper,
} from '../../src/dm/dmsetup.js';
import {
  createDmsetupDeviceMapper,
  deviceNumberFromRdev,
  deviceNumberOf,
  deviceNumbersOf,
  DmErrorCode,
  dmName,
  dmTableDifference,
  dmTablesEqual,
  MAX_DM_TABLE_BYTES,
  MAX_QUEUED_OPERATIONS_PER_DEVICE,
  parseDmTable,
  withDeviceNumbers,
  type DeviceMapper,
  type DmCommand,
} from '../../src/dm/deviceMapper.js';
import { FakeDeviceMapper } from '../../src/dm/fakeDeviceMapper.js';
import { DmError, ThinlvError, UsageError } from '../../src/errors.js';
import { formatDmTable, type DmTableLine } from '../../src/extent/dmTable.js';

// ---------------------------------------------------------------------------
// Fixtures

const NAME = 'vg--1-lv--a'; // dmName('vg-1', 'lv-a')
const OTHER = 'vg--1-lv--b';
const DEVICE_NUMBERS = new Map([
  ['/dev/fakepv0', '7:0'],
  ['/dev/fakepv1', '7:1'],
]);
const line = (startSector: number, lengthSectors: number, devicePath: string, offsetSector: number): DmTableLine => ({
  startSector,
  lengthSectors,
  targetType: 'linear',
  devicePath,
  offsetSector,
});
const TABLE_A = [line(0, 8192, '/dev/fakepv0', 34816), line(8192, 8192, '/dev/fakepv1', 2048)];
const TABLE_B = [...TABLE_A, line(16384, 8192, '/dev/fakepv0', 43008)];
const TABLE_C = [line(0, 4096, '/dev/fakepv1', 0)];

// Real dmsetup texts (device-mapper 1.02.185).
const NO_KERNEL_DM_STDERR =
  '/dev/mapper/control: open failed: No such device\nFailure to communicate with kernel device-mapper driver.\n' +
  'Check that device-mapper is available in the kernel.\nCommand failed.\n';
const stderrFor = (kind: FailureKind, command: string, name: string): string =>
  kind === 'invalid-table'
    ? `device-mapper: ${command === 'load' ? 'reload' : command} ioctl on ${name}  failed: Invalid argument\nCommand failed.\n`
    : kind === 'busy'
      ? `device-mapper: ${command} ioctl on ${name}  failed: Device or resource busy\nCommand failed.\n`
      : 'dmsetup: something nobody expected\nCommand failed.\n';

async function errorOf(promise: Promise<unknown>): Promise<ThinlvError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'expected the call to fail').toBeInstanceOf(ThinlvError);
  return error as ThinlvError;
}

// A stand-in for dmsetup: records each call (argv, stdin, environment), fails or
// hangs on request, and otherwise keeps a tiny device table in files, printing
// devices as major:minor the way the kernel does. Written to a temp dir per subject.
const FAKE_DMSETUP = `#!/bin/bash
state=__STATE__
id="$(date +%s%N)-$$"
cat > "$state/calls/$id.stdin"
printf 'LC_ALL=%s\\nLANG=%s\\nDM_UDEV_COOKIE=%s\\n' "$LC_ALL" "$LANG" "\${DM_UDEV_COOKIE-unset}" > "$state/calls/$id.env"
printf '%s\\0' "$@" > "$state/calls/$id.args"
cmd=; name=; uuid=
while [ $# -gt 0 ]; do
  case "$1" in
    --uuid) uuid=$2; shift 2; continue ;;
    -*) shift; continue ;;
  esac
  if [ -z "$cmd" ]; then cmd=$1; elif [ -z "$name" ]; then name=$1; fi
  shift
done
if [ -f "$state/sleep/$cmd" ]; then rm -f "$state/sleep/$cmd"; exec sleep 30; fi
if [ -f "$state/fail/$cmd" ]; then
  code=$(head -n 1 "$state/fail/$cmd")
  tail -n +2 "$state/fail/$cmd" >&2
  rm -f "$state/fail/$cmd"
  exit "$code"
fi
if [ -f "$state/stdout/$cmd" ]; then cat "$state/stdout/$cmd"; rm -f "$state/stdout/$cmd"; exit 0; fi
dev=$state/devices/$name
gone() { printf 'device-mapper: %s ioctl on %s  failed: No such device or address\\nCommand failed.\\n' "$1" "$name" >&2; exit 1; }
case "$cmd" in
  create)
    if [ -d "$dev" ]; then printf 'device-mapper: create ioctl on %s  failed: Device or resource busy\\nCommand failed.\\n' "$name" >&2; exit 1; fi
    mkdir "$dev" && cp "$state/calls/$id.stdin" "$dev/live" && printf '%s' "$uuid" > "$dev/uuid" ;;
  load) [ -d "$dev" ] || gone reload; cp "$state/calls/$id.stdin" "$dev/inactive" ;;
  clear) [ -d "$dev" ] || gone clear; rm -f "$dev/inactive" ;;
  suspend) [ -d "$dev" ] || gone suspend; : > "$dev/suspended" ;;
  resume) [ -d "$dev" ] || gone resume; if [ -f "$dev/inactive" ]; then mv "$dev/inactive" "$dev/live"; fi; rm -f "$dev/suspended" ;;
  remove) [ -d "$dev" ] || gone remove; rm -rf "$dev" ;;
  table) if [ ! -d "$dev" ]; then printf 'Device does not exist.\\nCommand failed.\\n' >&2; exit 1; fi; sed -f "$state/devmap" "$dev/live" ;;
  info) if [ ! -d "$dev" ]; then printf 'Device does not exist.\\nCommand failed.\\n' >&2; exit 1; fi; printf 'Name:              %s\\n' "$name" ;;
  *) printf 'Unknown command %s\\n' "$cmd" >&2; exit 1 ;;
esac
`;

interface RecordedCall {
  readonly args: string[];
  /** The dmsetup command, e.g. "load NAME" (options left out). */
  readonly command: string;
  readonly stdin: string;
  readonly env: Record<string, string>;
}

/** One fake dmsetup with its own state directory. */
class ScriptDmsetup {
  constructor(readonly state: string, readonly path: string) {}

  static async create(root: string, label: string): Promise<ScriptDmsetup> {
    const state = await mkdtemp(join(root, `${label}-`));
    for (const dir of ['calls', 'devices', 'fail', 'sleep', 'stdout']) await mkdir(join(state, dir));
    const devmap = [...DEVICE_NUMBERS].map(([path, numbers]) => `s#${path} #${numbers} #g`).join('\n');
    await writeFile(join(state, 'devmap'), `${devmap}\n`);
    const path = join(state, 'dmsetup');
    await writeFile(path, FAKE_DMSETUP.replace('__STATE__', `'${state}'`));
    await chmod(path, 0o755);
    return new ScriptDmsetup(state, path);
  }

  /** The next `command` exits with `exitCode` after printing `stderr`. */
  async failNext(command: string, stderr: string, exitCode = 1): Promise<void> {
    await writeFile(join(this.state, 'fail', command), `${exitCode}\n${stderr}`);
  }

  async hangNext(command: string): Promise<void> {
    await writeFile(join(this.state, 'sleep', command), '');
  }

  async printNext(command: string, stdout: string): Promise<void> {
    await writeFile(join(this.state, 'stdout', command), stdout);
  }

  async suspended(): Promise<string[]> {
    const names = await readdir(join(this.state, 'devices'));
    return names.filter((name) => existsSync(join(this.state, 'devices', name, 'suspended'))).sort();
  }

  async calls(): Promise<RecordedCall[]> {
    const files = (await readdir(join(this.state, 'calls'))).filter((f) => f.endsWith('.args')).sort();
    return Promise.all(
      files.map(async (file) => {
        const base = join(this.state, 'calls', file.slice(0, -'.args'.length));
        const args = (await readFile(`${base}.args`, 'utf8')).split('\0').slice(0, -1);
        const operands = args.filter((arg, index) => !arg.startsWith('-') && args[index - 1] !== '--uuid');
        const env = Object.fromEntries(
          (await readFile(`${base}.env`, 'utf8'))
            .trim()
            .split('\n')
            .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
        );
        return { args, command: operands.join(' '), stdin: await readFile(`${base}.stdin`, 'utf8'), env };
      }),
    );
  }
}

let scratch = '';
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'thinlv-dm-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// The contract both implementations keep

type FailureKind = 'invalid-table' | 'busy' | 'other';

interface ContractSubject {
  readonly dm: DeviceMapper;
  /** The next `command` fails the way dmsetup fails for `kind`. */
  failNext(command: DmCommand, kind: FailureKind): Promise<void>;
  suspended(): Promise<string[]>;
  /** Commands run so far, as "load NAME". */
  commands(): Promise<string[]>;
}

function codeFor(kind: FailureKind, command: DmCommand): string {
  if (kind === 'invalid-table') return DmErrorCode.invalidTable;
  if (kind === 'busy') return command === 'create' ? DmErrorCode.deviceExists : DmErrorCode.deviceBusy;
  return DmErrorCode.failed;
}

async function makeScriptSubject(): Promise<ContractSubject> {
  const dmsetup = await ScriptDmsetup.create(scratch, 'contract');
  return {
    dm: createDmsetupDeviceMapper({ dmsetupPath: dmsetup.path, timeoutMs: 5_000 }),
    failNext: (command, kind) => dmsetup.failNext(command, stderrFor(kind, command, NAME)),
    suspended: () => dmsetup.suspended(),
    commands: async () => (await dmsetup.calls()).map((call) => call.command),
  };
}

async function makeFakeSubject(): Promise<ContractSubject> {
  const fake = new FakeDeviceMapper({ deviceNumbers: DEVICE_NUMBERS });
  return {
    dm: fake,
    failNext: async (command, kind) => fake.failNext(command, new DmError(codeFor(kind, command), `injected ${kind} failure of ${command}`)),
    suspended: async () => fake.suspendedDevices(),
    commands: async () => fake.operations.map((operation) => `${operation.command} ${operation.name}`),
  };
}

function describeDeviceMapperContract(label: string, make: () => Promise<ContractSubject>): void {
  describe(`DeviceMapper contract: ${label}`, () => {
    test('an activated device exists, and its table reads back as loaded with devices as major:minor', async () => {
      const { dm, commands } = await make();
      await dm.activate(NAME, TABLE_A);
      expect(await dm.exists(NAME)).toBe(true);
      const live = await dm.table(NAME);
      expect(live).toEqual(withDeviceNumbers(TABLE_A, DEVICE_NUMBERS));
      expect(dmTablesEqual(TABLE_A, live ?? [], DEVICE_NUMBERS)).toBe(true);
      expect(await commands()).toEqual([`create ${NAME}`, `info ${NAME}`, `table ${NAME}`]);
    });

    test('a device never activated does not exist and has no table', async () => {
      const { dm } = await make();
      expect(await dm.exists(NAME)).toBe(false);
      expect(await dm.table(NAME)).toBeUndefined();
    });

    test('activating a name already in use fails with DM_DEVICE_EXISTS and keeps the live table', async () => {
      const { dm } = await make();
      await dm.activate(NAME, TABLE_A);
      const error = await errorOf(dm.activate(NAME, TABLE_B));
      expect(error).toBeInstanceOf(DmError);
      expect(error.code).toBe(DmErrorCode.deviceExists);
      expect(await dm.table(NAME)).toEqual(withDeviceNumbers(TABLE_A, DEVICE_NUMBERS));
    });

    test('reload runs suspend, load, resume in that order and makes the new table live', async () => {
      const { dm, commands, suspended } = await make();
      await dm.activate(NAME, TABLE_A);
      await dm.reload(NAME, TABLE_B);
      expect((await commands()).slice(1)).toEqual([`suspend ${NAME}`, `load ${NAME}`, `resume ${NAME}`]);
      expect(await dm.table(NAME)).toEqual(withDeviceNumbers(TABLE_B, DEVICE_NUMBERS));
      expect(await suspended()).toEqual([]);
    });

    test('reloading the table that is already live is harmless, so a reload can be repeated', async () => {
      const { dm, suspended } = await make();
      await dm.activate(NAME, TABLE_A);
      await dm.reload(NAME, TABLE_B);
      await dm.reload(NAME, TABLE_B);
      expect(await dm.table(NAME)).toEqual(withDeviceNumbers(TABLE_B, DEVICE_NUMBERS));
      expect(await suspended()).toEqual([]);
    });

    test('a failing load still resumes: the old table stays live, nothing is left suspended, and the load error is thrown', async () => {
      const { dm, failNext, commands, suspended } = await make();
      await dm.activate(NAME, TABLE_A);
      await failNext('load', 'invalid-table');
      const error = await errorOf(dm.reload(NAME, TABLE_B));
      expect(error).toBeInstanceOf(DmError);
      expect(error.code).toBe(DmErrorCode.invalidTable);
      expect(error.message).toContain(`reload of ${NAME} failed at load; the device was resumed on its old table`);
      expect(error.data).toMatchObject({ name: NAME, step: 'load' });
      expect((await commands()).slice(1)).toEqual([`suspend ${NAME}`, `load ${NAME}`, `clear ${NAME}`, `resume ${NAME}`]);
      expect(await suspended()).toEqual([]);
      expect(await dm.table(NAME)).toEqual(withDeviceNumbers(TABLE_A, DEVICE_NUMBERS));
    });

    test('a failing suspend loads nothing, leaves nothing suspended and throws', async () => {
      const { dm, failNext, commands, suspended } = await make();
      await dm.activate(NAME, TABLE_A);
      await failNext('suspend', 'other');
      const error = await errorOf(dm.reload(NAME, TABLE_B));
      expect(error.code).toBe(DmErrorCode.failed);
      expect(error.data).toMatchObject({ name: NAME, step: 'suspend' });
      expect((await commands()).slice(1)).toEqual([`suspend ${NAME}`, `clear ${NAME}`, `resume ${NAME}`]);
      expect(await suspended()).toEqual([]);
      expect(await dm.table(NAME)).toEqual(withDeviceNumbers(TABLE_A, DEVICE_NUMBERS));
    });

    test('a failing resume after a good load is DM_LEFT_SUSPENDED, and the next good reload resumes the device', async () => {
      const { dm, failNext, suspended } = await make();
      await dm.activate(NAME, TABLE_A);
      await failNext('resume', 'other');
      const error = await errorOf(dm.reload(NAME, TABLE_B));
      expect(error.code).toBe(DmErrorCode.leftSuspended);
      expect(error.message).toContain(`dmsetup resume ${NAME}`);
      expect(await suspended()).toEqual([NAME]);
      await dm.reload(NAME, TABLE_B);
      expect(await suspended()).toEqual([]);
      expect(await dm.table(NAME)).toEqual(withDeviceNumbers(TABLE_B, DEVICE_NUMBERS));
    });

    test('a new table the kernel refuses at resume (past the end of a device not rescanned) is dropped: DM_INVALID_TABLE, the old table live, nothing suspended', async () => {
      const { dm, failNext, suspended } = await make();
      await dm.activate(NAME, TABLE_A);
      await failNext('resume', 'invalid-table');
      const error = await errorOf(dm.reload(NAME, TABLE_B));
      expect(error.code).toBe(DmErrorCode.invalidTable);
      expect(error.data).toMatchObject({ name: NAME, step: 'resume' });
      expect(await suspended()).toEqual([]);
      expect(await dm.table(NAME)).toEqual(withDeviceNumbers(TABLE_A, DEVICE_NUMBERS));
    });

    test('a table left loaded by a reload whose resume failed never becomes live through a later failed reload', async () => {
      const { dm, failNext, suspended } = await make();
      await dm.activate(NAME, TABLE_A);
      await failNext('resume', 'other');
      expect((await errorOf(dm.reload(NAME, TABLE_B))).code).toBe(DmErrorCode.leftSuspended);
      await failNext('suspend', 'other');
      expect((await errorOf(dm.reload(NAME, TABLE_C))).code).toBe(DmErrorCode.failed);
      expect(await dm.table(NAME)).toEqual(withDeviceNumbers(TABLE_A, DEVICE_NUMBERS));
      expect(await suspended()).toEqual([]);
    });

    test('a failing load whose resume fails too is DM_LEFT_SUSPENDED naming both failures', async () => {
      const { dm, failNext } = await make();
      await dm.activate(NAME, TABLE_A);
      await failNext('load', 'invalid-table');
      await failNext('resume', 'other');
      const error = await errorOf(dm.reload(NAME, TABLE_B));
      expect(error.code).toBe(DmErrorCode.leftSuspended);
      expect(error.data).toMatchObject({ name: NAME, step: 'load' });
      expect(error.data['failure']).toMatchObject({ code: DmErrorCode.invalidTable });
      expect(error.data['resumeFailure']).toMatchObject({ code: DmErrorCode.failed });
    });

    test('reload of a device that does not exist is DM_NOT_FOUND and runs nothing after the suspend', async () => {
      const { dm, commands } = await make();
      const error = await errorOf(dm.reload(NAME, TABLE_A));
      expect(error.code).toBe(DmErrorCode.notFound);
      expect(await commands()).toEqual([`suspend ${NAME}`]);
      expect(await dm.exists(NAME)).toBe(false);
    });

    test('deactivate removes the device; deactivating it again, or a name never activated, succeeds', async () => {
      const { dm } = await make();
      await dm.activate(NAME, TABLE_A);
      await dm.deactivate(NAME);
      expect(await dm.exists(NAME)).toBe(false);
      await dm.deactivate(NAME);
      await dm.deactivate(OTHER);
    });

    test('deactivate of a device held open is DM_DEVICE_BUSY and the device stays', async () => {
      const { dm, failNext } = await make();
      await dm.activate(NAME, TABLE_A);
      await failNext('remove', 'busy');
      expect((await errorOf(dm.deactivate(NAME))).code).toBe(DmErrorCode.deviceBusy);
      expect(await dm.exists(NAME)).toBe(true);
    });

    test('devices are independent: reloading one leaves the other’s table alone', async () => {
      const { dm } = await make();
      await dm.activate(NAME, TABLE_A);
      await dm.activate(OTHER, TABLE_A);
      await dm.reload(OTHER, TABLE_B);
      expect(await dm.table(NAME)).toEqual(withDeviceNumbers(TABLE_A, DEVICE_NUMBERS));
      expect(await dm.table(OTHER)).toEqual(withDeviceNumbers(TABLE_B, DEVICE_NUMBERS));
    });

    test('an invalid device name is refused before any command runs', async () => {
      const { dm, commands } = await make();
      for (const name of ['', 'a/b', 'a b', '.', '..', 'x'.repeat(128), 'a\nb']) {
        for (const call of [dm.activate(name, TABLE_A), dm.reload(name, TABLE_A), dm.deactivate(name), dm.table(name), dm.exists(name)]) {
          const error = await errorOf(call);
          expect(error).toBeInstanceOf(UsageError);
          expect(error.code).toBe('INVALID_ARGUMENT');
        }
      }
      expect(await commands()).toEqual([]);
    });

    test('an empty, gapped or oversized table is refused before the device is suspended', async () => {
      const { dm, commands, suspended } = await make();
      await dm.activate(NAME, TABLE_A);
      const gapped = [line(0, 8192, '/dev/fakepv0', 0), line(16384, 8192, '/dev/fakepv0', 8192)];
      const huge = Array.from({ length: Math.ceil(MAX_DM_TABLE_BYTES / 30) + 1 }, (_, i) => line(i * 8, 8, '/dev/fakepv0', i * 8));
      const cases: [DmTableLine[], RegExp][] = [
        [[], /has no lines/],
        [gapped, /dm tables must be contiguous from 0/],
        [huge, new RegExp(`more than ${MAX_DM_TABLE_BYTES}`)],
      ];
      for (const [table, reason] of cases) {
        expect((await errorOf(dm.reload(NAME, table))).message).toMatch(reason);
        expect((await errorOf(dm.activate(OTHER, table))).message).toMatch(reason);
      }
      expect(await commands()).toEqual([`create ${NAME}`]);
      expect(await suspended()).toEqual([]);
    });

    test('a uuid that dmsetup would mangle or the kernel would truncate is refused', async () => {
      const { dm, commands } = await make();
      for (const uuid of ['', 'has space', 'x'.repeat(129)]) {
        expect((await errorOf(dm.activate(NAME, TABLE_A, { uuid }))).code).toBe('INVALID_ARGUMENT');
      }
      expect(await commands()).toEqual([]);
    });

    test('concurrent reloads of one device never interleave their suspend, load and resume', async () => {
      const { dm, commands, suspended } = await make();
      await dm.activate(NAME, TABLE_A);
      await Promise.all([dm.reload(NAME, TABLE_B), dm.reload(NAME, TABLE_A), dm.reload(NAME, TABLE_B)]);
      const cycle = [`suspend ${NAME}`, `load ${NAME}`, `resume ${NAME}`];
      expect((await commands()).slice(1)).toEqual([...cycle, ...cycle, ...cycle]);
      // The last one queued is the one live.
      expect(await dm.table(NAME)).toEqual(withDeviceNumbers(TABLE_B, DEVICE_NUMBERS));
      expect(await suspended()).toEqual([]);
    });

    test(`more than ${MAX_QUEUED_OPERATIONS_PER_DEVICE} operations queued on one device are refused with DM_QUEUE_FULL`, async () => {
      const { dm } = await make();
      await dm.activate(NAME, TABLE_A);
      const calls = Array.from({ length: MAX_QUEUED_OPERATIONS_PER_DEVICE + 1 }, () => dm.exists(NAME).then(() => 'ok', (e: unknown) => e));
      const outcomes = await Promise.all(calls);
      expect(outcomes.slice(0, -1).every((outcome) => outcome === 'ok')).toBe(true);
      expect((outcomes.at(-1) as DmError).code).toBe(DmErrorCode.queueFull);
      // The queue drains: the device takes operations again.
      expect(await dm.exists(NAME)).toBe(true);
    });

    test('an already aborted signal stops a reload before it suspends', async () => {
      const { dm, commands } = await make();
      await dm.activate(NAME, TABLE_A);
      const controller = new AbortController();
      controller.abort();
      const error = await errorOf(dm.reload(NAME, TABLE_B, { signal: controller.signal }));
      expect(error.data).toMatchObject({ cancelled: true });
      expect(await commands()).toEqual([`create ${NAME}`]);
    });
  });
}

describeDeviceMapperContract('dmsetup (fake dmsetup executable)', makeScriptSubject);
describeDeviceMapperContract('FakeDeviceMapper', makeFakeSubject);

// ---------------------------------------------------------------------------
// The exact dmsetup commands

describe('createDmsetupDeviceMapper runs dmsetup', () => {
  let dmsetup: ScriptDmsetup;
  let dm: DeviceMapper;
  beforeAll(async () => {
    dmsetup = await ScriptDmsetup.create(scratch, 'commands');
  });
  const fresh = async (config: { udevSync?: boolean; timeoutMs?: number } = {}): Promise<void> => {
    dmsetup = await ScriptDmsetup.create(scratch, 'commands');
    dm = createDmsetupDeviceMapper({ dmsetupPath: dmsetup.path, timeoutMs: 5_000, ...config });
  };

  test('activate runs `create NAME` with exactly the formatted table on stdin, under LC_ALL=C and no inherited udev cookie', async () => {
    await fresh();
    process.env['DM_UDEV_COOKIE'] = '0xd4d0000';
    try {
      await dm.activate(dmName('vg-1', 'lv-a'), TABLE_A);
    } finally {
      delete process.env['DM_UDEV_COOKIE'];
    }
    const [call, ...rest] = await dmsetup.calls();
    expect(rest).toEqual([]);
    expect(call?.args).toEqual(['create', 'vg--1-lv--a']);
    expect(call?.stdin).toBe('0 8192 linear /dev/fakepv0 34816\n8192 8192 linear /dev/fakepv1 2048\n');
    expect(call?.stdin).toBe(formatDmTable(TABLE_A));
    expect(call?.env).toEqual({ LC_ALL: 'C', LANG: 'C', DM_UDEV_COOKIE: 'unset' });
  });

  test('activate with a uuid passes --uuid before the command', async () => {
    await fresh();
    const uuid = 'LVM-AbCdEf0123456789AbCdEf0123456789AbCdEf0123456789AbCdEf01234567';
    await dm.activate(NAME, TABLE_A, { uuid });
    expect((await dmsetup.calls()).map((call) => call.args)).toEqual([['--uuid', uuid, 'create', NAME]]);
    expect(await readFile(join(dmsetup.state, 'devices', NAME, 'uuid'), 'utf8')).toBe(uuid);
  });

  test('reload runs suspend, load with the table on stdin, then resume; only the load gets stdin', async () => {
    await fresh();
    await dm.activate(NAME, TABLE_A);
    await dm.reload(NAME, TABLE_B);
    const calls = (await dmsetup.calls()).slice(1);
    expect(calls.map((call) => call.args)).toEqual([
      ['suspend', NAME],
      ['load', NAME],
      ['resume', NAME],
    ]);
    expect(calls.map((call) => call.stdin)).toEqual(['', formatDmTable(TABLE_B), '']);
    expect(calls.every((call) => call.env['LC_ALL'] === 'C')).toBe(true);
  });

  test('a failing load is followed by clear and resume, then a DmError that keeps dmsetup’s stderr', async () => {
    await fresh();
    await dm.activate(NAME, TABLE_A);
    const stderr = stderrFor('invalid-table', 'load', NAME);
    await dmsetup.failNext('load', stderr);
    const error = await errorOf(dm.reload(NAME, TABLE_B));
    expect(error).toBeInstanceOf(DmError);
    expect(error.code).toBe(DmErrorCode.invalidTable);
    expect(error.message).toContain(`reload ioctl on ${NAME}  failed: Invalid argument`);
    expect(error.data).toMatchObject({ command: 'load', args: ['load', NAME], exitCode: 1, stderr, name: NAME, step: 'load' });
    expect((await dmsetup.calls()).slice(1).map((call) => call.args)).toEqual([
      ['suspend', NAME],
      ['load', NAME],
      ['clear', NAME],
      ['resume', NAME],
    ]);
    expect(await dmsetup.suspended()).toEqual([]);
  });

  test('ENODEV, a device named in the table that cannot be opened, is DM_INVALID_TABLE for create and load (real dm text), not DM_NOT_FOUND', () => {
    for (const command of ['create', 'load'] as const) {
      const error = classifyDmsetupFailure(command, [command, NAME], 1, `device-mapper: ${command === 'load' ? 'reload' : 'create'} ioctl on ${NAME}  failed: No such device\nCommand failed.\n`);
      expect(error.code, command).toBe(DmErrorCode.invalidTable);
    }
    expect(classifyDmsetupFailure('table', ['table', NAME], 1, `device-mapper: table ioctl on ${NAME}  failed: No such device or address\nCommand failed.\n`).code).toBe(DmErrorCode.notFound);
    expect(classifyDmsetupFailure('load', ['load', NAME], 1, NO_KERNEL_DM_STDERR).code).toBe(DmErrorCode.unavailable);
  });

  test('a load refused with "No such device or address" on a device that exists is DM_INVALID_TABLE (a PV in the table is gone)', async () => {
    await fresh();
    await dm.activate(NAME, TABLE_A);
    await dmsetup.failNext('load', `device-mapper: reload ioctl on ${NAME}  failed: No such device or address\nCommand failed.\n`);
    expect((await errorOf(dm.reload(NAME, TABLE_B))).code).toBe(DmErrorCode.invalidTable);
  });

  test('deactivate runs `remove --retry NAME`, and a device that does not exist is success', async () => {
    await fresh();
    await dm.activate(NAME, TABLE_A);
    await dm.deactivate(NAME);
    await dm.deactivate(NAME);
    expect((await dmsetup.calls()).slice(1).map((call) => call.args)).toEqual([
      ['--retry', 'remove', NAME],
      ['--retry', 'remove', NAME],
    ]);
  });

  test('table runs `table NAME` and parses its output, devices kept as major:minor strings', async () => {
    await fresh();
    await dm.activate(NAME, TABLE_A);
    await dmsetup.printNext('table', '0 8192 linear 7:0 34816\n8192 8192 linear 7:0 43008\n');
    expect(await dm.table(NAME)).toEqual([line(0, 8192, '7:0', 34816), line(8192, 8192, '7:0', 43008)]);
    expect((await dmsetup.calls()).at(-1)?.args).toEqual(['table', NAME]);
  });

  test('a table with a target thinlv does not build is DM_OUTPUT_INVALID', async () => {
    await fresh();
    await dm.activate(NAME, TABLE_A);
    await dmsetup.printNext('table', '0 16384 striped 2 128 7:0 2048 7:1 2048\n');
    const error = await errorOf(dm.table(NAME));
    expect(error.code).toBe(DmErrorCode.outputInvalid);
    expect(error.message).toContain('target "striped" is not linear');
  });

  test('exists runs `info NAME`', async () => {
    await fresh();
    expect(await dm.exists(NAME)).toBe(false);
    await dm.activate(NAME, TABLE_A);
    expect(await dm.exists(NAME)).toBe(true);
    expect((await dmsetup.calls()).map((call) => call.args)).toEqual([
      ['info', NAME],
      ['create', NAME],
      ['info', NAME],
    ]);
  });

  test('exists is false when `dmsetup info` prints "Device does not exist." and exits 0', async () => {
    await fresh();
    await dmsetup.printNext('info', 'Device does not exist.\n');
    expect(await dm.exists(NAME)).toBe(false);
  });

  test('a suspend that hangs is DM_TIMEOUT, returns promptly, and is still followed by clear and resume', async () => {
    await fresh({ timeoutMs: 300 });
    await dm.activate(NAME, TABLE_A);
    await dmsetup.hangNext('suspend');
    const started = Date.now();
    const error = await errorOf(dm.reload(NAME, TABLE_B));
    expect(error.code).toBe(DmErrorCode.timeout);
    expect(error.data).toMatchObject({ command: 'suspend', timeoutMs: 300, name: NAME, step: 'suspend' });
    expect(Date.now() - started).toBeLessThan(4_000);
    expect((await dmsetup.calls()).slice(1).map((call) => call.command)).toEqual([`suspend ${NAME}`, `clear ${NAME}`, `resume ${NAME}`]);
    expect(await dm.table(NAME)).toEqual(withDeviceNumbers(TABLE_A, DEVICE_NUMBERS));
  });

  test('a table read that hangs is DM_TIMEOUT with the timeout in its data', async () => {
    await fresh({ timeoutMs: 200 });
    await dmsetup.hangNext('table');
    const error = await errorOf(dm.table(NAME));
    expect(error.code).toBe(DmErrorCode.timeout);
    expect(error.data).toMatchObject({ command: 'table', args: ['table', NAME], timeoutMs: 200 });
  });

  test('a dmsetup binary that does not exist is DM_MISSING, naming the path', async () => {
    const missing = join(scratch, 'no-such-dmsetup');
    const error = await errorOf(createDmsetupDeviceMapper({ dmsetupPath: missing }).exists(NAME));
    expect(error.code).toBe(DmErrorCode.missing);
    expect(error.message).toContain(missing);
  });

  test('on a kernel without device-mapper every operation is DM_UNAVAILABLE, and a reload does not try to resume', async () => {
    await fresh();
    for (const command of ['info', 'create', 'suspend', 'remove', 'table']) await dmsetup.failNext(command, NO_KERNEL_DM_STDERR);
    expect((await errorOf(dm.exists(NAME))).code).toBe(DmErrorCode.unavailable);
    expect((await errorOf(dm.activate(NAME, TABLE_A))).code).toBe(DmErrorCode.unavailable);
    expect((await errorOf(dm.reload(NAME, TABLE_A))).code).toBe(DmErrorCode.unavailable);
    expect((await errorOf(dm.deactivate(NAME))).code).toBe(DmErrorCode.unavailable);
    expect((await errorOf(dm.table(NAME))).code).toBe(DmErrorCode.unavailable);
    expect((await dmsetup.calls()).map((call) => call.args[0])).toEqual(['info', 'create', 'suspend', '--retry', 'table']);
  });

  test('udevSync: false passes --noudevsync before every command', async () => {
    await fresh({ udevSync: false });
    await dm.activate(NAME, TABLE_A, { uuid: 'LVM-x' });
    await dm.reload(NAME, TABLE_B);
    await dm.deactivate(NAME);
    expect((await dmsetup.calls()).map((call) => call.args)).toEqual([
      ['--noudevsync', '--uuid', 'LVM-x', 'create', NAME],
      ['--noudevsync', 'suspend', NAME],
      ['--noudevsync', 'load', NAME],
      ['--noudevsync', 'resume', NAME],
      ['--noudevsync', '--retry', 'remove', NAME],
    ]);
  });

  test(`stderr kept in a DmError is bounded by MAX_DM_STDERR_KEPT_CHARS`, async () => {
    await fresh();
    await dmsetup.failNext('info', `odd failure\n${'x'.repeat(MAX_DM_STDERR_KEPT_CHARS * 3)}\n`);
    const error = await errorOf(dm.exists(NAME));
    expect(error.code).toBe(DmErrorCode.failed);
    expect(error.message).toBe('dmsetup info failed with exit code 1: odd failure');
    expect((error.data['stderr'] as string).length).toBe(MAX_DM_STDERR_KEPT_CHARS);
  });

  test('a runner timeout that is not a positive integer is refused before dmsetup runs', async () => {
    const runner = createDmsetupRunner({ dmsetupPath: dmsetup.path });
    await expect(runner.run('info', [NAME], { timeoutMs: 0 })).rejects.toBeInstanceOf(UsageError);
  });

  test('this host’s own dmsetup answers exists() for a missing device, or says why it cannot', async () => {
    // Read-only: asks about a name nothing uses. Here (no device-mapper in the kernel)
    // that is DM_UNAVAILABLE; on a hypervisor host it is false.
    const probe = await probeDeviceMapper();
    const outcome = await createDmsetupDeviceMapper()
      .exists('thinlv-unit-test-no-such-device')
      .catch((e: unknown) => (e instanceof DmError ? e.code : e));
    if (probe.available) expect(outcome).toBe(false);
    else expect([DmErrorCode.unavailable, DmErrorCode.missing]).toContain(outcome);
  });
});

describe('classifyDmsetupFailure', () => {
  test.each([
    ['a kernel without device-mapper', 'info', NO_KERNEL_DM_STDERR, DmErrorCode.unavailable],
    ['a missing device (table, info)', 'table', 'Device does not exist.\nCommand failed.\n', DmErrorCode.notFound],
    ['a missing device (ioctl)', 'suspend', `device-mapper: suspend ioctl on ${NAME}  failed: No such device or address\n`, DmErrorCode.notFound],
    ['a taken name', 'create', `device-mapper: create ioctl on ${NAME}  failed: Device or resource busy\n`, DmErrorCode.deviceExists],
    ['a device held open', 'remove', `device-mapper: remove ioctl on ${NAME}  failed: Device or resource busy\n`, DmErrorCode.deviceBusy],
    ['a refused table', 'load', `device-mapper: reload ioctl on ${NAME}  failed: Invalid argument\n`, DmErrorCode.invalidTable],
    ['an unreadable table', 'create', 'Invalid format on line 1 of table on stdin.\n', DmErrorCode.invalidTable],
    ['EINVAL at resume: the loaded table refused (seen on real dm)', 'resume', `device-mapper: resume ioctl on ${NAME}  failed: Invalid argument\n`, DmErrorCode.invalidTable],
    ['EINVAL outside a table', 'clear', `device-mapper: clear ioctl on ${NAME}  failed: Invalid argument\n`, DmErrorCode.failed],
  ])('%s is classified by its stderr, quoting the line that says so', (_what, command, stderr, code) => {
    const error = classifyDmsetupFailure(command, [command, NAME], 1, stderr);
    expect(error).toBeInstanceOf(DmError);
    expect(error.code).toBe(code);
    expect(error.message).toContain(`dmsetup ${command}: `);
    expect(error.data).toEqual({ command, args: [command, NAME], exitCode: 1, stderr });
  });

  test('"Device does not exist." on stdout is recognised too', () => {
    expect(classifyDmsetupFailure('info', [], 1, '', 'Device does not exist.\n').code).toBe(DmErrorCode.notFound);
  });

  test('an unknown failure is DM_FAILED named by its first line, or "no message"', () => {
    expect(classifyDmsetupFailure('load', [], 2, '\n  Something new.\nCommand failed.\n').message).toBe(
      'dmsetup load failed with exit code 2: Something new.',
    );
    expect(classifyDmsetupFailure('load', [], undefined, 'Command failed.\n').message).toBe('dmsetup load failed with exit code none: no message');
  });
});

// ---------------------------------------------------------------------------
// The in-memory fake's own behaviour

describe('FakeDeviceMapper', () => {
  test('records every command in order, with the table text of create and load and the code of failures', async () => {
    const fake = new FakeDeviceMapper();
    await fake.activate(NAME, TABLE_A);
    fake.failNext('load', new DmError(DmErrorCode.invalidTable, 'refused'));
    await fake.reload(NAME, TABLE_B).catch(() => undefined);
    await fake.deactivate(NAME);
    expect(fake.operations).toEqual([
      { command: 'create', name: NAME, tableText: formatDmTable(TABLE_A) },
      { command: 'suspend', name: NAME },
      { command: 'load', name: NAME, tableText: formatDmTable(TABLE_B), failedWith: DmErrorCode.invalidTable },
      { command: 'clear', name: NAME },
      { command: 'resume', name: NAME },
      { command: 'remove', name: NAME },
    ]);
    fake.clearOperations();
    expect(fake.operations).toEqual([]);
  });

  test('failNext fails only the next command of that kind', async () => {
    const fake = new FakeDeviceMapper();
    fake.failNext('create');
    expect((await errorOf(fake.activate(NAME, TABLE_A))).code).toBe(DmErrorCode.failed);
    expect(fake.deviceNames()).toEqual([]);
    await fake.activate(NAME, TABLE_A);
    expect(fake.deviceNames()).toEqual([NAME]);
  });

  test('a suspend that took effect before failing (a timeout) is still resumed', async () => {
    const fake = new FakeDeviceMapper();
    await fake.activate(NAME, TABLE_A);
    fake.failNext('suspend', new DmError(DmErrorCode.timeout, 'timed out'), { afterEffect: true });
    expect((await errorOf(fake.reload(NAME, TABLE_B))).code).toBe(DmErrorCode.timeout);
    expect(fake.suspendedDevices()).toEqual([]);
    expect(fake.liveTableText(NAME)).toBe(formatDmTable(TABLE_A));
  });

  test('a load that took effect before failing (a timeout) is dropped, so the old table stays live', async () => {
    const fake = new FakeDeviceMapper();
    await fake.activate(NAME, TABLE_A);
    fake.failNext('load', new DmError(DmErrorCode.timeout, 'timed out'), { afterEffect: true });
    expect((await errorOf(fake.reload(NAME, TABLE_B))).code).toBe(DmErrorCode.timeout);
    expect(fake.liveTableText(NAME)).toBe(formatDmTable(TABLE_A));
    expect(fake.inactiveTableText(NAME)).toBeUndefined();
    expect(fake.suspendedDevices()).toEqual([]);
  });

  test('a failing clear does not stop the resume, and the error says the live table is uncertain', async () => {
    const fake = new FakeDeviceMapper();
    await fake.activate(NAME, TABLE_A);
    fake.failNext('load', new DmError(DmErrorCode.invalidTable, 'refused'));
    fake.failNext('clear');
    const error = await errorOf(fake.reload(NAME, TABLE_B));
    expect(error.code).toBe(DmErrorCode.invalidTable);
    expect(error.message).toContain('its live table may not be the old one');
    expect(error.data['clearFailure']).toMatchObject({ code: DmErrorCode.failed });
    expect(fake.suspendedDevices()).toEqual([]);
  });

  test('without deviceNumbers a table reads back with the device paths it was loaded with', async () => {
    const fake = new FakeDeviceMapper();
    await fake.activate(NAME, TABLE_A, { uuid: 'LVM-abc' });
    expect(await fake.table(NAME)).toEqual(TABLE_A);
    expect(fake.uuidOf(NAME)).toBe('LVM-abc');
  });

  test('with deviceNumbers a table naming an unknown device is refused like the kernel does, and the old table stays', async () => {
    const fake = new FakeDeviceMapper({ deviceNumbers: DEVICE_NUMBERS });
    await fake.activate(NAME, TABLE_A);
    const error = await errorOf(fake.reload(NAME, [line(0, 8192, '/dev/unknown', 0)]));
    expect(error.code).toBe(DmErrorCode.invalidTable);
    expect(fake.suspendedDevices()).toEqual([]);
    expect(fake.liveTableText(NAME)).toBe('0 8192 linear 7:0 34816\n8192 8192 linear 7:1 2048\n');
  });

  test('a uuid already in use cannot be given to a second device', async () => {
    const fake = new FakeDeviceMapper();
    await fake.activate(NAME, TABLE_A, { uuid: 'LVM-abc' });
    expect((await errorOf(fake.activate(OTHER, TABLE_A, { uuid: 'LVM-abc' }))).code).toBe(DmErrorCode.deviceExists);
  });

  // Any sequence of operations, with any one command failing (before or after taking
  // effect): a device is left suspended only by a reload that said so, and a device's
  // live table is the new one after a successful reload and the old one after any other
  // failed reload (the new one may be live only after DM_LEFT_SUSPENDED).
  const TABLES = [TABLE_A, TABLE_B, [line(0, 4096, '/dev/fakepv1', 0)]] as const;
  const operationArbitrary = fc.record({
    kind: fc.constantFrom('activate', 'reload', 'deactivate'),
    device: fc.constantFrom(NAME, OTHER),
    table: fc.integer({ min: 0, max: TABLES.length - 1 }),
    failure: fc.option(
      fc.record({
        command: fc.constantFrom<DmCommand>('create', 'suspend', 'load', 'resume', 'remove'),
        afterEffect: fc.boolean(),
      }),
      { freq: 2 },
    ),
  });

  test.prop([fc.array(operationArbitrary, { maxLength: 40 })], { numRuns: 300 })(
    'no device is left suspended unless a reload reported DM_LEFT_SUSPENDED, and live tables follow the reloads',
    async (operations) => {
      const fake = new FakeDeviceMapper();
      const reportedSuspended = new Set<string>();
      const indexOf = (text: string | undefined): number | undefined =>
        text === undefined ? undefined : TABLES.findIndex((table) => formatDmTable(table) === text);
      for (const operation of operations) {
        const { device, failure } = operation;
        const table = TABLES[operation.table] ?? TABLE_A;
        const before = indexOf(fake.liveTableText(device));
        const otherSuspended = fake.suspendedDevices().filter((name) => name !== device);
        fake.clearFailures();
        if (failure) fake.failNext(failure.command, undefined, { afterEffect: failure.afterEffect });
        const run =
          operation.kind === 'activate'
            ? fake.activate(device, table)
            : operation.kind === 'reload'
              ? fake.reload(device, table)
              : fake.deactivate(device);
        const code = await run.then(
          () => undefined,
          (e: unknown) => (e as DmError).code,
        );
        const after = indexOf(fake.liveTableText(device));
        const ctx = JSON.stringify({ operation, code, before, after });

        expect(code === undefined || code.startsWith('DM_'), ctx).toBe(true);
        // A reload ends with the device resumed unless it says otherwise; whatever was left
        // suspended was reported, and stays so until a reload succeeds or the device goes.
        if (operation.kind === 'reload' && code !== DmErrorCode.leftSuspended) expect(fake.isSuspended(device), ctx).toBe(false);
        if (code === DmErrorCode.leftSuspended) reportedSuspended.add(device);
        else if (code === undefined && operation.kind !== 'activate') reportedSuspended.delete(device);
        expect(fake.suspendedDevices().filter((name) => !reportedSuspended.has(name)), ctx).toEqual([]);
        expect(fake.suspendedDevices().filter((name) => name !== device), ctx).toEqual(otherSuspended);
        const tookEffect = failure?.afterEffect === true;
        if (operation.kind === 'reload') {
          if (code === undefined) expect(after, ctx).toBe(operation.table);
          else if (before === undefined) expect(after, ctx).toBeUndefined();
          else if (code === DmErrorCode.leftSuspended) expect([before, operation.table], ctx).toContain(after);
          else expect(after, ctx).toBe(before);
        } else if (operation.kind === 'activate') {
          if (code === undefined) expect(after, ctx).toBe(operation.table);
          else if (!tookEffect || before !== undefined) expect(after, ctx).toBe(before);
        } else {
          if (code === undefined) expect(after, ctx).toBeUndefined();
          else if (!tookEffect) expect(after, ctx).toBe(before);
        }
      }
    },
  );
});

// ---------------------------------------------------------------------------
// Pure helpers

describe('dmName', () => {
  test.each([
    ['vg-1', 'lv-a', 'vg--1-lv--a'],
    ['vg', 'lv', 'vg-lv'],
    ['a--b', 'c', 'a----b-c'],
    ['vg-', 'lv', 'vg---lv'],
    ['VG_0.x+', 'thinlv_host1_free', 'VG_0.x+-thinlv_host1_free'],
  ])('%s/%s is named %s, as LVM names it', (vg, lv, name) => {
    expect(dmName(vg, lv)).toBe(name);
  });

  test.each([
    ['', 'lv'],
    ['vg', ''],
    ['vg', '-lv'],
    ['vg/x', 'lv'],
    ['vg', 'lv x'],
    ['vg', '..'],
  ])('an invalid VG or LV name (%j/%j) is refused', (vg, lv) => {
    expect(() => dmName(vg, lv)).toThrow(UsageError);
  });

  test('a name longer than the kernel allows is refused, naming the length', () => {
    expect(() => dmName('v'.repeat(64), 'l'.repeat(63))).toThrow(/128 characters, more than the kernel's 127/);
    expect(dmName('v'.repeat(63), 'l'.repeat(63))).toHaveLength(127);
  });

  // The name splits back: left to right, "--" is a '-' inside a name and a single '-'
  // ends the VG name (an LV name never starts with '-').
  const splitDmName = (name: string): [string, string] => {
    let vg = '';
    for (let i = 0; i < name.length; i += 1) {
      if (name[i] === '-' && name[i + 1] === '-') {
        vg += '-';
        i += 1;
      } else if (name[i] === '-') {
        return [vg, name.slice(i + 1).replaceAll('--', '-')];
      } else vg += name[i];
    }
    throw new Error(`no separator in ${name}`);
  };
  const lvmName = fc.stringMatching(/^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,20}$/).filter((n) => n !== '.' && n !== '..');
  test.prop([lvmName, lvmName.filter((n) => !n.startsWith('snapshot') && !n.startsWith('pvmove') && !/_[a-z]+(data|meta|orig|pool|vol|image|log|spare|origin)/.test(n))])(
    'the dm name of two valid names splits back into them',
    (vg, lv) => {
      expect(splitDmName(dmName(vg, lv))).toEqual([vg, lv]);
    },
  );
});

describe('parseDmTable', () => {
  test('reads dmsetup table output into lines, devices as major:minor strings', () => {
    expect(parseDmTable('0 8192 linear 7:0 34816\n8192 8192 linear 7:0 43008\n')).toEqual([
      line(0, 8192, '7:0', 34816),
      line(8192, 8192, '7:0', 43008),
    ]);
  });

  test('a device without a live table prints nothing: no lines', () => {
    expect(parseDmTable('')).toEqual([]);
  });

  test('round-trips formatDmTable', () => {
    expect(parseDmTable(formatDmTable(TABLE_B))).toEqual(TABLE_B);
  });

  test.each([
    ['a line with a field missing', '0 8192 linear 7:0\n'],
    ['a line with an extra field', '0 8192 linear 7:0 0 9\n'],
    ['a gap between lines', '0 8192 linear 7:0 0\n16384 8192 linear 7:0 0\n'],
    ['a table that does not start at 0', '8 8192 linear 7:0 0\n'],
    ['a zero length', '0 0 linear 7:0 0\n'],
    ['a negative offset', '0 8 linear 7:0 -8\n'],
    ['a sector past 2^53', '0 8 linear 7:0 9007199254740993\n'],
    ['another target', '0 8 error\n'],
  ])('%s is DM_OUTPUT_INVALID', (_what, text) => {
    expect(() => parseDmTable(text, NAME)).toThrow(DmError);
    try {
      parseDmTable(text, NAME);
    } catch (error) {
      expect((error as DmError).code).toBe(DmErrorCode.outputInvalid);
      expect((error as DmError).message).toContain(`the table of ${NAME}, line`);
    }
  });
});

describe('dmTableDifference', () => {
  const live = [line(0, 8192, '7:0', 34816), line(8192, 8192, '7:1', 2048)];

  test('a table of paths equals the kernel’s table of major:minor through the map', () => {
    expect(dmTableDifference(TABLE_A, live, DEVICE_NUMBERS)).toBeUndefined();
    expect(dmTablesEqual(TABLE_A, live, DEVICE_NUMBERS)).toBe(true);
    expect(dmTablesEqual(live, live)).toBe(true);
  });

  test('major:minor is compared by value ("007:000" is 7:0)', () => {
    expect(dmTablesEqual([line(0, 8192, '007:000', 34816)], [line(0, 8192, '7:0', 34816)])).toBe(true);
  });

  test('a different offset, length or device is a difference naming the line', () => {
    expect(dmTableDifference(TABLE_A, [live[0] as DmTableLine, line(8192, 8192, '7:1', 4096)], DEVICE_NUMBERS)).toBe(
      'line 1: expected "8192 8192 linear /dev/fakepv1 2048", got "8192 8192 linear 7:1 4096"',
    );
    expect(dmTablesEqual(TABLE_A, [live[0] as DmTableLine, line(8192, 8192, '7:0', 2048)], DEVICE_NUMBERS)).toBe(false);
    expect(dmTablesEqual(TABLE_A, [live[0] as DmTableLine, line(8192, 4096, '7:1', 2048)], DEVICE_NUMBERS)).toBe(false);
  });

  test('a missing or extra line is a difference', () => {
    expect(dmTableDifference(TABLE_B, live, DEVICE_NUMBERS)).toBe('line 2: expected "16384 8192 linear /dev/fakepv0 43008", got no line');
    expect(dmTableDifference([], live, DEVICE_NUMBERS)).toBe('line 0: expected no line, got "0 8192 linear 7:0 34816"');
  });

  test('a path the map lacks is a UsageError, not a difference', () => {
    expect(() => dmTableDifference(TABLE_A, live, new Map())).toThrow(UsageError);
    expect(() => dmTableDifference(TABLE_A, live, new Map([['/dev/fakepv0', 'sdb']]))).toThrow(/not major:minor/);
  });
});

describe('deviceNumberOf', () => {
  test('/dev/null is 1:3', () => {
    expect(deviceNumberOf('/dev/null')).toBe('1:3');
  });

  test.skipIf(!existsSync('/dev/loop0') || !statSync('/dev/loop0').isBlockDevice())('/dev/loop0 is 7:0', () => {
    expect(deviceNumberOf('/dev/loop0')).toBe('7:0');
    expect(deviceNumbersOf(['/dev/null', '/dev/loop0'])).toEqual(new Map([['/dev/null', '1:3'], ['/dev/loop0', '7:0']]));
  });

  test('a table built on /dev/null compares equal to the kernel’s form of it', () => {
    const table = [line(0, 8, '/dev/null', 0)];
    expect(dmTablesEqual(table, [line(0, 8, '1:3', 0)], deviceNumbersOf(['/dev/null']))).toBe(true);
  });

  test('a regular file or a missing path is a UsageError', async () => {
    const file = join(scratch, 'regular-file');
    await writeFile(file, 'not a device');
    expect(() => deviceNumberOf(file)).toThrow(UsageError);
    expect(() => deviceNumberOf(file)).toThrow(/not a device node/);
    expect(() => deviceNumberOf(join(tmpdir(), 'thinlv-no-such-device'))).toThrow(/cannot stat device/);
  });

  // glibc's makedev, to build rdev values past 2^32.
  const makedev = (major: bigint, minor: bigint): bigint =>
    ((major & 0xfffn) << 8n) | ((major & ~0xfffn) << 32n) | (minor & 0xffn) | ((minor & ~0xffn) << 12n);

  test.prop([fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff })])(
    'major and minor come back from rdev for every 32-bit pair, past 2^32 included',
    (major, minor) => {
      expect(deviceNumberFromRdev(makedev(BigInt(major), BigInt(minor)))).toBe(`${major}:${minor}`);
    },
  );

  test('a large device number (259:65536) decodes exactly', () => {
    expect(deviceNumberFromRdev(makedev(259n, 65536n))).toBe('259:65536');
  });
});
