/**
 * The native record pump (native/src/record_pump.cc via src/native/pump.ts)
 * against the JS record layer (src/proto/record.ts), over real TCP sockets
 * on 127.0.0.1, without the rest of the tunnel:
 *
 *   provider <--plain TCP--> [native pump] <--records over TCP--> JS peer
 *
 * The pump seals with kA and opens with kB; the JS peer the other way round.
 * Serial: the fd-leak test counts /proc/self/fd.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import test from 'ava';
import { nativePumpAvailable, runNativePump, type NativePump, type PumpResult } from '../src/native/pump.js';
import { RecordOpener, RecordSealer, type RecordSink } from '../src/proto/record.js';
import { tcpEnding } from './helpers/tcp-ending.js';

const available = nativePumpAvailable();
if (!available) console.log('native-pump.test.ts: skipping: native pump unavailable (build it with: bash scripts/build-native.sh)');
const serial = available ? test.serial : test.serial.skip;

const KIB = 1024;
const MIB = KIB * KIB;
const EMPTY = Buffer.alloc(0);

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function tcpPair(path?: string): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen: true });
  if (path !== undefined) server.listen(path);
  else server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const client =
    path !== undefined
      ? net.connect({ path, allowHalfOpen: true })
      : net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  await once(client, 'connect');
  const [serverSide] = await accepted;
  server.close();
  return [client, serverSide];
}

/** One end of a socket that records what it receives and how it ended. */
class Endpoint {
  readonly hash = createHash('sha256');
  readonly chunks: Buffer[] = [];
  bytes = 0;
  sawEnd = false;
  error: (Error & { code?: string }) | undefined;
  readonly closed: Promise<void>;

  constructor(readonly socket: net.Socket, readonly keep = true) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', (err) => (this.error ??= err));
  }

  data(): Buffer {
    return Buffer.concat(this.chunks);
  }

  protected take(body: Buffer): void {
    this.bytes += body.length;
    this.hash.update(body);
    if (this.keep) this.chunks.push(Buffer.from(body));
  }

  async write(buffers: Buffer[]): Promise<void> {
    for (const b of buffers) {
      if (!this.socket.write(b)) await once(this.socket, 'drain');
    }
  }
}

/** The provider: plain bytes. */
class Provider extends Endpoint {
  readonly ended: Promise<void>;
  constructor(socket: net.Socket, keep = true) {
    super(socket, keep);
    this.ended = new Promise((resolve) => {
      socket.on('data', (chunk: Buffer) => this.take(chunk));
      socket.once('end', () => {
        this.sawEnd = true;
        resolve();
      });
      socket.once('close', () => resolve());
    });
  }

  async send(data: Buffer, chunk = 64 * KIB): Promise<void> {
    for (let offset = 0; offset < data.length; offset += chunk) await this.write([data.subarray(offset, offset + chunk)]);
  }
}

/** The JS tunnel peer: records sealed with kB, opened with kA. */
class Peer extends Endpoint {
  readonly bodySizes: number[] = [];
  abort: string | undefined;
  recordError: Error | undefined;
  readonly ended: Promise<void>;

  constructor(socket: net.Socket, readonly sealer: RecordSealer, readonly opener: RecordOpener, keep = true) {
    super(socket, keep);
    this.ended = new Promise((resolve) => {
      const sink: RecordSink = {
        onData: (body) => {
          this.bodySizes.push(body.length);
          this.take(body);
        },
        onEnd: () => {
          this.sawEnd = true;
          resolve();
        },
        onAbort: (reason) => {
          this.abort = reason;
          resolve();
        },
      };
      socket.on('data', (chunk: Buffer) => {
        try {
          this.opener.push(chunk, sink);
        } catch (err) {
          this.recordError = err as Error;
          resolve();
        }
      });
      socket.once('end', () => resolve());
      socket.once('close', () => resolve());
    });
  }

  seal(data: Buffer): Buffer[] {
    const out: Buffer[] = [];
    this.sealer.sealData(data, out);
    return out;
  }

  async send(data: Buffer, chunk = 64 * KIB): Promise<void> {
    for (let offset = 0; offset < data.length; offset += chunk) await this.write(this.seal(data.subarray(offset, offset + chunk)));
  }

  async sendEnd(): Promise<void> {
    const out: Buffer[] = [];
    this.sealer.sealEnd(out);
    await this.write(out);
    this.socket.end();
  }
}

