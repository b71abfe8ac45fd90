/**
 * A man in the middle who edits records after the handshake: flipped bits
 * (length, type, ciphertext, tag), reordered, duplicated and dropped records,
 * a direction cut without its END. Each case runs with the native record
 * pump and with the JS pipes. The stream is torn down with a reason, no
 * altered byte is delivered, the plain peers see a reset (never a clean
 * EOF), and the jumpers serve the next stream.
 */
import test, { type ExecutionContext } from 'ava';
import { createClient, type ConnSummary } from '../src/index.js';
import { captureLogger } from './helpers/capture-logger.js';
import { usePumpMode, type PumpMode } from './helpers/pump-mode.js';
import { assertStillServes, startGuardedServer } from './helpers/guarded-server.js';
import { randomBytes } from './helpers/providers.js';
import { exchangeStrict } from './helpers/tcp-ending.js';
import {
  cutAtEnd,
  cutBefore,
  dropRecord,
  duplicateRecord,
  flipBit,
  startRecordRelay,
  swapRecords,
  type Direction,
  type RecordRule,
} from './helpers/record-relay.js';

const BODY_BYTES = 256 * 1024;

interface Case {
  name: string;
  direction: Direction;
  rule: RecordRule;
  /** Reason logged by the jumper that receives the altered records. */
  reason: string | RegExp;
  /** Index of the first altered record: bytes of earlier records may be delivered. */
  firstAltered: number;
  /** Every data record arrived intact (only the END is missing). */
  allDataIntact?: boolean;
}

// Upstream record 0 is the client's empty liveness record; data starts at 1.
const cases: Case[] = [
  { name: 'a flipped bit in the length field', direction: 'up', rule: flipBit(2, 1, 0), reason: 'tampered', firstAltered: 2 },
  { name: 'a flipped bit in the (encrypted) type byte', direction: 'up', rule: flipBit(2, 2, 0), reason: 'tampered', firstAltered: 2 },
  { name: 'a flipped bit in the ciphertext', direction: 'up', rule: flipBit(2, 1000, 7), reason: 'tampered', firstAltered: 2 },
  { name: 'a flipped bit in the tag', direction: 'up', rule: flipBit(2, -1, 3), reason: 'tampered', firstAltered: 2 },
  { name: 'a flipped bit in the liveness record', direction: 'up', rule: flipBit(0, 5, 1), reason: 'tampered', firstAltered: 0 },
  { name: 'two records swapped', direction: 'up', rule: swapRecords(1), reason: 'tampered', firstAltered: 1 },
  { name: 'a duplicated record', direction: 'up', rule: duplicateRecord(1), reason: 'tampered', firstAltered: 2 },
  { name: 'a dropped record', direction: 'up', rule: dropRecord(1), reason: 'tampered', firstAltered: 1 },
  { name: 'a cut before the END (FIN instead)', direction: 'up', rule: cutAtEnd(), reason: 'truncated', firstAltered: Infinity, allDataIntact: true },
  { name: 'a cut mid-stream', direction: 'up', rule: cutBefore(3), reason: 'truncated', firstAltered: 3 },
  { name: 'a flipped bit in a server record', direction: 'down', rule: flipBit(0, 500, 2), reason: 'tampered', firstAltered: 0 },
  { name: 'a dropped server record', direction: 'down', rule: dropRecord(0), reason: 'tampered', firstAltered: 0 },
  { name: 'the server END cut', direction: 'down', rule: cutAtEnd(), reason: 'truncated', firstAltered: Infinity, allDataIntact: true },
];

function sum(sizes: number[], from: number, to: number): number {
  return sizes.slice(from, to).reduce((a, b) => a + b, 0);
}

async function run(t: ExecutionContext, mode: PumpMode, c: Case): Promise<void> {
  if (!usePumpMode(t, mode)) {
    t.log('native record pump not built: skipped (npm install builds it)');
    t.pass();
    return;
  }
  const g = await startGuardedServer(t);
  const relay = await startRecordRelay(t, g.port, { [c.direction]: c.rule });
  const clientLog = captureLogger();
  const client = createClient({ listen: '127.0.0.1:0', connect: relay.address, key: g.key, logger: clientLog });
  await client.listen();
  t.teardown(() => client.close({ drainTimeoutMs: 0 }));
  const clientClosed = new Promise<ConnSummary>((resolve) => client.once('close', resolve));

  const body = randomBytes(BODY_BYTES);
  const result = await exchangeStrict(client.port()!, body);
  const [server] = await g.closedOn(1);
  const clientSummary = await clientClosed;
  const detector = c.direction === 'up' ? server! : clientSummary;
  if (typeof c.reason === 'string') t.is(detector.reason, c.reason);
  else t.regex(detector.reason, c.reason);

  // One log line per failed connection on each side, carrying its reason. (With the
  // server's records altered, the server may well have finished cleanly first.)
  for (const [summary, log] of [[server!, g.logger], [clientSummary, clientLog]] as const) {
    const lines = log.failures();
    t.is(lines.length, summary.reason === 'done' ? 0 : 1);
    if (lines.length === 1) t.is(lines[0]!.reason, summary.reason);
  }

  // The plain peer behind the altered direction sees a reset, never a clean EOF.
  t.is(result.ending, 'reset', 'the consumer sees a reset');
  if (c.direction === 'up') {
    // Records opened together with the liveness proof may fail before the provider is dialled.
    if (c.firstAltered === 0) t.is(g.provider.connections, 0);
    else if (c.firstAltered === 1) t.true(g.provider.connections <= 1);
    else t.is(g.provider.connections, 1);
    if (g.provider.connections === 1) t.is(await g.provider.ended(0), 'reset', 'the provider sees a reset');
  }

  // Whatever was delivered is an exact prefix, from records before the first altered one.
  const sizes = relay.connections[0]!.bodySizes[c.direction];
  const upSkip = c.direction === 'up' ? 1 : 0; // the liveness record carries no bytes
  const limit = c.allDataIntact ? BODY_BYTES : sum(sizes, upSkip, c.firstAltered);
  const delivered = c.direction === 'up' ? Buffer.concat(g.provider.received[0] ?? []) : result.received;
  t.true(delivered.length <= limit, `delivered ${delivered.length} <= ${limit}`);
  t.deepEqual(delivered, body.subarray(0, delivered.length));

  await assertStillServes(t, g);
}

for (const mode of ['native', 'js'] as const) {
  for (const c of cases) {
    test.serial(`[${mode}] ${c.name}: ${typeof c.reason === 'string' ? c.reason : 'rejected'}, nothing altered delivered, peers reset`, (t) => run(t, mode, c));
  }
}
