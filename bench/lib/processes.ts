/**
 * Child processes the benchmark starts, and the guarantee that they all die.
 *
 * Every child is spawned in its own process group (detached) so that a
 * forking proxy (socat `fork`) is stopped together with its per-connection
 * children by signalling the group of the pid we started — and only that.
 * A process-wide registry kills whatever is still alive on exit, on SIGINT /
 * SIGTERM and on an uncaught error, so an aborted run leaves nothing behind.
 */

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { STOP_GRACE_MS } from './config.js';

const live = new Set<ManagedProcess>();
let hooksInstalled = false;

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const p of live) p.killNow();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      // Graceful first (lets forking proxies reap their children), bounded by
      // the grace period inside stop(); the exit hook SIGKILLs any straggler.
      void stopAll().finally(() => process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1)));
    });
  }
}

/** Stop every live child (SIGTERM, then SIGKILL after the grace period). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop()));
}

export class ManagedProcess {
  readonly child: ChildProcess;
  readonly label: string;
  /** Last lines of stderr/stdout, for error messages. */
  private readonly tail: string[] = [];
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private readonly exited: Promise<void>;

  constructor(label: string, command: string, args: readonly string[], options: SpawnOptions = {}) {
    installHooks();
    this.label = label;
    this.child = spawn(command, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...options,
      detached: true,
    });
    live.add(this);
    const keep = (data: Buffer): void => {
      for (const line of data.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        this.tail.push(line);
        if (this.tail.length > 20) this.tail.shift();
      }
    };
    this.child.stderr?.on('data', keep);
    if (options.stdio === undefined) this.child.stdout?.on('data', keep);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        live.delete(this);
        resolve();
      });
      this.child.once('error', (err) => {
        this.tail.push(String(err));
        this.exitInfo = { code: -1, signal: null };
        live.delete(this);
        resolve();
      });
    });
  }

  get pid(): number {
    const pid = this.child.pid;
    if (pid === undefined) throw new Error(`${this.label}: process did not start (${this.output()})`);
    return pid;
  }

  get hasExited(): boolean {
    return this.exitInfo !== null;
  }

  describeExit(): string {
    if (this.exitInfo === null) return 'running';
    const { code, signal } = this.exitInfo;
    return signal !== null ? `killed by ${signal}` : `exit code ${code}`;
  }

  output(): string {
    return this.tail.join(' | ');
  }

  /** Signal our own process group (the child and anything it forked). */
  private signal(sig: NodeJS.Signals): void {
    const pid = this.child.pid;
    if (pid === undefined || this.exitInfo !== null) return;
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch {
        /* already gone */
      }
    }
  }

  killNow(): void {
    this.signal('SIGKILL');
  }

  /** SIGTERM, then SIGKILL after a grace period; resolves once it has exited. */
  async stop(): Promise<void> {
    if (this.exitInfo !== null) return;
    this.signal('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), STOP_GRACE_MS);
    });
    const result = await Promise.race([this.exited.then(() => 'exited' as const), graceOver]);
    clearTimeout(timer);
    if (result === 'timeout') {
      this.signal('SIGKILL');
      await this.exited;
    }
    // The group may still hold forked children that ignored SIGTERM.
    const pid = this.child.pid;
    if (pid !== undefined) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* group already empty */
      }
    }
  }

  waitExit(): Promise<void> {
    return this.exited;
  }
}

/** Run a short command to completion with a hard timeout; never throws. */
export function runCommand(
  command: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string; error?: string }> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let child: ChildProcess;
    try {
      child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      resolve({ code: null, stdout, stderr, error: String(err) });
      return;
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr, error: String(err) });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