interface Rig {
  provider: Provider;
  peer: Peer;
  pump: NativePump;
  result: Promise<PumpResult>;
}

interface RigOptions {
  keep?: boolean;
  /** Records the peer's sealer / opener already handled before the pump starts. */
  preSealed?: number;
  preOpened?: number;
  /** Runs after the sockets exist and before the pump starts. */
  beforeStart?: (provider: Provider, peer: Peer) => Promise<void> | void;
  /** Wire bytes handed to the pump as if JS had read them. */
  wirePending?: (peer: Peer) => Buffer;
  /** Bodies JS seals (as DATA records) and hands over unsent, as the client does with its ORIGIN. */
  sealedPending?: Buffer[];
  /** The wire over a Unix socket at this path instead of loopback TCP. */
  wirePath?: string;
}

async function rig(options: RigOptions = {}): Promise<Rig> {
  const kA = randomBytes(32);
  const kB = randomBytes(32);
  const [pumpPlain, providerSide] = await tcpPair();
  const [peerSide, pumpWire] = await tcpPair(options.wirePath);
  const sealer = new RecordSealer(kB);
  const opener = new RecordOpener(kA);
  // Advance the counters as if earlier records had been exchanged in JS.
  const throwaway: Buffer[] = [];
  for (let i = 0; i < (options.preSealed ?? 0); i++) sealer.sealData(EMPTY, throwaway);
  const earlier = new RecordSealer(kA);
  const ignore: RecordSink = { onData() {}, onEnd() {}, onAbort() {} };
  for (let i = 0; i < (options.preOpened ?? 0); i++) {
    const out: Buffer[] = [];
    earlier.sealData(Buffer.from(`old ${i}`), out);
    opener.push(Buffer.concat(out), ignore);
  }
  // The pump continues from here: records sealed or read below (early
  // bytes, wirePending) are on the wire, not yet opened.
  let sendCounter = opener.count;
  const recvCounter = sealer.count;
  let sealedPending: Buffer | undefined;
  if (options.sealedPending) {
    const jsSealer = new RecordSealer(kA);
    for (let i = 0; i < sendCounter; i++) jsSealer.sealData(EMPTY, throwaway);
    const out: Buffer[] = [];
    for (const body of options.sealedPending) jsSealer.sealData(body, out);
    sealedPending = Buffer.concat(out);
    sendCounter = jsSealer.count;
  }
  const keep = options.keep ?? true;
  const provider = new Provider(providerSide, keep);
  const peer = new Peer(peerSide, sealer, opener, keep);
  await options.beforeStart?.(provider, peer);
  const wirePending = options.wirePending?.(peer);
  const pump = runNativePump({
    plain: pumpPlain,
    wire: pumpWire,
    sendKey: kA,
    recvKey: kB,
    sendCounter,
    recvCounter,
    ...(wirePending ? { wirePending } : {}),
    ...(sealedPending ? { sealedPending } : {}),
  });
  return { provider, peer, pump, result: pump.done };
}

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

async function waitFor(condition: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
}

// ------------------------------------------------------------------ tests --

serial('16 MiB each way arrive hash-equal, then END <-> FIN both ways: done', async (t) => {
  const { provider, peer, result } = await rig({ keep: false });
  const up = randomBytes(16 * MIB); // provider -> peer
  const down = randomBytes(16 * MIB); // peer -> provider
  await Promise.all([
    provider.send(up).then(() => provider.socket.end()),
    peer.send(down).then(() => peer.sendEnd()),
  ]);
  const r = await result;
  await Promise.all([provider.ended, peer.ended]);
  t.is(r.reason, 'done');
  t.is(r.bytesUp, up.length);
  t.is(r.bytesDown, down.length);
  t.true(provider.sawEnd, 'provider saw FIN after the END record');
  t.true(peer.sawEnd, 'peer opened the END record');
  t.is(provider.hash.digest('hex'), sha256(down));
  t.is(peer.hash.digest('hex'), sha256(up));
  t.is(peer.recordError, undefined);
});

