// The host allocator daemon's metrics (`thinlv host run --metrics-listen`), on a
// registry of its own whose every sample carries the labels vg and host.
//
//   from the socket's requests   extend latency, extents allocated, errors by code
//   read from the allocator      pool extents, extends waiting for a grant, journal
//     at each scrape             records the master has not replayed (no work between scrapes)
//   from the lvm runner          lvm call durations (lvmMetrics.ts)
//
// README.md ("Metrics") lists every name; the alert rules in contrib/prometheus use them.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { HostAllocator } from '../host/allocator.js';
import type { HostObserver } from '../host/hostDaemon.js';
import type { RequestHandler } from '../host/socketServer.js';
import { errorCodeOf } from './errorCode.js';
import { lvmCallHistogram, type LvmCallHistogram } from './lvmMetrics.js';

/** An extend is about one synchronous write (1 ms) when the pool has extents, up to the out-of-space wait when it has not. */
export const EXTEND_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface HostMetrics extends HostObserver {
  readonly registry: Registry;
  readonly lvmCalls: LvmCallHistogram;
}

export function createHostMetrics(vg: string, host: string): HostMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ vg, host });
  let allocator: HostAllocator | undefined;
  const status = () => allocator?.status();
  allocatorGauge(registry, 'thinlv_host_pool_extents', 'Extents in the host\'s in-memory pool: what it can allocate without the master', () => status()?.poolExtentCount);
  allocatorGauge(registry, 'thinlv_host_extends_waiting', 'Extends waiting for a grant now (the pool could not serve them)', () => status()?.waitingExtendCount);
  // The ring's consumer is read at each scrape, so the count is current (not as of the daemon's last metadata read).
  allocatorGauge(registry, 'thinlv_host_unreplayed_records', 'Allocation records this host has journaled that the master has not replayed into metadata yet', async () => (await allocator?.statusNow())?.unreplayedRecordCount);
  const allocated = new Counter({ name: 'thinlv_host_allocated_extents_total', help: 'Extents extends took from the pool for LVs', registers: [registry] });
  const extendSeconds = new Histogram({
    name: 'thinlv_host_extend_duration_seconds',
    help: 'Time from an extend request to its successful reply, waits for a grant included',
    buckets: EXTEND_BUCKETS_SECONDS,
    registers: [registry],
  });
  const errors = new Counter({ name: 'thinlv_host_errors_total', help: 'Requests answered with an error, by error code', labelNames: ['code'], registers: [registry] });
  return {
    registry,
    lvmCalls: lvmCallHistogram(registry),
    watchAllocator(watched) {
      allocator = watched;
    },
    observeRequests(handler: RequestHandler): RequestHandler {
      return async (request, signal) => {
        const endTimer = request.op === 'extend' ? extendSeconds.startTimer() : undefined;
        try {
          const result = await handler(request, signal);
          if (endTimer !== undefined && 'extentsGranted' in result) {
            endTimer();
            allocated.inc(result.extentsGranted);
          }
          return result;
        } catch (error) {
          errors.inc({ code: errorCodeOf(error) });
          throw error;
        }
      };
    },
  };
}

/**
 * A gauge read from the allocator at each scrape. Until the allocator serves it has no
 * sample at all: a 0 would read as an empty pool and could fire an alert.
 */
function allocatorGauge(registry: Registry, name: string, help: string, read: () => number | undefined | Promise<number | undefined>): void {
  const gauge = new Gauge({
    name,
    help,
    registers: [registry],
    async collect() {
      const value = await read();
      if (value === undefined) this.remove();
      else this.set(value);
    },
  });
  gauge.remove();
}
