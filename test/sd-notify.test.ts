/**
 * systemd notifications (Type=notify, notify-reload, WatchdogSec=): the real
 * CLI with $NOTIFY_SOCKET pointing at a Unix datagram socket that a small
 * python3 receiver reads, as systemd would.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { SystemdNotifier } from '../src/activation/sd-notify.js';
import { nativeExports } from '../src/native/binding.js';
import { captureLogger } from './helpers/capture-logger.js';
import { cliBuilt, freePort, JUMPER } from './helpers/cli.js';
import { watchJsonLog } from './helpers/json-log.js';
import { killAtTeardown } from './helpers/netns.js';
import { exchange } from './helpers/providers.js';
import { pollUntil } from './helpers/poll.js';

const native = nativeExports<{ sendUnixDatagram(path: string, bytes: Buffer): void }>(['sendUnixDatagram']);
const skipReason = !cliBuilt ? 'dist/ is not built' : !native ? 'the native addon is not built' : !existsSync('/usr/bin/python3') ? 'python3 not found' : undefined;
const cliTest = skipReason ? test.skip : test;
if (skipReason) console.log(`# sd_notify CLI tests skipped: ${skipReason}`);

interface Notification {
  /** CLOCK_MONOTONIC µs when the receiver read it. */
  t: number;
  msg: string;
}

const RECEIVER = `
import json, socket, sys, time
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\\0" + path[1:] if path.startswith("@") else path)
print(json.dumps({"t": 0, "msg": "bound"}), flush=True)
while True:
    data = s.recv(65536)
    print(json.dumps({"t": time.monotonic_ns() // 1000, "msg": data.decode()}), flush=True)
`;

/** A notification socket like systemd's; every datagram it gets, in order. */
async function startReceiver(t: ExecutionContext, path: string) {
  const child = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  killAtTeardown(t, child);
  const got: Notification[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => got.push(JSON.parse(line) as Notification));
  const waitFor = async (predicate: (n: Notification) => boolean, after = 0, timeoutMs = 10_000): Promise<Notification> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = got.slice(after).find(predicate);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no such notification; got ${JSON.stringify(got.map((n) => n.msg))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  await waitFor((n) => n.msg === 'bound');
  return { got, waitFor, messages: () => got.map((n) => n.msg).filter((m) => m !== 'bound') };
}

function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'jumper-notify-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function startCli(t: ExecutionContext, args: string[], env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, [JUMPER, ...args, '--log-format', 'json'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  killAtTeardown(t, child);
  return { child, ...watchJsonLog(child, 10_000) };
}

cliTest('Type=notify: READY=1 once the listener accepts, WATCHDOG=1 every half period, STOPPING=1 at SIGTERM; exec: commands do not inherit NOTIFY_SOCKET', async (t) => {
  const dir = tempDir(t);
  const socket = join(dir, 'notify');
  const receiver = await startReceiver(t, socket);
  const port = await freePort();
  const cli = startCli(t, ['forward', '--listen', `127.0.0.1:${port}`, '--connect', 'exec:env'], { NOTIFY_SOCKET: socket, WATCHDOG_USEC: '200000' });
  const ready = await receiver.waitFor((n) => n.msg.startsWith('READY=1'));
  t.is(ready.msg, `READY=1\nSTATUS=forward listening on 127.0.0.1:${port}`);
  // Ready means ready: a connection made the moment READY=1 arrives is served.
  const { received } = await exchange({ port }, Buffer.alloc(0));
  const env = received.toString();
  t.regex(env, /^PATH=/m, 'the command ran and printed its environment');
  t.notRegex(env, /NOTIFY_SOCKET|WATCHDOG_/);

  const firstPing = receiver.got.findIndex((n) => n.msg === 'WATCHDOG=1');
  t.true(firstPing >= 0, 'a ping comes with READY=1');
  const windowStart = receiver.got.length;
  const pingsSince = () => receiver.got.slice(windowStart).filter((n) => n.msg === 'WATCHDOG=1');
  await pollUntil(() => pingsSince().length >= 8, 10_000);
  const pings = pingsSince();
  t.true(pings.length >= 8, `${pings.length} pings`);
  // Every 100 ms (half of WATCHDOG_USEC), by the receiver's own clock: a stall may stretch one
  // interval, not the middle one; a flood would shrink it.
  const gaps = pings.slice(1).map((p, i) => p.t - pings[i]!.t).sort((x, y) => x - y);
  const median = gaps[Math.floor(gaps.length / 2)]!;
  t.true(median >= 50_000 && median <= 250_000, `median interval between pings ${median} µs`);

  cli.child.kill('SIGTERM');
  t.is((await cli.exited).code, 0);
  const stopping = receiver.got.findIndex((n) => n.msg === 'STOPPING=1');
  t.true(stopping > firstPing, 'STOPPING=1 at SIGTERM');
  t.is(receiver.messages().filter((m) => m.startsWith('READY=1')).length, 1);
});

