/**
 * spiped-compatible connections: the same Conn lifecycle as the native
 * protocol (../conn.ts), speaking spiped 1.6's wire format.
 *
 * Client ("-e"):  consumer --plain--> [client] --packets--> spiped -d / jumper
 * Server ("-d"):  spiped -e / jumper --packets--> [server] --plain--> provider
 *
 * spiped has no in-band error message: every failure just closes (here: resets)
 * both sockets. Half-close is a FIN on each side. Keep-alives are TCP
 * SO_KEEPALIVE only (spiped's -j turns them off); nothing is sent in-band.
 */
import type { Socket } from 'node:net';
import type { Dialer } from '../../addr/dial.js';
import { AuthError, HandshakeTimeoutError, HandshakeTruncatedError } from '../../errors.js';
import type { TunnelKey } from '../../keys/key-file.js';
import { withSlot, type Slots } from '../../addr/slots.js';
import { dialForClient, discardDialed, type Conn } from '../conn.js';
import { DH_MESSAGE_BYTES, NONCE_BYTES, SpipedHandshake, type PfsMode, type SessionKeys } from './handshake.js';
import { PacketOpener, PacketSealer } from './packet.js';
import { openPacketPipe, sealPacketPipe } from './pipe.js';

export interface SpipedConnOptions {
  key: TunnelKey;
  dial: Dialer;
  /** Like spiped's -o for the handshake; the dialer has its own connect timeout. */
  handshakeTimeoutMs: number;
  /** 'off' is spiped's -f, 'require' is spiped's -g. */
  pfs: PfsMode;
  /** TCP keep-alives on both sockets (default true); false is spiped's -j. */
  keepAlive?: boolean;
  /** Client: bounds dials and handshakes in flight; a stream waits (unread, untimed) for a slot. */
  handshakeSlots?: Slots;
}

const EMPTY = Buffer.alloc(0);

/**
 * Reads fixed-size handshake messages from a paused socket, keeping what
 * arrives after them for the packet pipe.
 */
class HandshakeReader {
  #buffered: Buffer = EMPTY;
  readonly #socket: Socket;

  constructor(socket: Socket) {
    this.#socket = socket;
  }

  /** Bytes received after the last message read. */
  rest(): Buffer {
    const rest = this.#buffered;
    this.#buffered = EMPTY;
    return rest;
  }

