/**
 * Tell a TCP reset from a clean EOF by asking the kernel, not libuv.
 *
 * libuv may report a peer's RST as a plain EOF: when POLLHUP arrives with
 * the last data and the read was partial, it short-circuits to EOF without
 * reading the pending ECONNRESET (seen on Node 20, Linux 6.x, whenever the
 * reader had unread bytes at the time of the reset). So 'end' in Node does
 * not prove a FIN. The kernel knows: after a FIN the socket is still in
 * /proc/net/tcp (CLOSE_WAIT, or TIME_WAIT/CLOSING if we had sent our FIN),
 * after a RST it is CLOSED and gone from the table. Check at the 'end' event,
 * before closing our side.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';

/** Is there a live (non-CLOSED) kernel TCP socket with this local and remote port? */
export function kernelHasConnection(localPort: number, remotePort: number): boolean {
  const hex = (p: number) => p.toString(16).toUpperCase().padStart(4, '0');
  const needle = `:${hex(localPort)} `;
  const peer = `:${hex(remotePort)} `;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4) continue;
      if (`${cols[1]} `.endsWith(needle) && `${cols[2]} `.endsWith(peer)) return true;
    }
  }
  return false;
}

/**
 * Resolves with 'end' (a real FIN), 'reset' (RST, whether Node said
 * ECONNRESET or EOF), or 'error:<code>'. Attach right after connect.
 */
export function tcpEnding(socket: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let ports: [number, number] | undefined;
    const remember = () => {
      if (socket.localPort && socket.remotePort) ports = [socket.localPort, socket.remotePort];
    };
    remember();
    socket.once('connect', remember);
    socket.once('end', () => {
      remember();
      resolve(ports && !kernelHasConnection(ports[0], ports[1]) ? 'reset' : 'end');
    });
    socket.once('error', (err: NodeJS.ErrnoException) =>
      resolve(err.code === 'ECONNRESET' || err.code === 'EPIPE' ? 'reset' : `error:${err.code}`),
    );
  });
}

export interface StrictExchange {
  received: Buffer;
  /** 'end' for a FIN the kernel saw, 'reset' for a RST. */
  ending: string;
}

/** Like providers.exchange, but the ending is the kernel's word. */
export function exchangeStrict(port: number, upload: Buffer, options: { keepOpen?: boolean } = {}): Promise<StrictExchange> {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.once('connect', () => {
    if (upload.length > 0) socket.write(upload);
    if (!options.keepOpen) socket.end();
  });
  return tcpEnding(socket).then((ending) => {
    socket.destroy();
    return { received: Buffer.concat(chunks), ending };
  });
}

export interface StrictProvider {
  address: string;
  port: number;
  connections: number;
  /** Bytes received, per connection. */
  received: Buffer[][];
  /** How connection `index` ended, by the kernel's word: 'end' or 'reset'. */
  ended(index: number): Promise<string>;
}

/**
 * Echo provider (answers what it receives, half-closes after the peer)
 * whose endings tell a RST from a FIN; closed at teardown.
 */
export async function startStrictEchoProvider(t: import('ava').ExecutionContext): Promise<StrictProvider> {
  const received: Buffer[][] = [];
  const endings: Promise<string>[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    const chunks: Buffer[] = [];
    received.push(chunks);
    const ending = tcpEnding(socket);
    endings.push(ending);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      socket.write(c);
    });
    void ending.then((how) => (how === 'end' ? socket.end() : socket.destroy()));
    provider.connections++;
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
  const provider: StrictProvider = {
    address: `127.0.0.1:${port}`,
    port,
    connections: 0,
    received,
    ended: (index) => endings[index] ?? Promise.resolve('never connected'),
  };
  return provider;
}
