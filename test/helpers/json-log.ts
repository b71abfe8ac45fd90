/**
 * Follow a child jumper's JSON log lines on stderr: the parsed lines so
 * far, the raw text for failure messages, and waitFor(predicate). One
 * implementation for every helper that runs the CLI as a process.
 */
import type { ChildProcess } from 'node:child_process';

export type LogLine = Record<string, unknown>;

export interface JsonLog {
  /** Parsed JSON lines so far. */
  logs: LogLine[];
  /** Resolve when a log line matches; reject on timeout or when the process exits without one. */
  waitFor(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** stderr so far (the last ~500 KB when a test logs a lot). */
  stderr(): string;
}

const KEEP_TEXT = 500_000;

export function watchJsonLog(child: ChildProcess, defaultTimeoutMs = 20_000): JsonLog {
  const logs: LogLine[] = [];
  const listeners = new Set<() => void>();
  let text = '';
  let partial = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    text += chunk;
    if (text.length > 2 * KEEP_TEXT) text = text.slice(-KEEP_TEXT);
    // pino writes whole lines, but a chunk may end mid-line.
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        /* not a log line */
      }
    }
    for (const l of [...listeners]) l();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      // Lines still in the pipe are read before 'close'; a grandchild holding the pipe open must not hold this up.
      const timer = setTimeout(() => resolve({ code, signal }), 2000);
      child.once('close', () => {
        clearTimeout(timer);
        resolve({ code, signal });
      });
    }),
  );
  const tail = () => text.slice(-3000);
  return {
    logs,
    exited,
    stderr: () => text,
    waitFor(predicate, timeoutMs = defaultTimeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = logs.find(predicate);
          if (!hit) return false;
          listeners.delete(check);
          clearTimeout(timer);
          resolve(hit);
          return true;
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`no matching log line in ${timeoutMs} ms; stderr: ${tail()}`));
        }, timeoutMs);
        listeners.add(check);
        if (!check()) void exited.then(() => check() || reject(new Error(`jumper exited; stderr: ${tail()}`)));
      });
    },
  };
}
