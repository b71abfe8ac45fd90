/**
 * Raise RLIMIT_NOFILE of the runner itself, so every process it starts
 * (provider, proxies) inherits it: Node has no setrlimit, prlimit(1) does
 * it on our pid. Best effort: the soft limit goes as high as allowed.
 */

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** The soft and hard "Max open files" of this process. */
export function fdLimit(): { soft: number; hard: number } {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const [soft, hard] = (line ?? '').split(/\s+/).slice(3, 5).map((v) => (v === 'unlimited' ? Infinity : Number(v)));
  return { soft: soft ?? NaN, hard: hard ?? NaN };
}

/** Try `wanted` for soft and hard, else soft = hard; returns the soft limit in force. */
export function raiseFdLimit(wanted: number): number {
  const pid = String(process.pid);
  for (const spec of [`${wanted}:${wanted}`, `${Math.min(wanted, fdLimit().hard)}:`]) {
    try {
      execFileSync('prlimit', ['--pid', pid, `--nofile=${spec}`], { stdio: 'ignore', timeout: 5_000 });
      break;
    } catch {
      // not root, or no prlimit: try the next, smaller step
    }
  }
  return fdLimit().soft;
}
