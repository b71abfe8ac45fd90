/**
 * Run the built CLI (dist/) as a child process, optionally inside a network
 * namespace, and wait for its start-up log line.
 */
import type { ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { watchJsonLog } from './json-log.js';
import { killAtTeardown } from './netns.js';

export const JUMPER = fileURLToPath(new URL('../../dist/cli/jumper.js', import.meta.url));
export const KEYGEN = fileURLToPath(new URL('../../dist/cli/jumper-keygen.js', import.meta.url));
export const cliBuilt = existsSync(JUMPER) && existsSync(KEYGEN);

export interface RunningCli {
  child: ChildProcess;
  /** Parsed JSON log lines so far. */
  logs: Record<string, unknown>[];
  /** Resolve when a log line matches. */
  waitFor(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

/**
 * Start `jumper ARGS` (in `netns` via ip netns exec when given); killed at teardown.
 * `ownGroup`: as a shell starts a job, leader of its own process group (signal it with process.kill(-pid)).
 */
export function startJumper(t: ExecutionContext, args: string[], options: { netns?: string; ownGroup?: boolean } = {}): RunningCli {
  const argv = [JUMPER, ...args, '--log-format', 'json'];
  const spawnOptions = { stdio: ['ignore', 'ignore', 'pipe'] as ['ignore', 'ignore', 'pipe'], detached: options.ownGroup ?? false };
  const child = options.netns
    ? spawn('ip', ['netns', 'exec', options.netns, process.execPath, ...argv], spawnOptions)
    : spawn(process.execPath, argv, spawnOptions);
  killAtTeardown(t, child);
  return { child, ...watchJsonLog(child, 20_000) };
}

export { freePort } from './ports.js';
