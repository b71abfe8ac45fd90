/**
 * Plain-text tables: the absolute figures per system, and the same figures
 * as ratios against a reference system (spiped, stunnel).
 */

import type { SystemResult } from './results.js';

export interface Column {
  readonly header: string;
  /** 'higher' or 'lower' is better; used in the ratio tables' legend. */
  readonly better: 'higher' | 'lower';
  readonly value: (r: SystemResult) => number | null | undefined;
  readonly digits: number;
  /** True if the figure only exists for systems with proxy processes. */
  readonly proxyOnly?: boolean;
}

export const COLUMNS: readonly Column[] = [
  { header: 'up MB/s', better: 'higher', value: (r) => r.bulk?.upload1?.medianMBps, digits: 0 },
  { header: 'down MB/s', better: 'higher', value: (r) => r.bulk?.download1?.medianMBps, digits: 0 },
  { header: 'up×8 MB/s', better: 'higher', value: (r) => r.bulk?.uploadN?.medianMBps, digits: 0 },
  { header: 'down×8 MB/s', better: 'higher', value: (r) => r.bulk?.downloadN?.medianMBps, digits: 0 },
  { header: 'conn/s', better: 'higher', value: (r) => r.setup?.perSecond, digits: 0 },
  { header: 'RTT p50 µs', better: 'lower', value: (r) => r.rtt?.p50Us, digits: 1 },
  { header: 'RTT p99 µs', better: 'lower', value: (r) => r.rtt?.p99Us, digits: 1 },
  { header: '1-CPU RTT p50', better: 'lower', value: (r) => r.rttOneCpu?.p50Us, digits: 1 },
  { header: '1-CPU RTT p99', better: 'lower', value: (r) => r.rttOneCpu?.p99Us, digits: 1 },
  { header: 'CPU s/GB', better: 'lower', value: (r) => r.cpu?.secondsPerGB, digits: 2, proxyOnly: true },
  { header: 'CPU µs/conn', better: 'lower', value: (r) => r.cpu?.setupMicrosPerConnection, digits: 0, proxyOnly: true },
  { header: 'CPU µs/trip', better: 'lower', value: (r) => r.cpu?.rttMicrosPerRoundTrip, digits: 1, proxyOnly: true },
  { header: 'KiB/conn', better: 'lower', value: (r) => r.memory?.pssKiBPerConnection, digits: 1, proxyOnly: true },
  { header: 'burst ok %', better: 'higher', value: (r) => (r.burst ? r.burst.successRatio * 100 : undefined), digits: 1 },
  { header: 'burst s', better: 'lower', value: (r) => r.burst?.seconds, digits: 2 },
];

function render(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(headers), rule, ...rows.map(line)].join('\n');
}

function fmt(v: number | null | undefined, digits: number): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '-';
  return v.toFixed(digits);
}

const ok = (results: readonly SystemResult[]): SystemResult[] => results.filter((r) => r.status === 'ok');

/** Absolute figures, one row per system that ran. */
export function absoluteTable(results: readonly SystemResult[]): string {
  const rows = ok(results).map((r) => [r.name, ...COLUMNS.map((c) => fmt(c.value(r), c.digits))]);
  return render(['system', ...COLUMNS.map((c) => c.header)], rows);
}

/** Each figure divided by the reference system's figure; null if the reference did not run. */
export function ratioTable(results: readonly SystemResult[], referenceName: string): string | null {
  const ref = ok(results).find((r) => r.name === referenceName);
  if (ref === undefined) return null;
  const rows = ok(results).map((r) => [
    r.name,
    ...COLUMNS.map((c) => {
      const a = c.value(r);
      const b = c.value(ref);
      if (a === null || a === undefined || b === null || b === undefined || !(b > 0)) return '-';
      const ratio = a / b;
      return `${ratio >= 0.1 || ratio === 0 ? ratio.toFixed(2) : ratio.toPrecision(2)}×`;
    }),
  ]);
  const headers = ['÷ ' + referenceName, ...COLUMNS.map((c) => `${c.header.replace(/ (MB\/s|µs|conn\/s|%|s)$/, '')} ${c.better === 'higher' ? '↑' : '↓'}`)];
  return render(headers, rows);
}

export const TABLE_LEGEND =
  'up/down: bulk MB/s (10^6 B/s) over 1 connection, ×8: 8 parallel connections (aggregate); ' +
  'conn/s: sequential connect+1-byte echo+close; RTT: 64-byte request/response on one connection (µs); ' +
  '1-CPU RTT: the same with client, provider and proxies pinned to one CPU, so no system gains or loses by where the scheduler puts it; ' +
  'CPU s/GB: CPU seconds of all proxy processes per 10^9 payload bytes (bulk phase); ' +
  'CPU µs/conn: proxy CPU per connection in the setup phase; CPU µs/trip: proxy CPU per round trip in the (unpinned) RTT slices; KiB/conn: proxy PSS per idle connection; ' +
  'burst: N connections opened at once, each a 1-byte echo: % served and seconds until the last echo. ' +
  'Ratios: ↑ higher is better, ↓ lower is better.';
