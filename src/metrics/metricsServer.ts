// The daemons' Prometheus endpoint: GET /metrics on the address `--metrics-listen
// HOST:PORT` names, in the text format prom-client writes; anything else is 404.
// Off unless asked for: a daemon without the option opens no port and keeps no metrics.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { Registry } from 'prom-client';
import { ErrorCode, ThinlvError, UsageError } from '../errors.js';
import type { Logger } from '../log.js';

export const METRICS_PATH = '/metrics';
/** Scrapers connected at once; Prometheus uses one per target, so a few leave room for a curl. */
export const MAX_METRICS_CONNECTIONS = 16;
/** A scraper that sends its request this slowly is dropped (a scrape takes milliseconds). */
export const METRICS_REQUEST_TIMEOUT_MS = 10_000;

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export interface MetricsServer {
  /** Where it listens (the port the system chose when asked for port 0). */
  readonly address: ListenAddress;
  /** Stops listening and drops open connections; safe to call twice. */
  close(): Promise<void>;
}

/** A DNS name as `listen` takes it: labels of letters, digits and "-", dot-separated. */
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Parses `HOST:PORT` (an IPv6 address in brackets: `[::1]:9464`); refuses anything else with INVALID_ARGUMENT. */
export function parseListenAddress(text: string, option = '--metrics-listen'): ListenAddress {
  const refuse = (why: string): never => {
    throw new UsageError(ErrorCode.invalidArgument, `${option} takes HOST:PORT, for example 127.0.0.1:9464 or [::1]:9464; "${text}" ${why}`, { value: text });
  };
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):([0-9]+)$/.exec(text.trim());
  if (match === null) return refuse('is not of that form');
  const bracketed = match[1];
  const host = bracketed ?? match[2] ?? '';
  if (bracketed !== undefined && isIP(bracketed) !== 6) refuse(`has "${bracketed}" in brackets, which is not an IPv6 address`);
  if (bracketed === undefined && isIP(host) === 0 && !HOST_NAME.test(host)) refuse(`has "${host}", which is neither an IP address nor a host name`);
  const port = Number(match[3]);
  if (!Number.isSafeInteger(port) || port < 1 || port > 65_535) refuse(`has port ${match[3]}, which is not from 1 to 65535`);
  return { host, port };
}

export const formatListenAddress = (address: ListenAddress): string => (isIP(address.host) === 6 ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`);

/** Serves `registry` on `address` until close(); fails with METRICS_LISTEN_FAILED naming the address (in use, not local, ...). */
export async function startMetricsServer(registry: Registry, address: ListenAddress, log?: Logger): Promise<MetricsServer> {
  const server = createServer((request, response) => void answer(registry, request, response));
  server.maxConnections = MAX_METRICS_CONNECTIONS;
  server.requestTimeout = METRICS_REQUEST_TIMEOUT_MS;
  server.headersTimeout = METRICS_REQUEST_TIMEOUT_MS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      const where = formatListenAddress(address);
      const why = error.code === 'EADDRINUSE' ? 'the address is already in use (another daemon? choose another port)' : error.code === 'EADDRNOTAVAIL' ? 'no interface of this machine has that address' : error.message;
      reject(new ThinlvError('METRICS_LISTEN_FAILED', `cannot serve metrics on ${where}: ${why}`, { address: where, errno: error.code ?? null }, { cause: error }));
    });
    server.listen({ host: address.host, port: address.port }, resolve);
  });
  const bound = server.address();
  const port = typeof bound === 'object' && bound !== null ? bound.port : address.port;
  let closed: Promise<void> | undefined;
  log?.info({ metrics: `http://${formatListenAddress({ host: address.host, port })}${METRICS_PATH}` }, 'serving Prometheus metrics');
  return {
    address: { host: address.host, port },
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // A scraper's keep-alive connection would otherwise hold close() open.
        server.closeAllConnections();
      });
      return closed;
    },
  };
}

async function answer(registry: Registry, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = (request.url ?? '').split('?')[0];
  if (request.method !== 'GET' || path !== METRICS_PATH) {
    response.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`not found: thinlv serves GET ${METRICS_PATH} only\n`);
    return;
  }
  try {
    const body = await registry.metrics();
    response.writeHead(200, { 'Content-Type': registry.contentType }).end(body);
  } catch (error) {
    // A collect callback that throws is a bug in thinlv, but must not take the daemon down with it.
    response.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`metrics could not be collected: ${(error as Error).message}\n`);
  }
}
