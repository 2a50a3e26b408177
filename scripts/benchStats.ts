// What the benchmark scripts share: nearest-rank percentiles and a microsecond clock.

/** The nearest-rank percentile of an ascending list: the smallest sample with at least `fraction` of samples at or below it. */
export function percentile(sorted: readonly number[], fraction: number): number {
  const index = Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1);
  return sorted[Math.max(0, index)]!;
}

/** A monotonic clock in microseconds. */
export const nowUs = (): number => Number(process.hrtime.bigint()) / 1000;

export const round1 = (x: number): number => Math.round(x * 10) / 10;
