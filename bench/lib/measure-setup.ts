/**
 * Sequential connection setup rate: connect, send 1 byte, read the 1-byte
 * echo, close — one after another on a single client, for a fixed duration
 * or a maximum count, whichever comes first. The echo proves the whole chain
 * (including any handshake and the proxy's own connect to the provider) was
 * established; the close is not waited for, as a real client would not.
 */

import { echoHandshake } from './net.js';
import { type LatencySummary, summariseNs } from './stats.js';

/** Give up on the phase after this many failed connections. */
const MAX_SETUP_ERRORS = 20;

export interface SetupResult {
  connections: number;
  seconds: number;
  perSecond: number;
  errors: number;
  firstError?: string;
  /** Latency of one connect + echo, per connection. */
  latency: LatencySummary;
  /** When measured in rounds (bench/run.ts): each round's rate; perSecond is their median. */
  roundsPerSecond?: number[];
}

export async function measureSetup(
  port: number,
  durationMs: number,
  maxConnections: number,
  perConnectionTimeoutMs: number,
): Promise<SetupResult> {
  const samples = new Float64Array(maxConnections);
  let done = 0;
  let errors = 0;
  let firstError: string | undefined;
  const start = process.hrtime.bigint();
  const endAt = start + BigInt(durationMs) * 1_000_000n;
  while (done < maxConnections && errors < MAX_SETUP_ERRORS) {
    const t0 = process.hrtime.bigint();
    if (t0 >= endAt) break;
    try {
      const sock = await echoHandshake(port, perConnectionTimeoutMs);
      samples[done++] = Number(process.hrtime.bigint() - t0);
      sock.destroy();
    } catch (err) {
      errors++;
      firstError ??= err instanceof Error ? err.message : String(err);
    }
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const result: SetupResult = {
    connections: done,
    seconds,
    perSecond: done / seconds,
    errors,
    latency: summariseNs(samples, done),
  };
  if (firstError !== undefined) result.firstError = firstError;
  return result;
}
