/**
 * Connected pairs of Unix stream sockets, both as net.Socket. Node has no
 * socketpair(), so a private rendezvous listener (in a 0700 temp directory,
 * created on first use, removed at exit) accepts our own connections; each
 * connect is matched with its accept in order (a Unix listener's queue is FIFO).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SocketPair {
  /** The end the jumper keeps and pumps. */
  ours: net.Socket;
  /** The end given away (to a child process or a hand-off receiver); paused. */
  theirs: net.Socket;
}

export type PairFactory = () => Promise<SocketPair>;

let rendezvous: Promise<{ path: string; waiting: ((s: net.Socket) => void)[] }> | undefined;

function openRendezvous(): Promise<{ path: string; waiting: ((s: net.Socket) => void)[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'jumper-pair-'));
  const path = join(dir, 'pair.sock');
  const waiting: ((s: net.Socket) => void)[] = [];
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => waiting.shift()?.(s));
  server.unref();
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve({ path, waiting }));
  });
}

/** A fresh connected pair. */
export async function connectedPair(): Promise<SocketPair> {
  rendezvous ??= openRendezvous();
  const { path, waiting } = await rendezvous;
  const theirs = new Promise<net.Socket>((resolve) => waiting.push(resolve));
  const ours = net.connect({ path, allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => {
    ours.once('connect', resolve);
    ours.once('error', reject);
  });
  return { ours, theirs: await theirs };
}
