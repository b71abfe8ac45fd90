/**
 * The jumper CLI run from source (node --import tsx src/cli/jumper.ts) as a
 * child process, so a test can kill it, limit its descriptors, and read its
 * RSS and open fd count from /proc. JSON log lines are parsed from stderr.
 */
import type { ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeNewKeyFile, type TunnelKey } from '../../src/index.js';
import { watchJsonLog } from './json-log.js';
import { killAtTeardown } from './netns.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'src/cli/jumper.ts');

/** A fresh 0600 key file in a temporary directory removed at teardown. */
export async function makeKeyFile(t: ExecutionContext): Promise<{ path: string; key: TunnelKey; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'jumper-adv-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'key');
  const key = await writeNewKeyFile(path);
  return { path, key, dir };
}

export interface ChildJumper {
  child: ChildProcess;
  pid: number;
  /** The listening TCP port, from the start-up line. */
  port: number;
  logs: Record<string, unknown>[];
  stderr(): string;
  waitFor(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resident set size in bytes (/proc/PID/status VmRSS). */
  rss(): number;
  /** Open file descriptors (/proc/PID/fd). */
  fds(): number;
}

export interface SpawnOptions {
  /** Run under `ulimit -n N` (soft and hard). */
  nofile?: number;
  env?: NodeJS.ProcessEnv;
  /** Extra node flags, e.g. a small young generation for memory measurements. */
  nodeArgs?: string[];
}

/** Start `jumper ARGS --log-format json` and wait for its listening line. */
export async function spawnJumper(t: ExecutionContext, args: string[], options: SpawnOptions = {}): Promise<ChildJumper> {
  const argv = [...(options.nodeArgs ?? []), '--import', 'tsx', CLI, ...args, '--log-format', 'json'];
  const env = { ...process.env, ...options.env };
  const child =
    options.nofile !== undefined
      ? spawn('sh', ['-c', `ulimit -n ${options.nofile} && exec "$0" "$@"`, process.execPath, ...argv], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(process.execPath, argv, { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  killAtTeardown(t, child);
  const { logs, waitFor, exited, stderr } = watchJsonLog(child);
  const started = await waitFor((l) => typeof l.msg === 'string' && l.msg.endsWith('jumper listening'));
  const port = Number(String(started.listen).split(':').pop());
  const pid = child.pid!;
  return {
    child,
    pid,
    port,
    logs,
    stderr,
    waitFor,
    exited,
    rss: () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024,
    fds: () => readdirSync(`/proc/${pid}/fd`).length,
  };
}
