// `thinlv free`'s forecast lines: time to full at each window's rate, and the LVs that
// grew most. The numbers are src/report/growth.ts.

import type { GrowthReport, WindowForecast } from '../report/growth.js';
import { formatBytes, formatDuration } from './format.js';

export function growthLines(growth: GrowthReport, extentBytes: number): string[] {
  if (!growth.available) return [`time to full: not enough history (${growth.reason ?? 'none published'})`];
  const lines = [`time to full: ${growth.windows.map((w) => windowForecast(w, extentBytes)).join('; ')}`];
  for (const w of growth.windows.filter((x) => x.topLvs.length > 0)) {
    lines.push(`grew most in the last ${w.name}: ${w.topLvs.map((t) => `${t.lv} +${formatBytes(t.extentCount * extentBytes)}`).join(', ')}`);
  }
  return lines;
}

function windowForecast(w: WindowForecast, extentBytes: number): string {
  const covered = formatDuration(w.coveredMs / 1000);
  if (!w.enoughHistory) return `last ${w.name}: not enough history (${covered} of it)`;
  const rate = `${formatBytes(w.extentsPerHour * extentBytes)}/h`;
  if (w.timeToFullSeconds === null) return `last ${w.name}: no growth`;
  const partial = w.coveredMs < w.windowMs ? `, over ${covered}` : '';
  return `${formatDuration(w.timeToFullSeconds)} at the last ${w.name}'s rate (${rate}${partial})`;
}
