/**
 * Parsers for option values; each throws commander's InvalidArgumentError
 * so the user gets "error: option '--x <v>' argument 'y' is invalid. ...".
 */
import { InvalidArgumentError } from 'commander';
import { isPreconnectSetting, MAX_DURATION_MS, MAX_PRECONNECT_WIRES, type PreconnectSetting } from '../options.js';

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/** "5" (seconds), "5s", "250ms", "2m" → milliseconds. */
export function parseDuration(value: string): number {
  const m = DURATION.exec(value.trim());
  if (!m) throw new InvalidArgumentError('expected a duration such as 5, 5s, 250ms or 2m (a bare number is seconds)');
  const ms = Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 's']!);
  if (ms > MAX_DURATION_MS) throw new InvalidArgumentError(`expected at most ${MAX_DURATION_MS} ms (about 24 days)`);
  return ms;
}

/** A whole number of wires, or "auto" (--preconnect). */
export function parsePreconnect(value: string): PreconnectSetting {
  const setting = value === 'auto' ? value : /^\d+$/.test(value) ? Number(value) : NaN;
  if (!isPreconnectSetting(setting)) throw new InvalidArgumentError(`expected auto or a whole number up to ${MAX_PRECONNECT_WIRES} (0 = off)`);
  return setting;
}

export function parsePositiveInt(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('expected a positive integer');
  return Number(value);
}

/** Collect a repeatable option into an array. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
