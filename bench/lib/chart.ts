/**
 * An SVG chart of one bench run for the README: every figure as a ratio to
 * a reference system, oriented so that right of 1× is always better
 * (lower-is-better figures are inverted), on a log scale. Two panels:
 * encrypted pairs against spiped, plain forwarders against
 * systemd-socket-proxyd.
 */
import { COLUMNS, type Column } from './table.js';
import type { SystemResult } from './results.js';

interface Panel {
  title: string;
  reference: string;
  systems: readonly string[];
}

const PANELS: readonly Panel[] = [
  { title: 'Encrypted pairs, relative to the spiped pair', reference: 'spiped', systems: ['jumper', 'jumper-cold', 'jumper-busy-poll', 'jumper-spiped', 'stunnel', 'stunnel-chacha'] },
  { title: 'Plain forwarders, relative to systemd-socket-proxyd', reference: 'systemd-socket-proxyd', systems: ['jumper-forward', 'jumper-handoff', 'socat'] },
];

const COLORS: Record<string, string> = {
  jumper: '#2b6cb0',
  'jumper-cold': '#805ad5',
  'jumper-busy-poll': '#2c7a7b',
  'jumper-spiped': '#63b3ed',
  stunnel: '#c05621',
  'stunnel-chacha': '#ed8936',
  'jumper-forward': '#2b6cb0',
  'jumper-handoff': '#63b3ed',
  socat: '#718096',
};

const ROW = 14;
const LABEL_W = 150;
const PLOT_W = 420;
/** log2 axis from 1/16× to 16×. */
const MIN_LOG = -4;
const MAX_LOG = 4;

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
const x = (ratio: number) => LABEL_W + ((Math.min(Math.max(Math.log2(ratio), MIN_LOG), MAX_LOG) - MIN_LOG) / (MAX_LOG - MIN_LOG)) * PLOT_W;

/** value ÷ reference, inverted for lower-is-better figures; undefined when either is missing. */
function goodness(column: Column, r: SystemResult, ref: SystemResult): number | undefined {
  const a = column.value(r);
  const b = column.value(ref);
  if (a == null || b == null || !(a > 0) || !(b > 0)) return undefined;
  return column.better === 'higher' ? a / b : b / a;
}

export function renderChart(results: readonly SystemResult[], caption: string): string {
  const ok = results.filter((r) => r.status === 'ok');
  const parts: string[] = [];
  let y = 30;
  for (const panel of PANELS) {
    const ref = ok.find((r) => r.name === panel.reference);
    const systems = panel.systems.map((n) => ok.find((r) => r.name === n)).filter((r): r is SystemResult => r !== undefined);
    if (!ref || systems.length === 0) continue;
    parts.push(`<text x="10" y="${y}" font-weight="bold">${esc(panel.title)}</text>`);
    y += 10;
    const top = y;
    for (const column of COLUMNS) {
      const bars = systems.map((s) => [s, goodness(column, s, ref)] as const).filter(([, g]) => g !== undefined);
      if (bars.length === 0) continue;
      parts.push(`<text x="${LABEL_W - 6}" y="${y + ROW * bars.length / 2 + 4}" text-anchor="end">${esc(column.header)} ${column.better === 'higher' ? '↑' : '↓'}</text>`);
      for (const [s, g] of bars) {
        const x0 = x(1);
        const x1 = x(g!);
        parts.push(
          `<rect x="${Math.min(x0, x1).toFixed(1)}" y="${y + 2}" width="${Math.max(Math.abs(x1 - x0), 1).toFixed(1)}" height="${ROW - 4}" fill="${COLORS[s.name] ?? '#999'}"/>`,
          `<text x="${(x1 + (g! >= 1 ? 4 : -4)).toFixed(1)}" y="${y + ROW - 3}" font-size="10" text-anchor="${g! >= 1 ? 'start' : 'end'}">${g!.toFixed(2)}×</text>`,
        );
        y += ROW;
      }
      y += 4;
    }
    // Axis: 1× line and ticks.
    for (let l = MIN_LOG; l <= MAX_LOG; l++) {
      const tx = x(2 ** l);
      parts.push(`<line x1="${tx}" y1="${top}" x2="${tx}" y2="${y}" stroke="${l === 0 ? '#000' : '#ddd'}"/>`);
      parts.push(`<text x="${tx}" y="${y + 12}" font-size="10" text-anchor="middle">${l >= 0 ? 2 ** l : `1/${2 ** -l}`}×</text>`);
    }
    y += 20;
    let lx = LABEL_W;
    for (const s of systems) {
      parts.push(`<rect x="${lx}" y="${y - 9}" width="10" height="10" fill="${COLORS[s.name] ?? '#999'}"/><text x="${lx + 14}" y="${y}">${esc(s.name)}</text>`);
      lx += 24 + s.name.length * 7;
    }
    y += 24;
  }
  parts.push(`<text x="10" y="${y}" font-size="10">${esc(caption)}</text>`);
  y += 10;
  const width = LABEL_W + PLOT_W + 60;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
