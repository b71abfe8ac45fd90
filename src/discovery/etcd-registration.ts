/**
 * Self-registration: a key PREFIX/ADDRESS bound to a lease that is kept
 * alive while the process runs. A crashed process stops renewing it and
 * etcd deletes the key when the TTL runs out; a stopping one revokes it.
 * A lost lease (etcd away for longer than the TTL) is re-granted and the
 * key written again, with back-off, as soon as etcd answers.
 */
import type { Lease } from 'etcd3';
import { parseAddress } from '../addr/address.js';
import { checkWeight } from '../balance/backend.js';
import { silentLogger, type Logger } from '../log/logger.js';
import type { EtcdAccess } from './etcd-access.js';
import { EtcdConnection } from './etcd-client.js';
import type { EtcdLocation } from './etcd-url.js';
import { encodeRecord, RECORD_VERSION, type RegistrationRecord } from './registration-record.js';

export interface EtcdRegistrationOptions {
  /** etcd://HOST:PORT[,HOST:PORT]/PREFIX, or etcds:// for TLS */
  url: string;
  /** TLS files and etcd user (see EtcdAccess). */
  access?: EtcdAccess;
  /** What balancers connect to, as they can reach it. */
  advertise: string;
  weight?: number;
  /** Lease TTL; default 10 s. */
  ttlSeconds?: number;
  role?: string;
  keyFingerprint?: string;
  logger?: Logger;
}

export const DEFAULT_LEASE_TTL_SECONDS = 10;
/** How long stop() waits for etcd before giving up (the lease then expires on its own). */
const REVOKE_TIMEOUT_MS = 2_000;

export class EtcdRegistration {
  readonly location: EtcdLocation;
  /** The etcd key this process owns. */
  readonly key: string;
  readonly ttlSeconds: number;
  readonly #record: RegistrationRecord;
  readonly #etcd: EtcdConnection;
  readonly #logger: Logger;
  #lease: Lease | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  #registered = false;
  #firstAttempt: Promise<void> | undefined;

  constructor(options: EtcdRegistrationOptions) {
    // A record balancers would ignore (decodeRecord) is refused here rather than registered.
    parseAddress(options.advertise);
    checkWeight(options.weight ?? 1, 'with --register');
    this.#etcd = new EtcdConnection(options.url, options.access);
    this.location = this.#etcd.location;
    this.key = `${this.location.prefix}${options.advertise}`;
    this.ttlSeconds = options.ttlSeconds ?? DEFAULT_LEASE_TTL_SECONDS;
    this.#record = { address: options.advertise, weight: options.weight ?? 1, version: RECORD_VERSION };
    if (options.role) this.#record.role = options.role;
    if (options.keyFingerprint) this.#record.keyFingerprint = options.keyFingerprint;
    this.#logger = options.logger ?? silentLogger;
  }

  get registered(): boolean {
    return this.#registered;
  }

  /** Register; resolves after the first attempt (retries continue in the background on failure). */
  start(): Promise<void> {
    this.#firstAttempt ??= this.#register();
    return this.#firstAttempt;
  }

  /** Remove the key now (revoke the lease). Never throws: on failure the lease expires by itself. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    const lease = this.#lease;
    this.#lease = undefined;
    if (lease) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), REVOKE_TIMEOUT_MS);
      });
      const outcome = await Promise.race([lease.revoke().then(() => 'revoked' as const, (err: Error) => err), timeout]);
      clearTimeout(timer);
      if (outcome === 'revoked') this.#logger.info({ etcd: this.location.url, key: this.key }, 'deregistered from etcd');
      else {
        const why = outcome === 'timeout' ? 'etcd did not answer' : outcome.message;
        this.#logger.warn({ etcd: this.location.url, key: this.key, err: why }, `could not deregister; the key expires with its lease (${this.ttlSeconds} s)`);
        lease.release();
      }
    }
    this.#registered = false;
    this.#etcd.close();
  }

  async #register(): Promise<void> {
    if (this.#stopped) return;
    const lease = this.#etcd.client.lease(this.ttlSeconds, { autoKeepAlive: true });
    this.#lease = lease;
    lease.on('lost', (err) => {
      if (this.#lease !== lease || this.#stopped) return;
      // A lease etcd never granted was not lost: this is the first attempt failing.
      const what = this.#registered ? 'etcd lease lost; registering again' : 'cannot register in etcd yet; retrying';
      this.#registered = false;
      this.#lease = undefined;
      this.#logger.warn({ etcd: this.location.url, key: this.key, err: err.message }, what);
      this.#retryLater(err);
    });
    try {
      await lease.put(this.key).value(encodeRecord(this.#record));
      if (this.#stopped || this.#lease !== lease) return;
      this.#registered = true;
      this.#etcd.succeeded();
      this.#logger.info({ etcd: this.location.url, key: this.key, ttlSeconds: this.ttlSeconds, weight: this.#record.weight }, 'registered in etcd');
    } catch (err) {
      if (this.#lease !== lease) return; // 'lost' already scheduled the retry
      this.#lease = undefined;
      lease.release();
      this.#logger.warn({ etcd: this.location.url, key: this.key, err: (err as Error).message }, 'cannot register in etcd yet; retrying');
      this.#retryLater(err);
    }
  }

  #retryLater(err: unknown): void {
    if (this.#stopped) return;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    // With a user, the next attempt logs in afresh (etcd-client.ts).
    this.#retryTimer = setTimeout(() => void this.#register(), this.#etcd.failed(err));
    this.#retryTimer.unref();
  }
}
