// The host daemon's Unix socket: JSON lines in, JSON lines out (src/host/protocol.ts).
// Transport only: it frames, validates and bounds requests, and hands each valid one
// to the daemon's handler; it knows nothing about extents.
//
//   bytes --> pending buffer (bounded) --> lines --> parseRequest --> limits --> handler
//                                                     |  error        | refused     |
//                                                     v               v             v
//   socket <------------------------------------ formatResponse <-------------- result / error
//
// One misbehaving client must not hurt the daemon or other clients, so each
// connection's failures stay on that connection: a line over the limit closes it,
// garbage gets error replies, a client that stops reading stops being read (pause
// until its replies drain), a client that goes away has its requests' signals
// aborted and their replies dropped, and no handler exception leaves this module.
//
// Start-up: the socket is bound under a temporary name, chmod'ed 0600, then hard-linked
// to its real name, so it never appears there with looser permissions, and link(2)
// fails rather than replacing a socket another daemon created meanwhile. A socket file
// already at the path is removed only after a connect attempt is refused (stale: its
// daemon died). The caller should hold the host's lock, which closes the remaining
// window between that test and the removal.

import { randomUUID } from 'node:crypto';
import { chmod, link, lstat, unlink } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';

import { InvariantError, ThinlvError } from '../errors.js';
import {
  formatRequest,
  formatResponse,
  invalidResultReason,
  MAX_LINE_BYTES,
  MAX_REPLY_BYTES,
  parseRequest,
  parseResponse,
  ProtocolErrorCode,
  errorResponse,
  successResponse,
  type ActivationRequest,
  type ActivationResult,
  type ExtendRequest,
  type ExtendResult,
  type Request,
  type Response,
  type Result,
  type StatusRequest,
  type StatusResult,
} from './protocol.js';

/**
 * Runs one request. `signal` is aborted when the connection closes before the reply
 * (the client reset it, a reply could not be delivered, the server dropped it for a
 * line too long) or when close() stops waiting. A client that exits cleanly looks the
 * same as one that only shut down its sending side and still reads (half-close), so
 * its requests run on until a reply to it fails. A handler that has started a durable
 * step (a journal write) should finish it anyway: the client may resend. Throw a
 * ThinlvError to send its code, message and data; anything else is logged and sent
 * as INTERNAL. The signal is shared by all requests of one connection (an
 * AbortController per request cost measurable time on every extend), so a handler
 * that listens to it must remove its listener when it returns.
 */
export type RequestHandler = (request: Request, signal: AbortSignal) => Promise<Result>;

