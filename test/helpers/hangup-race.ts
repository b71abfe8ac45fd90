/**
 * A SIGHUP that arrives during start-up and is still undelivered to JS when
 * handleSignals takes over: sent to this process synchronously right before
 * handleSignals, so libuv has it but has not dispatched it yet. Prints
 * "reloaded" when the reload ran, "lost" when it did not within 10 s.
 */
import { handleSignals, holdHangupUntilReady } from '../../src/cli/signals.js';
import { silentLogger } from '../../src/log/logger.js';

holdHangupUntilReady();
// Let the hold listener's signal handle start before the signal is sent.
setImmediate(() => {
  process.kill(process.pid, 'SIGHUP');
  handleSignals({
    logger: silentLogger,
    drainTimeoutMs: () => 0,
    openStreams: () => 0,
    stop: () => Promise.resolve(),
    reload: () => {
      process.stdout.write('reloaded\n');
      process.exit(0);
    },
  });
  setTimeout(() => {
    process.stdout.write('lost\n');
    process.exit(0);
  }, 10_000);
});
