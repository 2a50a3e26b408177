// `thinlv lvextend -l` against a daemon on a socket: one request naming extents, and the
// way back to the old two (status for the extent size, then bytes) when a daemon started
// before the extent forms refuses them. The daemons here are raw sockets speaking the
// protocol's lines, so the old daemon's refusal is the one its parser gave.

import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { runLvextend } from '../../src/cli/commands/lvextend.js';
import type { GlobalOptions } from '../../src/cli/context.js';

const EXTENT_BYTES = 4 * 1024 ** 2;

/** A daemon that answers each request line with `answer(request)`, and keeps what it was sent. */
function fakeDaemon(path: string, answer: (request: Record<string, unknown>) => Record<string, unknown>): Promise<{ server: Server; seen: Record<string, unknown>[] }> {
  const seen: Record<string, unknown>[] = [];
  const server = createServer((socket) => {
    let pending = '';
    socket.on('data', (chunk) => {
      pending += chunk.toString('utf8');
      for (let end = pending.indexOf('\n'); end >= 0; end = pending.indexOf('\n')) {
        const request = JSON.parse(pending.slice(0, end)) as Record<string, unknown>;
        pending = pending.slice(end + 1);
        seen.push(request);
        socket.write(`${JSON.stringify({ v: 1, id: request['id'], ...answer(request) })}\n`);
      }
    });
  });
  return new Promise((resolve) => server.listen(path, () => resolve({ server, seen })));
}

const extendResult = (lv: unknown, extentsAfter: number, granted: number) => ({ ok: true, result: { lv, extentsGranted: granted, sizeBytes: extentsAfter * EXTENT_BYTES, extentSizeBytes: EXTENT_BYTES } });
const statusResult = { ok: true, result: { vg: 'vg0', host: 'h1', poolExtentCount: 10, lowWaterExtents: 2, unreplayedRecordCount: 0, lastGrantGeneration: 1, deviceMapperPresent: false, extentSizeBytes: EXTENT_BYTES, activeLvs: [] } };
const context = { options: { json: false } as GlobalOptions };

describe('thinlv lvextend -l through the host daemon', () => {
  let dir: string;
  let server: Server | undefined;
  let printed: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'thinlv-lvextend-client-'));
    printed = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      printed += String(chunk);
      return true;
    });
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await new Promise((resolve) => (server === undefined ? resolve(undefined) : server.close(resolve)));
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  test('-l +N and -l N are one request each, in extents', async () => {
    const socket = join(dir, 'new.sock');
    const daemon = await fakeDaemon(socket, (request) => extendResult(request['lv'], 5, 1));
    server = daemon.server;
    expect(await runLvextend(context, { path: 'vg0/disk0', extents: '+1', size: undefined, socket })).toBe(0);
    expect(await runLvextend(context, { path: 'vg0/disk0', extents: '5', size: undefined, socket })).toBe(0);
    expect(daemon.seen.map(({ id: _id, ...rest }) => rest)).toEqual([
      { v: 1, op: 'extend', vg: 'vg0', lv: 'disk0', incrementExtents: 1 },
      { v: 1, op: 'extend', vg: 'vg0', lv: 'disk0', sizeExtents: 5 },
    ]);
    expect(printed).toContain('changed from 16.00 MiB (4 extents) to 20.00 MiB (5 extents)');
  });

  test('a daemon that refuses the extent forms is asked its extent size, then sent bytes', async () => {
    const socket = join(dir, 'old.sock');
    const daemon = await fakeDaemon(socket, (request) => {
      const extentField = ['incrementExtents', 'sizeExtents'].find((name) => name in request);
      if (extentField !== undefined) return { ok: false, error: { code: 'BAD_REQUEST', message: `unknown field "${extentField}" for op extend`, data: { field: extentField } } };
      if (request['op'] === 'status') return statusResult;
      return extendResult(request['lv'], 7, 3);
    });
    server = daemon.server;
    expect(await runLvextend(context, { path: 'vg0/disk0', extents: '+3', size: undefined, socket })).toBe(0);
    expect(await runLvextend(context, { path: 'vg0/disk0', extents: '7', size: undefined, socket })).toBe(0);
    const asked = daemon.seen.map((request) => ['op', 'incrementExtents', 'sizeExtents', 'incrementBytes', 'sizeBytes'].filter((key) => key in request).map((key) => `${key}=${String(request[key])}`).join(' '));
    expect(asked).toEqual([
      'op=extend incrementExtents=3',
      'op=status',
      `op=extend incrementBytes=${3 * EXTENT_BYTES}`,
      'op=extend sizeExtents=7',
      'op=status',
      `op=extend sizeBytes=${7 * EXTENT_BYTES}`,
    ]);
  });

  test('any other refusal is the answer: no second request', async () => {
    const socket = join(dir, 'full.sock');
    const daemon = await fakeDaemon(socket, () => ({ ok: false, error: { code: 'OUT_OF_SPACE', message: 'pool empty' } }));
    server = daemon.server;
    await expect(runLvextend(context, { path: 'vg0/disk0', extents: '+1', size: undefined, socket })).rejects.toMatchObject({ code: 'OUT_OF_SPACE' });
    expect(daemon.seen).toHaveLength(1);
  });

  test('-l with no positive whole number is refused before any request', async () => {
    const socket = join(dir, 'unused.sock');
    for (const extents of ['0', '+0', '-1', '1.5', 'x', `${2 ** 53}`]) {
      await expect(runLvextend(context, { path: 'vg0/disk0', extents, size: undefined, socket })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
  });
});
