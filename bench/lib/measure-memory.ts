/**
 * Memory per idle tunnelled connection.
 *
 * Sample the proxy processes' memory while idle, open N connections through
 * the system (each proven end to end with a 1-byte echo, so every proxy hop
 * has really set it up), wait a moment, sample again, close everything.
 * (loaded - idle) / N is the memory one idle connection costs the proxies.
 *
 * No unmeasured pass comes first, on purpose: memory an allocator kept from
 * earlier connections would hide the cost (spiped measured 8.7 instead of
 * 37.6 KiB with one). So the figure includes a heap's growth from its idle
 * size, as a proxy that sat idle and then gets N connections pays it.
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

/** Open up to `connections` echo-proven connections, `concurrency` at a time; stops at the first failure. */
async function holdIdle(
  port: number,
  connections: number,
  concurrency: number,
  timeoutMs: number,
): Promise<{ socks: net.Socket[]; firstError?: string }> {
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
  await withTimeout(
    'opening idle connections',
    timeoutMs,
    Promise.all(Array.from({ length: concurrency }, worker)),
    () => (stop = true),
  ).catch((err: unknown) => {
    firstError ??= err instanceof Error ? err.message : String(err);
  });
  return firstError === undefined ? { socks } : { socks, firstError };
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
  const held = await holdIdle(port, connections, concurrency, timeoutMs);
  try {
    await sleep(settleMs);
    const loaded = memory(pids);
    const opened = held.socks.length;
    const per = (a: number, b: number): number => (opened > 0 ? (b - a) / opened : NaN);
    const result: MemoryResult = {
      requested: connections,
      opened,
      idle,
      loaded,
      pssKiBPerConnection: per(idle.pssKiB, loaded.pssKiB),
      rssKiBPerConnection: per(idle.rssKiB, loaded.rssKiB),
    };
    if (held.firstError !== undefined) result.firstError = held.firstError;
    return result;
  } finally {
    await closeAll(held.socks, timeoutMs);
  }
}
