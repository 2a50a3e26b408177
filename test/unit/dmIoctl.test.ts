// The device-mapper ioctl path as far as it runs without device-mapper: the byte layout
// of struct dm_ioctl and its payloads (checked against the kernel header through the
// addon, when it is built), the errno classes against dmsetup's classifier, the runner's
// bounds over a scripted addon, and the choice between ioctls and dmsetup. The real
// ioctls against real dm are the rig's smoke run (test/rig/guest/dmSmoke.ts).

import { closeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fc, test as propertyTest } from '@fast-check/vitest';
import { describe, expect, test } from 'vitest';

import { formatDmTable, type DmTableLine } from '../../src/extent/dmTable.js';
import { DmIoctlRunner, findDmAddon, ioctlCommands, openDmIoctl, MAX_DM_IOCTLS_IN_FLIGHT, type DmIoctl, type DmNativeAddon } from '../../src/dm/dmIoctl.js';
import {
  decodeDmIoctl,
  decodeTableStatus,
  dmErrorCodeOfErrno,
  dmRequestNumber,
  DmFlag,
  encodeDmIoctl,
  encodeTableLoad,
  layoutMismatch,
  parseTableText,
  DM_IOCTL_BYTES,
  DM_TARGET_SPEC_BYTES,
  type DmIoctlCommand,
  type DmNativeLayout,
  type DmTarget,
} from '../../src/dm/dmIoctlCodec.js';
import { classifyDmsetupFailure, DmErrorCode } from '../../src/dm/dmsetup.js';
import { selectDeviceMapper } from '../../src/dm/selectDeviceMapper.js';

/** The request numbers <linux/dm-ioctl.h> gives on x86-64 (printed by the addon's layout). */
const HEADER_REQUESTS = {
  version: 0xc138fd00,
  create: 0xc138fd03,
  remove: 0xc138fd04,
  suspend: 0xc138fd06,
  status: 0xc138fd07,
  load: 0xc138fd09,
  clear: 0xc138fd0a,
  tableStatus: 0xc138fd0c,
};

const HEADER_LAYOUT: DmNativeLayout = {
  ioctlBytes: 312,
  targetSpecBytes: 40,
  nameOffset: 48,
  uuidOffset: 176,
  devOffset: 40,
  flagsOffset: 28,
  nameBytes: 128,
  uuidBytes: 129,
  versionMajor: 4,
  requests: HEADER_REQUESTS,
};

/** What the kernel's populate_table() reads from a DM_TABLE_LOAD buffer (`next` from each spec). */
function kernelReadsTableLoad(buffer: Buffer): DmTarget[] {
  const header = decodeDmIoctl(buffer);
  expect(header.dataSize).toBe(buffer.length);
  const targets: DmTarget[] = [];
  let offset = header.dataStart;
  for (let index = 0; index < header.targetCount; index += 1) {
    expect(offset % 8).toBe(0);
    const typeEnd = buffer.indexOf(0, offset + 24);
    const parametersEnd = buffer.indexOf(0, offset + DM_TARGET_SPEC_BYTES);
    expect(parametersEnd).toBeLessThan(header.dataSize);
    targets.push({
      startSector: buffer.readBigUInt64LE(offset),
      lengthSectors: buffer.readBigUInt64LE(offset + 8),
      targetType: buffer.toString('utf8', offset + 24, typeEnd),
      parameters: buffer.toString('utf8', offset + DM_TARGET_SPEC_BYTES, parametersEnd),
    });
    offset += buffer.readUInt32LE(offset + 20);
  }
  return targets;
}

/** A DM_TABLE_STATUS reply as the kernel's retrieve_status() writes it (`next` from the payload's start). */
function kernelWritesTableStatus(request: Buffer, targets: readonly DmTarget[]): void {
  const dataStart = decodeDmIoctl(request).dataStart;
  let offset = dataStart;
  for (const target of targets) {
    const parameters = Buffer.from(`${target.parameters}\0`);
    if (offset + DM_TARGET_SPEC_BYTES + parameters.length > request.length) {
      request.writeUInt32LE(request.readUInt32LE(28) | DmFlag.bufferFull, 28);
      return;
    }
    const specOffset = offset;
    request.writeBigUInt64LE(target.startSector, specOffset);
    request.writeBigUInt64LE(target.lengthSectors, specOffset + 8);
    request.write(`${target.targetType}\0`, specOffset + 24);
    parameters.copy(request, specOffset + DM_TARGET_SPEC_BYTES);
    const used = specOffset + DM_TARGET_SPEC_BYTES + parameters.length;
    offset = (used + 7) & ~7;
    request.writeUInt32LE(offset - dataStart, specOffset + 20);
    request.writeUInt32LE(used, 12);
  }
  request.writeUInt32LE(targets.length, 20);
}

