/**
 * The jumper CLI run from source (node --import tsx), so tests of new
 * commands do not depend on a fresh dist/ build; plus admin-endpoint reads.
 */
import type { ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { killAtTeardown } from './netns.js';
import type { RunningCli } from './cli.js';

export const JUMPER_SRC = fileURLToPath(new URL('../../src/cli/jumper.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Start `jumper ARGS` from source with JSON logs on stderr; killed at teardown. */
export function startJumperSrc(t: ExecutionContext, args: string[], options: { uid?: number } = {}): RunningCli {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', JUMPER_SRC, ...args, '--log-format', 'json'], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(options.uid !== undefined ? { uid: options.uid } : {}),
  });
  killAtTeardown(t, child);
  const logs: Record<string, unknown>[] = [];
  let text = '';
  let partial = '';
  const listeners = new Set<() => void>();
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    text += chunk;
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* not a log line */
      }
    }
    for (const l of [...listeners]) l();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    logs,
    exited,
    stderr: () => text,
    waitFor(predicate, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = logs.find(predicate);
          if (!hit) return false;
          listeners.delete(check);
          clearTimeout(timer);
          resolve(hit);
          return true;
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`no matching log line in ${timeoutMs} ms; stderr: ${text.slice(-3000)}`));
        }, timeoutMs);
        listeners.add(check);
        if (!check()) void exited.then(() => check() || reject(new Error(`jumper exited; stderr: ${text.slice(-3000)}`)));
      });
    },
  };
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