/** The subset of a pino Logger this module uses. */
export interface SocketServerLog {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface SocketServerLimits {
  readonly maxConnections: number;
  readonly maxInFlightPerConnection: number;
  readonly maxInFlightTotal: number;
  /** At most MAX_LINE_BYTES. */
  readonly maxLineBytes: number;
  /** A connection with no request in flight and no traffic for this long is closed. */
  readonly idleTimeoutMs: number;
  /** How long close() waits for handlers in flight before aborting them. */
  readonly closeTimeoutMs: number;
}

export const DEFAULT_SOCKET_LIMITS: SocketServerLimits = {
  // A hypervisor host runs a tapdisk (and its resize hook) per VM disk, each with its
  // own short connection; closed connections linger for a moment, so leave room.
  maxConnections: 256,
  maxInFlightPerConnection: 32,
  maxInFlightTotal: 256,
  maxLineBytes: MAX_LINE_BYTES,
  idleTimeoutMs: 5 * 60_000,
  closeTimeoutMs: 10_000,
};

/** Upper bounds on configurable limits, so a typo cannot make one meaningless. */
const LIMIT_CEILINGS: SocketServerLimits = {
  maxConnections: 4096,
  maxInFlightPerConnection: 4096,
  maxInFlightTotal: 65_536,
  maxLineBytes: MAX_LINE_BYTES,
  idleTimeoutMs: 24 * 3600_000,
  closeTimeoutMs: 10 * 60_000,
};

const LIMIT_NAMES = [
  'maxConnections', 'maxInFlightPerConnection', 'maxInFlightTotal', 'maxLineBytes', 'idleTimeoutMs', 'closeTimeoutMs',
] as const satisfies readonly (keyof SocketServerLimits)[];

/** Bytes of replies queued for a client before we stop reading its requests until it reads. */
const WRITE_BUFFER_HIGH_BYTES = 64 * 1024;
/** Unread bytes kept per connection: a line plus one read's worth (only reached while paused). */
const PENDING_SLACK_BYTES = 256 * 1024;
/** After close() has ended a connection, how long its replies may take to flush before it is destroyed. */
const CLOSE_FLUSH_MS = 1_000;
/** How long the stale-socket test waits for a connect to succeed or be refused. */
const PROBE_TIMEOUT_MS = 2_000;
/** sun_path holds 108 bytes with its NUL; the temporary name adds a suffix of up to 10. */
export const MAX_SOCKET_PATH_BYTES = 95;

export const SocketErrorCode = {
  /** Another daemon answers on the socket path. */
  inUse: 'HOST_SOCKET_IN_USE',
  /** The path is too long, is not a socket, or could not be set up. */
  pathInvalid: 'HOST_SOCKET_PATH_INVALID',
  /** requestOnce: nothing listens on the path. */
  unreachable: 'HOST_DAEMON_UNREACHABLE',
  /** requestOnce: no reply within the timeout. */
  timeout: 'HOST_DAEMON_TIMEOUT',
  /** requestOnce: the reply broke the protocol, or the daemon closed without one. */
  badReply: 'HOST_DAEMON_BAD_REPLY',
} as const;

export interface SocketServerOptions {
  readonly path: string;
  readonly handler: RequestHandler;
  readonly limits?: Partial<SocketServerLimits>;
  readonly log: SocketServerLog;
}

export interface SocketServerStats {
  readonly connectionCount: number;
  readonly inFlightCount: number;
}

export interface SocketServer {
  readonly path: string;
  readonly limits: SocketServerLimits;
  stats(): SocketServerStats;
  /**
   * Stops accepting, answers new requests with SHUTTING_DOWN, waits up to closeTimeoutMs
   * for handlers in flight (then aborts their signals), flushes and closes every
   * connection, and removes the socket file if it is still ours. Safe to call twice.
   */
  close(): Promise<void>;
}

interface Connection {
  readonly number: number;
  readonly socket: Socket;
  /** Bytes received and not yet split into lines. */
  pending: Buffer;
  /** Requests in flight on this connection, by id (the value tells one use of an id from the next). */
  readonly inFlight: Map<string, object>;
  /**
   * Aborted when the connection ends early; every request on it shares it, since each
   * reason to abort (reset, line too long, not reading, close) is the connection's.
   * One per connection, not per request: an AbortController per request was a
   * measurable part of an extend's time.
   */
  readonly aborter: AbortController;
  /** Waiting for the client to read replies before reading more requests. */
  blocked: boolean;
  /** The client half-closed: no more requests will come. */
  clientEnded: boolean;
  /** We ended or destroyed it; nothing more is read or written. */
  finished: boolean;
  readonly idleTimer: NodeJS.Timeout;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function errnoCode(error: unknown): string | undefined {
  return error instanceof Error && 'code' in error && typeof error.code === 'string' ? error.code : undefined;
}

function checkLimits(limits: SocketServerLimits): void {
  for (const name of LIMIT_NAMES) {
    const value = limits[name];
    if (!Number.isSafeInteger(value) || value < 1 || value > LIMIT_CEILINGS[name]) {
      throw new ThinlvError('INVALID_ARGUMENT', `socket limit ${name} must be an integer from 1 to ${LIMIT_CEILINGS[name]}, got ${value}`, { [name]: value });
    }
  }
}

/** 'listening' when a daemon accepts connections at `path`, 'stale' when a socket file is there but refuses them, 'absent' when nothing is. */
async function probeSocketPath(path: string): Promise<'listening' | 'stale' | 'absent'> {
  try {
    const stats = await lstat(path);
    if (!stats.isSocket()) {
      throw new ThinlvError(SocketErrorCode.pathInvalid, `${path} exists and is not a socket; refusing to replace it: remove it or choose another path`, { path });
    }
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return 'absent';
    throw error;
  }
  return new Promise((resolve, reject) => {
    const probe = connect(path);
    const timer = setTimeout(() => {
      probe.destroy();
      reject(new ThinlvError(SocketErrorCode.inUse, `${path}: a connect test neither succeeded nor was refused within ${PROBE_TIMEOUT_MS} ms; another daemon may be stuck there`, { path }));
    }, PROBE_TIMEOUT_MS);
    probe.once('connect', () => {
      clearTimeout(timer);
      probe.destroy();
      resolve('listening');
    });
    probe.once('error', (error) => {
      clearTimeout(timer);
      probe.destroy();
      const code = errnoCode(error);
      if (code === 'ECONNREFUSED') resolve('stale');
      else if (code === 'ENOENT') resolve('absent');
      else reject(new ThinlvError(SocketErrorCode.pathInvalid, `${path}: connect test failed with ${code ?? error.message}`, { path, errno: code ?? null }, { cause: error }));
    });
  });
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    server.listen(path, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

async function unlinkIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') throw error;
  }
}

/** Binds the socket at `path` with mode 0600 (see the start-up note at the top); returns its inode. */
async function bindPrivately(server: Server, path: string): Promise<number> {
  const state = await probeSocketPath(path);
  if (state === 'listening') {
    throw new ThinlvError(SocketErrorCode.inUse, `another daemon is listening on ${path}; stop it first (only one host daemon per VG and host)`, { path });
  }
  const temporaryPath = `${path}.${process.pid.toString(36)}.tmp`;
  await unlinkIfPresent(temporaryPath);
  await listen(server, temporaryPath);
  try {
    await chmod(temporaryPath, 0o600);
    const bound = await lstat(temporaryPath);
    if ((bound.mode & 0o777) !== 0o600) throw new InvariantError(`socket ${temporaryPath} has mode ${(bound.mode & 0o777).toString(8)} after chmod 600`, { path });
    // A stale socket: its daemon is gone (the connect test was refused), so removing it is safe.
    if (state === 'stale') await unlinkIfPresent(path);
    try {
      await link(temporaryPath, path);
    } catch (error) {
      if (errnoCode(error) === 'EEXIST') {
        throw new ThinlvError(SocketErrorCode.inUse, `${path} appeared while this daemon was starting; another daemon may be starting on it`, { path }, { cause: error });
      }
      throw error;
    }
    await unlink(temporaryPath);
    return bound.ino;
  } catch (error) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await unlinkIfPresent(temporaryPath).catch(() => undefined);
    throw error;
  }
}

function describeError(error: unknown): Record<string, unknown> {
  if (error instanceof Error) return { error: error.message, stack: error.stack, name: error.name };
  return { error: String(error) };
}

/** Starts the daemon's socket server; rejects with HOST_SOCKET_IN_USE if another daemon listens on `path`. */
export async function startSocketServer(options: SocketServerOptions): Promise<SocketServer> {
  const { path, handler, log } = options;
  const limits: SocketServerLimits = { ...DEFAULT_SOCKET_LIMITS, ...options.limits };
  checkLimits(limits);
  if (path.length === 0 || Buffer.byteLength(path, 'utf8') > MAX_SOCKET_PATH_BYTES) {
    throw new ThinlvError(SocketErrorCode.pathInvalid, `socket path "${path}" must be 1 to ${MAX_SOCKET_PATH_BYTES} bytes (a Unix socket address is short)`, { path });
  }

  const connections = new Set<Connection>();
  let totalInFlight = 0;
  let closing = false;
  let closePromise: Promise<void> | undefined;
  let nextConnectionNumber = 1;
  /** Called whenever the total in flight drops; close() waits on it. */
  let onInFlightDrop: (() => void) | undefined;

  // allowHalfOpen: a client may shut down its sending side after its last request
  // (`printf ... | socat`) and still receive the replies.
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: false });

  /** Ends the connection after queued replies flush; destroys it if they do not within CLOSE_FLUSH_MS. */
  function finish(connection: Connection, reason: string): void {
    if (connection.finished) return;
    connection.finished = true;
    log.debug({ connection: connection.number, reason }, 'closing connection');
    clearTimeout(connection.idleTimer);
    connection.pending = Buffer.alloc(0);
    connection.socket.end();
    setTimeout(() => connection.socket.destroy(), CLOSE_FLUSH_MS).unref();
  }

  /** Tells the handlers still running for this connection that nobody will read their replies. */
  function abortInFlight(connection: Connection): void {
    if (connection.inFlight.size > 0) connection.aborter.abort();
  }

  function send(connection: Connection, response: Response): void {
    const { socket } = connection;
    // A client that went away: its replies have nowhere to go, and that is not an error.
    if (socket.destroyed || socket.writableEnded) return;
    socket.write(formatResponse(response));
    connection.idleTimer.refresh();
  }

  /** When the client has half-closed and everything it sent is answered, close our side too. */
  function finishIfDone(connection: Connection): void {
    if (connection.finished || !connection.clientEnded || connection.blocked) return;
    if (connection.pending.length > 0) {
      // Bytes without a newline before the end: a half-sent request is never run.
      const text = connection.pending.toString('latin1').trim();
      connection.pending = Buffer.alloc(0);
      if (text.length > 0) send(connection, errorResponse(null, ProtocolErrorCode.badRequest, 'the connection ended in the middle of a request line (every request must end with a newline); it was not run'));
    }
    if (connection.inFlight.size === 0) finish(connection, 'client ended');
  }

  async function runHandler(connection: Connection, request: Request, signal: AbortSignal): Promise<Response> {
    try {
      const result = await handler(request, signal);
      const reason = invalidResultReason(request.op, result);
      if (reason !== undefined) {
        log.error({ connection: connection.number, id: request.id, op: request.op, reason }, 'handler returned an invalid result');
        return errorResponse(request.id, ProtocolErrorCode.internal, `the daemon produced an invalid ${request.op} result; see its log`);
      }
      return successResponse(request.id, result);
    } catch (error) {
      if (error instanceof ThinlvError) {
        const level = error instanceof InvariantError ? 'error' : 'info';
        log[level]({ connection: connection.number, id: request.id, op: request.op, code: error.code, message: error.message }, 'request failed');
        return errorResponse(request.id, error.code, error.message, error.data);
      }
      log.error({ connection: connection.number, id: request.id, op: request.op, ...describeError(error) }, 'handler threw an unexpected error');
      return errorResponse(request.id, ProtocolErrorCode.internal, 'internal error in the host daemon; see its log');
    }
  }

  function dispatch(connection: Connection, request: Request): void {
    if (closing) {
      send(connection, errorResponse(request.id, ProtocolErrorCode.shuttingDown, 'the host daemon is shutting down; retry when it is back'));
      return;
    }
    if (connection.inFlight.has(request.id)) {
      send(connection, errorResponse(request.id, ProtocolErrorCode.duplicateId, `a request with id ${request.id} is already in flight on this connection; ids must differ`));
      return;
    }
    if (connection.inFlight.size >= limits.maxInFlightPerConnection) {
      send(connection, errorResponse(request.id, ProtocolErrorCode.tooManyInFlight, `this connection already has ${limits.maxInFlightPerConnection} requests in flight; wait for replies and retry`, {
        scope: 'connection',
        limit: limits.maxInFlightPerConnection,
      }));
      return;
    }
    if (totalInFlight >= limits.maxInFlightTotal) {
      send(connection, errorResponse(request.id, ProtocolErrorCode.tooManyInFlight, `the daemon already has ${limits.maxInFlightTotal} requests in flight; retry shortly`, {
        scope: 'server',
        limit: limits.maxInFlightTotal,
      }));
      return;
    }
    const slot = {};
    connection.inFlight.set(request.id, slot);
    totalInFlight += 1;
    const settle = (response: Response): void => {
      // The slot is freed before the reply goes out, so a client that sends its next
      // request as soon as it reads this reply is never refused for this one.
      if (connection.inFlight.get(request.id) === slot) connection.inFlight.delete(request.id);
      totalInFlight -= 1;
      send(connection, response);
      onInFlightDrop?.();
      finishIfDone(connection);
    };
    // runHandler catches whatever the handler throws; the catches here are for a
    // throwing logger, so that nothing becomes an unhandled rejection (which would
    // stop the daemon).
    void runHandler(connection, request, connection.aborter.signal)
      .catch(() => errorResponse(request.id, ProtocolErrorCode.internal, 'internal error in the host daemon; see its log'))
      .then(settle)
      .catch(() => undefined);
  }

  function handleLine(connection: Connection, bytes: Buffer): void {
    let line: string;
    try {
      line = utf8.decode(bytes);
    } catch {
      send(connection, errorResponse(null, ProtocolErrorCode.badJson, 'request line is not valid UTF-8'));
      return;
    }
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line.trim().length === 0) return;
    const parsed = parseRequest(line);
    if (!parsed.ok) {
      send(connection, errorResponse(parsed.id ?? null, parsed.error.code, parsed.error.message, parsed.error.data));
      return;
    }
    dispatch(connection, parsed.request);
  }

  function refuseTooLong(connection: Connection): void {
    log.warn({ connection: connection.number, maxLineBytes: limits.maxLineBytes }, 'request line too long; closing the connection');
    send(connection, errorResponse(null, ProtocolErrorCode.lineTooLong, `request line is longer than ${limits.maxLineBytes} bytes; closing the connection`, {
      maxLineBytes: limits.maxLineBytes,
    }));
    // Its requests in flight will have nowhere to reply.
    abortInFlight(connection);
    finish(connection, 'line too long');
  }

  /** Splits buffered bytes into lines and handles them, until none is complete or the client must read first. */
  function processPending(connection: Connection): void {
    const { socket } = connection;
    while (!connection.finished) {
      if (socket.writableLength > WRITE_BUFFER_HIGH_BYTES && socket.writableNeedDrain) {
        // The client is not reading its replies: stop reading its requests until it does.
        connection.blocked = true;
        socket.pause();
        socket.once('drain', () => {
          connection.blocked = false;
          socket.resume();
          processPending(connection);
        });
        return;
      }
      const newline = connection.pending.indexOf(0x0a);
      if (newline < 0) {
        if (connection.pending.length > limits.maxLineBytes) refuseTooLong(connection);
        break;
      }
      if (newline > limits.maxLineBytes) {
        refuseTooLong(connection);
        break;
      }
      const line = connection.pending.subarray(0, newline);
      connection.pending = connection.pending.subarray(newline + 1);
      handleLine(connection, line);
    }
    finishIfDone(connection);
  }

  function accept(socket: Socket): void {
    // EPIPE and ECONNRESET from clients that went away: the 'close' handler cleans up.
    socket.on('error', (error) => log.debug({ error: error.message }, 'client socket error'));
    if (closing || connections.size >= limits.maxConnections) {
      const message = closing ? 'the host daemon is shutting down; retry when it is back' : `the daemon already serves ${limits.maxConnections} connections; retry shortly`;
      log.warn({ connectionCount: connections.size, closing }, 'refusing a connection');
      // Read and discard what it sends: closing a Unix socket with unread data resets the
      // peer, which could make it lose the reply that says why.
      socket.resume();
      socket.end(formatResponse(errorResponse(null, closing ? ProtocolErrorCode.shuttingDown : ProtocolErrorCode.tooManyConnections, message, { limit: limits.maxConnections })));
      setTimeout(() => socket.destroy(), CLOSE_FLUSH_MS).unref();
      return;
    }
    const connection: Connection = {
      number: nextConnectionNumber++,
      socket,
      pending: Buffer.alloc(0),
      inFlight: new Map(),
      aborter: new AbortController(),
      blocked: false,
      clientEnded: false,
      finished: false,
      idleTimer: setTimeout(() => {
        if (connection.inFlight.size > 0) connection.idleTimer.refresh();
        else finish(connection, 'idle');
      }, limits.idleTimeoutMs),
    };
    connections.add(connection);
    log.debug({ connection: connection.number }, 'client connected');

    socket.on('data', (chunk: Buffer) => {
      if (connection.finished) return;
      connection.idleTimer.refresh();
      connection.pending = connection.pending.length === 0 ? chunk : Buffer.concat([connection.pending, chunk]);
      if (connection.blocked) {
        // Data that was already on its way when we paused; keep it, within a bound.
        if (connection.pending.length > limits.maxLineBytes + PENDING_SLACK_BYTES) {
          log.warn({ connection: connection.number, pendingBytes: connection.pending.length }, 'client keeps sending without reading its replies; closing the connection');
          abortInFlight(connection);
          finish(connection, 'not reading replies');
        }
        return;
      }
      processPending(connection);
    });
    socket.on('end', () => {
      connection.clientEnded = true;
      // A client that went away looks like one that half-closed: handlers that wait on
      // the client (an extend waiting for a grant) stop; others finish and reply.
      abortInFlight(connection);
      finishIfDone(connection);
    });
    socket.on('close', () => {
      connections.delete(connection);
      connection.finished = true;
      clearTimeout(connection.idleTimer);
      // The client is gone: tell its handlers, whose replies will be dropped.
      abortInFlight(connection);
      log.debug({ connection: connection.number, inFlight: connection.inFlight.size }, 'client disconnected');
    });
  }
  server.on('connection', accept);
  server.on('error', (error) => log.error(describeError(error), 'socket server error'));

  const inode = await bindPrivately(server, path);
  log.info({ path, limits }, 'host socket listening');

  async function waitForInFlight(timeoutMs: number): Promise<boolean> {
    if (totalInFlight === 0) return true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        onInFlightDrop = undefined;
        resolve(false);
      }, timeoutMs);
      onInFlightDrop = () => {
        if (totalInFlight > 0) return;
        clearTimeout(timer);
        onInFlightDrop = undefined;
        resolve(true);
      };
    });
  }

  async function closeServer(): Promise<void> {
    closing = true;
    const listenerClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    if (!(await waitForInFlight(limits.closeTimeoutMs))) {
      log.warn({ inFlight: totalInFlight, closeTimeoutMs: limits.closeTimeoutMs }, 'handlers still running at close; aborting them');
      for (const connection of connections) abortInFlight(connection);
    }
    for (const connection of connections) finish(connection, 'server closing');
    // Every connection is destroyed within CLOSE_FLUSH_MS of finish(), which releases the listener.
    await listenerClosed;
    // Remove the path only if it still names our socket: a successor may already have bound it.
    try {
      const current = await lstat(path);
      if (current.ino === inode) await unlink(path);
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') log.warn({ path, ...describeError(error) }, 'could not remove the socket file');
    }
    log.info({ path }, 'host socket closed');
  }

  return {
    path,
    limits,
    stats: () => ({ connectionCount: connections.size, inFlightCount: totalInFlight }),
    close: () => {
      closePromise ??= closeServer();
      return closePromise;
    },
  };
}

