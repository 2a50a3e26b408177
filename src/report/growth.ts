// How fast the VG fills, and which LVs grow most: `thinlv free`'s forecast, from the
// history the master publishes (src/master/masterStatus.ts). Pure.
//
//   rate_w         = extents replayed into LVs in window w / the part of w history covers
//   time to full_w = (free + host pools) / rate_w      what guests can still be given
//
// A window counts only when the master's history covers at least a tenth of it (6
// minutes of the last hour, 2.4 hours of the last day); the forecast is the sooner of
// the windows that count, since the faster recent rate is the one that bites.

import type { GrowthWindow } from '../master/masterStatus.js';
import type { PublishedStatus } from './publishedStatus.js';

/** The least share of a window the history must cover for its rate to count. */
export const MIN_COVERED_SHARE = 0.1;

export interface WindowForecast {
  readonly name: 'hour' | 'day';
  readonly windowMs: number;
  readonly coveredMs: number;
  /** Whether history covers enough of the window for its rate to count. */
  readonly enoughHistory: boolean;
  readonly extentCount: number;
  readonly extentsPerHour: number;
  /** At this window's rate; null without enough history, or when nothing grew. */
  readonly timeToFullSeconds: number | null;
  readonly topLvs: readonly { readonly lv: string; readonly extentCount: number }[];
}

/** `thinlv free --json`'s "growth": documented in README.md; add fields, never rename. */
export interface GrowthReport {
  /** Whether the master's history was available. */
  readonly available: boolean;
  /** Why not, when it was not. */
  readonly reason: string | null;
  readonly publishedAtMs: number | null;
  readonly masterHost: string | null;
  readonly windows: readonly WindowForecast[];
}

const MS_PER_HOUR = 3_600_000;

/** The forecast for a VG with `availableExtents` (free + host pools) left. */
export function growthReport(published: PublishedStatus, availableExtents: number): GrowthReport {
  if (!published.published) return unavailable(published.reason);
  const { status } = published;
  if (status.growth === null) return unavailable(`the master on ${status.masterHost} keeps no history (it runs with --no-history)`);
  return {
    available: true,
    reason: null,
    publishedAtMs: status.writtenAtMs,
    masterHost: status.masterHost,
    windows: status.growth.windows.map((w) => forecast(w, availableExtents)),
  };
}

function forecast(window: GrowthWindow, availableExtents: number): WindowForecast {
  const enoughHistory = window.coveredMs > 0 && window.coveredMs >= window.windowMs * MIN_COVERED_SHARE;
  const extentsPerHour = window.coveredMs > 0 ? (window.extentCount * MS_PER_HOUR) / window.coveredMs : 0;
  const timeToFullSeconds = enoughHistory && window.extentCount > 0 ? Math.floor((availableExtents * window.coveredMs) / window.extentCount / 1000) : null;
  return { name: window.name, windowMs: window.windowMs, coveredMs: window.coveredMs, enoughHistory, extentCount: window.extentCount, extentsPerHour, timeToFullSeconds, topLvs: window.topLvs };
}

/** The sooner forecast of the windows that count; null when none does. */
export function soonestFull(report: GrowthReport): number | null {
  const times = report.windows.map((w) => w.timeToFullSeconds).filter((t): t is number => t !== null);
  return times.length === 0 ? null : Math.min(...times);
}

function unavailable(reason: string): GrowthReport {
  return { available: false, reason, publishedAtMs: null, masterHost: null, windows: [] };
}
