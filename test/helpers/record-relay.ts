/**
 * A man-in-the-middle TCP relay on loopback that understands jumper/1
 * framing: it passes the handshake through, then cuts each direction into
 * whole records (2-byte length + ciphertext) and lets a test flip bits,
 * drop, duplicate, reorder or cut them. It also records every byte each way,
 * so a captured session can be replayed.
 */
import type { ExecutionContext } from 'ava';
import net from 'node:net';
import { CLIENT_HELLO_BYTES, SERVER_HELLO_BYTES } from '../../src/proto/handshake.js';
import { LENGTH_BYTES, MIN_CIPHERTEXT } from '../../src/proto/record.js';

export type Direction = 'up' | 'down';

/**
 * Decide what happens to record `index` (0 = the first record after the
 * handshake; upstream that is the client's ORIGIN record, its liveness proof).
 * Call `emit` zero or more times; return 'cut' to end this direction toward
 * the receiver right here (FIN, no more bytes), without the END record.
 */
export type RecordRule = (record: Buffer, index: number, emit: (b: Buffer) => void) => void | 'cut';

export interface RelayConnection {
  /** Raw bytes as received from each side, before any rule. */
  seen: Record<Direction, Buffer[]>;
  /** Record plaintext sizes (ciphertext - type - tag) as received, by index. */
  bodySizes: Record<Direction, number[]>;
}

export interface RecordRelay {
  /** host:port to give the client jumper as its server. */
  address: string;
  port: number;
  connections: RelayConnection[];
}

/** Splits a byte stream into a fixed-size prefix, then length-prefixed records. */
class Framer {
  #buffer: Buffer = Buffer.alloc(0);
  #prefixLeft: number;
  constructor(prefix: number) {
    this.#prefixLeft = prefix;
  }
  /** Feed bytes; returns the prefix part (if any) and the whole records found. */
  push(chunk: Buffer): { prefix: Buffer; records: Buffer[] } {
    let prefix: Buffer = Buffer.alloc(0);
    if (this.#prefixLeft > 0) {
      prefix = chunk.subarray(0, this.#prefixLeft);
      this.#prefixLeft -= prefix.length;
      chunk = chunk.subarray(prefix.length);
    }
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    const records: Buffer[] = [];
    while (this.#buffer.length >= LENGTH_BYTES) {
      const total = LENGTH_BYTES + this.#buffer.readUInt16BE(0);
      if (this.#buffer.length < total) break;
      records.push(Buffer.from(this.#buffer.subarray(0, total)));
      this.#buffer = this.#buffer.subarray(total);
    }
    return { prefix, records };
  }
}

/**
 * Start the relay in front of `targetPort`; rules apply per direction to
 * every connection through it. Closed at teardown.
 */
export async function startRecordRelay(
  t: ExecutionContext,
  targetPort: number,
  rules: Partial<Record<Direction, RecordRule>> = {},
): Promise<RecordRelay> {
  const connections: RelayConnection[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (inbound) => {
    const outbound = net.connect({ port: targetPort, host: '127.0.0.1', allowHalfOpen: true });
    const conn: RelayConnection = { seen: { up: [], down: [] }, bodySizes: { up: [], down: [] } };
    connections.push(conn);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    }
    const wire = (direction: Direction, from: net.Socket, to: net.Socket, prefix: number) => {
      const framer = new Framer(prefix);
      const rule = rules[direction];
      let index = 0;
      let cut = false;
      const emit = (b: Buffer) => {
        if (!to.destroyed) to.write(b);
      };
      from.on('data', (chunk: Buffer) => {
        conn.seen[direction].push(Buffer.from(chunk));
        if (cut) return;
        const { prefix: head, records } = framer.push(chunk);
        if (head.length > 0) emit(head);
        for (const record of records) {
          conn.bodySizes[direction].push(record.length - LENGTH_BYTES - MIN_CIPHERTEXT);
          const verdict = rule ? rule(record, index, emit) : emit(record);
          index++;
          if (verdict === 'cut') {
            cut = true;
            to.end();
            return;
          }
        }
      });
      from.once('end', () => {
        if (!cut) to.end();
      });
      // A reset on one side becomes a reset on the other, as a router would pass it.
      from.once('error', () => {
        if (!to.destroyed) to.resetAndDestroy();
      });
    };
    wire('up', inbound, outbound, CLIENT_HELLO_BYTES);
    wire('down', outbound, inbound, SERVER_HELLO_BYTES);
    // Close each side only once both directions are over.
    const closeBoth = () => {
      if (inbound.readableEnded && outbound.readableEnded && inbound.writableFinished && outbound.writableFinished) {
        inbound.destroy();
        outbound.destroy();
      }
    };
    for (const s of [inbound, outbound]) {
      s.on('end', closeBoth);
      s.on('finish', closeBoth);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  const port = (server.address() as net.AddressInfo).port;
  return { address: `127.0.0.1:${port}`, port, connections };
}

/**
 * Rule: flip `bit` of byte `offset` in record `target`; the offset counts from
 * the record's start (length field included), or from its end when negative.
 */
export function flipBit(target: number, offset: number, bit = 0): RecordRule {
  return (record, index, emit) => {
    if (index === target) record[offset < 0 ? record.length + offset : offset]! ^= 1 << bit;
    emit(record);
  };
}

/** Rule: drop record `target`. */
export function dropRecord(target: number): RecordRule {
  return (record, index, emit) => {
    if (index !== target) emit(record);
  };
}

/** Rule: send record `target` twice. */
export function duplicateRecord(target: number): RecordRule {
  return (record, index, emit) => {
    emit(record);
    if (index === target) emit(record);
  };
}

/** Rule: swap records `target` and `target + 1`. */
export function swapRecords(target: number): RecordRule {
  let held: Buffer | undefined;
  return (record, index, emit) => {
    if (index === target) {
      held = record;
      return;
    }
    emit(record);
    if (index === target + 1 && held) emit(held);
  };
}

/** Rule: end the direction (FIN) just before record `target`, so its END never arrives. */
export function cutBefore(target: number): RecordRule {
  return (record, index, emit) => {
    if (index === target) return 'cut';
    emit(record);
    return undefined;
  };
}

/** Rule: drop the authenticated END (the last record, 19 bytes, after data) and FIN instead. */
export function cutAtEnd(): RecordRule {
  return (record, index, emit) => {
    // END is an empty body: ciphertext = type + tag. Record 0 upstream is the
    // client's ORIGIN record (the liveness proof), so only later records count.
    if (index > 0 && record.length === LENGTH_BYTES + MIN_CIPHERTEXT) return 'cut';
    emit(record);
    return undefined;
  };
}
