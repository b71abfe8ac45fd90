/**
 * Optional active health checks: every interval, a plain TCP (or Unix)
 * connect to each configured backend, closed at once. A failed check takes
 * the backend out of rotation until a check succeeds again.
 */
import type { Backend } from './backend.js';
import type { BackendPool } from './pool.js';

export class HealthChecker {
  readonly #pool: BackendPool;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  /** Backends whose check is under way: a slow one (a dark host times out) skips only its own next round. */
  readonly #checking = new Set<Backend>();

  constructor(pool: BackendPool, intervalMs: number) {
    this.#pool = pool;
    this.#intervalMs = intervalMs;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.checkAll(), this.#intervalMs);
    this.#timer.unref();
    void this.checkAll();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One round over every configured backend whose last check has finished. */
  async checkAll(): Promise<void> {
    await Promise.all(this.#pool.configured().map((backend) => this.#check(backend)));
  }

  async #check(backend: Backend): Promise<void> {
    if (this.#checking.has(backend)) return;
    this.#checking.add(backend);
    try {
      const socket = await backend.dial();
      // The backend may answer our FIN with a reset (a server jumper ends
      // a stream that sent nothing that way): that must not be an
      // unhandled 'error'. FIN, then close once it is out.
      socket.on('error', () => {});
      socket.destroySoon();
      this.#pool.setHealth(backend, true);
    } catch (err) {
      this.#pool.setHealth(backend, false, err);
    } finally {
      this.#checking.delete(backend);
    }
  }
}
