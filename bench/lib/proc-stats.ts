/**
 * CPU time and memory of a system's proxy processes, from /proc.
 *
 * A system is a set of root pids (e.g. spiped -e and spiped -d). Each root is
 * expanded to its live process tree, because socat `fork` serves every
 * connection in a child. CPU = utime + stime + cutime + cstime summed over the
 * tree: children that already exited and were reaped are in their parent's
 * cutime/cstime, live ones are counted directly, so nothing is lost or
 * counted twice. Threads (stunnel) are included in their process's figures.
 *
 * Memory: both RSS and PSS (proportional set size, from smaps_rollup) are
 * summed over the tree. For forking proxies RSS counts shared pages once per
 * process, so PSS is the honest per-connection figure; for single-process
 * proxies the two deltas agree.
 */

import { readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

function clockTicksPerSecond(): number {
  try {
    const out = execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5_000 }).trim();
    const n = Number(out);
    if (Number.isFinite(n) && n > 0) return n;
  } catch {
    /* fall through */
  }
  return 100;
}

const CLK_TCK = clockTicksPerSecond();

interface StatLine {
  pid: number;
  ppid: number;
  pgrp: number;
  ticks: number;
}

function readStat(pid: number): StatLine | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name is in parentheses and may contain spaces: split after ')'.
  const close = text.lastIndexOf(')');
  const fields = text.slice(close + 2).split(' ');
  // fields[0] is state (field 3); field N (1-based) is fields[N - 3].
  const num = (field: number): number => Number(fields[field - 3] ?? 0);
  return {
    pid,
    ppid: num(4),
    pgrp: num(5),
    ticks: num(14) + num(15) + num(16) + num(17),
  };
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number);
}

/** The roots and all their live descendants. */
export function processTree(roots: readonly number[]): number[] {
  if (roots.length === 0) return [];
  const children = new Map<number, number[]>();
  for (const pid of allPids()) {
    const st = readStat(pid);
    if (st === null) continue;
    const list = children.get(st.ppid);
    if (list === undefined) children.set(st.ppid, [pid]);
    else list.push(pid);
  }
  const out: number[] = [];
  const seen = new Set<number>();
  const stack = [...roots];
  while (stack.length > 0) {
    const pid = stack.pop() as number;
    if (seen.has(pid)) continue;
    seen.add(pid);
    out.push(pid);
    for (const c of children.get(pid) ?? []) stack.push(c);
  }
  return out;
}

/** CPU seconds (user + system, including reaped children) of the trees. */
export function cpuSeconds(roots: readonly number[]): number {
  let ticks = 0;
  for (const pid of processTree(roots)) ticks += readStat(pid)?.ticks ?? 0;
  return ticks / CLK_TCK;
}

export interface MemorySample {
  /** Sum of VmRSS over the trees, KiB. */
  rssKiB: number;
  /** Sum of Pss over the trees, KiB (falls back to RSS if unavailable). */
  pssKiB: number;
  processes: number;
}

function kibField(text: string, field: string): number | null {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return m?.[1] !== undefined ? Number(m[1]) : null;
}

export function memory(roots: readonly number[]): MemorySample {
  let rssKiB = 0;
  let pssKiB = 0;
  let processes = 0;
  for (const pid of processTree(roots)) {
    let status: string;
    try {
      status = readFileSync(`/proc/${pid}/status`, 'utf8');
    } catch {
      continue;
    }
    const rss = kibField(status, 'VmRSS') ?? 0;
    let pss: number | null = null;
    try {
      pss = kibField(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss');
    } catch {
      pss = null;
    }
    rssKiB += rss;
    pssKiB += pss ?? rss;
    processes++;
  }
  return { rssKiB, pssKiB, processes };
}