const tableLines = fc
  .array(fc.record({ lengthSectors: fc.integer({ min: 1, max: 2 ** 40 }), offsetSector: fc.integer({ min: 0, max: 2 ** 45 }), device: fc.constantFrom('/dev/sdb', '8:16', '254:0', '/dev/disk/by-id/wwn-0x5000c500a1b2c3d4') }), { minLength: 1, maxLength: 40 })
  .map((parts) => {
    let start = 0;
    return parts.map(({ lengthSectors, offsetSector, device }): DmTableLine => {
      const line: DmTableLine = { startSector: start, lengthSectors, targetType: 'linear', devicePath: device, offsetSector };
      start += lengthSectors;
      return line;
    });
  });

describe('struct dm_ioctl encoding', () => {
  test('request numbers are _IOWR(0xfd, nr, struct dm_ioctl) as the header computes them', () => {
    for (const [name, value] of Object.entries(HEADER_REQUESTS)) expect(dmRequestNumber(name as keyof typeof HEADER_REQUESTS), name).toBe(value);
    expect(layoutMismatch(HEADER_LAYOUT)).toBeUndefined();
  });

  test('a layout that differs from the header is named, field by field', () => {
    expect(layoutMismatch({ ...HEADER_LAYOUT, ioctlBytes: 316, requests: { ...HEADER_REQUESTS, load: 1 } })).toBe(
      'sizeof(struct dm_ioctl): 312 here, 316 in the header; request load: 3241737481 here, 1 in the header',
    );
  });

  test('the header carries version 4, data size and start, flags and the NUL-terminated name', () => {
    const buffer = encodeDmIoctl({ name: 'vg--1-lv', flags: DmFlag.suspend }, 400);
    expect(buffer.length).toBe(400);
    expect(decodeDmIoctl(buffer)).toMatchObject({ version: [4, 0, 0], dataSize: 400, dataStart: DM_IOCTL_BYTES, targetCount: 0, flags: DmFlag.suspend, name: 'vg--1-lv' });
    expect(buffer[48 + 'vg--1-lv'.length]).toBe(0);
  });

  test('a name of 128 bytes or more, or one with a NUL, is refused before any ioctl', () => {
    expect(() => encodeDmIoctl({ name: 'x'.repeat(127) })).not.toThrow();
    expect(() => encodeDmIoctl({ name: 'x'.repeat(128) })).toThrow(RangeError);
    expect(() => encodeDmIoctl({ name: 'a\0b' })).toThrow(RangeError);
    expect(() => encodeDmIoctl({ name: 'a' }, DM_IOCTL_BYTES - 1)).toThrow(RangeError);
  });

  propertyTest.prop([tableLines])('a table load buffer holds exactly the lines dmsetup would load, 8-byte aligned', (lines) => {
    const text = formatDmTable(lines);
    const targets = parseTableText(text);
    const buffer = encodeTableLoad('vg-lv', targets);
    expect(buffer.length % 8).toBe(0);
    const read = kernelReadsTableLoad(buffer);
    expect(read.map((t) => `${t.startSector} ${t.lengthSectors} ${t.targetType} ${t.parameters}\n`).join('')).toBe(text);
  });

  propertyTest.prop([tableLines])('a table status reply reads back as `dmsetup table` prints it', (lines) => {
    const text = formatDmTable(lines);
    const targets = parseTableText(text);
    let bytes = 512;
    let decoded: string | undefined;
    // As ioctlCommands.table does: a larger buffer while the kernel says it is full.
    for (; decoded === undefined; bytes *= 2) {
      const request = encodeDmIoctl({ name: 'vg-lv', flags: DmFlag.statusTable }, bytes);
      kernelWritesTableStatus(request, targets);
      decoded = decodeTableStatus(request);
    }
    expect(decoded).toBe(text);
  });

  test('table text is read as libdevmapper reads it: blank lines and comments skipped, bad lines refused', () => {
    expect(parseTableText('# a comment\n\n0 8 linear 8:16 2048  \n8 8 error\n')).toEqual([
      { startSector: 0n, lengthSectors: 8n, targetType: 'linear', parameters: '8:16 2048' },
      { startSector: 8n, lengthSectors: 8n, targetType: 'error', parameters: '' },
    ]);
    for (const bad of ['0 x linear 8:16 0', 'linear', '0 8', `0 8 ${'t'.repeat(16)} x`, '0 18446744073709551616 linear 8:16 0']) {
      expect(() => parseTableText(`${bad}\n`), bad).toThrow(expect.objectContaining({ code: DmErrorCode.invalidTable }));
    }
  });
});

