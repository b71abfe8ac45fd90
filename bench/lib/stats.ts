/** Small descriptive statistics used by the measurements. */

/** Nearest-rank percentile of an ascending-sorted array (p in 0..100). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  const idx = Math.min(sorted.length - 1, Math.max(0, rank - 1));
  return sorted[idx] as number;
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export interface LatencySummary {
  count: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  meanUs: number;
  minUs: number;
  maxUs: number;
}

/** Summarise latencies given in nanoseconds (Float64Array, first `count` used). */
export function summariseNs(samples: Float64Array, count: number): LatencySummary {
  const s = samples.slice(0, count).sort();
  let sum = 0;
  for (let i = 0; i < count; i++) sum += s[i] as number;
  const us = (ns: number): number => ns / 1000;
  return {
    count,
    p50Us: us(percentile(s, 50)),
    p90Us: us(percentile(s, 90)),
    p99Us: us(percentile(s, 99)),
    meanUs: count > 0 ? us(sum / count) : NaN,
    minUs: count > 0 ? us(s[0] as number) : NaN,
    maxUs: count > 0 ? us(s[count - 1] as number) : NaN,
  };
}
