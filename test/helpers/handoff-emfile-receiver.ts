/**
 * Run as a child by handoff.test.ts (node --import tsx): receive hand-offs on
 * PATH with exactly one descriptor free, so the connection from the sender is
 * accepted and the descriptor it carries cannot be installed. Prints one JSON
 * line when ready, then one per hand-off: { fd } or { err, code }.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { listenForHandoffs } from '../../src/activation/handoff.js';

const print = (value: object): void => void process.stdout.write(`${JSON.stringify(value)}\n`);
await listenForHandoffs(
  process.argv[2]!,
  (fd) => print({ fd }),
  (err) => print({ err: (err as Error).message, code: (err as NodeJS.ErrnoException).code }),
);
execFileSync('prlimit', ['--pid', String(process.pid), '--nofile=64:']);
const filler: number[] = [];
try {
  for (;;) filler.push(openSync('/dev/null', 'r'));
} catch {
  /* EMFILE: the table is full */
}
closeSync(filler.pop()!);
print({ ready: true });
