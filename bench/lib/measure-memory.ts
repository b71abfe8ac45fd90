/**
 * Memory per idle tunnelled connection.
 *
 * Sample the proxy processes' memory while idle, open N connections through
 * the system (each proven end to end with a 1-byte echo, so every proxy hop
 * has really set it up), wait a moment, sample again, close everything.
 * (loaded - idle) / N is the memory one idle connection costs the proxies.
 */

import type net from 'node:net';
import { closeAll, echoHandshake, sleep, withTimeout } from './net.js';
import { memory, type MemorySample } from './proc-stats.js';

export interface MemoryResult {
  requested: number;
  opened: number;
  idle: MemorySample;
  loaded: MemorySample;
  /** (loaded - idle) / opened, from PSS (see proc-stats.ts). */
  pssKiBPerConnection: number;
  rssKiBPerConnection: number;
  firstError?: string;
}

export async function measureMemory(
  port: number,
  pids: readonly number[],
  connections: number,
  concurrency: number,
  timeoutMs: number,
  settleMs: number,
): Promise<MemoryResult> {
  await sleep(settleMs);
  const idle = memory(pids);
  const socks: net.Socket[] = [];
  let next = 0;
  let firstError: string | undefined;
  let stop = false;
  const worker = async (): Promise<void> => {
    while (!stop && next < connections) {
      next++;
      try {
        const sock = await echoHandshake(port, timeoutMs);
        sock.on('error', () => undefined); // held idle: a reset must not crash the runner
        socks.push(sock);
      } catch (err) {
        firstError ??= err instanceof Error ? err.message : String(err);
        stop = true;
      }
    }
  };
  try {
    await withTimeout(
      'opening idle connections',
      timeoutMs,
      Promise.all(Array.from({ length: concurrency }, worker)),
      () => (stop = true),
    ).catch((err: unknown) => {
      firstError ??= err instanceof Error ? err.message : String(err);
    });
    await sleep(settleMs);
    const loaded = memory(pids);
    const opened = socks.length;
    const per = (a: number, b: number): number => (opened > 0 ? (b - a) / opened : NaN);
    const result: MemoryResult = {
      requested: connections,
      opened,
      idle,
      loaded,
      pssKiBPerConnection: per(idle.pssKiB, loaded.pssKiB),
      rssKiBPerConnection: per(idle.rssKiB, loaded.rssKiB),
    };
    if (firstError !== undefined) result.firstError = firstError;
    return result;
  } finally {
    stop = true;
    await closeAll(socks, timeoutMs);
  }
}
