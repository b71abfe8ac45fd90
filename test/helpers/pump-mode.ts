/** Run a test's tunnels on the native record pump or on the JS pipes (JUMPER_NO_NATIVE_PUMP), restored at teardown. */
import type { ExecutionContext } from 'ava';
import { NO_NATIVE_PUMP_ENV, nativePumpAvailable } from '../../src/native/pump.js';

export type PumpMode = 'native' | 'js';

/**
 * Select `mode` for the streams this test starts (the variable is read per
 * stream, so tests that switch it must be serial). False when the native pump
 * is asked for but not built: the caller skips with a message.
 */
export function usePumpMode(t: ExecutionContext, mode: PumpMode): boolean {
  const before = process.env[NO_NATIVE_PUMP_ENV];
  if (mode === 'js') process.env[NO_NATIVE_PUMP_ENV] = '1';
  else delete process.env[NO_NATIVE_PUMP_ENV];
  t.teardown(() => {
    if (before === undefined) delete process.env[NO_NATIVE_PUMP_ENV];
    else process.env[NO_NATIVE_PUMP_ENV] = before;
  });
  return mode === 'js' || nativePumpAvailable();
}
