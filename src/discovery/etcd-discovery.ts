/**
 * Backends from etcd: reads every key under the prefix, then watches it from
 * the next revision. The set it reports is always complete (never a delta),
 * so a consumer simply replaces its membership.
 *
 * While etcd is unreachable the last known set stays in force; the watch
 * reconnects with back-off and resumes from the last revision it saw, and a
 * watch that cannot resume (e.g. compacted) is replaced by a fresh read.
 */
import type { Watcher } from 'etcd3';
import { parseAddress, type Address } from '../addr/address.js';
import type { BackendSpec } from '../balance/backend.js';
import { reasonOf } from '../errors.js';
import { silentLogger, type Logger } from '../log/logger.js';
import type { EtcdAccess } from './etcd-access.js';
import { EtcdConnection } from './etcd-client.js';
import type { EtcdLocation } from './etcd-url.js';
import { decodeRecord } from './registration-record.js';

/** How long close() waits for etcd to confirm the watch's cancellation. */
const CANCEL_WAIT_MS = 1_000;

export interface EtcdDiscoveryOptions {
  /** etcd://HOST:PORT[,HOST:PORT]/PREFIX, or etcds:// for TLS */
  url: string;
  /** TLS files and etcd user (see EtcdAccess). */
  access?: EtcdAccess;
  /** Called with the whole current set after every change. */
  onUpdate(backends: BackendSpec[]): void;
  /**
   * Whether this balancer can dial an address at all (throws if not): a
   * registration it refuses is ignored like an unusable one. A balancer that
   * connects inside a network namespace takes IP literals only.
   */
  checkAddress?(address: Address): void;
  logger?: Logger;
}

export class EtcdDiscovery {
  readonly location: EtcdLocation;
  readonly #etcd: EtcdConnection;
  readonly #onUpdate: (backends: BackendSpec[]) => void;
  readonly #checkAddress: ((address: Address) => void) | undefined;
  readonly #logger: Logger;
  /** etcd key -> backend. */
  readonly #known = new Map<string, BackendSpec>();
  #watcher: Watcher | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;
  #unreachable = false;
  #synced = false;

  constructor(options: EtcdDiscoveryOptions) {
    this.#etcd = new EtcdConnection(options.url, options.access);
    this.location = this.#etcd.location;
    this.#onUpdate = options.onUpdate;
    this.#checkAddress = options.checkAddress;
    this.#logger = options.logger ?? silentLogger;
  }

  /** Has the set been read from etcd at least once? */
  get synced(): boolean {
    return this.#synced;
  }

  /**
   * Read the prefix and start watching. Resolves after the first read, or
   * after the first failure (the loop keeps trying in the background: a
   * balancer starts even while etcd is down).
   */
  async start(): Promise<void> {
    await this.#sync();
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    const watcher = this.#watcher;
    this.#watcher = undefined;
    if (watcher) {
      // An etcd that accepts but never answers would hold cancel() for ever.
      let timer: NodeJS.Timeout | undefined;
      const gaveUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, CANCEL_WAIT_MS)));
      await Promise.race([watcher.cancel().catch(() => undefined), gaveUp]);
      clearTimeout(timer);
    }
    this.#etcd.close();
  }

  async #sync(): Promise<void> {
    if (this.#closed) return;
    const { prefix } = this.location;
    try {
      const response = await this.#etcd.client.getAll().prefix(prefix).exec();
      if (this.#closed) return;
      this.#known.clear();
      for (const kv of response.kvs) this.#apply(kv.key.toString(), kv.value.toString());
      this.#synced = true;
      this.#publish();
      // The watcher is kept from the moment it exists, not once it connects:
      // close() must cancel a watch still waiting for etcd (etcd3 would retry
      // it for ever), and start() must not wait on a watch etcd leaves
      // unanswered. It resumes after the revision just read, so nothing put
      // in between is missed.
      this.#watch(
        this.#etcd.client
          .watch()
          .prefix(prefix)
          .startRevision((BigInt(response.header.revision) + 1n).toString())
          .watcher(),
      );
    } catch (err) {
      if (this.#closed) return;
      this.#unreachableNow(err);
      this.#retryLater(err);
    }
  }

  /** Read afresh later (with a new client when etcd has users). */
  #retryLater(err: unknown): void {
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => void this.#sync(), this.#etcd.failed(err));
    this.#retryTimer.unref();
  }

  /** Drop the watch and read afresh later. */
  #restart(watcher: Watcher, err: unknown): void {
    if (this.#watcher === watcher) this.#watcher = undefined;
    void watcher.cancel().catch(() => undefined);
    if (this.#closed) return;
    this.#retryLater(err);
  }

  #watch(watcher: Watcher): void {
    this.#watcher = watcher;
    watcher.on('put', (kv) => {
      this.#apply(kv.key.toString(), kv.value.toString());
      this.#publish();
    });
    watcher.on('delete', (kv) => {
      if (this.#known.delete(kv.key.toString())) this.#publish();
    });
    watcher.on('disconnected', (err) => {
      this.#unreachableNow(err);
      // etcd3 would resume the watch with the token it has, which etcd may
      // no longer take (it lapses while the stream is down): with a user,
      // read afresh with a new client instead.
      if (this.#etcd.hasUser && this.#watcher === watcher) this.#restart(watcher, err);
    });
    watcher.on('connected', () => this.#reachable());
    watcher.on('error', (err) => {
      // The watch cannot resume (e.g. its revision was compacted): read afresh.
      this.#logger.warn({ etcd: this.location.url, reason: reasonOf(err), err: err.message }, 'etcd watch failed; re-reading the prefix');
      this.#restart(watcher, err);
    });
  }

  #apply(key: string, value: string): void {
    const spec = this.#decode(value);
    if ('invalid' in spec) {
      this.#known.delete(key);
      this.#logger.warn({ etcd: this.location.url, key, problem: spec.invalid }, 'ignoring an unusable registration');
      return;
    }
    this.#known.set(key, spec);
  }

  #decode(value: string): BackendSpec | { invalid: string } {
    const spec = decodeRecord(value);
    if ('invalid' in spec || !this.#checkAddress) return spec;
    try {
      this.#checkAddress(parseAddress(spec.address));
    } catch (err) {
      return { invalid: err instanceof Error ? err.message : String(err) };
    }
    return spec;
  }

  #publish(): void {
    try {
      this.#onUpdate([...this.#known.values()]);
    } catch (err) {
      // decodeRecord checks what the pool checks; should the two ever differ, the set stays as it was.
      this.#logger.warn({ etcd: this.location.url, err: err instanceof Error ? err.message : String(err) }, 'ignoring a backend set the balancer refused');
    }
  }

  #unreachableNow(err: unknown): void {
    if (this.#unreachable || this.#closed) return;
    this.#unreachable = true;
    this.#logger.warn(
      { etcd: this.location.url, err: err instanceof Error ? err.message : String(err), backends: this.#known.size },
      'etcd unreachable: serving the last known backends, reconnecting',
    );
  }

  #reachable(): void {
    this.#etcd.succeeded();
    if (!this.#unreachable) return;
    this.#unreachable = false;
    this.#logger.info({ etcd: this.location.url, backends: this.#known.size }, 'etcd reachable again');
  }
}
