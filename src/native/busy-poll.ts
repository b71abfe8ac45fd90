/**
 * Busy polling on the native data path's reactor threads
 * (native/src/busy_poll.cc): after handling events, a reactor keeps polling
 * for up to this many microseconds before it sleeps, so the next record of a
 * request/response exchange finds it awake instead of waking a halted CPU.
 *
 * Process-wide: every link of the process shares the reactor threads. Off (0)
 * by default, since it spends CPU for latency: up to the budget per wake-up.
 * A thread allowed on one CPU only never polls. The JS data path (without
 * the addon) cannot poll; see docs/performance.md, "Ninth pass: busy polling".
 */
import { InvalidArgumentError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { isBusyPollSetting, MAX_BUSY_POLL_US } from '../options.js';
import { lazyNativeExports } from './binding.js';
import { nativePumpAvailable } from './pump.js';
import { nativeSpliceAvailable } from './splice.js';

interface BusyPollBinding {
  setBusyPoll(microseconds: number): void;
}

const busyPollBinding = lazyNativeExports<BusyPollBinding>(['setBusyPoll']);
/** The budget last asked for (by setBusyPoll or applyBusyPoll): 0 needs no call, nor the addon, until something else was. */
let requestedUs = 0;

/**
 * Set the budget for every reactor thread of this process (0 = off).
 * Whether it can take effect: false without the addon, with an addon built
 * before busy polling existed, or with both native data paths switched off
 * (JUMPER_NO_NATIVE_PUMP=1 and JUMPER_NO_NATIVE_SPLICE=1).
 * @throws InvalidArgumentError (JUMPER_ERR_INVALID_ARG) outside 0..MAX_BUSY_POLL_US
 */
export function setBusyPoll(microseconds: number): boolean {
  if (!isBusyPollSetting(microseconds)) {
    throw new InvalidArgumentError(`busy-poll ${String(microseconds)}: expected whole microseconds from 0 to ${MAX_BUSY_POLL_US}`);
  }
  requestedUs = microseconds;
  const binding = busyPollBinding();
  if (binding === null) return false;
  binding.setBusyPoll(microseconds);
  return nativePumpAvailable() || nativeSpliceAvailable();
}


/**
 * setBusyPoll for operators (the CLI's --busy-poll, `jumper run`'s
 * `busy-poll` key): logged when it changes what was last asked for (here
 * or through setBusyPoll). Without the native data path
 * nothing polls: a warning, not a failure, since the tunnel works the same,
 * only slower.
 * @throws InvalidArgumentError (JUMPER_ERR_INVALID_ARG) outside 0..MAX_BUSY_POLL_US
 */
export function applyBusyPoll(microseconds: number, logger: Logger): void {
  if (microseconds === requestedUs) return;
  const effective = setBusyPoll(microseconds);
  if (!effective) {
    if (microseconds > 0) {
      logger.warn(
        { busyPollUs: microseconds },
        'busy-poll ignored: it needs the native data path (the addon not built or built before busy polling, JUMPER_NO_NATIVE=1, or both native paths switched off)',
      );
    }
    return;
  }
  logger.info(
    { busyPollUs: microseconds },
    microseconds === 0 ? 'busy-poll off' : `busy-poll: native data-path threads poll up to ${microseconds} µs after each wake-up before sleeping`,
  );
}
