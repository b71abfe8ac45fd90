/**
 * Pipes for spiped packets: one direction of one stream each, with the same
 * backpressure rule as ../pipe.ts (pause the source while the destination's
 * buffer is full, resume on 'drain').
 *
 * spiped 1.6 signals the end of a direction with a TCP FIN after the last
 * packet (proto_pipe.c: shutdown(SHUT_WR) on EOF): there is no authenticated
 * end-of-stream packet. A FIN in the middle of a packet is a failure.
 */
import type { Socket } from 'node:net';
import { TruncatedError } from '../../errors.js';
import { onCleanEnd, waitForDrain, type PipeHooks } from '../pipe.js';
import type { PacketOpener, PacketSealer } from './packet.js';

/** Plain bytes from `src` become packets on `wire`; src's EOF becomes the wire's FIN. */
export function sealPacketPipe(src: Socket, wire: Socket, sealer: PacketSealer, hooks: PipeHooks): void {
  src.on('data', (chunk: Buffer) => {
    hooks.onBytes(chunk.length);
    let packets: Buffer;
    try {
      packets = sealer.seal(chunk);
    } catch (err) {
      hooks.onError(err);
      return;
    }
    if (packets.length > 0 && !wire.write(packets)) waitForDrain(src, wire);
  });
  onCleanEnd(src, hooks, () => wire.end());
  wire.once('finish', () => hooks.onDone());
  src.resume();
}

/**
 * Packets from `wire` become plain bytes on `dst`; a FIN on a packet boundary
 * becomes dst's EOF, a FIN inside a packet is truncation. `initial` holds
 * bytes that arrived with the end of the handshake.
 */
export function openPacketPipe(wire: Socket, dst: Socket, opener: PacketOpener, hooks: PipeHooks, initial?: Buffer): void {
  /** Returns 'waiting' when dst is full and the wire was paused until it drains. */
  const feed = (chunk: Buffer): 'ok' | 'failed' | 'waiting' => {
    let plain: Buffer;
    try {
      plain = opener.push(chunk);
    } catch (err) {
      hooks.onError(err);
      return 'failed';
    }
    if (plain.length === 0) return 'ok';
    hooks.onBytes(plain.length);
    if (dst.write(plain)) return 'ok';
    waitForDrain(wire, dst);
    return 'waiting';
  };
  onCleanEnd(wire, hooks, () => {
    if (opener.pendingBytes > 0) {
      hooks.onError(new TruncatedError(`spiped stream cut inside a packet (${opener.pendingBytes} bytes of a packet received)`));
    } else {
      dst.end();
    }
  });
  dst.once('finish', () => hooks.onDone());
  const first = initial && initial.length > 0 ? feed(initial) : 'ok';
  if (first === 'failed') return;
  wire.on('data', feed);
  if (first === 'ok') wire.resume();
}
