/**
 * Real network namespaces for tests.
 *
 * createNetns() makes a fresh namespace with `ip netns add` (a unique name
 * jt-<random>-<label>), brings up its loopback, and deletes it when the test
 * ends (t.teardown). createVethPair() links two such namespaces with a veth
 * pair addressed from 10.231.X.Y/30; the interfaces are created directly in
 * the test namespaces, never in the host's, and vanish with them.
 *
 * Network rule: everything stays on loopback or on these veth pairs. No
 * route, NAT or interface ever touches the host namespace.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';

const execFileAsync = promisify(execFile);

const NAME_PREFIX = 'jt';
const RANDOM_SUFFIX_BYTES = 3;
/** Interface names are limited to IFNAMSIZ - 1 = 15 bytes. */
const VETH_PREFIX = 'jv';
/** 10.231.0.0/16 is used only inside test namespaces. */
const VETH_NET_PREFIX = '10.231';
const SUBNETS_PER_OCTET = 64; // /30 blocks in one /24
const BLOCK_SIZE = 4;
const PREFIX_LENGTH = 30;
const OCTET_VALUES = 256;
/** Grace period before SIGKILL for helper processes at teardown. */
const KILL_GRACE_MS = 2000;
/** How long to wait for a helper process's next JSON line by default. */
const DEFAULT_MESSAGE_TIMEOUT_MS = 15_000;

export interface TestNetns {
  /** Name as shown by `ip netns list`. */
  name: string;
  /** The namespace file, /var/run/netns/<name>. */
  path: string;
  /** Run a command inside the namespace (`ip netns exec`) and wait for it. */
  exec(cmd: string, args?: string[], options?: { input?: string; timeoutMs?: number }): Promise<{ stdout: string; stderr: string }>;
  /** Start a long-running command inside the namespace; killed at teardown. */
  spawn(cmd: string, args?: string[]): JsonLineProcess;
}

/** A child process that talks in JSON lines on stdout. */
export interface JsonLineProcess {
  child: ChildProcess;
  /** Resolve with the next JSON line (rejects on exit or timeout). */
  next<T = Record<string, unknown>>(timeoutMs?: number): Promise<T>;
  /** Everything written to stderr so far (for failure messages). */
  stderr(): string;
}

/**
 * Why namespace tests cannot run here, or undefined when they can
 * (root, Linux, `ip` on PATH).
 */
export function netnsUnsupportedReason(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (platform is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'creating network namespaces needs root (run the tests as root)';
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return '`ip` (iproute2) is not installed';
  }
  return undefined;
}

function randomSuffix(): string {
  return randomBytes(RANDOM_SUFFIX_BYTES).toString('hex');
}

async function ip(args: string[]): Promise<void> {
  await execFileAsync('ip', args);
}

/** Wrap a child whose stdout carries one JSON object per line. */
export function jsonLines(child: ChildProcess): JsonLineProcess {
  const queue: unknown[] = [];
  const waiters: Array<{ resolve: (value: unknown) => void; reject: (err: Error) => void }> = [];
  let stderrText = '';
  let exited: Error | undefined;

  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderrText += chunk;
  });
  if (child.stdout) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        return; // not ours (e.g. a library's banner)
      }
      const waiter = waiters.shift();
      if (waiter) waiter.resolve(value);
      else queue.push(value);
    });
  }
  child.on('exit', (code, signal) => {
    exited = new Error(`helper process exited (code ${code}, signal ${signal}); stderr: ${stderrText.trim()}`);
    for (const waiter of waiters.splice(0)) waiter.reject(exited);
  });

  return {
    child,
    stderr: () => stderrText,
    next<T>(timeoutMs = DEFAULT_MESSAGE_TIMEOUT_MS): Promise<T> {
      if (queue.length > 0) return Promise.resolve(queue.shift() as T);
      if (exited) return Promise.reject(exited);
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          const index = waiters.indexOf(waiter);
          if (index >= 0) waiters.splice(index, 1);
          reject(new Error(`no message from helper within ${timeoutMs} ms; stderr: ${stderrText.trim()}`));
        }, timeoutMs);
        const waiter = {
          resolve: (value: unknown) => {
            clearTimeout(timer);
            resolve(value as T);
          },
          reject: (err: Error) => {
            clearTimeout(timer);
            reject(err);
          },
        };
        waiters.push(waiter);
      });
    },
  };
}

