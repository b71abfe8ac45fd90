/**
 * The jumper CLI run from source (node --import tsx), so tests of new
 * commands do not depend on a fresh dist/ build; plus admin-endpoint reads.
 */
import type { ExecutionContext } from 'ava';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { watchJsonLog } from './json-log.js';
import { killAtTeardown } from './netns.js';
import type { RunningCli } from './cli.js';

export const JUMPER_SRC = fileURLToPath(new URL('../../src/cli/jumper.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Start `jumper ARGS` from source with JSON logs on stderr; killed at teardown. */
export function startJumperSrc(t: ExecutionContext, args: string[], options: { uid?: number; env?: NodeJS.ProcessEnv } = {}): RunningCli {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', JUMPER_SRC, ...args, '--log-format', 'json'], {
    cwd: ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(options.uid !== undefined ? { uid: options.uid } : {}),
  });
  killAtTeardown(t, child);
  return { child, ...watchJsonLog(child) };
}

/** Run `jumper ARGS` from source to its exit: status and output (a one-shot command, or one that fails at start-up). */
export function runJumperSrc(args: string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', JUMPER_SRC, ...args], { cwd: ROOT, env: { ...process.env, ...options.env }, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** GET a path of an admin endpoint (host:port). */
export async function adminGet(admin: string, path: string): Promise<{ status: number; type: string | null; body: string }> {
  const res = await fetch(`http://${admin}${path}`);
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
}

/** The port a link listens on, from /status. */
export async function linkPort(admin: string, name: string): Promise<number> {
  const status = JSON.parse((await adminGet(admin, '/status')).body) as { links: { name: string; state: string; listen: string }[] };
  const link = status.links.find((l) => l.name === name && l.state === 'running');
  if (!link) throw new Error(`no running link ${name} in /status`);
  return Number(link.listen.slice(link.listen.lastIndexOf(':') + 1));
}