  /** @throws HandshakeTruncatedError when the peer closes or resets first. */
  read(length: number): Promise<Buffer> {
    const socket = this.#socket;
    return new Promise((resolve, reject) => {
      const take = (): boolean => {
        if (this.#buffered.length < length) return false;
        const data = this.#buffered.subarray(0, length);
        this.#buffered = this.#buffered.subarray(length);
        resolve(data);
        return true;
      };
      if (take()) return;
      const cleanup = () => {
        socket.pause();
        socket.removeListener('data', onData);
        socket.removeListener('end', onGone);
        socket.removeListener('close', onGone);
        socket.removeListener('error', onGone);
      };
      const onData = (chunk: Buffer) => {
        this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
        if (this.#buffered.length < length) return;
        cleanup();
        take();
      };
      const onGone = (err?: unknown) => {
        cleanup();
        const how = err instanceof Error ? `reset (${(err as NodeJS.ErrnoException).code ?? err.message})` : 'closed';
        reject(new HandshakeTruncatedError(`peer ${how} the connection during the spiped handshake`, { cause: err }));
      };
      if (socket.readableEnded || socket.destroyed) {
        onGone();
        return;
      }
      socket.on('data', onData);
      socket.once('end', onGone);
      socket.once('close', onGone);
      socket.once('error', onGone);
      socket.resume();
    });
  }
}

function applyKeepAlive(options: SpipedConnOptions, ...sockets: Socket[]): void {
  const on = options.keepAlive !== false;
  // Initial delay 0 keeps whatever delay the dialer or listener configured.
  for (const s of sockets) if (typeof s.setKeepAlive === 'function') s.setKeepAlive(on, 0);
}

function startPipes(conn: Conn, wire: Socket, plain: Socket, keys: SessionKeys, rest: Buffer, side: 'client' | 'server'): void {
  const sealer = new PacketSealer(keys.send);
  const opener = new PacketOpener(keys.recv);
  // "up" is always accepting side -> target, as in the native roles.
  const fromWire = side === 'client' ? conn.hooks('down', 'wire') : conn.hooks('up', 'wire');
  const fromPlain = side === 'client' ? conn.hooks('up', 'plain') : conn.hooks('down', 'plain');
  openPacketPipe(wire, plain, opener, fromWire, rest);
  sealPacketPipe(plain, wire, sealer, fromPlain);
}

/**
 * Serve one consumer connection like `spiped -e`: dial the spiped server,
 * handshake, then carry both directions and their half-closes.
 *
 * Failures (the connection closes with this reason): the dialer's own
 * errors ('server_refused', ...); 'handshake_timeout'; 'handshake_truncated'
 * when the server closes before its nonce; 'bad_key' when it closes after our
 * key proof (spiped -d says nothing: a wrong key is the usual cause, its
 * target being unreachable the other) or its DH MAC fails; with pfs 'off'
 * such a close is 'handshake_rejected' (wrong key, or the server runs -g);
 * 'pfs_required' when pfs is 'require' and the server runs -f; then
 * 'tampered', 'bad_record', 'truncated' (FIN inside a packet), socket errors.
 */
export async function runSpipedClientConn(conn: Conn, local: Socket, options: SpipedConnOptions): Promise<void> {
  try {
    conn.adoptPlain(local);
    const done = await withSlot(options.handshakeSlots, () => handshakeWithServer(conn, options));
    if (!done) return;
    applyKeepAlive(options, done.wire, local);
    startPipes(conn, done.wire, local, done.keys, done.rest, 'client');
  } catch (err) {
    // Nothing to tell the server: spiped has no error message.
    conn.fail(err, 'wire');
  }
}

/** A wire whose spiped handshake is done, with the bytes read past it. */
interface ClientHandshakeDone {
  wire: Socket;
  keys: SessionKeys;
  rest: Buffer;
}

/** Dial a spiped server and run the handshake; undefined when the connection ended meanwhile. */
async function handshakeWithServer(conn: Conn, options: SpipedConnOptions): Promise<ClientHandshakeDone | undefined> {
  // The reader turns wire errors into handshake failures until the pipes start.
  const wire = await dialForClient(conn, options.dial);
  if (!wire) return undefined;
  conn.armTimer(options.handshakeTimeoutMs, () => new HandshakeTimeoutError('spiped server did not complete the handshake in time'));
  const handshake = new SpipedHandshake('client', options.key.spipedKey, options.pfs);
  const reader = new HandshakeReader(wire);
  wire.write(handshake.nonce);
  handshake.receiveNonce(await reader.read(NONCE_BYTES));
  if (conn.closed) return undefined;
  wire.write(handshake.dhMessage());
  let serverDh: Buffer;
  try {
    serverDh = await reader.read(DH_MESSAGE_BYTES);
  } catch (err) {
    if (!(err instanceof HandshakeTruncatedError)) throw err;
    // spiped -d closes silently when our DH MAC fails (or -g refuses -f).
    throw options.pfs === 'off'
      ? new AuthError('spiped server closed the connection after our key proof: wrong key, or it requires PFS (-g) and we run without (-f)?', {
          cause: err,
          reason: 'handshake_rejected',
        })
      : new AuthError('spiped server closed the connection after our key proof: wrong key (or its target is unreachable)?', {
          cause: err,
          reason: 'bad_key',
        });
  }
  if (conn.closed) return undefined;
  handshake.verifyPeerDh(serverDh);
  const keys = handshake.finish();
  conn.disarmTimer();
  conn.watchWire();
  conn.keyFingerprint = options.key.fingerprint;
  return { wire, keys, rest: reader.rest() };
}

/**
 * Serve one connection like `spiped -d`: handshake, and only once the client
 * proved the key (its DH MAC over our fresh nonce verified) dial the
 * provider; then carry both directions and their half-closes. (spiped 1.6.2
 * itself dials its target as soon as it accepts, before any handshake.)
 *
 * Failures: 'handshake_timeout', 'handshake_truncated', 'bad_key' (client's
 * DH MAC fails: another key), 'pfs_required' (pfs 'require' and the client
 * runs -f), 'bad_dh_value', the dialer's errors ('provider_refused', ...),
 * then 'tampered', 'bad_record', 'truncated', socket errors.
 */
export async function runSpipedServerConn(conn: Conn, wire: Socket, options: SpipedConnOptions): Promise<void> {
  conn.adoptWire(wire);
  conn.armTimer(options.handshakeTimeoutMs, () => new HandshakeTimeoutError('spiped client did not complete the handshake in time'));
  try {
    const handshake = new SpipedHandshake('server', options.key.spipedKey, options.pfs);
    const reader = new HandshakeReader(wire);
    wire.write(handshake.nonce);
    handshake.receiveNonce(await reader.read(NONCE_BYTES));
    if (conn.closed) return;
    handshake.verifyPeerDh(await reader.read(DH_MESSAGE_BYTES));
    if (conn.closed) return;
    wire.write(handshake.dhMessage());
    const keys = handshake.finish();
    conn.disarmTimer();
    conn.keyFingerprint = options.key.fingerprint;
    const provider = await options.dial();
    if (conn.closed) {
      discardDialed(provider);
      return;
    }
    conn.adoptPlain(provider);
    applyKeepAlive(options, wire, provider);
    startPipes(conn, wire, provider, keys, reader.rest(), 'server');
  } catch (err) {
    conn.fail(err, 'local');
  }
}
