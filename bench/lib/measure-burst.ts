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
  /** Echoed, then cut (reset or error) before the burst ended: not counted as served. */
  cutAfterEcho: number;
  firstError?: string;
}

export async function measureBurst(port: number, connections: number, timeoutMs: number): Promise<BurstResult> {
  const started = performance.now();
  let lastEcho = started;
  let failed = 0;
  let cutAfterEcho = 0;
  let firstError: string | undefined;
  const cut = new WeakSet<net.Socket>();
  const attempts = Array.from({ length: connections }, () =>
    echoHandshake(port, timeoutMs).then(
      (sock): net.Socket => {
        lastEcho = performance.now();
        // Held until the whole burst is done: a later reset must not crash the
        // runner, and the stream does not count as served.
        sock.once('error', (err: Error) => {
          cut.add(sock);
          cutAfterEcho++;
          firstError ??= `after the echo: ${err.message}`;
        });
        return sock;
      },
      (err: unknown): null => {
        failed++;
        firstError ??= err instanceof Error ? err.message : String(err);
        return null;
      },
    ),
  );
  const echoed = (await Promise.all(attempts)).filter((s): s is net.Socket => s !== null);
  const served = echoed.filter((s) => !cut.has(s) && !s.destroyed).length;
  await closeAll(echoed, timeoutMs);
  const result: BurstResult = {
    requested: connections,
    served,
    successRatio: connections > 0 ? served / connections : NaN,
    seconds: (lastEcho - started) / 1000,
    failed,
    cutAfterEcho,
  };
  if (firstError !== undefined) result.firstError = firstError;
  return result;
}
