/**
 * Lazy loader for the `jumper_native` addon (native/, built by
 * scripts/build-native.sh).
 *
 * The addon is loaded on first use, never at import time, so everything that
 * does not touch network namespaces works on machines where it was not built.
 * Paths are resolved relative to this module: the compiled file
 * (dist/native/binding.js) and the source run by tsx (src/native/binding.ts)
 * both sit two levels below the repository root.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { NativeUnavailableError } from '../errors.js';

/** Socket family as the addon spells it. */
export type NativeFamily = 'ipv4' | 'ipv6' | 'unix';

/**
 * The addon's exports: the smallest syscall-level surface. Each call runs
 * open(nsPath) + setns + socket (+ bind/listen or connect) on a short-lived
 * thread of its own, so no JS or libuv thread ever changes namespace.
 *
 * Both reject with a {@link NativeSystemError}; both throw TypeError/RangeError
 * synchronously for malformed arguments.
 */
export interface NativeBinding {
  /**
   * Create a listening stream socket inside the network namespace at `nsPath`.
   * @param nsPath  namespace file, e.g. /var/run/netns/NAME or /proc/PID/ns/net
   * @param family  'ipv4' | 'ipv6' | 'unix'
   * @param host    IP literal (IPv6 without brackets, optional %scope), or the
   *                Unix socket path (a leading NUL selects the abstract namespace)
   * @param port    0..65535 (0 = kernel picks); ignored for 'unix'
   * @param backlog listen(2) backlog
   * @param umask   -1 to leave it, or 0..0o777: bind under this umask, set on
   *                the job's own thread only (the process's umask is untouched)
   * @returns the listening fd (O_NONBLOCK, O_CLOEXEC); SO_REUSEADDR is set for TCP
   */
  listenInNetns(nsPath: string, family: NativeFamily, host: string, port: number, backlog: number, umask: number): Promise<number>;
  /**
   * Connect a stream socket from inside the network namespace at `nsPath`.
   * @param timeoutMs  how long to wait for the connection (>= 1); ETIMEDOUT after
   * @returns the connected fd (O_NONBLOCK, O_CLOEXEC)
   */
  connectInNetns(nsPath: string, family: NativeFamily, host: string, port: number, timeoutMs: number): Promise<number>;
  /**
   * Hand-off protocol v1: sendmsg(2) one byte 0x01 with SCM_RIGHTS carrying `fd`
   * over the connected Unix stream socket `viaFd`. Throws a NativeSystemError.
   */
  sendFd(viaFd: number, fd: number): void;
  /**
   * Receive one hand-off over `viaFd`: the descriptor (O_CLOEXEC), or -1 when
   * nothing has arrived yet (EAGAIN). Throws a NativeSystemError on failure,
   * one with code 'EMFILE' when a well-formed hand-off's descriptor was dropped
   * (no room under RLIMIT_NOFILE, or refused by a security module), and an
   * Error with code 'EPROTO' on a malformed message.
   */
  recvFd(viaFd: number): number;
}

/** The shape of the addon's rejections (like Node's own system errors). */
export interface NativeSystemError extends Error {
  /** Negated errno value, as in Node's system errors (e.g. -1 for EPERM). */
  errno: number;
  /** errno name, e.g. 'EPERM'. */
  code: string;
  /** Failing call: 'open' | 'setns' | 'socket' | 'setsockopt' | 'bind' | 'listen' | 'connect' | ... */
  syscall: string;
}

/** Is `err` a rejection from the addon (carries errno, code and syscall)? */
export function isNativeSystemError(err: unknown): err is NativeSystemError {
  if (!(err instanceof Error)) return false;
  const fields = err as Partial<NativeSystemError>;
  return typeof fields.errno === 'number' && typeof fields.code === 'string' && typeof fields.syscall === 'string';
}

/** Set to "1" to force the addon to be reported unavailable (tests of the fallback). */
export const NO_NATIVE_ENV = 'JUMPER_NO_NATIVE';

const ADDON_FILE = 'jumper_native.node';
/** Tried in order; relative to this module's directory. */
const CANDIDATE_DIRS = ['../../native/build/Release/', '../../native/build/Debug/'] as const;
const BUILD_HINT = 'build it with: bash scripts/build-native.sh';

type LoadOutcome = { ok: true; binding: NativeBinding } | { ok: false; error: InstanceType<typeof NativeUnavailableError> };

let outcome: LoadOutcome | undefined;

function candidatePaths(): string[] {
  return CANDIDATE_DIRS.map((dir) => fileURLToPath(new URL(dir + ADDON_FILE, import.meta.url)));
}

function isBinding(value: unknown): value is NativeBinding {
  const exports = value as Partial<Record<keyof NativeBinding, unknown>> | null;
  return (
    typeof exports === 'object' &&
    exports !== null &&
    typeof exports.listenInNetns === 'function' &&
    typeof exports.connectInNetns === 'function'
  );
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message.split('\n')[0] ?? err.message : String(err);
}

function attemptLoad(): LoadOutcome {
  if (process.env[NO_NATIVE_ENV] === '1') {
    return {
      ok: false,
      error: new NativeUnavailableError(`native addon disabled by ${NO_NATIVE_ENV}=1; network namespace support is unavailable`),
    };
  }
  if (process.platform !== 'linux') {
    return {
      ok: false,
      error: new NativeUnavailableError(`network namespaces need Linux; this is ${process.platform}`),
    };
  }
  const require = createRequire(import.meta.url);
  const tried = candidatePaths();
  let lastError: unknown;
  for (const path of tried) {
    try {
      const loaded: unknown = require(path);
      if (isBinding(loaded)) return { ok: true, binding: loaded };
      lastError = new Error(`${path} does not export listenInNetns/connectInNetns (stale build?)`);
    } catch (err) {
      lastError = err;
    }
  }
  return {
    ok: false,
    error: new NativeUnavailableError(
      `native addon ${ADDON_FILE} could not be loaded (tried ${tried.join(', ')}): ${describe(lastError)}; ${BUILD_HINT}`,
      { cause: lastError },
    ),
  };
}

/**
 * Load the addon (first call) or return the cached one.
 * The outcome, success or failure, is decided once per process.
 * @throws NativeUnavailableError (JUMPER_ERR_NATIVE_UNAVAILABLE) when
 *   JUMPER_NO_NATIVE=1, the platform is not Linux, or no candidate file loads;
 *   the message lists every path tried and the last loader error.
 */
export function loadNative(): NativeBinding {
  outcome ??= attemptLoad();
  if (!outcome.ok) throw outcome.error;
  return outcome.binding;
}

/**
 * The addon's exports when it loads and every one of `names` is a function
 * (a stale build may lack newer ones); undefined otherwise. For modules that
 * fall back to a JS path without the addon.
 */
export function nativeExports<T>(names: readonly (keyof T & string)[]): T | undefined {
  if (!nativeAvailable()) return undefined;
  const addon = loadNative() as unknown as Partial<Record<keyof T, unknown>>;
  return names.every((name) => typeof addon[name] === 'function') ? (addon as T) : undefined;
}

/**
 * {@link nativeExports} decided on first call and remembered, null included
 * (no addon, or one without these exports): for calls made per socket.
 */
export function lazyNativeExports<T>(names: readonly (keyof T & string)[]): () => T | null {
  let binding: T | null | undefined;
  return () => {
    if (binding === undefined) binding = nativeExports<T>(names) ?? null;
    return binding;
  };
}

/** Whether {@link loadNative} succeeds (loads the addon on first call; never throws). */
export function nativeAvailable(): boolean {
  outcome ??= attemptLoad();
  return outcome.ok;
}
