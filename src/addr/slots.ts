/**
 * A counting semaphore with a FIFO wait queue: the second admission stage of
 * a server jumper (an authenticated stream waits for a stream slot, in
 * arrival order, without reading anything), and a client's handshakes in
 * flight.
 */
export class Slots {
  readonly #limit: number;
  #inUse = 0;
  readonly #queue: (() => void)[] = [];

  constructor(limit: number) {
    this.#limit = limit;
  }

  get inUse(): number {
    return this.#inUse;
  }

  get waiting(): number {
    return this.#queue.length;
  }

  /** Resolves once a slot is held; call release() exactly once afterwards. */
  take(): Promise<void> {
    if (this.#inUse < this.#limit) {
      this.#inUse++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#queue.push(resolve));
  }

  release(): void {
    const next = this.#queue.shift();
    if (next) next(); // the slot passes straight to the next waiter
    else this.#inUse--;
  }
}

/** Run `work` holding a slot of `slots` (at once without one), and release it however `work` ends. */
export async function withSlot<T>(slots: Slots | undefined, work: () => Promise<T>): Promise<T> {
  if (!slots) return work();
  await slots.take();
  try {
    return await work();
  } finally {
    slots.release();
  }
}