cliTest('Type=notify-reload: SIGHUP gives RELOADING=1 with CLOCK_MONOTONIC µs, then READY=1; an abstract socket works; WATCHDOG_PID of another process means no pings', async (t) => {
  const dir = tempDir(t);
  const name = `@jumper-test-${process.pid}-${Date.now()}`;
  const receiver = await startReceiver(t, name);
  const file = join(dir, 'jumper.yaml');
  writeFileSync(file, stringify({ links: [{ name: 'f', role: 'forward', listen: `127.0.0.1:${await freePort()}`, connect: '127.0.0.1:1' }] }));
  const cli = startCli(t, ['run', '--config', file], { NOTIFY_SOCKET: name, WATCHDOG_USEC: '200000', WATCHDOG_PID: '1' });
  const ready = await receiver.waitFor((n) => n.msg.startsWith('READY=1'));
  t.is(ready.msg, 'READY=1\nSTATUS=1 links');

  cli.child.kill('SIGHUP');
  await cli.waitFor((l) => l.msg === 'configuration reloaded');
  const after = receiver.got.indexOf(ready) + 1;
  const reloading = await receiver.waitFor((n) => n.msg.startsWith('RELOADING=1'), after);
  const usec = Number(/^RELOADING=1\nMONOTONIC_USEC=(\d+)$/.exec(reloading.msg)?.[1]);
  // The same clock as the receiver's time.monotonic_ns(): sent just before it was read.
  t.true(usec <= reloading.t && reloading.t - usec < 10_000_000, `MONOTONIC_USEC ${usec}, received at ${reloading.t}`);
  const readyAgain = await receiver.waitFor((n) => n.msg === 'READY=1', receiver.got.indexOf(reloading) + 1);
  t.truthy(readyAgain);
  await new Promise((r) => setTimeout(r, 300));
  t.false(receiver.messages().includes('WATCHDOG=1'), 'the watchdog is another process’s');
  cli.child.kill('SIGTERM');
  t.is((await cli.exited).code, 0);
});

cliTest('jumper accept: READY=1 once it accepts hand-offs, and RELOADING=1 then READY=1 on SIGHUP (Type=notify-reload would wait for them)', async (t) => {
  const dir = tempDir(t);
  const socket = join(dir, 'notify');
  const receiver = await startReceiver(t, socket);
  const from = join(dir, 'handoff.sock');
  const cli = startCli(t, ['accept', '--from', from, '--exec', 'cat'], { NOTIFY_SOCKET: socket });
  const ready = await receiver.waitFor((n) => n.msg.startsWith('READY=1'));
  t.is(ready.msg, `READY=1\nSTATUS=accepting hand-offs on ${from}`);
  t.true(existsSync(from), 'the hand-off socket exists when READY=1 comes');
  cli.child.kill('SIGHUP');
  const reloading = await receiver.waitFor((n) => n.msg.startsWith('RELOADING=1'));
  await receiver.waitFor((n) => n.msg === 'READY=1', receiver.got.indexOf(reloading) + 1);
  cli.child.kill('SIGTERM');
  await receiver.waitFor((n) => n.msg === 'STOPPING=1');
  t.is((await cli.exited).code, 0);
});

(native ? test : test.skip)('a notification socket that is gone is logged once, never thrown; bad paths are refused by the binding', (t) => {
  const dir = tempDir(t);
  const logger = captureLogger();
  const notifier = new SystemdNotifier({ socket: join(dir, 'gone') }, logger);
  notifier.ready();
  notifier.reloading();
  notifier.stopping();
  const lines = logger.lines.filter((l) => l.msg === 'cannot notify systemd');
  t.is(lines.length, 1);
  t.is(lines[0]!.code, 'ENOENT');
  t.throws(() => native!.sendUnixDatagram('relative/path', Buffer.from('x')), { instanceOf: RangeError });
  t.throws(() => native!.sendUnixDatagram(`/${'x'.repeat(200)}`, Buffer.from('x')), { instanceOf: RangeError });
  t.throws(() => native!.sendUnixDatagram(join(dir, 'gone'), Buffer.from('x')), { code: 'ENOENT' } as never);
  // Without a target nothing is sent and nothing is logged.
  const quiet = captureLogger();
  new SystemdNotifier(undefined, quiet).ready();
  t.deepEqual(quiet.lines, []);
});
