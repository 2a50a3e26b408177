import { fc } from '@fast-check/vitest';
import { mkdtempSync, rmSync, statSync, writeFileSync, readFileSync, linkSync, existsSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';

import { ThinlvError } from '../../src/errors.js';
import { extendAmountOf, formatRequest, MAX_LINE_BYTES, type Request, type Result, type StatusResult } from '../../src/host/protocol.js';
import {
  requestOnce,
  startSocketServer,
  type RequestHandler,
  type SocketServer,
  type SocketServerLimits,
  type SocketServerLog,
} from '../../src/host/socketServer.js';

// ---- Helpers ----------------------------------------------------------------------------

interface WireReply {
  v: number;
  id: string | null;
  ok: boolean;
  result?: Record<string, unknown>;
  error?: { code: string; message: string; data?: Record<string, unknown> };
}

const STATUS: StatusResult = {
  vg: 'vg1',
  host: 'host1',
  poolExtentCount: 40,
  lowWaterExtents: 16,
  unreplayedRecordCount: 3,
  lastGrantGeneration: 9,
  deviceMapperPresent: false,
  extentSizeBytes: 4096,
};

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually(condition: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** A test client that reads newline-separated JSON replies. */
class LineClient {
  private buffer = '';
  private readonly lines: string[] = [];
  private wake: (() => void) | undefined;
  isClosed = false;

  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      for (let newline = this.buffer.indexOf('\n'); newline >= 0; newline = this.buffer.indexOf('\n')) {
        this.lines.push(this.buffer.slice(0, newline));
        this.buffer = this.buffer.slice(newline + 1);
      }
      this.wake?.();
    });
    socket.on('close', () => {
      this.isClosed = true;
      this.wake?.();
    });
    socket.on('error', () => undefined);
  }

  static open(path: string): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      socket.once('connect', () => resolve(new LineClient(socket)));
      socket.once('error', reject);
    });
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  request(request: Request): void {
    this.send(formatRequest(request));
  }

  private async waitFor(condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what} (have ${this.lines.length} lines, closed=${this.isClosed})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  async replies(count: number, timeoutMs = 3000): Promise<WireReply[]> {
    await this.waitFor(() => this.lines.length >= count || this.isClosed, `${count} replies`, timeoutMs);
    if (this.lines.length < count) throw new Error(`connection closed after ${this.lines.length} of ${count} replies`);
    return this.lines.splice(0, count).map((text) => JSON.parse(text) as WireReply);
  }

  async reply(timeoutMs = 3000): Promise<WireReply> {
    const [first] = await this.replies(1, timeoutMs);
    if (first === undefined) throw new Error('no reply');
    return first;
  }

  async closed(timeoutMs = 3000): Promise<void> {
    await this.waitFor(() => this.isClosed, 'the server to close the connection', timeoutMs);
  }

  get unreadLineCount(): number {
    return this.lines.length;
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

interface LogEntry {
  level: string;
  fields: object;
  message: string;
}

function captureLog(): SocketServerLog & { entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const at = (level: string) => (fields: object, message: string) => void entries.push({ level, fields, message });
  return { entries, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Resolvable promises, to hold a handler until a test lets it go. */
class Gate {
  readonly released: Promise<void>;
  release!: () => void;
  constructor() {
    this.released = new Promise((resolve) => {
      this.release = resolve;
    });
  }
}

interface TestDaemon {
  handler: RequestHandler;
  /** Requests whose LV starts with "slow" wait for this gate (or their abort signal). */
  gate: Gate;
  aborted: string[];
  started: string[];
}

function testDaemon(): TestDaemon {
  const daemon: TestDaemon = {
    gate: new Gate(),
    aborted: [],
    started: [],
    handler: async (request, signal): Promise<Result> => {
      daemon.started.push(request.id);
      if (request.op === 'status') return STATUS;
      const { lv } = request;
      if (lv.startsWith('slow')) {
        // The signal is the connection's: stop listening once this request is done.
        let onAbort = (): void => {};
        await Promise.race([
          daemon.gate.released,
          new Promise<void>((resolve) => {
            onAbort = () => {
              daemon.aborted.push(request.id);
              resolve();
            };
            signal.addEventListener('abort', onAbort);
          }),
        ]);
        signal.removeEventListener('abort', onAbort);
      } else if (lv.startsWith('jitter')) {
        await sleep(Math.floor(Math.random() * 5));
      }
      if (lv === 'boom') throw new Error('disk on fire');
      if (lv === 'nospace') throw new ThinlvError('OUT_OF_SPACE', 'pool empty', { poolExtentCount: 0 });
      if (lv === 'badresult') return { lv, active: 'maybe' } as unknown as Result;
      if (request.op === 'extend') {
        const sizeBytes = extendAmountOf(request).value;
        return { lv, extentsGranted: 1, sizeBytes, extentSizeBytes: 4096 };
      }
      return { lv, active: request.op === 'activate' };
    },
  };
  return daemon;
}

let directory = '';
let socketPath = '';
const servers: SocketServer[] = [];
const clients: LineClient[] = [];

beforeEach(() => {
  directory = mkdtempSync(join(tmpdir(), 'thinlv-sock-'));
  socketPath = join(directory, 'host.sock');
});

afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  await Promise.all(servers.splice(0).map((server) => server.close()));
  rmSync(directory, { recursive: true, force: true });
});

async function start(
  limits: Partial<SocketServerLimits> = {},
  daemon: TestDaemon = testDaemon(),
  log: SocketServerLog = captureLog(),
): Promise<{ server: SocketServer; daemon: TestDaemon }> {
  const server = await startSocketServer({ path: socketPath, handler: daemon.handler, limits: { closeTimeoutMs: 2000, ...limits }, log });
  servers.push(server);
  return { server, daemon };
}

async function client(): Promise<LineClient> {
  const opened = await LineClient.open(socketPath);
  clients.push(opened);
  return opened;
}

const extend = (id: string, lv: string, sizeBytes: number): Request => ({ id, op: 'extend', lv, sizeBytes });
const status = (id: string): Request => ({ id, op: 'status' });

/** A client that keeps asking, one request at a time, and checks every answer. */
async function wellBehavedClient(count: number, name = 'good'): Promise<void> {
  const good = await client();
  for (let index = 0; index < count; index += 1) {
    const id = `${name}-${index}`;
    if (index % 2 === 0) {
      good.request(extend(id, `jitter-${name}`, 4096 * (index + 1)));
      expect(await good.reply()).toEqual({ v: 1, id, ok: true, result: { lv: `jitter-${name}`, extentsGranted: 1, sizeBytes: 4096 * (index + 1), extentSizeBytes: 4096 } });
    } else {
      good.request(status(id));
      expect(await good.reply()).toEqual({ v: 1, id, ok: true, result: STATUS });
    }
  }
}

// ---- Tests ------------------------------------------------------------------------------

describe('host socket server: start and stop', () => {
  test('the socket has mode 0600', async () => {
    await start();
    const stats = statSync(socketPath);
    expect(stats.isSocket()).toBe(true);
    expect(stats.mode & 0o777).toBe(0o600);
  });

  test('a second server on the same path is refused and the first keeps serving', async () => {
    await start();
    const refused = startSocketServer({ path: socketPath, handler: testDaemon().handler, log: captureLog() });
    await expect(refused).rejects.toMatchObject({ code: 'HOST_SOCKET_IN_USE' });
    await expect(refused).rejects.toThrow(/another daemon is listening/);
    expect(await requestOnce(socketPath, { id: 's', op: 'status' }, 2000)).toEqual({ id: 's', ok: true, result: STATUS });
  });

  test('a stale socket file left by a dead daemon is replaced', async () => {
    // Bind a socket, keep a second name for it, then close the listener: the second
    // name is a socket file nobody listens on, as after a daemon was killed.
    const dead = createServer();
    const deadPath = join(directory, 'dead.sock');
    await new Promise<void>((resolve) => dead.listen(deadPath, resolve));
    linkSync(deadPath, socketPath);
    await new Promise<void>((resolve) => dead.close(() => resolve()));
    expect(statSync(socketPath).isSocket()).toBe(true);
    await start();
    expect(await requestOnce(socketPath, { id: 's', op: 'status' }, 2000)).toMatchObject({ ok: true, result: STATUS });
  });

  test('a path holding something other than a socket is left alone', async () => {
    writeFileSync(socketPath, 'precious');
    await expect(start()).rejects.toMatchObject({ code: 'HOST_SOCKET_PATH_INVALID' });
    expect(readFileSync(socketPath, 'utf8')).toBe('precious');
  });

  test('limits out of range and over-long paths are refused', async () => {
    await expect(start({ maxLineBytes: MAX_LINE_BYTES + 1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(start({ maxInFlightTotal: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(start({ idleTimeoutMs: 1.5 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    socketPath = join(directory, 'x'.repeat(100));
    await expect(start()).rejects.toMatchObject({ code: 'HOST_SOCKET_PATH_INVALID' });
  });

  test('close waits for requests in flight, answers new ones with SHUTTING_DOWN and removes the socket', async () => {
    const { server, daemon } = await start();
    const busy = await client();
    busy.request(extend('slow-1', 'slow', 8192));
    await eventually(() => daemon.started.includes('slow-1'), 'the slow request to start');
    const closed = server.close();
    await sleep(20);
    busy.request(status('late'));
    expect(await busy.reply()).toMatchObject({ id: 'late', ok: false, error: { code: 'SHUTTING_DOWN' } });
    daemon.gate.release();
    expect(await busy.reply()).toMatchObject({ id: 'slow-1', ok: true, result: { sizeBytes: 8192 } });
    await closed;
    await busy.closed();
    expect(existsSync(socketPath)).toBe(false);
    expect(daemon.aborted).toEqual([]);
    await expect(requestOnce(socketPath, { id: 'x', op: 'status' }, 500)).rejects.toMatchObject({ code: 'HOST_DAEMON_UNREACHABLE' });
  });

  test('close stops waiting after closeTimeoutMs and aborts the handlers still running', async () => {
    const log = captureLog();
    const { server, daemon } = await start({ closeTimeoutMs: 100 }, testDaemon(), log);
    const busy = await client();
    busy.request(extend('stuck', 'slow', 4096));
    await eventually(() => daemon.started.includes('stuck'), 'the request to start');
    const began = Date.now();
    await server.close();
    expect(Date.now() - began).toBeLessThan(1500);
    expect(daemon.aborted).toEqual(['stuck']);
    expect(log.entries.some((entry) => entry.level === 'warn' && /aborting/.test(entry.message))).toBe(true);
    // close is idempotent.
    await server.close();
  });

  test('close leaves a socket file alone that a successor has bound meanwhile', async () => {
    const { server } = await start();
    unlinkSync(socketPath);
    const successor = await startSocketServer({ path: socketPath, handler: testDaemon().handler, log: captureLog() });
    servers.push(successor);
    await server.close();
    expect(await requestOnce(socketPath, { id: 's', op: 'status' }, 2000)).toMatchObject({ ok: true });
  });

  test('a pino logger can be the log', async () => {
    await start({}, testDaemon(), pino({ level: 'silent' }));
    expect(await requestOnce(socketPath, { id: 's', op: 'status' }, 2000)).toMatchObject({ ok: true });
  });
});

describe('host socket server: requests and replies', () => {
  test('concurrent clients each get their own replies, matched by id', async () => {
    await start();
    const connections = await Promise.all(Array.from({ length: 6 }, () => client()));
    const perClient = 25;
    connections.forEach((connection, clientIndex) => {
      for (let index = 0; index < perClient; index += 1) connection.request(extend(`c${clientIndex}-r${index}`, `jitter${clientIndex}`, (clientIndex * 1000 + index + 1) * 512));
    });
    await Promise.all(
      connections.map(async (connection, clientIndex) => {
        const replies = await connection.replies(perClient);
        const byId = new Map(replies.map((reply) => [reply.id, reply]));
        expect(byId.size).toBe(perClient);
        for (let index = 0; index < perClient; index += 1) {
          expect(byId.get(`c${clientIndex}-r${index}`)).toEqual({
            v: 1,
            id: `c${clientIndex}-r${index}`,
            ok: true,
            result: { lv: `jitter${clientIndex}`, extentsGranted: 1, sizeBytes: (clientIndex * 1000 + index + 1) * 512, extentSizeBytes: 4096 },
          });
        }
      }),
    );
  });

  test('replies come as handlers finish, not in request order', async () => {
    const { daemon } = await start();
    const connection = await client();
    connection.request(extend('first', 'slow', 4096));
    connection.request(status('second'));
    expect((await connection.reply()).id).toBe('second');
    daemon.gate.release();
    expect((await connection.reply()).id).toBe('first');
  });

  test('handler failures become error replies: ThinlvError codes pass through, anything else is INTERNAL and logged', async () => {
    const log = captureLog();
    await start({}, testDaemon(), log);
    const connection = await client();
    connection.request({ id: 'a', op: 'activate', lv: 'boom' });
    expect(await connection.reply()).toEqual({ v: 1, id: 'a', ok: false, error: { code: 'INTERNAL', message: 'internal error in the host daemon; see its log' } });
    expect(log.entries.some((entry) => entry.level === 'error' && JSON.stringify(entry.fields).includes('disk on fire'))).toBe(true);
    connection.request(extend('b', 'nospace', 4096));
    expect(await connection.reply()).toEqual({ v: 1, id: 'b', ok: false, error: { code: 'OUT_OF_SPACE', message: 'pool empty', data: { poolExtentCount: 0 } } });
    connection.request({ id: 'c', op: 'deactivate', lv: 'badresult' });
    expect(await connection.reply()).toMatchObject({ id: 'c', ok: false, error: { code: 'INTERNAL' } });
    connection.request(status('d'));
    expect(await connection.reply()).toMatchObject({ id: 'd', ok: true });
  });

  test('a handler that throws synchronously is caught too', async () => {
    const handler: RequestHandler = () => {
      throw new Error('not even a promise');
    };
    await start({}, { ...testDaemon(), handler });
    expect(await requestOnce(socketPath, { id: 's', op: 'status' }, 2000)).toMatchObject({ ok: false, error: { code: 'INTERNAL' } });
  });

  test('bad requests get error replies with the id when it could be read, and the connection stays usable', async () => {
    await start();
    const connection = await client();
    connection.send('not json\n');
    connection.send('{"v":1,"id":"t","op":"extend","lv":"lv","sizebytes":1}\n');
    connection.send('{"v":9,"id":"u","op":"status"}\n');
    connection.send('{"v":1,"id":"w","op":"grow"}\n');
    connection.send(Buffer.from([0xff, 0xfe, 0x7b, 0x0a]));
    connection.send('\n   \r\n');
    connection.send('{"v":1,"id":"ok","op":"status"}\r\n');
    const replies = await connection.replies(6);
    expect(replies.map((reply) => [reply.id, reply.error?.code ?? 'ok'])).toEqual([
      [null, 'BAD_JSON'],
      ['t', 'BAD_REQUEST'],
      ['u', 'UNSUPPORTED_VERSION'],
      ['w', 'UNKNOWN_OP'],
      [null, 'BAD_JSON'],
      ['ok', 'ok'],
    ]);
  });

  test('a second request with the id of one in flight gets DUPLICATE_ID', async () => {
    const { daemon } = await start();
    const connection = await client();
    connection.request(extend('same', 'slow', 4096));
    connection.request(status('same'));
    expect(await connection.reply()).toMatchObject({ id: 'same', ok: false, error: { code: 'DUPLICATE_ID' } });
    daemon.gate.release();
    expect(await connection.reply()).toMatchObject({ id: 'same', ok: true, result: { sizeBytes: 4096 } });
    connection.request(status('same'));
    expect(await connection.reply()).toMatchObject({ id: 'same', ok: true });
  });

  test('a client that half-closes after its requests still gets every reply, then the server closes; a handler still waiting sees the abort', async () => {
    const { daemon } = await start();
    const connection = await client();
    connection.request(extend('x', 'slow', 4096));
    connection.request(status('y'));
    await eventually(() => daemon.started.includes('y'), 'both requests to start');
    connection.end();
    const ids = [(await connection.reply()).id, (await connection.reply()).id];
    expect(ids.sort()).toEqual(['x', 'y']);
    // An extend waiting for a grant stops here: its client may be gone (CANCELLED).
    expect(daemon.aborted).toEqual(['x']);
    await connection.closed();
  });

  test('requestOnce reports a daemon that is not there or does not answer in time', async () => {
    await expect(requestOnce(join(directory, 'nobody.sock'), { id: 's', op: 'status' }, 500)).rejects.toMatchObject({ code: 'HOST_DAEMON_UNREACHABLE' });
    const { daemon } = await start();
    await expect(requestOnce(socketPath, { id: 's', op: 'extend', lv: 'slow', sizeBytes: 4096 }, 100)).rejects.toMatchObject({ code: 'HOST_DAEMON_TIMEOUT' });
    daemon.gate.release();
    await expect(requestOnce(socketPath, { id: 's', op: 'status' }, 0)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('host socket server: misbehaving clients do not disturb others', () => {
  test('garbage, half a line then a disconnect, and a half-sent request at end of stream', async () => {
    const { server } = await start();
    const good = wellBehavedClient(40);

    const garbage = await client();
    for (let index = 0; index < 50; index += 1) garbage.send(`garbage ${index} {{{\n`);
    const garbageReplies = await garbage.replies(50);
    expect(garbageReplies.every((reply) => reply.id === null && reply.error?.code === 'BAD_JSON')).toBe(true);

    const half = await client();
    half.send('{"v":1,"id":"half","op":"sta');
    await sleep(10);
    half.destroy();

    const halfEnded = await client();
    halfEnded.send('{"v":1,"id":"cut","op":"status"}');
    halfEnded.end();
    expect(await halfEnded.reply()).toMatchObject({ id: null, ok: false, error: { code: 'BAD_REQUEST' } });
    await halfEnded.closed();

    await good;
    garbage.destroy();
    // Only the well-behaved client's connection is left.
    await eventually(() => server.stats().connectionCount === 1, 'the misbehaving connections to go');
  });

  test('a line over the limit gets LINE_TOO_LONG and its connection is closed', async () => {
    const { server } = await start({ maxLineBytes: 512 });
    const good = wellBehavedClient(40);

    const long = await client();
    long.send(`{"v":1,"id":"l","op":"status","pad":"${'x'.repeat(600)}"}\n`);
    expect(await long.reply()).toMatchObject({ id: null, ok: false, error: { code: 'LINE_TOO_LONG', data: { maxLineBytes: 512 } } });
    await long.closed();

    // Without a newline at all: refused as soon as the buffer passes the limit, not at end of stream.
    const endless = await client();
    for (let index = 0; index < 20; index += 1) endless.send('y'.repeat(100));
    expect(await endless.reply()).toMatchObject({ error: { code: 'LINE_TOO_LONG' } });
    await endless.closed();

    // Exactly at the limit is fine.
    const exact = await client();
    const base = '{"v":1,"id":"e","op":"status"}';
    exact.send(`${base}${' '.repeat(512 - base.length)}\n`);
    expect(await exact.reply()).toMatchObject({ id: 'e', ok: true });

    await good;
    expect(server.stats().inFlightCount).toBe(0);
  });

  test('a flood beyond the in-flight limits gets TOO_MANY_IN_FLIGHT, and the requests admitted complete', async () => {
    const { server, daemon } = await start({ maxInFlightPerConnection: 4, maxInFlightTotal: 6 });
    const flood = await client();
    for (let index = 0; index < 10; index += 1) flood.request(extend(`f${index}`, 'slow', 4096));
    const refusedHere = await flood.replies(6);
    expect(refusedHere.map((reply) => reply.id)).toEqual(['f4', 'f5', 'f6', 'f7', 'f8', 'f9']);
    expect(refusedHere.every((reply) => reply.error?.code === 'TOO_MANY_IN_FLIGHT' && reply.error.data?.['scope'] === 'connection')).toBe(true);

    const second = await client();
    for (let index = 0; index < 3; index += 1) second.request(extend(`s${index}`, 'slow', 4096));
    const [refusedServerWide] = await second.replies(1);
    expect(refusedServerWide).toMatchObject({ id: 's2', error: { code: 'TOO_MANY_IN_FLIGHT', data: { scope: 'server', limit: 6 } } });
    expect(server.stats().inFlightCount).toBe(6);

    daemon.gate.release();
    const admitted = [...(await flood.replies(4)), ...(await second.replies(2))];
    expect(admitted.every((reply) => reply.ok)).toBe(true);
    expect(admitted.map((reply) => reply.id).sort()).toEqual(['f0', 'f1', 'f2', 'f3', 's0', 's1']);
    expect(server.stats().inFlightCount).toBe(0);
    await wellBehavedClient(10);
  });

  test('a client that disconnects with requests in flight: their replies are dropped, others are served', async () => {
    const { server, daemon } = await start();
    const leaver = await client();
    leaver.request(extend('gone-1', 'slow', 4096));
    leaver.request(extend('gone-2', 'slow', 8192));
    await eventually(() => daemon.started.includes('gone-2'), 'both requests to start');
    leaver.destroy();
    await wellBehavedClient(20);
    daemon.gate.release();
    await eventually(() => server.stats().inFlightCount === 0 && server.stats().connectionCount === 1, 'the abandoned requests to finish');
    await wellBehavedClient(5, 'after');
  });

  test('a client that resets its connection with requests in flight: the handlers see the abort', async () => {
    const { server, daemon } = await start();
    const leaver = await client();
    // Closing a Unix socket with unread data resets the peer (ECONNRESET), as when a
    // client is killed in the middle of a conversation: leave more replies unread than
    // Node buffers on the client side, so some stay in the kernel.
    leaver.socket.pause();
    leaver.request(extend('reset-1', 'slow', 4096));
    leaver.request(extend('reset-2', 'slow', 8192));
    leaver.send('x\n'.repeat(2000));
    await eventually(() => daemon.started.includes('reset-2'), 'the requests to start');
    await sleep(50);
    leaver.destroy();
    await eventually(() => daemon.aborted.length === 2, 'the handlers to see the abort');
    expect(daemon.aborted.sort()).toEqual(['reset-1', 'reset-2']);
    await eventually(() => server.stats().inFlightCount === 0, 'the aborted requests to finish');
    await wellBehavedClient(10);
  });

  test('a client that does not read its replies stops being read, and gets every reply once it reads', async () => {
    const { server } = await start();
    const hog = await client();
    hog.socket.pause();
    const lineCount = 30_000;
    hog.send('x\n'.repeat(lineCount));
    await sleep(100);
    await wellBehavedClient(20);
    hog.socket.resume();
    const replies = await hog.replies(lineCount, 10_000);
    expect(replies.every((reply) => reply.error?.code === 'BAD_JSON')).toBe(true);
    expect(server.stats().inFlightCount).toBe(0);
  });

  test('connections beyond maxConnections get TOO_MANY_CONNECTIONS and are closed', async () => {
    const { server } = await start({ maxConnections: 2 });
    const first = await client();
    await client();
    await eventually(() => server.stats().connectionCount === 2, 'two connections');
    const third = await client();
    expect(await third.reply()).toMatchObject({ id: null, ok: false, error: { code: 'TOO_MANY_CONNECTIONS', data: { limit: 2 } } });
    await third.closed();
    first.request(status('still'));
    expect(await first.reply()).toMatchObject({ id: 'still', ok: true });
  });

  test('idle connections are closed after idleTimeoutMs, but not while a request is in flight', async () => {
    const { daemon } = await start({ idleTimeoutMs: 80 });
    const idle = await client();
    const busy = await client();
    busy.request(extend('long', 'slow', 4096));
    await idle.closed(2000);
    await sleep(200);
    expect(busy.isClosed).toBe(false);
    daemon.gate.release();
    expect(await busy.reply()).toMatchObject({ id: 'long', ok: true });
    await busy.closed(2000);
  });
});

describe('host socket server: fuzz', () => {
  test('thousands of random and malformed lines over several connections: one reply each, and the server still answers status', async () => {
    const { server } = await start({ maxInFlightPerConnection: 8, maxInFlightTotal: 16 });
    const seed = Number(process.env['FUZZ_SEED'] ?? Date.now() % 2 ** 31);
    const context = `FUZZ_SEED=${seed}`;
    // Valid requests, then each with one field dropped, replaced by random JSON, or one field added.
    const fuzzId = fc.stringMatching(/^[!-~]{1,8}$/);
    const fuzzLv = fc.constantFrom('jitter', 'boom', 'nospace', 'badresult', 'lv0');
    const validRequest: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
      fc.record({ v: fc.constant(1), id: fuzzId, op: fc.constant('status') }),
      fc.record({ v: fc.constant(1), id: fuzzId, op: fc.constantFrom('activate', 'deactivate'), lv: fuzzLv }),
      fc.record({ v: fc.constant(1), id: fuzzId, op: fc.constant('extend'), lv: fuzzLv, sizeBytes: fc.integer({ min: 1, max: 2 ** 40 }) }),
      fc.record({ v: fc.constant(1), id: fuzzId, op: fc.constant('extend'), lv: fuzzLv, incrementBytes: fc.integer({ min: 1, max: 2 ** 40 }) }),
    );
    const fieldNames = ['v', 'id', 'op', 'lv', 'sizeBytes', 'incrementBytes', 'junk'];
    const nearRequest = fc
      .tuple(validRequest, fc.constantFrom('keep', 'drop', 'replace', 'add'), fc.constantFrom(...fieldNames), fc.jsonValue({ maxDepth: 2 }))
      .map(([request, mutation, name, value]) => {
        const object: Record<string, unknown> = { ...request };
        if (mutation === 'drop') delete object[name];
        if (mutation === 'replace' || mutation === 'add') object[name] = value;
        return JSON.stringify(object);
      });
    const lineArbitrary = fc.oneof(
      nearRequest,
      nearRequest.map((text) => text.slice(0, Math.floor(text.length / 2))),
      fc.string({ maxLength: 200 }),
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.json({ maxDepth: 3 }),
      fc.uint8Array({ maxLength: 100 }).map((bytes) => Buffer.from(bytes)),
    );
    // Lines never contain a newline and are never blank (blank lines get no reply).
    const lines = fc.sample(lineArbitrary, { numRuns: 3000, seed }).map((line) => {
      const bytes = Buffer.from(Buffer.from(line).filter((byte) => byte !== 0x0a));
      return bytes.toString('utf8').trim() === '' ? Buffer.concat([Buffer.from('#'), bytes]) : bytes;
    });
    const connectionCount = 5;
    const connections = await Promise.all(Array.from({ length: connectionCount }, () => client()));
    const expected = connections.map(() => 0);
    lines.forEach((line, index) => {
      const connectionIndex = index % connectionCount;
      expected[connectionIndex] = (expected[connectionIndex] ?? 0) + 1;
      // Some lines go in pieces, to exercise reassembly.
      const connection = connections[connectionIndex];
      if (connection === undefined) throw new Error('no connection');
      if (index % 7 === 0 && line.length > 2) {
        connection.send(line.subarray(0, 1));
        connection.send(Buffer.concat([line.subarray(1), Buffer.from('\n')]));
      } else {
        connection.send(Buffer.concat([line, Buffer.from('\n')]));
      }
    });
    const allReplies = await Promise.all(connections.map((connection, index) => connection.replies(expected[index] ?? 0, 10_000)));
    for (const replies of allReplies) {
      for (const reply of replies) {
        expect(reply.v, context).toBe(1);
        expect(typeof reply.ok, context).toBe('boolean');
        if (reply.ok) expect(typeof reply.id, context).toBe('string');
        else expect(typeof reply.error?.code, context).toBe('string');
      }
    }
    const handled = allReplies.flat().filter((reply) => reply.ok || ['OUT_OF_SPACE', 'INTERNAL', 'TOO_MANY_IN_FLIGHT', 'DUPLICATE_ID'].includes(reply.error?.code ?? ''));
    expect(handled.length, `${context}: some random lines are valid requests that reach the handler`).toBeGreaterThan(20);
    await sleep(20);
    expect(connections.map((connection) => connection.unreadLineCount), `${context}: no line gets two replies`).toEqual(connections.map(() => 0));

    // Now valid and random requests mixed on the same connections.
    const validRequests = fc.sample(
      fc.oneof(
        fc.record({ id: fc.stringMatching(/^[!-~]{1,16}$/), op: fc.constant('status' as const) }),
        fc.record({ id: fc.stringMatching(/^[!-~]{1,16}$/), op: fc.constant('extend' as const), lv: fc.constant('jitter'), sizeBytes: fc.integer({ min: 1, max: 2 ** 40 }) }),
      ),
      { numRuns: 300, seed },
    );
    // The junk here starts with "#", so no junk line is a request whose id could collide.
    const mixed = await client();
    const uniqueRequests = [...new Map(validRequests.map((request) => [request.id, request])).values()];
    for (const [index, request] of uniqueRequests.entries()) {
      mixed.request(request);
      const junk = lines[index];
      if (junk !== undefined) mixed.send(Buffer.concat([Buffer.from('#'), junk, Buffer.from('\n')]));
    }
    const mixedReplies = await mixed.replies(uniqueRequests.length * 2, 10_000);
    for (const request of uniqueRequests) {
      const answers = mixedReplies.filter((reply) => reply.id === request.id);
      expect(answers.length, `${context} id ${request.id}`).toBeGreaterThanOrEqual(1);
      const answer = answers.find((reply) => reply.ok) ?? answers[0];
      if (answer?.ok) {
        expect(answer.result, context).toEqual(request.op === 'status' ? STATUS : { lv: 'jitter', extentsGranted: 1, sizeBytes: request.sizeBytes, extentSizeBytes: 4096 });
      } else {
        expect(answer?.error?.code, context).toBe('TOO_MANY_IN_FLIGHT');
      }
    }

    expect(await requestOnce(socketPath, { id: 'final', op: 'status' }, 2000)).toEqual({ id: 'final', ok: true, result: STATUS });
    await eventually(() => server.stats().inFlightCount === 0, `${context}: requests in flight to drain`);
  });
});
