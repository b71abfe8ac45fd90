/**
 * TCP keep-alive on tunnelled sockets: with the addon, every socket gets
 * all three timers (idle spread over a window, 5 s interval, 6 probes), so
 * streams that went idle together do not probe in one storm; without it,
 * Node's own keep-alive. Read back from the kernel with getsockopt.
 */
import test from 'ava';
import net from 'node:net';
import { createDialer } from '../src/addr/dial.js';
import { parseAddress } from '../src/addr/address.js';
import { readKeepAlive } from '../src/addr/keepalive.js';
import { nativeAvailable } from '../src/native/binding.js';
import { DEFAULTS } from '../src/options.js';

async function withServer(run: (port: number) => Promise<void>): Promise<void> {
  const accepted: net.Socket[] = [];
  const server = net.createServer((s) => void accepted.push(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await run((server.address() as net.AddressInfo).port);
  } finally {
    for (const s of accepted) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
}

const native = nativeAvailable() ? test : test.skip;
if (!nativeAvailable()) console.log('skipping keep-alive timer tests: the native addon is not built');

native('dialled sockets get idle 30–45 s (spread per socket), 5 s interval and 6 probes', async (t) => {
  await withServer(async (port) => {
    const dial = createDialer(parseAddress(`127.0.0.1:${port}`), { connectTimeoutMs: 2000, keepAlive: true, label: 'provider' });
    const sockets = await Promise.all(Array.from({ length: 40 }, () => dial()));
    try {
      const idles = new Set<number>();
      for (const s of sockets) {
        const ka = readKeepAlive(s)!;
        t.true(ka.enabled);
        t.true(ka.idleSeconds >= DEFAULTS.keepAliveIdleSeconds, `idle ${ka.idleSeconds}`);
        t.true(ka.idleSeconds <= DEFAULTS.keepAliveIdleSeconds + DEFAULTS.keepAliveSpreadSeconds, `idle ${ka.idleSeconds}`);
        t.is(ka.intervalSeconds, DEFAULTS.keepAliveIntervalSeconds);
        t.is(ka.count, DEFAULTS.keepAliveCount);
        idles.add(ka.idleSeconds);
      }
      // 40 sockets over 16 possible values: all on one value would mean no spread.
      t.true(idles.size >= 4, `only ${idles.size} distinct idle times`);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });
});

native('keepAlive: false leaves SO_KEEPALIVE off', async (t) => {
  await withServer(async (port) => {
    const dial = createDialer(parseAddress(`127.0.0.1:${port}`), { connectTimeoutMs: 2000, keepAlive: false, label: 'provider' });
    const s = await dial();
    try {
      t.false(readKeepAlive(s)!.enabled);
    } finally {
      s.destroy();
    }
  });
});
