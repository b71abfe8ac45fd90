/**
 * Signals during start-up (holdSignalsUntilReady): this process sends itself
 * the signals named in argv (comma-separated) while "starting", waits 300 ms
 * to show it survived them, then installs the handlers. Prints "survived",
 * then every message logged by handleSignals, one per line.
 */
import { handleSignals, holdSignalsUntilReady } from '../../src/cli/signals.js';
import type { Logger } from '../../src/log/logger.js';

const signals = (process.argv[2] ?? 'SIGTERM').split(',') as NodeJS.Signals[];
const print = (a: unknown, b?: unknown): void => void process.stdout.write(`${typeof a === 'string' ? a : String(b)}\n`);
const logger: Logger = { debug: () => {}, info: print, warn: print, error: print, child: () => logger };

holdSignalsUntilReady();
// Let the hold listeners' signal handles start before the signals are sent.
setImmediate(() => {
  for (const s of signals) process.kill(process.pid, s);
  setTimeout(() => {
    process.stdout.write('survived\n');
    handleSignals({
      logger,
      drainTimeoutMs: () => 0,
      openStreams: () => 0,
      stop: () => Promise.resolve(),
      reload: () => Promise.resolve(process.stdout.write('reloaded\n')),
    });
  }, 300);
});
