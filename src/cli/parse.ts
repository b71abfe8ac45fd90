/**
 * Parsers for option values; each throws commander's InvalidArgumentError
 * so the user gets "error: option '--x <v>' argument 'y' is invalid. ...".
 */
import { InvalidArgumentError } from 'commander';
import { durationMs, formatDurationMs, isBusyPollSetting, isPreconnectSetting, MAX_BUSY_POLL_US, MIN_TIMEOUT_MS, MAX_DURATION_MS, MAX_PRECONNECT_WIRES, type PreconnectSetting } from '../options.js';

/** "5" (seconds), "5s", "250ms", "2m" → milliseconds (0 allowed: drain and idle times). */
export function parseDuration(value: string): number {
  const ms = durationMs(value);
  if (Number.isNaN(ms)) throw new InvalidArgumentError('expected a duration such as 5, 5s, 250ms or 2m (a bare number is seconds)');
  if (ms > MAX_DURATION_MS) throw new InvalidArgumentError(`expected at most ${MAX_DURATION_MS} ms (about 24 days)`);
  return ms;
}

/** A duration parser that refuses anything below `minMs` (timeouts: {@link MIN_TIMEOUT_MS}). */
export function durationAtLeast(minMs: number): (value: string) => number {
  return (value) => {
    const ms = parseDuration(value);
    if (ms < minMs) throw new InvalidArgumentError(`expected at least ${formatDurationMs(minMs)}`);
    return ms;
  };
}

/** A timeout: at least {@link MIN_TIMEOUT_MS} (0 would fail every connection at once). */
export const parseTimeout = durationAtLeast(MIN_TIMEOUT_MS);

/** A whole number of wires, or "auto" (--preconnect). */
export function parsePreconnect(value: string): PreconnectSetting {
  const setting = value === 'auto' ? value : /^\d+$/.test(value) ? Number(value) : NaN;
  if (!isPreconnectSetting(setting)) throw new InvalidArgumentError(`expected auto or a whole number up to ${MAX_PRECONNECT_WIRES} (0 = off)`);
  return setting;
}

/** Whole microseconds, 0 to MAX_BUSY_POLL_US (--busy-poll). */
export function parseBusyPoll(value: string): number {
  const us = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!isBusyPollSetting(us)) throw new InvalidArgumentError(`expected whole microseconds from 0 to ${MAX_BUSY_POLL_US} (0 = off)`);
  return us;
}

export function parsePositiveInt(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('expected a positive integer');
  return Number(value);
}

/** Collect a repeatable option into an array. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
