/**
 * PROXY protocol end to end: a consumer connects to the client jumper, the
 * server jumper (or a forwarder) writes a PROXY header, and a real provider
 * that parses it sees the consumer's own address and port.
 */
import test, { type ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { createClient, createForward, createServer } from '../src/index.js';
import { parseProxyHeader, type ParsedProxyHeader, type ProxyVersion } from '../src/proto/proxy-header.js';
import { randomBytes, sha256 } from './helpers/providers.js';
import { makeKey } from './helpers/tunnel.js';

interface Seen {
  header: ParsedProxyHeader | undefined;
  /** sha256 of the stream bytes after the header. */
  hash: string;
  /** The TCP peer the provider really saw (the jumper). */
  socketPeer: string;
}

/**
 * A provider that parses a PROXY header (when `expectHeader`), then hashes
 * the rest of the stream and echoes it back.
 */
async function startProxyAwareProvider(t: ExecutionContext, expectHeader: boolean, host = '127.0.0.1'): Promise<{ address: string; seen: Promise<Seen>[] }> {
  const seen: Promise<Seen>[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    seen.push(
      new Promise<Seen>((resolve, reject) => {
        let head = Buffer.alloc(0);
        let header: ParsedProxyHeader | undefined;
        let parsed = !expectHeader;
        const hash = createHash('sha256');
        const take = (data: Buffer) => {
          hash.update(data);
          socket.write(data);
        };
        socket.on('data', (chunk: Buffer) => {
          if (parsed) return take(chunk);
          head = Buffer.concat([head, chunk]);
          try {
            header = parseProxyHeader(head);
          } catch (err) {
            socket.destroy();
            reject(err);
            return;
          }
          if (!header) return;
          parsed = true;
          if (head.length > header.length) take(head.subarray(header.length));
        });
        socket.once('end', () => {
          socket.end();
          resolve({ header, hash: hash.digest('hex'), socketPeer: `${socket.remoteAddress}:${socket.remotePort}` });
        });
        socket.once('error', reject);
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as net.AddressInfo).port;
  return { address: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`, seen };
}

/** Connect from a chosen local address, send `data`, half-close, collect the echo. */
function consume(port: number, host: string, localAddress: string, data: Buffer): Promise<{ local: { address: string; port: number }; echo: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host, localAddress, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let local = { address: '', port: 0 };
    socket.once('connect', () => {
      local = { address: socket.localAddress!, port: socket.localPort! };
      socket.end(data);
    });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('end', () => {
      socket.end();
      resolve({ local, echo: Buffer.concat(chunks) });
    });
    socket.once('error', reject);
  });
}

async function tunnelTo(t: ExecutionContext, provider: string, proxyProtocol: ProxyVersion | undefined, clientListen = '127.0.0.1:0') {
  const key = await makeKey();
  const server = createServer({ listen: '127.0.0.1:0', connect: provider, key, ...(proxyProtocol ? { proxyProtocol } : {}) });
  await server.listen();
  t.teardown(() => server.close({ drainTimeoutMs: 0 }));
  const client = createClient({ listen: clientListen, connect: `127.0.0.1:${server.port()}`, key });
  await client.listen();
  t.teardown(() => client.close({ drainTimeoutMs: 0 }));
  return { server, client };
}

for (const version of ['v1', 'v2'] as const) {
  test(`--proxy-protocol ${version}: the provider sees the consumer's real source address and port`, async (t) => {
    const provider = await startProxyAwareProvider(t, true);
    const { client } = await tunnelTo(t, provider.address, version);
    const data = randomBytes(1 << 20);
    // The consumer uses 127.0.0.2, so its address differs from the jumper's (127.0.0.1).
    const { local, echo } = await consume(client.port()!, '127.0.0.1', '127.0.0.2', data);
    const seen = await provider.seen[0]!;
    t.is(seen.header?.version, version === 'v1' ? 1 : 2);
    t.is(seen.header?.command, 'proxy');
    t.deepEqual(seen.header?.origin, {
      source: { family: 'ipv4', address: '127.0.0.2', port: local.port },
      destination: { family: 'ipv4', address: '127.0.0.1', port: client.port()! },
    });
    t.true(seen.socketPeer.startsWith('127.0.0.1:'), 'the TCP peer itself is the server jumper');
    t.is(seen.hash, sha256(data), 'stream bytes after the header are intact');
    t.is(sha256(echo), sha256(data));
  });
}

test('--proxy-protocol v2 over IPv6: family TCP6 with the consumer address', async (t) => {
  const provider = await startProxyAwareProvider(t, true);
  let tunnel;
  try {
    tunnel = await tunnelTo(t, provider.address, 'v2', '[::1]:0');
  } catch (err) {
    t.log(`skipped: no IPv6 loopback (${(err as Error).message})`);
    t.pass();
    return;
  }
  const data = randomBytes(1000);
  const { local } = await consume(tunnel.client.port()!, '::1', '::1', data);
  const seen = await provider.seen[0]!;
  t.deepEqual(seen.header?.origin, {
    source: { family: 'ipv6', address: '::1', port: local.port },
    destination: { family: 'ipv6', address: '::1', port: tunnel.client.port()! },
  });
  t.is(seen.hash, sha256(data));
});

test('without --proxy-protocol the provider gets the stream bytes only', async (t) => {
  const provider = await startProxyAwareProvider(t, false);
  const { client } = await tunnelTo(t, provider.address, undefined);
  // Bytes that look like a PROXY header must arrive as plain data.
  const data = Buffer.concat([Buffer.from('PROXY TCP4 1.1.1.1 2.2.2.2 1 2\r\n'), randomBytes(5000)]);
  const { echo } = await consume(client.port()!, '127.0.0.1', '127.0.0.2', data);
  const seen = await provider.seen[0]!;
  t.is(seen.header, undefined);
  t.is(seen.hash, sha256(data));
  t.is(sha256(echo), sha256(data));
});

test('forward --proxy-protocol v2: the target sees the accepted peer', async (t) => {
  const provider = await startProxyAwareProvider(t, true);
  const forward = createForward({ listen: '127.0.0.1:0', connect: provider.address, proxyProtocol: 'v2' });
  await forward.listen();
  t.teardown(() => forward.close({ drainTimeoutMs: 0 }));
  const data = randomBytes(70_000);
  const { local, echo } = await consume(forward.port()!, '127.0.0.1', '127.0.0.3', data);
  const seen = await provider.seen[0]!;
  t.deepEqual(seen.header?.origin?.source, { family: 'ipv4', address: '127.0.0.3', port: local.port });
  t.is(seen.hash, sha256(data));
  t.is(sha256(echo), sha256(data));
});

test('--proxy-protocol with the spiped protocol is refused at construction', async (t) => {
  const key = await makeKey();
  t.throws(() => createServer({ listen: '127.0.0.1:0', connect: '127.0.0.1:1', key, protocol: 'spiped', proxyProtocol: 'v2' }), {
    code: 'JUMPER_ERR_INVALID_ARG',
  });
});
