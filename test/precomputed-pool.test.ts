/**
 * PrecomputedPool: values are handed out once, refilled in later event-loop
 * turns up to the capacity, and made on demand when none is ready.
 */
import test from 'ava';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { PrecomputedPool } from '../src/crypto/precomputed-pool.js';

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await nextTurn();
}

test('an empty pool makes the value on demand, then refills up to its capacity only', async (t) => {
  let made = 0;
  const pool = new PrecomputedPool(() => ++made, 3);
  t.is(pool.size, 0);
  t.is(pool.take(), 1); // nothing ready: made on the spot
  t.is(pool.size, 0); // the refill waits for a later turn
  await turns(10);
  t.is(pool.size, 3);
  t.is(made, 4);
});

test('every value is handed out exactly once, also in a burst larger than the pool', async (t) => {
  let made = 0;
  const pool = new PrecomputedPool(() => ++made, 2);
  const seen = new Set<number>();
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 4; i++) {
      const v = pool.take();
      t.false(seen.has(v), `value ${v} handed out twice`);
      seen.add(v);
    }
    await turns(1);
  }
  t.is(seen.size, 20);
  await turns(10);
  t.is(made - seen.size, pool.size); // nothing made is lost or duplicated
  t.is(pool.size, 2);
});

test('with a batch maker: refilled by whole batches, one at a time, never above capacity', async (t) => {
  let made = 0;
  let batches = 0;
  let pending = 0;
  let maxPending = 0;
  const makeBatch = async (count: number): Promise<number[]> => {
    batches++;
    maxPending = Math.max(maxPending, ++pending);
    await nextTurn();
    pending--;
    return Array.from({ length: count }, () => ++made);
  };
  const pool = new PrecomputedPool(() => ++made, 4, makeBatch);
  const seen = new Set<number>();
  for (let i = 0; i < 3; i++) seen.add(pool.take()); // all on demand; one batch requested
  t.is(batches, 1);
  await turns(3);
  t.is(pool.size, 4);
  t.is(maxPending, 1);
  for (let i = 0; i < 10; i++) {
    const v = pool.take();
    t.false(seen.has(v), `value ${v} handed out twice`);
    seen.add(v);
  }
  await turns(3);
  t.true(pool.size <= 4);
  t.is(maxPending, 1);
});

test('a failing batch maker leaves a working pool (one value made in its place)', async (t) => {
  let made = 0;
  const pool = new PrecomputedPool(() => ++made, 4, () => Promise.reject(new Error('no thread pool')));
  t.is(pool.take(), 1);
  await turns(2);
  t.is(pool.size, 1);
  t.is(pool.take(), 2);
});
