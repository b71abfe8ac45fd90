/**
 * Option values: the duration grammar the CLI and the config file share,
 * and the CLI's parsers built on it.
 */
import test from 'ava';
import { parseDuration, parsePreconnect } from '../src/cli/parse.js';
import { durationMs, MAX_DURATION_MS } from '../src/options.js';

test('durations: a bare number is seconds; ms, s and m; anything else is NaN', (t) => {
  t.is(durationMs('5'), 5000);
  t.is(durationMs(' 250ms '), 250);
  t.is(durationMs('1.5s'), 1500);
  t.is(durationMs('2m'), 120_000);
  for (const bad of ['', '5 sec', '-1', '1h', 'inf']) t.true(Number.isNaN(durationMs(bad)), bad);
});

test('--durations above what a timer holds are refused, the largest one is taken', (t) => {
  t.is(parseDuration(`${MAX_DURATION_MS}ms`), MAX_DURATION_MS);
  t.throws(() => parseDuration(`${MAX_DURATION_MS + 1}ms`), { message: /at most 2147483647 ms/ });
  t.throws(() => parseDuration('3000000'), { message: /at most 2147483647 ms/ });
  t.throws(() => parseDuration('5 sec'), { message: /expected a duration/ });
});

test('--preconnect takes auto or 0 to 1000', (t) => {
  t.is(parsePreconnect('auto'), 'auto');
  t.is(parsePreconnect('0'), 0);
  t.is(parsePreconnect('1000'), 1000);
  for (const bad of ['1001', '-1', '1.5', 'AUTO', '']) t.throws(() => parsePreconnect(bad), undefined, bad);
});
