/**
 * Connected pairs of Unix stream sockets, both as net.Socket. Node has no
 * socketpair(), so a private rendezvous listener (in a 0700 temp directory,
 * created on first use, removed at exit) accepts our own connections.
 *
 * Each accepted end writes a fresh tag to its connecting end, which reads it
 * and claims the accepted socket by that tag. Matching by order instead would
 * hand every later caller its neighbour's socket once one connect failed or
 * one queued connection was dropped, and a child would then serve another
 * client's stream. The tag travels towards the end we keep, so the end we
 * give away is never read (its bytes belong to the child or the receiver).
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

const TAG_BYTES = 8;
/** An accepted end nobody claimed in this long (its connector failed) is closed. */
const CLAIM_TIMEOUT_MS = 10_000;

interface Rendezvous {
  path: string;
  /** Accepted ends by tag, until their connecting end claims them; the timer drops one never claimed. */
  unclaimed: Map<bigint, { socket: net.Socket; timer: NodeJS.Timeout }>;
}

let rendezvous: Promise<Rendezvous> | undefined;

function openRendezvous(): Promise<Rendezvous> {
  const dir = mkdtempSync(join(tmpdir(), 'jumper-pair-'));
  const path = join(dir, 'pair.sock');
  const unclaimed: Rendezvous['unclaimed'] = new Map();
  let nextTag = 0n;
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (theirs) => {
    const tag = nextTag++;
    const timer = setTimeout(() => {
      if (unclaimed.delete(tag)) theirs.destroy();
    }, CLAIM_TIMEOUT_MS).unref();
    unclaimed.set(tag, { socket: theirs, timer });
    theirs.on('error', () => {});
    const tagBytes = Buffer.alloc(TAG_BYTES);
    tagBytes.writeBigUInt64BE(tag);
    theirs.write(tagBytes);
  });
  server.unref();
  const removeDir = (): void => rmSync(dir, { recursive: true, force: true });
  return new Promise((resolve, reject) => {
    const failed = (err: Error): void => {
      // The next caller tries afresh: nothing of this attempt stays behind.
      rendezvous = undefined;
      removeDir();
      reject(err);
    };
    server.once('error', failed);
    server.listen(path, () => {
      // An accept error later (EMFILE) loses that one connection: its
      // connector times out on its tag. It must not throw for want of a listener.
      server.off('error', failed).on('error', () => {});
      process.once('exit', removeDir);
      resolve({ path, unclaimed });
    });
  });
}

/** Read exactly the tag from our end, leaving anything after it (there is nothing yet) in the stream. */
function readTag(ours: net.Socket): Promise<bigint> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error('socket pair: no tag from the rendezvous listener')), CLAIM_TIMEOUT_MS);
    const onReadable = (): void => {
      const tag = ours.read(TAG_BYTES) as Buffer | null;
      if (tag !== null) done(null, tag.readBigUInt64BE());
    };
    const onEnd = (): void => done(new Error('socket pair: closed before its tag arrived'));
    function done(err: Error | null, tag?: bigint): void {
      clearTimeout(timer);
      ours.off('readable', onReadable).off('error', done).off('end', onEnd);
      if (err) reject(err);
      else resolve(tag!);
    }
    ours.on('readable', onReadable).once('error', done).once('end', onEnd);
  });
}

/** A fresh connected pair. */
export async function connectedPair(): Promise<SocketPair> {
  rendezvous ??= openRendezvous();
  const { path, unclaimed } = await rendezvous;
  const ours = net.connect({ path, allowHalfOpen: true });
  try {
    const tag = await readTag(ours);
    const entry = unclaimed.get(tag);
    if (entry === undefined) throw new Error('socket pair: the accepted end was already closed');
    unclaimed.delete(tag);
    // Claimed: its timer would otherwise hold the socket for CLAIM_TIMEOUT_MS after the stream.
    clearTimeout(entry.timer);
    return { ours, theirs: entry.socket };
  } catch (err) {
    ours.destroy();
    throw err;
  }
}
