/**
 * The CLI's pino logger: JSON lines on stderr, or pino-pretty when stderr is
 * a terminal (or --log-format pretty). The library itself never logs unless
 * given this.
 */
import { pino, type Logger as PinoLogger } from 'pino';
import pretty from 'pino-pretty';

export type LogFormat = 'json' | 'pretty';
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export function createLogger(options: { level: string; format?: LogFormat; name: string }): PinoLogger {
  const format = options.format ?? (process.stderr.isTTY ? 'pretty' : 'json');
  const base = { level: options.level, name: options.name, base: { pid: process.pid } };
  if (format === 'pretty') {
    return pino(base, pretty({ destination: 2, sync: true, colorize: process.stderr.isTTY, ignore: 'pid,hostname' }));
  }
  // Synchronous writes: the closing lines must not be lost when the process exits.
  return pino(base, pino.destination({ fd: 2, sync: true }));
}
