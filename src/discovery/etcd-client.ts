/**
 * One etcd3 client configured for a proxy's needs: fail fast while etcd is
 * down (the data path must never wait on etcd) and reconnect watches with a
 * short, capped back-off so membership changes are seen soon after etcd
 * returns.
 */
import { createRequire } from 'node:module';
import type { Etcd3 } from 'etcd3';
import type { IBackoff } from 'cockatiel';
import { Backoff } from './backoff.js';
import { loadEtcdAccess, type EtcdAccess, type EtcdClientAccess } from './etcd-access.js';
import { loginOnHostChannels } from './etcd-login.js';
import { parseEtcdUrl, type EtcdLocation } from './etcd-url.js';

// Loaded on first use: etcd3 brings gRPC and protobuf.js (about 0.3 s of
// start-up and several MiB of heap), which a jumper without --discover or
// --register never needs. Both packages are CommonJS, so this stays synchronous.
const require = createRequire(import.meta.url);
const loadEtcd3 = (): typeof import('etcd3') => require('etcd3') as typeof import('etcd3');
const loadCockatiel = (): typeof import('cockatiel') => require('cockatiel') as typeof import('cockatiel');

/** Longest wait between watch reconnects while etcd is unreachable. */
export const ETCD_MAX_BACKOFF_MS = 2_000;

/**
 * Deadline of one request (a read, a lease grant, a put). dialTimeout only
 * covers connecting: an etcd that accepts but never answers (stopped, hung)
 * would otherwise hold a jumper's start-up for ever. Watch and keep-alive
 * streams have none; they live as long as the connection.
 */
export const ETCD_CALL_TIMEOUT_MS = 5_000;

/** `access` comes from loadEtcdAccess (TLS credentials for etcds://, a user and password). */
export function createEtcdClient(location: EtcdLocation, access: EtcdClientAccess = {}): Etcd3 {
  const { Etcd3, isRecoverableError, castGrpcError } = loadEtcd3();
  const { circuitBreaker, ConsecutiveBreaker, ExponentialBackoff, handleWhen, retry } = loadCockatiel();
  const client = new Etcd3({
    hosts: location.hosts,
    ...access,
    dialTimeout: 2_000,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + ETCD_CALL_TIMEOUT_MS }),
    faultHandling: {
      host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 1_000, breaker: new ConsecutiveBreaker(3) }),
      global: retry(handleWhen(isRecoverableError), { maxAttempts: 2 }),
      // etcd3 calls .next() on this factory itself; its typings name the state type instead.
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: ETCD_MAX_BACKOFF_MS }) as unknown as IBackoff<unknown>,
    },
  });
  if (access.auth !== undefined) loginOnHostChannels(client, castGrpcError);
  return client;
}

/** Longest wait between attempts while etcd refuses the user or its permissions (each attempt is a fresh login). */
export const ETCD_AUTH_MAX_BACKOFF_MS = 30_000;

/** etcd refused the user (wrong password) or the user's role (permission denied): retrying at once will not help. */
function isAuthRefusal(err: unknown): boolean {
  const { EtcdAuthenticationFailedError, EtcdPermissionDeniedError } = loadEtcd3();
  return err instanceof EtcdAuthenticationFailedError || err instanceof EtcdPermissionDeniedError;
}

/**
 * The etcd3 client of a discovery or registration, and its retry policy.
 * With etcd users the client is replaced after a failure: etcd3 logs in
 * again only on "invalid auth token", and a token etcd rejects for another
 * reason (a JWT issued before the auth store changed: "revision of auth
 * store is old") would be used, and refused, for ever. A new client logs in
 * afresh.
 */
export class EtcdConnection {
  readonly location: EtcdLocation;
  #client: Etcd3;
  readonly #access: EtcdClientAccess;
  readonly #backoff = new Backoff(200, ETCD_MAX_BACKOFF_MS);
  /** Slower while etcd refuses the user: every attempt is a login. */
  readonly #authBackoff = new Backoff(ETCD_MAX_BACKOFF_MS, ETCD_AUTH_MAX_BACKOFF_MS);

  /** @throws InvalidArgumentError for a bad URL or bad credentials (see loadEtcdAccess). */
  constructor(url: string, access?: EtcdAccess) {
    this.location = parseEtcdUrl(url);
    this.#access = loadEtcdAccess(access, this.location);
    this.#client = createEtcdClient(this.location, this.#access);
  }

  get client(): Etcd3 {
    return this.#client;
  }

  /** Does etcd know this process as a user (etcd-user)? */
  get hasUser(): boolean {
    return this.#access.auth !== undefined;
  }

  /** A call or watch failed with `err`: how long to wait before the next attempt, which (with a user) gets a new client. */
  failed(err: unknown): number {
    if (this.hasUser) {
      this.#client.close();
      this.#client = createEtcdClient(this.location, this.#access);
    }
    return Math.max(this.#backoff.next(), isAuthRefusal(err) ? this.#authBackoff.next() : 0);
  }

  /** etcd answered: the next failure starts the back-off over. */
  succeeded(): void {
    this.#backoff.reset();
    this.#authBackoff.reset();
  }

  close(): void {
    this.#client.close();
  }
}
