/**
 * A started command's output in the log (src/activation/command-output.ts):
 * one entry per line, whatever the reads.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { logCommandOutput, MAX_LOG_LINE } from '../src/activation/command-output.js';
import { captureLogger } from './helpers/capture-logger.js';

test('lines split across reads are joined, empty lines skipped, an unterminated last line kept, fields attached', async (t) => {
  const log = captureLogger();
  const stream = new PassThrough();
  logCommandOutput(stream, log, { stream: 'stderr' });
  for (const chunk of ['first\nsec', 'ond li', 'ne\n\n', 'th', 'ird\nlast without newline']) {
    stream.write(chunk);
    await new Promise((resolve) => setImmediate(resolve));
  }
  stream.end();
  await once(stream, 'end');
  t.deepEqual(log.lines.map((l) => l.msg), ['first', 'second line', 'third', 'last without newline']);
  t.true(log.lines.every((l) => l.stream === 'stderr' && l.level === 'info'));
});

test('a line longer than MAX_LOG_LINE is cut once, the rest of it dropped, and the next line is whole', async (t) => {
  const log = captureLogger();
  const stream = new PassThrough();
  logCommandOutput(stream, log, {});
  const long = 'x'.repeat(MAX_LOG_LINE * 5);
  // In pieces smaller than the limit, so only the buffered part can exceed it.
  for (let i = 0; i < long.length; i += 300) {
    stream.write(long.slice(i, i + 300));
    await new Promise((resolve) => setImmediate(resolve));
  }
  stream.end('\nafter\n');
  await once(stream, 'end');
  t.deepEqual(log.lines.map((l) => l.msg), ['x'.repeat(MAX_LOG_LINE), 'after']);
});

test("a real command's stderr, written in parts without waiting for newlines, arrives as whole lines", async (t) => {
  const log = captureLogger();
  const child = spawn('/bin/sh', ['-c', "printf 'par' >&2; sleep 0.05; printf 'tial\\nnext\\n' >&2"], { stdio: ['ignore', 'ignore', 'pipe'] });
  logCommandOutput(child.stderr!, log, { stream: 'stderr' });
  await once(child, 'close');
  t.deepEqual(log.lines.map((l) => l.msg), ['partial', 'next']);
});