/** Kill a child at teardown: SIGTERM, then SIGKILL after a grace period. */
export function killAtTeardown(t: ExecutionContext, child: ChildProcess): void {
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    await gone;
    clearTimeout(timer);
  });
}

/**
 * Create a fresh network namespace with `lo` up; deleted at teardown.
 * @param label  short tag for the name (jt-<random>-<label>)
 */
export async function createNetns(t: ExecutionContext, label: string): Promise<TestNetns> {
  const name = `${NAME_PREFIX}-${randomSuffix()}-${label}`;
  await ip(['netns', 'add', name]);
  // Registered first, so it runs last (AVA runs teardowns in reverse order),
  // after any process inside the namespace has been killed.
  t.teardown(async () => {
    await ip(['netns', 'del', name]).catch(() => undefined);
  });
  await ip(['-n', name, 'link', 'set', 'lo', 'up']);

  return {
    name,
    path: `/var/run/netns/${name}`,
    async exec(cmd, args = [], options = {}) {
      const run = execFileAsync('ip', ['netns', 'exec', name, cmd, ...args], {
        timeout: options.timeoutMs ?? DEFAULT_MESSAGE_TIMEOUT_MS,
        encoding: 'utf8',
      });
      if (options.input !== undefined) {
        run.child.stdin?.end(options.input);
      }
      return run;
    },
    spawn(cmd, args = []) {
      const child = spawn('ip', ['netns', 'exec', name, cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
      killAtTeardown(t, child);
      return jsonLines(child);
    },
  };
}

export interface VethPair {
  /** Interface and address (without prefix length) inside each namespace. */
  a: { ifname: string; address: string };
  b: { ifname: string; address: string };
  prefixLength: number;
}

/**
 * Link two test namespaces with a veth pair on a random 10.231.X.Y/30.
 * The pair is created directly inside the namespaces and disappears with them.
 */
export async function createVethPair(t: ExecutionContext, nsA: TestNetns, nsB: TestNetns): Promise<VethPair> {
  const suffix = randomSuffix();
  const ifA = `${VETH_PREFIX}${suffix}a`;
  const ifB = `${VETH_PREFIX}${suffix}b`;
  const block = randomInt(SUBNETS_PER_OCTET) * BLOCK_SIZE;
  const third = randomInt(OCTET_VALUES);
  const addressA = `${VETH_NET_PREFIX}.${third}.${block + 1}`;
  const addressB = `${VETH_NET_PREFIX}.${third}.${block + 2}`;

  await ip(['link', 'add', ifA, 'netns', nsA.name, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB.name]);
  // Deleting either end removes both; harmless if the namespaces are already gone.
  t.teardown(async () => {
    await ip(['-n', nsA.name, 'link', 'del', ifA]).catch(() => undefined);
  });
  await ip(['-n', nsA.name, 'addr', 'add', `${addressA}/${PREFIX_LENGTH}`, 'dev', ifA]);
  await ip(['-n', nsB.name, 'addr', 'add', `${addressB}/${PREFIX_LENGTH}`, 'dev', ifB]);
  await ip(['-n', nsA.name, 'link', 'set', ifA, 'up']);
  await ip(['-n', nsB.name, 'link', 'set', ifB, 'up']);
  return { a: { ifname: ifA, address: addressA }, b: { ifname: ifB, address: addressB }, prefixLength: PREFIX_LENGTH };
}
