/**
 * The daemon signal contract (src/cli/signals.ts) at the edge the CLI tests
 * cannot hit on purpose: a SIGHUP caught during start-up but not yet
 * dispatched when handleSignals takes over (test/helpers/hangup-race.ts).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const RACE = fileURLToPath(new URL('./helpers/hangup-race.ts', import.meta.url));

test('a SIGHUP still undispatched when the handlers take over is replayed as a reload, not lost', async (t) => {
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, ['--import', 'tsx', RACE], { timeout: 20_000 }, (err, out) => (err ? reject(err) : resolve(out))),
  );
  t.is(stdout.trim(), 'reloaded');
});
