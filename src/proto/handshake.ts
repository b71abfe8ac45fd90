/**
 * jumper/1 handshake: Noise NNpsk0 framed with a version header.
 *
 *   client hello (52 bytes) = "JMP" || version(1) || e(32) || tag(16)
 *   server hello (48 bytes) = e(32) || tag(16)
 *
 * The 4-byte header travels in clear so a peer of another version gets a
 * precise "bad_version" instead of an authentication failure, and it is
 * bound into the Noise prologue so it cannot be altered. Both payloads are
 * empty in version 1, so the messages have fixed sizes and need no length.
 *
 * After the server hello the client must send its first transport record at
 * once: only that record proves to the server that the client holds the key
 * *and* is live (a replayed client hello cannot produce it, because it
 * depends on the server's fresh ephemeral), so the server contacts the
 * provider only after it.
 */
import { BadMagicError, BadVersionError, AuthError } from '../errors.js';
import type { TunnelKey } from '../keys/key-file.js';
import { NNpsk0Handshake, message1Length, message2Length, type TransportKeys } from './noise.js';

export const MAGIC = Buffer.from('JMP', 'ascii');
export const PROTOCOL_VERSION = 1;
export const HEADER_BYTES = MAGIC.length + 1;
export const CLIENT_HELLO_BYTES = HEADER_BYTES + message1Length(0);
export const SERVER_HELLO_BYTES = message2Length(0);
/** Bound into the Noise prologue: protocol name, version and the wire header. */
export const PROLOGUE = Buffer.concat([Buffer.from('jumper/1 NNpsk0', 'ascii'), MAGIC, Buffer.of(PROTOCOL_VERSION)]);

const HEADER = Buffer.concat([MAGIC, Buffer.of(PROTOCOL_VERSION)]);

/** Client side of a handshake in progress. */
export interface ClientHandshake {
  /** Bytes to send first. */
  readonly hello: Buffer;
  /**
   * Process the server hello.
   * @throws AuthError (JUMPER_ERR_AUTH) when it does not authenticate.
   */
  finish(serverHello: Buffer): TransportKeys;
}

/** Start a handshake as the client. */
export function startClientHandshake(key: TunnelKey): ClientHandshake {
  const noise = new NNpsk0Handshake({ role: 'initiator', psk: key.psk, prologue: PROLOGUE });
  const hello = Buffer.concat([HEADER, noise.writeMessage()]);
  return {
    hello,
    finish(serverHello: Buffer): TransportKeys {
      noise.readMessage(serverHello);
      return noise.split();
    },
  };
}

/** What the server learned from a client hello. */
export interface ServerHandshakeResult {
  readonly reply: Buffer;
  readonly keys: TransportKeys;
  /** Which of the accepted keys the client used (for rotation logs). */
  readonly key: TunnelKey;
}

/**
 * Check the 4-byte header alone, so garbage is rejected before any crypto
 * and as soon as 4 bytes arrived.
 * @throws BadMagicError (JUMPER_ERR_BAD_MAGIC), BadVersionError (JUMPER_ERR_BAD_VERSION)
 */
export function checkHeader(header: Buffer): void {
  if (!header.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new BadMagicError('peer is not a jumper client (bad magic bytes)');
  }
  const version = header[MAGIC.length];
  if (version !== PROTOCOL_VERSION) {
    throw new BadVersionError(`peer speaks jumper protocol version ${version}; this jumper speaks version ${PROTOCOL_VERSION}`);
  }
}

/**
 * Answer a client hello. Each accepted key is tried in turn, so a server can
 * hold the old and the new key during a rotation.
 * @throws BadMagicError, BadVersionError, AuthError (no key matched)
 */
export function respondToClientHello(keys: readonly TunnelKey[], clientHello: Buffer): ServerHandshakeResult {
  checkHeader(clientHello);
  const message = clientHello.subarray(HEADER_BYTES);
  let lastError: unknown;
  for (const key of keys) {
    const noise = new NNpsk0Handshake({ role: 'responder', psk: key.psk, prologue: PROLOGUE });
    try {
      noise.readMessage(message);
    } catch (err) {
      lastError = err;
      continue;
    }
    const reply = Buffer.from(noise.writeMessage());
    return { reply, keys: noise.split(), key };
  }
  throw new AuthError('client hello failed authentication: the client uses a different key', { cause: lastError });
}