/** A fresh request id for one-shot clients. */
export function newRequestId(): string {
  return randomUUID();
}

/**
 * Sends one request on a new connection and returns its reply (a success or an error
 * reply). Rejects with HOST_DAEMON_UNREACHABLE, HOST_DAEMON_TIMEOUT or
 * HOST_DAEMON_BAD_REPLY when no valid reply arrives within `timeoutMs`.
 */
export function requestOnce(path: string, request: ExtendRequest, timeoutMs: number): Promise<Response<ExtendResult>>;
export function requestOnce(path: string, request: ActivationRequest, timeoutMs: number): Promise<Response<ActivationResult>>;
export function requestOnce(path: string, request: StatusRequest, timeoutMs: number): Promise<Response<StatusResult>>;
export function requestOnce(path: string, request: Request, timeoutMs: number): Promise<Response>;
export function requestOnce(path: string, request: Request, timeoutMs: number): Promise<Response> {
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
    return Promise.reject(new ThinlvError('INVALID_ARGUMENT', `timeoutMs must be a positive integer, got ${timeoutMs}`, { timeoutMs }));
  }
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    let received = Buffer.alloc(0);
    let settled = false;
    const settle = (outcome: { response: Response } | { error: ThinlvError }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if ('response' in outcome) resolve(outcome.response);
      else reject(outcome.error);
    };
    const timer = setTimeout(() => {
      settle({ error: new ThinlvError(SocketErrorCode.timeout, `no reply from the host daemon at ${path} within ${timeoutMs} ms (op ${request.op}, id ${request.id})`, { path, timeoutMs }) });
    }, timeoutMs);
    socket.once('connect', () => socket.write(formatRequest(request)));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const newline = received.indexOf(0x0a);
      if (newline < 0) {
        if (received.length > MAX_REPLY_BYTES) settle({ error: new ThinlvError(SocketErrorCode.badReply, `reply from ${path} is longer than ${MAX_REPLY_BYTES} bytes`, { path }) });
        return;
      }
      const parsed = parseResponse(received.subarray(0, newline).toString('utf8'), request.op);
      if (!parsed.ok) {
        settle({ error: new ThinlvError(SocketErrorCode.badReply, `bad reply from the host daemon at ${path}: ${parsed.reason}`, { path }) });
      } else if (parsed.response.id !== request.id && parsed.response.id !== null) {
        settle({ error: new ThinlvError(SocketErrorCode.badReply, `reply from ${path} carries id ${parsed.response.id}, expected ${request.id}`, { path }) });
      } else {
        settle({ response: parsed.response });
      }
    });
    socket.on('error', (error) => {
      const code = errnoCode(error);
      const unreachable = code === 'ENOENT' || code === 'ECONNREFUSED';
      settle({
        error: new ThinlvError(
          unreachable ? SocketErrorCode.unreachable : SocketErrorCode.badReply,
          unreachable ? `no host daemon listens on ${path} (${code}); start it with thinlv host run VG HOST` : `connection to the host daemon at ${path} failed: ${error.message}`,
          { path, errno: code ?? null },
          { cause: error },
        ),
      });
    });
    socket.on('close', () => {
      settle({ error: new ThinlvError(SocketErrorCode.badReply, `the host daemon at ${path} closed the connection without replying`, { path }) });
    });
  });
}