describe('errno classes', () => {
  const strerror: Record<number, string> = { 2: 'No such file or directory', 5: 'Input/output error', 6: 'No such device or address', 16: 'Device or resource busy', 19: 'No such device', 22: 'Invalid argument' };
  const commands: DmIoctlCommand[] = ['version', 'create', 'suspend', 'load', 'clear', 'resume', 'remove', 'table', 'info'];

  test('each errno gets the code dmsetup\'s classifier gives its strerror text, for every command', () => {
    for (const command of commands) {
      for (const [errno, text] of Object.entries(strerror)) {
        const viaDmsetup = classifyDmsetupFailure(command, [command, 'vg-lv'], 1, `device-mapper: ${command} ioctl on vg-lv  failed: ${text}\nCommand failed.\n`).code;
        expect(dmErrorCodeOfErrno(command, Number(errno)), `${command} errno ${errno}`).toBe(viaDmsetup);
      }
    }
  });
});

interface ScriptedCall {
  readonly request: number;
  readonly name: string;
  settle(errno: number): void;
}

/** An addon whose ioctls settle when the test says so. */
function scriptedAddon(): { addon: DmNativeAddon; calls: ScriptedCall[] } {
  const calls: ScriptedCall[] = [];
  const addon: DmNativeAddon = {
    openControl: () => 99,
    ioctlSync: () => 0,
    layout: HEADER_LAYOUT,
    ioctl: (_fd, request, buffer) =>
      new Promise<number>((resolve) => {
        calls.push({ request, name: decodeDmIoctl(buffer).name, settle: resolve });
      }),
  };
  return { addon, calls };
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('DmIoctlRunner', () => {
  const dmIoctlOf = (addon: DmNativeAddon): DmIoctl => ({ addon, controlFd: 99, driverVersion: '4.47.0', addonPath: '(scripted)' });

  test('a failed ioctl is a DmError with the class of its errno', async () => {
    const { addon, calls } = scriptedAddon();
    const commands = ioctlCommands(new DmIoctlRunner(dmIoctlOf(addon)), { create: async () => {}, remove: async () => {} });
    const pending = commands.suspend('vg-lv', {});
    await flush();
    expect(calls[0]).toMatchObject({ request: dmRequestNumber('suspend'), name: 'vg-lv' });
    calls[0]!.settle(6);
    await expect(pending).rejects.toMatchObject({ code: DmErrorCode.notFound, data: { command: 'suspend', name: 'vg-lv', errno: 6 } });
  });

  test(`at most ${MAX_DM_IOCTLS_IN_FLIGHT} ioctls are in flight; the next waits for a slot`, async () => {
    const { addon, calls } = scriptedAddon();
    const runner = new DmIoctlRunner(dmIoctlOf(addon));
    const commands = ioctlCommands(runner, { create: async () => {}, remove: async () => {} });
    const pending = ['a', 'b', 'c'].map((name) => commands.resume(name, {}));
    await flush();
    expect(calls.map((call) => call.name)).toEqual(['a', 'b']);
    calls[0]!.settle(0);
    await flush();
    await flush();
    expect(calls.map((call) => call.name)).toEqual(['a', 'b', 'c']);
    calls[1]!.settle(0);
    calls[2]!.settle(0);
    await Promise.all(pending);
  });

  test('a timed-out ioctl keeps its device: the next command on it waits until the kernel returned', async () => {
    const { addon, calls } = scriptedAddon();
    const commands = ioctlCommands(new DmIoctlRunner(dmIoctlOf(addon)), { create: async () => {}, remove: async () => {} });
    const load = commands.load('vg-lv', '0 8 linear 8:16 0\n', { timeoutMs: 20 });
    await expect(load).rejects.toMatchObject({ code: DmErrorCode.timeout });
    const clear = commands.clear('vg-lv', { timeoutMs: 5_000 });
    await new Promise((resolve) => setTimeout(resolve, 30));
    // The clear has not been issued: the load may still land, and must land first.
    expect(calls.map((call) => call.request)).toEqual([dmRequestNumber('load')]);
    calls[0]!.settle(0);
    await flush();
    await flush();
    expect(calls.map((call) => call.request)).toEqual([dmRequestNumber('load'), dmRequestNumber('clear')]);
    calls[1]!.settle(0);
    await clear;
  });

  test('a command cancelled before its ioctl is issued issues none', async () => {
    const { addon, calls } = scriptedAddon();
    const commands = ioctlCommands(new DmIoctlRunner(dmIoctlOf(addon)), { create: async () => {}, remove: async () => {} });
    const controller = new AbortController();
    controller.abort();
    await expect(commands.suspend('vg-lv', { signal: controller.signal })).rejects.toMatchObject({ code: DmErrorCode.failed, data: { cancelled: true } });
    expect(calls).toEqual([]);
  });

  test('create and remove go to dmsetup, with the table text unchanged', async () => {
    const { addon, calls } = scriptedAddon();
    const seen: string[] = [];
    const commands = ioctlCommands(new DmIoctlRunner(dmIoctlOf(addon)), {
      create: async (name, text) => void seen.push(`create ${name} ${text}`),
      remove: async (name) => void seen.push(`remove ${name}`),
    });
    await commands.create('vg-lv', '0 8 linear 8:16 0\n', {});
    await commands.remove('vg-lv', {});
    expect(seen).toEqual(['create vg-lv 0 8 linear 8:16 0\n', 'remove vg-lv']);
    expect(calls).toEqual([]);
  });
});

describe('selectDeviceMapper', () => {
  test('THINLV_DM_BACKEND=dmsetup chooses dmsetup without trying the ioctls', () => {
    let tried = false;
    const selected = selectDeviceMapper({ openIoctl: () => ((tried = true), { ok: false, reason: 'x' }) }, { THINLV_DM_BACKEND: 'dmsetup' });
    expect(selected.backend).toBe('dmsetup');
    expect(tried).toBe(false);
  });

  test('ioctls that cannot be used fall back to dmsetup, saying why', () => {
    const selected = selectDeviceMapper({ openIoctl: () => ({ ok: false, reason: 'cannot open /dev/mapper/control: No such device' }) }, {});
    expect(selected).toMatchObject({ backend: 'dmsetup', detail: expect.stringContaining('No such device') });
  });

  test('ioctls that can be used are chosen; required ioctls that cannot be are an error', () => {
    const { addon } = scriptedAddon();
    const dmIoctl: DmIoctl = { addon, controlFd: 99, driverVersion: '4.47.0', addonPath: '/x/dmIoctl.node' };
    expect(selectDeviceMapper({ openIoctl: () => ({ ok: true, dmIoctl }) }, {})).toMatchObject({ backend: 'ioctl', detail: expect.stringContaining('4.47.0') });
    expect(() => selectDeviceMapper({ openIoctl: () => ({ ok: false, reason: 'none' }) }, { THINLV_DM_BACKEND: 'ioctl' })).toThrow(expect.objectContaining({ code: DmErrorCode.unavailable }));
    expect(() => selectDeviceMapper({}, { THINLV_DM_BACKEND: 'libdm' })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});

// The addon itself, when the install built it (it needs a C compiler and Node's headers).
const addonPath = findDmAddon();
describe.skipIf(addonPath === undefined)('the built addon', () => {
  const addon = (): DmNativeAddon => createRequire(import.meta.url)(addonPath!) as DmNativeAddon;

  test('its layout, from <linux/dm-ioctl.h>, is the codec\'s', () => {
    expect(layoutMismatch(addon().layout)).toBeUndefined();
  });

  test('an ioctl on a file that is not the control device returns ENOTTY; a short buffer is refused before the ioctl', async () => {
    const fd = addon().openControl('/dev/null');
    try {
      expect(await addon().ioctl(fd, dmRequestNumber('version'), encodeDmIoctl({ name: '' }))).toBe(25);
      expect(addon().ioctlSync(fd, dmRequestNumber('version'), encodeDmIoctl({ name: '' }))).toBe(25);
      const lying = encodeDmIoctl({ name: '' }, 400);
      lying.writeUInt32LE(4096, 12); // data_size beyond the buffer: the kernel would write past it
      expect(() => addon().ioctl(fd, dmRequestNumber('version'), lying)).toThrow(RangeError);
      expect(() => addon().ioctlSync(fd, dmRequestNumber('version'), Buffer.alloc(100))).toThrow(RangeError);
    } finally {
      closeSync(fd);
    }
  });

  test('openDmIoctl answers "not usable" with the reason on a control node that is not device-mapper', () => {
    const opened = openDmIoctl(addonPath, '/dev/null');
    expect(opened).toMatchObject({ ok: false, reason: expect.stringContaining('DM_VERSION') });
  });
});
