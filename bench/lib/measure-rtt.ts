/**
 * Request/response latency: one connection, strictly one message in flight.
 * Each round trip writes `messageBytes` and waits until the same bytes have
 * come back from the echo provider; the time of each round trip is recorded
 * with the monotonic high-resolution clock. Bounded by count and by time.
 */

import { echoHandshake, withTimeout } from './net.js';
import { patternSlice } from './protocol.js';
import { type LatencySummary, summariseNs } from './stats.js';

export interface RttResult extends LatencySummary {
  messageBytes: number;
  /** True if the time limit stopped the loop before `roundTrips`. */
  truncated: boolean;
  /** When measured in rounds (bench/run.ts): each round's p50 and p99; the figures are their medians. */
  roundsP50Us?: number[];
  roundsP99Us?: number[];
}

export async function measureRtt(
  port: number,
  roundTrips: number,
  messageBytes: number,
  timeoutMs: number,
): Promise<RttResult> {
  const sock = await echoHandshake(port, timeoutMs);
  const samples = new Float64Array(roundTrips);
  const deadline = Date.now() + timeoutMs;
  let done = 0;
  let truncated = false;
  try {
    await withTimeout(
      'rtt',
      timeoutMs + 1_000,
      new Promise<void>((resolve, reject) => {
        let received = 0;
        let t0 = 0n;
        let msg = patternSlice(0, messageBytes);
        const parts: Buffer[] = [];
        const send = (): void => {
          msg = patternSlice(done * messageBytes, messageBytes);
          received = 0;
          parts.length = 0;
          t0 = process.hrtime.bigint();
          sock.write(msg);
        };
        sock.on('data', (chunk: Buffer) => {
          received += chunk.length;
          parts.push(chunk);
          if (received < messageBytes) return;
          const t1 = process.hrtime.bigint();
          if (received > messageBytes || !Buffer.concat(parts).equals(msg)) {
            reject(new Error('rtt: echo mismatch'));
            return;
          }
          samples[done++] = Number(t1 - t0);
          if (done >= roundTrips) return resolve();
          if (Date.now() >= deadline) {
            truncated = true;
            return resolve();
          }
          send();
        });
        sock.once('close', () => reject(new Error(`rtt: connection closed after ${done} round trips`)));
        sock.once('error', (err) => reject(err));
        send();
      }),
    );
  } finally {
    sock.destroy();
  }
  return { ...summariseNs(samples, done), messageBytes, truncated };
}
