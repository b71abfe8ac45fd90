/** Capped exponential back-off for reconnect loops (etcd down, lease lost). */
export class Backoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  #nextMs: number;

  constructor(initialMs: number, maxMs: number) {
    this.#initialMs = initialMs;
    this.#maxMs = maxMs;
    this.#nextMs = initialMs;
  }

  /** The delay before the next attempt; each call doubles the one after. */
  next(): number {
    const ms = this.#nextMs;
    this.#nextMs = Math.min(this.#nextMs * 2, this.#maxMs);
    return ms;
  }

  reset(): void {
    this.#nextMs = this.#initialMs;
  }
}
