#!/usr/bin/env node
/**
 * `npm run demo`: a whole tunnel on loopback with an embedded default set-up.
 * Generates a fresh key in keys/demo.key, starts a provider, a server jumper
 * and a client jumper, sends traffic through, shows what each side saw and
 * that the wire carried no plaintext, then shuts everything down and exits 0.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { writeNewKeyFile, readKeyFile } from '../keys/key-file.js';
import { createClient } from '../roles/client.js';
import { createServer } from '../roles/server.js';
import { die } from './fail.js';

const BULK_BYTES = 32 * 1024 * 1024;
const keyPath = fileURLToPath(new URL('../../keys/demo.key', import.meta.url));
const say = (text: string) => process.stdout.write(`${text}\n`);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex').slice(0, 16);

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

/** Send `body`, half-close, collect the reply until EOF. */
function roundTrip(port: number, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => socket.end(body));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
  });
}

async function main(): Promise<void> {
  mkdirSync(fileURLToPath(new URL('../../keys/', import.meta.url)), { recursive: true });
  await writeNewKeyFile(keyPath, { force: true });
  const key = await readKeyFile(keyPath);
  say(`1. key        keys/demo.key written (mode 0600), fingerprint ${key.fingerprint}`);

  // The provider: answers each request with its SHA-256, like a tiny service.
  const provider = net.createServer({ allowHalfOpen: true }, (s) => {
    const h = createHash('sha256');
    let n = 0;
    s.on('data', (c: Buffer) => {
      h.update(c);
      n += c.length;
    });
    s.once('end', () => s.end(`provider got ${n} bytes, sha256 ${h.digest('hex').slice(0, 16)}\n`));
  });
  const providerPort = await listen(provider);
  say(`2. provider   127.0.0.1:${providerPort} (replies with the size and hash of what it received)`);

  // A tap between the jumpers records the wire bytes, to show they are ciphertext.
  const server = createServer({ listen: '127.0.0.1:0', connect: `127.0.0.1:${providerPort}`, key });
  await server.listen();
  const wire: Buffer[] = [];
  // Half-open on both legs: the tunnel carries half-close, so must the tap.
  const tap = net.createServer({ allowHalfOpen: true }, (inbound) => {
    const out = net.connect({ port: server.port()!, host: '127.0.0.1', allowHalfOpen: true });
    inbound.on('data', (c: Buffer) => {
      if (wire.length < 64) wire.push(Buffer.from(c));
      out.write(c);
    });
    out.on('data', (c: Buffer) => inbound.write(c));
    out.on('end', () => inbound.end());
    inbound.on('end', () => out.end());
    inbound.on('error', () => out.destroy());
    out.on('error', () => inbound.destroy());
  });
  const tapPort = await listen(tap);
  const client = createClient({ listen: '127.0.0.1:0', connect: `127.0.0.1:${tapPort}`, key });
  await client.listen();
  say(`3. server     jumper server ${server.address()} -> provider`);
  say(`4. client     jumper client ${client.address()} -> server (the consumer's "localhost" port)`);

  const message = Buffer.from('hello through the tunnel, this is plaintext');
  const reply = await roundTrip(client.port()!, message);
  say(`5. request    sent ${message.length} bytes (sha256 ${sha(message)}); reply: ${reply.toString().trim()}`);
  const onWire = Buffer.concat(wire);
  say(`6. wire       ${onWire.length} bytes seen between the jumpers; plaintext visible: ${onWire.includes(message) ? 'YES (bug!)' : 'no'}`);

  const bulk = randomBytes(BULK_BYTES);
  const started = process.hrtime.bigint();
  const bulkReply = await roundTrip(client.port()!, bulk);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  say(`7. bulk       ${BULK_BYTES / 1048576} MiB in ${seconds.toFixed(2)} s (${(BULK_BYTES / 1048576 / seconds).toFixed(0)} MiB/s, one process hosting every side)`);
  const match = bulkReply.toString().includes(sha(bulk));
  say(`              provider's hash ${match ? 'matches' : 'DOES NOT match'} the sent data (${sha(bulk)})`);

  const stats = server.stats();
  // The client keeps a wire ready while streams come in a row (preconnect auto): the server may count one more connection than streams.
  say(`8. server     ${stats.total} connections for ${client.stats().total} streams, ${stats.failed} failed, ${stats.bytesUp} bytes up, ${stats.bytesDown} bytes down`);
  await client.close({ drainTimeoutMs: 1000 });
  await server.close({ drainTimeoutMs: 1000 });
  tap.close();
  provider.close();
  say('9. done       everything closed. Next: README "Quick start" runs the same with the CLI.');
  if (!match || onWire.includes(message)) process.exit(1);
}

main().catch((err: unknown) => die('jumper demo', err));