serial('records fill whole TCP segments of the wire: the largest body is 65464 on IPv4 loopback (one 65483-byte segment), 65518 over a Unix socket', async (t) => {
  const loMtu = Number(readFileSync('/sys/class/net/lo/mtu', 'utf8'));
  // The 12 bytes of TCP timestamps come off the MSS only when they are on (a per-namespace sysctl).
  const timestamps = readFileSync('/proc/sys/net/ipv4/tcp_timestamps', 'utf8').trim() !== '0';
  const dir = mkdtempSync(join(tmpdir(), 'jumper-pump-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cases = [
    // Linux advertises MSS = min(MTU, 65535) - 40 (IPv4 + TCP) - 12 (timestamps) = 65483 on lo; a record is body + 19.
    { label: 'IPv4 loopback', wirePath: undefined, largest: loMtu === 65536 ? 65535 - 40 - (timestamps ? 12 : 0) - 19 : undefined },
    { label: 'Unix socket', wirePath: join(dir, 'wire.sock'), largest: 65518 },
  ];
  for (const c of cases) {
    const { provider, peer, result } = await rig({ keep: false, ...(c.wirePath ? { wirePath: c.wirePath } : {}) });
    const up = randomBytes(8 * MIB);
    await provider.send(up, MIB);
    provider.socket.end();
    await peer.sendEnd();
    const r = await result;
    await peer.ended;
    t.is(r.reason, 'done', c.label);
    t.is(peer.hash.digest('hex'), sha256(up), c.label);
    const largest = Math.max(...peer.bodySizes);
    if (c.largest === undefined) {
      t.log(`lo MTU is ${loMtu}, not 65536: only checking that records stay within the format (largest body ${largest})`);
      t.true(largest <= 65518, c.label);
    } else {
      t.is(largest, c.largest, c.label);
    }
  }
});

serial('half-close: END reaches the provider as FIN while the other direction keeps flowing', async (t) => {
  const { provider, peer, result } = await rig();
  await peer.write(peer.seal(Buffer.from('request')));
  await peer.sendEnd();
  await provider.ended;
  t.true(provider.sawEnd);
  t.is(provider.data().toString(), 'request');
  // The provider answers after the FIN: the down direction is still open.
  await provider.send(Buffer.from('response after FIN'));
  await new Promise((r) => setTimeout(r, 50));
  t.false(peer.sawEnd);
  provider.socket.end();
  await peer.ended;
  t.true(peer.sawEnd);
  t.is(peer.data().toString(), 'response after FIN');
  const r = await result;
  t.is(r.reason, 'done');
  t.is(r.bytesDown, 'request'.length);
  t.is(r.bytesUp, 'response after FIN'.length);
});

serial('one flipped bit: tampered, the provider is reset and gets no corrupted byte', async (t) => {
  const { provider, peer, result } = await rig();
  const wireEnding = tcpEnding(peer.socket);
  await peer.write(peer.seal(Buffer.from('good bytes')));
  // (Delivered first: libuv reports an RST that arrives together with unread
  // data as a plain EOF, which would hide the reset from this check.)
  await waitFor(() => provider.bytes === 10);
  const bad = Buffer.concat(peer.seal(Buffer.from('evil bytes that must never be delivered')));
  bad[10]! ^= 0x04;
  await peer.write([bad]);
  const r = await result;
  t.is(r.reason, 'tampered');
  t.is(r.side, 'wire');
  await provider.closed;
  t.is(provider.data().toString(), 'good bytes');
  t.is(provider.error?.code, 'ECONNRESET');
  t.false(provider.sawEnd);
  // No ABORT goes back after a wire failure, and the close is no clean FIN either.
  t.is(await wireEnding, 'reset', 'the tunnel peer is reset');
});

serial('wire cut without END: truncated, provider reset', async (t) => {
  const { provider, peer, result } = await rig();
  await peer.write(peer.seal(Buffer.from('partial')));
  await waitFor(() => provider.bytes === 7);
  peer.socket.end(); // FIN without the END record
  const r = await result;
  t.is(r.reason, 'truncated');
  await provider.closed;
  t.is(provider.data().toString(), 'partial');
  t.is(provider.error?.code, 'ECONNRESET');
});

serial('wire cut inside a record: truncated', async (t) => {
  const { peer, result } = await rig();
  const record = Buffer.concat(peer.seal(Buffer.from('never completes')));
  await peer.write([record.subarray(0, 9)]);
  peer.socket.end();
  const r = await result;
  t.is(r.reason, 'truncated');
});

serial('ABORT from the peer: peer_abort with its text', async (t) => {
  const { provider, peer, result } = await rig();
  const out: Buffer[] = [];
  peer.sealer.sealAbort('provider_refused', out);
  await peer.write(out);
  const r = await result;
  t.is(r.reason, 'peer_abort');
  t.is(r.detail, 'provider_refused');
  t.is(r.side, 'wire');
  await provider.closed;
  t.is(provider.error?.code, 'ECONNRESET');
});

serial('bytes after END: bad_record; unknown type and short length too', async (t) => {
  {
    const { peer, result } = await rig();
    const end: Buffer[] = [];
    peer.sealer.sealEnd(end);
    // The pump may close as soon as it sees the bad bytes, so our write may
    // end in EPIPE: what matters is the pump's verdict.
    void peer.write([...end, ...peer.seal(Buffer.from('late'))]).catch(() => {});
    const r = await result;
    t.is(r.reason, 'bad_record');
  }
  {
    const { peer, result } = await rig();
    void peer.write([Buffer.from([0x00, 0x05, 1, 2, 3, 4, 5])]).catch(() => {});
    const r = await result;
    t.is(r.reason, 'bad_record');
    t.regex(r.detail ?? '', /below the minimum/);
  }
});

serial('plain side reset: peer_reset, and the tunnel peer gets an ABORT naming it', async (t) => {
  const { provider, peer, result } = await rig();
  const wireEnding = tcpEnding(peer.socket);
  await provider.send(Buffer.from('hello'));
  await waitFor(() => peer.bytes === 5);
  provider.socket.resetAndDestroy();
  const r = await result;
  t.is(r.reason, 'peer_reset');
  t.is(r.side, 'plain');
  await peer.ended;
  t.is(peer.abort, 'peer_reset');
  // After an ABORT the wire closes with a FIN, so the ABORT is not lost to a reset.
  t.is(await wireEnding, 'end');
});

/** A rig whose peer stopped reading: the provider's bytes fill the wire until the pump's sends block. */
async function blockedSending(): Promise<Rig> {
  const r = await rig();
  r.peer.socket.pause();
  void r.provider.send(randomBytes(16 * 1024 * 1024)).catch(() => {});
  let before = -1;
  for (let i = 0; i < 50 && r.provider.socket.bytesWritten !== before; i++) {
    before = r.provider.socket.bytesWritten;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // Blocked for real: the provider's side still holds bytes the pump cannot pass on.
  if (r.provider.socket.writableLength === 0) throw new Error('the pump is not blocked sending');
  return r;
}

serial('a peer that sends ABORT and resets while the pump is blocked sending: peer_abort with its reason, not peer_reset', async (t) => {
  const { peer, result } = await blockedSending();
  const out: Buffer[] = [];
  peer.sealer.sealAbort('drain_timeout', out);
  // In one go (the write goes to the kernel at once): the pump wakes to both the
  // ABORT and the reset that follows it (unread bytes: the close is a reset).
  peer.socket.write(Buffer.concat(out));
  peer.socket.resetAndDestroy();
  const r = await result;
  t.is(r.reason, 'peer_abort');
  t.is(r.detail, 'drain_timeout');
  t.is(r.side, 'wire');
});

serial('a peer that resets without an ABORT while the pump is blocked sending: peer_reset, not truncated', async (t) => {
  const { peer, result } = await blockedSending();
  peer.socket.resetAndDestroy();
  const r = await result;
  t.is(r.reason, 'peer_reset');
  t.is(r.side, 'wire');
});

serial('cancel: cancelled promptly, the peer gets ABORT(reason), the provider a reset', async (t) => {
  const { provider, peer, pump, result } = await rig();
  await peer.write(peer.seal(Buffer.from('x')));
  await waitFor(() => provider.bytes === 1);
  const started = performance.now();
  pump.cancel('drain_timeout');
  const r = await result;
  const elapsed = performance.now() - started;
  t.is(r.reason, 'cancelled');
  t.is(r.detail, 'drain_timeout');
  // Well below ABORT_LINGER_MS (1 s), the slow path this guards against, with room for a loaded machine.
  t.true(elapsed < 750, `cancel took ${elapsed.toFixed(1)} ms`);
  await peer.ended;
  t.is(peer.abort, 'drain_timeout');
  await provider.closed;
  t.is(provider.error?.code, 'ECONNRESET');
  pump.cancel('again'); // no-op after the end
});

serial('wirePending: a record split between JS and the native side is opened', async (t) => {
  const first = Buffer.from('first record, handed over by JS');
  const second = randomBytes(1000);
  let rest = EMPTY;
  const { provider, peer, result } = await rig({
    wirePending: (p) => {
      const wire = Buffer.concat([...p.seal(first), ...p.seal(second)]);
      const cut = wire.length - 500; // the second record straddles the handoff
      rest = wire.subarray(cut);
      return wire.subarray(0, cut);
    },
  });
  await peer.write([rest]);
  await peer.sendEnd();
  await provider.ended;
  t.deepEqual(provider.data(), Buffer.concat([first, second]));
  provider.socket.end();
  t.is((await result).reason, 'done');
});

serial('bytes Node buffered before the handoff are taken over (both sockets)', async (t) => {
  const { provider, peer, result } = await rig({
    beforeStart: async (p, q) => {
      await p.write([Buffer.from('greeting from the provider')]);
      await q.write(q.seal(Buffer.from('early data from the peer')));
      await new Promise((r) => setTimeout(r, 30)); // let the pump-side sockets read them
    },
  });
  await waitFor(() => provider.bytes > 0 && peer.bytes > 0);
  t.is(provider.data().toString(), 'early data from the peer');
  t.is(peer.data().toString(), 'greeting from the provider');
  await peer.sendEnd();
  provider.socket.end();
  t.is((await result).reason, 'done');
});

serial('records JS sealed and did not send (sealedPending) lead the stream, ahead of plaintext already waiting', async (t) => {
  const { provider, peer, result } = await rig({
    preOpened: 2,
    sealedPending: [Buffer.from('origin-'), Buffer.from('second-')],
    beforeStart: async (p) => {
      await p.write([Buffer.from('first bytes of the provider')]);
      await new Promise((r) => setTimeout(r, 30)); // in the kernel or in Node's buffer: both are taken
    },
  });
  await waitFor(() => peer.bytes >= 'origin-second-first bytes of the provider'.length);
  // Opened in order with consecutive counters: the sealed records first, then the pump's.
  t.is(peer.data().toString(), 'origin-second-first bytes of the provider');
  t.is(peer.recordError, undefined);
  await peer.sendEnd();
  provider.socket.end();
  const r = await result;
  t.is(r.reason, 'done');
  t.is(r.bytesUp, 'first bytes of the provider'.length, 'the sealed records are not counted as plaintext');
});

serial('sealedPending leaves at once when no plaintext is waiting (a consumer that waits for the provider)', async (t) => {
  const { provider, peer, result } = await rig({ sealedPending: [Buffer.from('origin')] });
  // Nothing from the provider yet: the sealed record must not wait for it.
  await waitFor(() => peer.bytes === 'origin'.length);
  t.is(peer.data().toString(), 'origin');
  await peer.send(Buffer.from('hello provider'));
  await waitFor(() => provider.bytes === 'hello provider'.length);
  await provider.write([Buffer.from('reply')]);
  await waitFor(() => peer.bytes === 'originreply'.length);
  t.is(peer.data().toString(), 'originreply');
  await peer.sendEnd();
  provider.socket.end();
  t.is((await result).reason, 'done');
});

serial('a pump cancelled at once still delivers sealedPending before its ABORT', async (t) => {
  const { peer, pump, result } = await rig({ sealedPending: [Buffer.from('origin')] });
  pump.cancel('shutting_down');
  await peer.ended;
  t.is(peer.recordError, undefined, 'the ABORT follows the sealed record in counter order');
  t.is(peer.data().toString(), 'origin');
  t.is(peer.abort, 'shutting_down');
  t.is((await result).reason, 'cancelled');
});

serial('counters starting above zero interoperate with a JS sealer/opener already in use', async (t) => {
  const { provider, peer, result } = await rig({ preSealed: 5, preOpened: 3 });
  t.is(peer.sealer.count, 5);
  t.is(peer.opener.count, 3);
  await peer.send(Buffer.from('after five records'));
  await provider.send(Buffer.from('after three records'));
  await waitFor(() => provider.bytes > 0 && peer.bytes > 0);
  t.is(provider.data().toString(), 'after five records');
  t.is(peer.data().toString(), 'after three records');
  t.is(peer.recordError, undefined);
  await peer.sendEnd();
  provider.socket.end();
  t.is((await result).reason, 'done');
  t.is(peer.opener.count, 3 + 1 + 1); // DATA + END
});

serial('wrong counter: the first record fails authentication (tampered)', async (t) => {
  const kA = randomBytes(32);
  const kB = randomBytes(32);
  const [pumpPlain, providerSide] = await tcpPair();
  const [peerSide, pumpWire] = await tcpPair();
  const provider = new Provider(providerSide);
  const { done } = runNativePump({ plain: pumpPlain, wire: pumpWire, sendKey: kA, recvKey: kB, sendCounter: 0, recvCounter: 1 });
  const peer = new Peer(peerSide, new RecordSealer(kB), new RecordOpener(kA));
  await peer.write(peer.seal(Buffer.from('counter 0')));
  t.is((await done).reason, 'tampered');
  await provider.closed;
  t.is(provider.bytes, 0);
});

serial('idle pauses: buffers given back between messages, a record split across a pause, ABORT after idle', async (t) => {
  const { provider, peer, pump, result } = await rig();
  const pause = (): Promise<void> => new Promise((r) => setTimeout(r, 30));
  for (let i = 0; i < 5; i++) {
    await peer.write(peer.seal(Buffer.from(`ping ${i}`)));
    await waitFor(() => provider.data().toString().endsWith(`ping ${i}`));
    await pause();
    await provider.send(Buffer.from(`pong ${i}`));
    await waitFor(() => peer.data().toString().endsWith(`pong ${i}`));
    await pause();
  }
  // A record whose bytes arrive on both sides of an idle pause.
  const split = Buffer.concat(peer.seal(Buffer.from('split across a pause')));
  await peer.write([split.subarray(0, 5)]);
  await pause();
  await peer.write([split.subarray(5)]);
  await waitFor(() => provider.data().toString().endsWith('split across a pause'));
  // A bulk burst after the pauses, then idle again.
  const bulk = randomBytes(3 * MIB + 17);
  await provider.send(bulk);
  await waitFor(() => peer.bytes === 5 * 'pong 0'.length + bulk.length);
  await pause();
  t.is(provider.data().toString(), [0, 1, 2, 3, 4].map((i) => `ping ${i}`).join('') + 'split across a pause');
  t.is(sha256(peer.data().subarray(5 * 'pong 0'.length)), sha256(bulk));
  pump.cancel('idle_cancel');
  const r = await result;
  t.is(r.reason, 'cancelled');
  await peer.ended;
  t.is(peer.abort, 'idle_cancel');
  t.is(peer.recordError, undefined);
});

serial('wirePending larger than the opening buffer is opened in full', async (t) => {
  const bodies = Array.from({ length: 5 }, () => randomBytes(60 * KIB));
  const { provider, peer, result } = await rig({
    wirePending: (p) => Buffer.concat(bodies.flatMap((b) => p.seal(b))),
  });
  const tail = randomBytes(200 * KIB);
  await peer.send(tail);
  await peer.sendEnd();
  await provider.ended;
  t.is(sha256(provider.data()), sha256(Buffer.concat([...bodies, tail])));
  provider.socket.end();
  const r = await result;
  t.is(r.reason, 'done');
  t.is(r.bytesDown, 5 * 60 * KIB + tail.length);
});

serial('no fd leaks: every pump closes both fds (the reactor keeps none per pump)', async (t) => {
  // Warm up (lazy loads, libuv internals) before counting.
  {
    const { peer, provider, result } = await rig();
    await peer.sendEnd();
    provider.socket.end();
    await result;
    await Promise.all([peer.closed, provider.closed]);
  }
  const before = fdCount();
  for (let i = 0; i < 10; i++) {
    const { peer, provider, pump, result } = await rig();
    if (i % 3 === 0) {
      pump.cancel('test');
    } else if (i % 3 === 1) {
      await peer.write(peer.seal(Buffer.from('data')));
      peer.socket.end(); // truncated
    } else {
      await peer.sendEnd();
      provider.socket.end();
    }
    await result;
    peer.socket.destroy();
    provider.socket.destroy();
    await Promise.all([peer.closed, provider.closed]);
  }
  await waitFor(() => fdCount() <= before);
  t.is(fdCount(), before);
});
