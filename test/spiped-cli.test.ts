/**
 * spiped compatibility through the CLI: --protocol spiped on client and
 * server, the `jumper spiped` alias with spiped's flags, and `jumper pipe`.
 * Peers are the real spiped from Debian.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cliBuilt, freePort, JUMPER, startJumper } from './helpers/cli.js';
import { exchange, randomBytes, sha256, startEchoProvider } from './helpers/providers.js';
import { makeKeyFile, SPIPED, startSpiped, waitListening } from './helpers/spiped.js';

const reason = !existsSync(SPIPED) ? `${SPIPED} is not installed (apt-get install spiped)` : !cliBuilt ? 'dist/ is not built' : undefined;
const spipedTest = reason ? test.skip : test;
if (reason) console.log(`skipping spiped CLI tests: ${reason}`);

const MiB = 1024 * 1024;

/** Run `jumper pipe ARGS` with `input` on stdin; resolve with stdout, stderr and exit code. */
function runPipe(args: string[], input: Buffer): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [JUMPER, 'pipe', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    // 'close', not 'exit': output may still be in the pipes when the process has exited.
    child.once('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
    child.stdin.end(input);
  });
}

spipedTest('jumper client --protocol spiped talks to a real spiped -d', async (t) => {
  const key = await makeKeyFile(t);
  const provider = await startEchoProvider(t);
  const spiped = await startSpiped(t, { mode: 'decrypt', target: provider.port, keyPath: key.path });
  const port = await freePort();
  const client = startJumper(t, ['client', '-l', `127.0.0.1:${port}`, '-c', `127.0.0.1:${spiped.port}`, '-k', key.path, '--protocol', 'spiped']);
  const started = await client.waitFor((l) => l.msg === 'client jumper listening');
  t.is(started.protocol, 'spiped/1.6');
  const body = randomBytes(4 * MiB);
  const result = await exchange({ port }, body);
  t.is(sha256(result.received), sha256(body));
  const closed = await client.waitFor((l) => l.msg === 'connection closed');
  t.is(closed.reason, 'done');
});

spipedTest('a real spiped -e talks to `jumper spiped -d` started with spiped flags; -g refuses a -f peer', async (t) => {
  const key = await makeKeyFile(t);
  const provider = await startEchoProvider(t);
  const port = await freePort();
  const server = startJumper(t, ['spiped', '-d', '-s', `[127.0.0.1]:${port}`, '-t', `[127.0.0.1]:${provider.port}`, '-k', key.path, '-g', '-F']);
  await server.waitFor((l) => l.msg === 'server jumper listening');
  const withDh = await startSpiped(t, { mode: 'encrypt', target: port, keyPath: key.path });
  const body = randomBytes(2 * MiB);
  const result = await exchange({ port: withDh.port }, body);
  t.is(sha256(result.received), sha256(body));

  const noDh = await startSpiped(t, { mode: 'encrypt', target: port, keyPath: key.path, flags: ['-f'] });
  const refused = await exchange({ port: noDh.port }, Buffer.from('no pfs'));
  t.is(refused.received.length, 0);
  const line = await server.waitFor((l) => l.reason === 'pfs_required');
  t.is(line.msg, 'connection failed');
  t.is(provider.connections, 1);
});

spipedTest('jumper pipe --protocol spiped through spiped -d to an echo provider returns stdin', async (t) => {
  const key = await makeKeyFile(t);
  const provider = await startEchoProvider(t);
  const spiped = await startSpiped(t, { mode: 'decrypt', target: provider.port, keyPath: key.path });
  const input = randomBytes(1 * MiB + 3);
  const result = await runPipe(['--connect', `127.0.0.1:${spiped.port}`, '--key', key.path, '--protocol', 'spiped'], input);
  t.is(result.code, 0, result.stderr);
  t.is(sha256(result.stdout), sha256(input));
});

spipedTest('jumper pipe over the jumper protocol, and a wrong key exits 1 with the reason', async (t) => {
  const key = await makeKeyFile(t);
  const other = await makeKeyFile(t);
  const provider = await startEchoProvider(t);
  const port = await freePort();
  const server = startJumper(t, ['server', '-l', `127.0.0.1:${port}`, '-c', provider.address, '-k', key.path]);
  await server.waitFor((l) => l.msg === 'server jumper listening');
  await waitListening(port);
  const input = Buffer.from('through jumper pipe\n');
  const ok = await runPipe(['--connect', `127.0.0.1:${port}`, '--key', key.path], input);
  t.is(ok.code, 0, ok.stderr);
  t.deepEqual(ok.stdout, input);
  const bad = await runPipe(['--connect', `127.0.0.1:${port}`, '--key', other.path], input);
  t.is(bad.code, 1);
  t.is(bad.stdout.length, 0);
  t.regex(bad.stderr, /handshake_rejected/);
});

spipedTest('PFS flags are refused where they make no sense', async (t) => {
  const key = await makeKeyFile(t);
  const run = (args: string[]) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [JUMPER, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.once('close', (code) => resolve({ code, stderr }));
    });
  const jumperProto = await run(['client', '-l', '127.0.0.1:0', '-c', '127.0.0.1:1', '-k', key.path, '--no-pfs']);
  t.is(jumperProto.code, 2);
  t.regex(jumperProto.stderr, /always has forward secrecy/);
  const both = await run(['spiped', '-e', '-s', '[127.0.0.1]:1', '-t', '[127.0.0.1]:2', '-k', key.path, '-f', '-g']);
  t.is(both.code, 2);
  t.regex(both.stderr, /-f and -g cannot be used together/);
});
