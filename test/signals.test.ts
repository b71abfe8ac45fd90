/**
 * The daemon signal contract (src/cli/signals.ts) at the edges the CLI tests
 * cannot hit on purpose: a SIGHUP caught during start-up but not yet
 * dispatched when handleSignals takes over (test/helpers/hangup-race.ts), and
 * SIGTERM/SIGINT at a chosen moment of start-up (test/helpers/startup-stop.ts).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const RACE = fileURLToPath(new URL('./helpers/hangup-race.ts', import.meta.url));
const STARTUP_STOP = fileURLToPath(new URL('./helpers/startup-stop.ts', import.meta.url));

/** Run the start-up stop helper with these signals sent during its start-up. */
function startupStop(signals: string): Promise<{ lines: string[]; code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['--import', 'tsx', STARTUP_STOP, signals], { timeout: 20_000 }, (_err, out) =>
      resolve({ lines: out.trim().split('\n').filter(Boolean), code: child.exitCode, signal: child.signalCode }),
    );
  });
}

test('a SIGHUP still undispatched when the handlers take over is replayed as a reload, not lost', async (t) => {
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, ['--import', 'tsx', RACE], { timeout: 20_000 }, (err, out) => (err ? reject(err) : resolve(out))),
  );
  t.is(stdout.trim(), 'reloaded');
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  test(`${signal} during start-up is kept: the process starts, then stops as after start-up (exit 0)`, async (t) => {
    const r = await startupStop(signal);
    t.deepEqual({ code: r.code, signal: r.signal }, { code: 0, signal: null });
    t.deepEqual(r.lines, ['survived', `${signal} received during start-up: stopping now`, 'stopping: no new connections, draining open streams', 'stopped']);
  });
}

test('a second stop signal during start-up exits 1 at once (a start-up that hangs stays stoppable)', async (t) => {
  const r = await startupStop('SIGINT,SIGTERM');
  t.deepEqual({ code: r.code, signal: r.signal }, { code: 1, signal: null });
  t.deepEqual(r.lines, [], 'it never got past start-up');
});

test('SIGHUP and SIGTERM during start-up: it stops, and does not reload first', async (t) => {
  const r = await startupStop('SIGHUP,SIGTERM');
  t.is(r.code, 0);
  t.deepEqual(r.lines, ['survived', 'SIGTERM received during start-up: stopping now', 'stopping: no new connections, draining open streams', 'stopped']);
});
