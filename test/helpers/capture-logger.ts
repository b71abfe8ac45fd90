/**
 * A pino-compatible logger that keeps every line in memory, so tests can
 * assert on what a jumper logged (one line per failed connection, its
 * reason, and that no key material ever appears).
 */
import type { Logger } from '../../src/index.js';

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  [field: string]: unknown;
}

export interface CapturedLogger extends Logger {
  lines: LogLine[];
  /** Lines of failed connections ('connection failed'), in order. */
  failures(): LogLine[];
  /** Everything logged, serialised (for "the key never appears" greps). */
  text(): string;
}

export function captureLogger(bindings: Record<string, unknown> = {}, lines: LogLine[] = []): CapturedLogger {
  const at =
    (level: LogLine['level']) =>
    (objOrMsg: object | string, msg?: string): void => {
      if (typeof objOrMsg === 'string') lines.push({ ...bindings, level, msg: objOrMsg });
      else lines.push({ ...bindings, ...(objOrMsg as Record<string, unknown>), level, msg: msg ?? '' });
    };
  return {
    lines,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more) => captureLogger({ ...bindings, ...more }, lines),
    failures: () => lines.filter((l) => l.msg === 'connection failed'),
    text: () => lines.map((l) => JSON.stringify(l, (_k, v: unknown) => (v instanceof Error ? { message: v.message, stack: v.stack } : v))).join('\n'),
  };
}
