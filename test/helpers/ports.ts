/**
 * Ports for test listeners that are handed to a child process by number.
 *
 * "Bind port 0, read it, close it" hands out a port from the kernel's
 * ephemeral range, and the next outgoing connection of any test may take
 * it as its local port before the child binds it (EADDRINUSE, seen in CI).
 * So the port is picked below that range, where the kernel never assigns
 * local ports on its own, and checked free by binding it once.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';

const FLOOR = 10_000;

/** The first port of the kernel's ephemeral range (Linux), 32768 elsewhere. */
function ephemeralStart(): number {
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > FLOOR + 1000 ? first : 32_768;
  } catch {
    return 32_768;
  }
}

const CEILING = ephemeralStart();

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A TCP port on 127.0.0.1 that is free now and outside the ephemeral range. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = FLOOR + Math.floor(Math.random() * (CEILING - FLOOR));
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port found in ${FLOOR}..${CEILING - 1}`);
}
