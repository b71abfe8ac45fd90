/**
 * A Dialer over a pool: picks a backend, and when its connect is refused or
 * times out, tries the next one. All of this happens before the stream's
 * first byte is forwarded, so a stream never moves after bytes flowed.
 */
import type { Dialer } from '../addr/dial.js';
import { BackendsFailedError, NoBackendError, reasonOf } from '../errors.js';
import { silentLogger, type Logger } from '../log/logger.js';
import type { Backend } from './backend.js';
import type { BackendPool } from './pool.js';
import { attachLease } from './stream-lease.js';

export function createBalancedDialer(pool: BackendPool, options: { logger?: Logger } = {}): Dialer {
  const logger = options.logger ?? silentLogger;
  return async () => {
    const tried = new Set<Backend>();
    let lastError: unknown;
    for (let backend = pool.pick(tried); backend; backend = pool.pick(tried)) {
      tried.add(backend);
      try {
        const socket = await backend.dial();
        attachLease(socket, pool.connected(backend));
        return socket;
      } catch (err) {
        pool.failed(backend, err);
        lastError = err;
        logger.debug({ backend: backend.address, reason: reasonOf(err) }, 'backend connect failed, trying the next');
      }
    }
    if (lastError === undefined) throw new NoBackendError('no backend is configured or discovered');
    const message = lastError instanceof Error ? lastError.message : String(lastError);
    throw new BackendsFailedError(`all ${tried.size} backend(s) failed; last: ${message}`, { cause: lastError, reason: reasonOf(lastError) });
  };
}
