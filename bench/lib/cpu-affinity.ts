/**
 * CPU affinity for the one-CPU RTT figure.
 *
 * One-connection RTT on a few shared cores is decided less by the proxies
 * than by the scheduler: each of a round trip's six wake-ups lands either on
 * the waker's core or on the other one, and on a VM a wake-up on an idle core
 * costs tens of microseconds (the vCPU halted). Which happens differs from
 * run to run, so two systems can swap places between runs. Pinning the
 * measuring client, the provider and the system's processes to one CPU takes
 * placement out: every system then pays the same wake-ups, and what is left
 * is each proxy's own cost per hop.
 *
 * Node has no sched_setaffinity, so this uses taskset(1) from util-linux,
 * with -a for every thread (stunnel's, jumper's reactors). Forking proxies
 * (socat) are pinned as a tree, and a child forked later inherits the mask.
 */

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { processTree } from './proc-stats.js';
import { PROBE_TIMEOUT_MS } from './config.js';

/** This process's allowed CPUs as a list taskset accepts ("0-1"), read at start so it can be restored. */
export function allowedCpuList(): string | null {
  try {
    const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m?.[1] ?? null;
  } catch {
    return null;
  }
}

/** Null if pinning works here, else why the one-CPU figure is skipped. */
export function affinityUnavailable(): string | null {
  if (allowedCpuList() === null) return 'no /proc/self/status Cpus_allowed_list';
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore', timeout: PROBE_TIMEOUT_MS });
    return null;
  } catch {
    return 'taskset (util-linux) not found';
  }
}

/** The CPUs of a list such as "0-1,4", in order. */
export function cpuListMembers(list: string): number[] {
  return list.split(',').flatMap((part) => {
    const [a, b] = part.split('-').map(Number);
    return b === undefined ? [a!] : Array.from({ length: b - a! + 1 }, (_, i) => a! + i);
  });
}

/** The first CPU of a list: where the one-CPU slices run. */
export function firstCpu(list: string): string {
  return String(cpuListMembers(list)[0] ?? 0);
}

/** Set the affinity of every thread of this process (not its children: those are the systems). */
export function setOwnAffinity(cpuList: string): void {
  execFileSync('taskset', ['-a', '-cp', cpuList, String(process.pid)], { stdio: 'ignore', timeout: PROBE_TIMEOUT_MS });
}

/**
 * Set the affinity of every thread of the given processes and their
 * children. A process that exited meanwhile is skipped: the measurement that
 * follows notices a dead system by itself.
 */
export function setAffinity(roots: readonly number[], cpuList: string): void {
  for (const pid of processTree(roots)) {
    try {
      execFileSync('taskset', ['-a', '-cp', cpuList, String(pid)], { stdio: 'ignore', timeout: PROBE_TIMEOUT_MS });
    } catch {
      /* gone */
    }
  }
}
