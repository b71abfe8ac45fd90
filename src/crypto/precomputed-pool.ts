/**
 * Single-use values made ahead of time, such as ephemeral key pairs.
 *
 * A connection that needs one takes it ready-made instead of computing it
 * on its critical path; the pool is refilled one value per event-loop turn
 * (setImmediate), i.e. while the taker waits for its peer. Each value is
 * handed out once and never reused, so forward secrecy is unchanged: a
 * pooled ephemeral key is as fresh as one made on demand, it was just made
 * a few milliseconds earlier. An empty pool (a burst) falls back to making
 * the value on demand.
 */
export class PrecomputedPool<T> {
  readonly #make: () => T;
  readonly #capacity: number;
  readonly #ready: T[] = [];
  #refillScheduled = false;

  /**
   * @param make creates one value; it must not throw.
   * @param capacity values kept ready at most.
   */
  constructor(make: () => T, capacity: number) {
    this.#make = make;
    this.#capacity = capacity;
  }

  /** Values ready now. */
  get size(): number {
    return this.#ready.length;
  }

  /** A value never handed out before: a ready one, or a new one when none is ready. */
  take(): T {
    const value = this.#ready.pop() ?? this.#make();
    this.#scheduleRefill();
    return value;
  }

  #scheduleRefill(): void {
    if (this.#refillScheduled) return;
    this.#refillScheduled = true;
    // unref: a pending refill must not keep the process alive.
    setImmediate(this.#refill).unref();
  }

  /** One value per turn, so a burst of connections never waits for a long refill. */
  readonly #refill = (): void => {
    this.#refillScheduled = false;
    if (this.#ready.length >= this.#capacity) return;
    this.#ready.push(this.#make());
    if (this.#ready.length < this.#capacity) this.#scheduleRefill();
  };
}
