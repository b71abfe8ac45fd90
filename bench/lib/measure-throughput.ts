/**
 * Bulk throughput through a system: upload (client -> provider sink) and
 * download (provider source -> client), over 1 or N parallel connections.
 *
 * The clock starts before the connections are opened and stops when the last
 * byte has been checked: for uploads when the sink's reply (byte count +
 * verdict) arrives, for downloads when the last expected byte has arrived.
 * Connection setup is thus included, which is negligible at these sizes.
 * Every byte is compared against the deterministic pattern; a mismatch or a
 * short transfer fails the run instead of producing a number.
 */

import type net from 'node:net';
import { MB } from './config.js';
import { connect, readExact, withTimeout, writePattern } from './net.js';
import {
  MODE_DOWNLOAD,
  MODE_UPLOAD,
  PatternChecker,
  UPLOAD_REPLY_BYTES,
  decodeUploadReply,
  encodeRequest,
} from './protocol.js';

export type Direction = 'upload' | 'download';

export interface BulkRun {
  direction: Direction;
  streams: number;
  /** Payload bytes of all streams together. */
  bytes: number;
  seconds: number;
  mbPerSec: number;
}

async function uploadOne(port: number, bytes: number, timeoutMs: number, open: net.Socket[]): Promise<void> {
  const sock = await connect(port, timeoutMs);
  open.push(sock);
  sock.write(encodeRequest(MODE_UPLOAD, bytes));
  const [, raw] = await Promise.all([writePattern(sock, bytes), readExact(sock, UPLOAD_REPLY_BYTES, timeoutMs)]);
  const reply = decodeUploadReply(raw);
  sock.destroy();
  if (!reply.ok || reply.count !== bytes) {
    throw new Error(`upload corrupted: sink saw ${reply.count}/${bytes} bytes, content ${reply.ok ? 'ok' : 'BAD'}`);
  }
}

async function downloadOne(port: number, bytes: number, timeoutMs: number, open: net.Socket[]): Promise<void> {
  const sock = await connect(port, timeoutMs);
  open.push(sock);
  const checker = new PatternChecker();
  await new Promise<void>((resolve, reject) => {
    const fail = (why: string): void => {
      sock.destroy();
      reject(new Error(why));
    };
    sock.on('data', (chunk: Buffer) => {
      checker.update(chunk);
      if (checker.bytes >= bytes) {
        sock.destroy();
        if (checker.bytes !== bytes) reject(new Error(`download got ${checker.bytes} > ${bytes} bytes`));
        else if (!checker.ok) reject(new Error('download corrupted: content mismatch'));
        else resolve();
      }
    });
    sock.once('close', () => {
      if (checker.bytes < bytes) fail(`download closed after ${checker.bytes}/${bytes} bytes`);
    });
    sock.once('error', (err) => fail(`download: ${err.message}`));
    sock.write(encodeRequest(MODE_DOWNLOAD, bytes));
  });
}

/** One timed bulk transfer of `totalBytes` split over `streams` connections. */
export async function measureBulk(
  port: number,
  direction: Direction,
  streams: number,
  totalBytes: number,
  timeoutMs: number,
): Promise<BulkRun> {
  const perStream = Math.floor(totalBytes / streams);
  const open: net.Socket[] = [];
  const one = direction === 'upload' ? uploadOne : downloadOne;
  const t0 = process.hrtime.bigint();
  try {
    await withTimeout(
      `${direction} x${streams}`,
      timeoutMs,
      Promise.all(Array.from({ length: streams }, () => one(port, perStream, timeoutMs, open))),
    );
  } finally {
    for (const s of open) s.destroy();
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const bytes = perStream * streams;
  return { direction, streams, bytes, seconds, mbPerSec: bytes / MB / seconds };
}
