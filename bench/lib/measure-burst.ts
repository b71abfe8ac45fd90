/**
 * Burst: N connections opened at once through the system.
 *
 * Every connection is started in the same tick; each sends one byte and
 * waits for its echo (the provider's echo mode, so every proxy hop has set
 * the stream up). Reported: how many were served within the time limit and
 * how long until the last one echoed. Listen backlogs overflow at this
 * size, so SYN retransmits (1 s, 3 s, ...) show up in the time, as they
 * would for real clients.
 */

import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { closeAll, echoHandshake } from './net.js';

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
  let failed = 0;
  let firstError: string | undefined;
  const attempts = Array.from({ length: connections }, () =>
    echoHandshake(port, timeoutMs).then(
      (sock): net.Socket => {
        lastEcho = performance.now();
        return sock;
      },
      (err: unknown): null => {
        failed++;
        firstError ??= err instanceof Error ? err.message : String(err);
        return null;
      },
    ),
  );
  const socks = (await Promise.all(attempts)).filter((s): s is net.Socket => s !== null);
  await closeAll(socks, timeoutMs);
  const result: BurstResult = {
    requested: connections,
    served: socks.length,
    successRatio: connections > 0 ? socks.length / connections : NaN,
    seconds: (lastEcho - started) / 1000,
    failed,
  };
  if (firstError !== undefined) result.firstError = firstError;
  return result;
}
