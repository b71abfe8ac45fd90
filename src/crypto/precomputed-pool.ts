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
  readonly #makeBatch: ((count: number) => Promise<T[]>) | undefined;
  readonly #capacity: number;
  readonly #ready: T[] = [];
  #refillScheduled = false;
  #batchPending = false;

  /**
   * @param make creates one value; it must not throw.
   * @param capacity values kept ready at most.
   * @param makeBatch creates `count` values elsewhere (optional); when it
   *   rejects, the pool refills with `make` instead.
   */
  constructor(make: () => T, capacity: number, makeBatch?: (count: number) => Promise<T[]>) {
    this.#make = make;
    this.#capacity = capacity;
    this.#makeBatch = makeBatch;
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
    if (this.#makeBatch !== undefined) {
      this.#requestBatch(this.#makeBatch);
      return;
    }
    if (this.#refillScheduled) return;
    this.#refillScheduled = true;
    // unref: a pending refill must not keep the process alive.
    setImmediate(this.#refill).unref();
  }

  #requestBatch(makeBatch: (count: number) => Promise<T[]>): void {
    if (this.#batchPending || this.#ready.length > this.#capacity / 2) return;
    this.#batchPending = true;
    makeBatch(this.#capacity - this.#ready.length).then(
      (values) => {
        this.#batchPending = false;
        for (const value of values) if (this.#ready.length < this.#capacity) this.#ready.push(value);
      },
      () => {
        // The batch maker failed: make one value here so the pool keeps
        // going; the next take() asks for a batch again.
        this.#batchPending = false;
        if (this.#ready.length < this.#capacity) this.#ready.push(this.#make());
      },
    );
  }

  /** One value per turn, so a burst of connections never waits for a long refill. */
  readonly #refill = (): void => {
    this.#refillScheduled = false;
    if (this.#ready.length >= this.#capacity) return;
    this.#ready.push(this.#make());
    if (this.#ready.length < this.#capacity) this.#scheduleRefill();
  };
}
