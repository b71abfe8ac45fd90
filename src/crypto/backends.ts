/**
 * Choosing between a crypto module's two backends: the addon's OpenSSL
 * calls when the addon is built (and not a stale build missing them), else
 * node:crypto. Decided once per process; tests ask for every backend.
 */
import { nativeExports } from '../native/binding.js';

/** Set to "1" to use the node:crypto backends even when the addon is built. */
export const NO_NATIVE_CRYPTO_ENV = 'JUMPER_NO_NATIVE_CRYPTO';

/** The addon's exports, when native crypto may be used and every one of `names` is there. */
export function nativeCryptoExports<T>(names: readonly (keyof T & string)[]): T | undefined {
  if (process.env[NO_NATIVE_CRYPTO_ENV] === '1') return undefined;
  return nativeExports<T>(names);
}

export class BackendChoice<T> {
  readonly #native: () => T | undefined;
  readonly #fallback: T;
  #chosen: T | undefined;

  constructor(native: () => T | undefined, fallback: T) {
    this.#native = native;
    this.#fallback = fallback;
  }

  /** The backend in use: native when available, else the fallback. */
  get(): T {
    this.#chosen ??= this.#native() ?? this.#fallback;
    return this.#chosen;
  }

  /** Every backend available here, native first. */
  all(): T[] {
    const native = this.#native();
    return native ? [native, this.#fallback] : [this.#fallback];
  }
}
