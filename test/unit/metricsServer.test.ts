// The metrics endpoint: --metrics-listen's parsing, GET /metrics in the text format,
// 404 for anything else, a clear error for an address in use, and a clean close.

import { Agent, request } from 'node:http';
import { Counter, Registry } from 'prom-client';
import { afterEach, describe, expect, test } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { parseListenAddress, startMetricsServer, type MetricsServer } from '../../src/metrics/metricsServer.js';
import { parseMetricsText, valueOf } from '../fixtures/metricsText.js';

describe('--metrics-listen HOST:PORT', () => {
  test.each([
    ['127.0.0.1:9464', { host: '127.0.0.1', port: 9464 }],
    ['0.0.0.0:1', { host: '0.0.0.0', port: 1 }],
    ['localhost:65535', { host: 'localhost', port: 65535 }],
    ['[::1]:9464', { host: '::1', port: 9464 }],
    ['metrics.example.org:9100', { host: 'metrics.example.org', port: 9100 }],
  ])('%s is accepted', (text, address) => {
    expect(parseListenAddress(text)).toEqual(address);
  });

  test.each(['9464', '127.0.0.1', ':9464', '127.0.0.1:', '127.0.0.1:0', '127.0.0.1:65536', '127.0.0.1:94x', '::1:9464', '[127.0.0.1]:9464', 'a b:9464', '-host:9464', 'http://127.0.0.1:9464', ''])(
    '"%s" is refused with INVALID_ARGUMENT, naming the option and the value',
    (text) => {
      let error: unknown;
      try {
        parseListenAddress(text);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(UsageError);
      expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', data: { value: text } });
      expect((error as Error).message).toContain('--metrics-listen');
    },
  );
});

function get(port: number, path: string, method = 'GET', agent: Agent | false = false): Promise<{ status: number; contentType: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, contentType: response.headers['content-type'], body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the metrics server', () => {
  const servers: MetricsServer[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.close();
  });

  async function serve(registry: Registry): Promise<MetricsServer> {
    const server = await startMetricsServer(registry, { host: '127.0.0.1', port: 0 });
    servers.push(server);
    return server;
  }

  test('GET /metrics answers the registry in the Prometheus text format, current at each scrape', async () => {
    const registry = new Registry();
    registry.setDefaultLabels({ vg: 'vg0' });
    const counter = new Counter({ name: 'thinlv_test_things_total', help: 'things', registers: [registry] });
    const server = await serve(registry);
    expect(server.address.port).toBeGreaterThan(0);

    const first = await get(server.address.port, '/metrics');
    expect(first.status).toBe(200);
    expect(first.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(valueOf(parseMetricsText(first.body), 'thinlv_test_things_total', { vg: 'vg0' })).toBe(0);

    counter.inc(3);
    const second = await get(server.address.port, '/metrics?ignored=1');
    expect(valueOf(parseMetricsText(second.body), 'thinlv_test_things_total', { vg: 'vg0' })).toBe(3);
  });

  test('any other path or method is 404', async () => {
    const server = await serve(new Registry());
    for (const [path, method] of [['/', 'GET'], ['/metrics/', 'GET'], ['/metricsx', 'GET'], ['/metrics', 'POST'], ['/metrics', 'DELETE']] as const) {
      const answer = await get(server.address.port, path, method);
      expect(answer.status, `${method} ${path}`).toBe(404);
    }
  });

  test('an address in use fails with METRICS_LISTEN_FAILED naming it', async () => {
    const first = await serve(new Registry());
    const taken = { host: '127.0.0.1', port: first.address.port };
    await expect(startMetricsServer(new Registry(), taken)).rejects.toMatchObject({
      code: 'METRICS_LISTEN_FAILED',
      message: expect.stringContaining(`127.0.0.1:${taken.port}`),
      data: { address: `127.0.0.1:${taken.port}`, errno: 'EADDRINUSE' },
    });
  });

  test('close() stops listening, drops a kept-alive scraper, and may be called twice', async () => {
    const server = await startMetricsServer(new Registry(), { host: '127.0.0.1', port: 0 });
    const port = server.address.port;
    // A scraper that keeps its connection open, as Prometheus does between scrapes.
    const keepAlive = new Agent({ keepAlive: true });
    expect((await get(port, '/metrics', 'GET', keepAlive)).status).toBe(200);
    await Promise.all([server.close(), server.close()]);
    keepAlive.destroy();
    await expect(get(port, '/metrics')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    // The port is free again: a new daemon may take it.
    const again = await startMetricsServer(new Registry(), { host: '127.0.0.1', port });
    await again.close();
  });

  test('a collect callback that throws answers 500 and the server serves on', async () => {
    const registry = new Registry();
    let broken = true;
    new Counter({
      name: 'thinlv_test_flaky_total',
      help: 'flaky',
      registers: [registry],
      collect() {
        if (broken) throw new Error('collector bug');
      },
    });
    const server = await serve(registry);
    const failed = await get(server.address.port, '/metrics');
    expect(failed.status).toBe(500);
    expect(failed.body).toContain('collector bug');
    broken = false;
    expect((await get(server.address.port, '/metrics')).status).toBe(200);
  });
});
