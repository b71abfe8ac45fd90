/**
 * Burst: N connections opened at once through the system.
 *
 * Every connection is started in the same tick; each sends one byte, waits
 * for its echo (the provider's echo mode, so every proxy hop has set the
 * stream up) and closes, as a client with its answer does. Reported: how
 * many were echoed within the time limit and how long until the last echo.
 * Listen backlogs overflow at this size, so SYN retransmits (1 s, 3 s, ...)
 * show up in the time, as they would for real clients.
 *
 * Why not hold every stream until the end: this machine's hard fd limit is
 * 20,000 per process, and a proxy holds two fds per stream, so no single
 * proxy process can hold 10,000 streams at once here; a held burst measured
 * the fd limit. Holding idle streams is what the memory figure measures.
 */

import { performance } from 'node:perf_hooks';
import { echoHandshake } from './net.js';

export interface BurstResult {
  requested: number;
  served: number;
  /** served / requested. */
  successRatio: number;
  /** From the first connect until the last echo arrived (served ones only). */
  seconds: number;
  failed: number;
  firstError?: string;
}

export async function measureBurst(port: number, connections: number, timeoutMs: number): Promise<BurstResult> {
  const started = performance.now();
  let lastEcho = started;
  let served = 0;
  let failed = 0;
  let firstError: string | undefined;
  const attempts = Array.from({ length: connections }, () =>
    echoHandshake(port, timeoutMs).then(
      (sock): void => {
        lastEcho = performance.now();
        served++;
        sock.on('error', () => undefined); // a reset while closing is not a failure of the burst
        sock.destroy();
      },
      (err: unknown): void => {
        failed++;
        firstError ??= err instanceof Error ? err.message : String(err);
      },
    ),
  );
  await Promise.all(attempts);
  const result: BurstResult = {
    requested: connections,
    served,
    successRatio: connections > 0 ? served / connections : NaN,
    seconds: (lastEcho - started) / 1000,
    failed,
  };
  if (firstError !== undefined) result.firstError = firstError;
  return result;
}
