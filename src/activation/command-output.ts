/**
 * The output of commands the jumper starts (`--start` providers, `exec:`
 * commands, `jumper accept --exec`) goes to the jumper's log, one entry per
 * line. Reads do not follow lines: a line split across two reads is joined
 * first, and one longer than MAX_LOG_LINE is cut there (the rest of it is
 * dropped, so a command writing without newlines cannot grow our memory).
 */
import type { Readable } from 'node:stream';
import type { Logger } from '../log/logger.js';

/** Longest line passed to the log, in UTF-16 code units. */
export const MAX_LOG_LINE = 1000;

/** Log every line of `stream` at info level with `fields` (e.g. { stream: 'stderr' }). */
export function logCommandOutput(stream: Readable, log: Logger, fields: Record<string, unknown>): void {
  let partial = '';
  // The current line was cut already: drop the rest of it, up to its newline.
  let dropping = false;
  const emit = (line: string): void => {
    if (line) log.info(fields, line.slice(0, MAX_LOG_LINE));
  };
  stream.setEncoding('utf8');
  stream.on('data', (text: string) => {
    let start = 0;
    for (let newline = text.indexOf('\n'); newline !== -1; newline = text.indexOf('\n', start)) {
      if (!dropping) emit(partial + text.slice(start, newline));
      partial = '';
      dropping = false;
      start = newline + 1;
    }
    if (dropping) return;
    partial += text.slice(start);
    if (partial.length >= MAX_LOG_LINE) {
      emit(partial);
      partial = '';
      dropping = true;
    }
  });
  stream.once('end', () => {
    if (!dropping) emit(partial);
    partial = '';
  });
}
