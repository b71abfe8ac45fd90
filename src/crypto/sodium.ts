/**
 * libsodium-wrappers is WebAssembly and must be initialised once before use.
 * `loadSodium()` awaits that; `sodium()` returns the ready module and is
 * what hot code calls after start-up.
 */
import sodiumModule from 'libsodium-wrappers';

export type Sodium = typeof sodiumModule;

let ready = false;

/** Initialise libsodium (idempotent). */
export async function loadSodium(): Promise<Sodium> {
  if (!ready) {
    await sodiumModule.ready;
    ready = true;
  }
  return sodiumModule;
}

/**
 * The initialised module.
 * @throws Error when called before {@link loadSodium} resolved: a programming error.
 */
export function sodium(): Sodium {
  if (!ready) throw new Error('libsodium used before loadSodium() resolved');
  return sodiumModule;
}

/** Overwrite secret bytes in place; best effort, as far as the runtime allows. */
export function wipe(bytes: Uint8Array | undefined): void {
  if (bytes) bytes.fill(0);
}
