/**
 * The `jumper run` supervisor: many links in one process, from one file.
 *
 * On reload the new file is validated and every new or changed link is
 * built (key files read, addresses parsed) before anything running is
 * touched; any failure refuses the whole reload and the old configuration
 * keeps running. Then, by link name: removed links stop accepting and drain,
 * changed links drain their old instance while a new one takes over the
 * address, added links start, and unchanged links are left alone (they only
 * pick up new key file contents, for key rotation).
 */
import { isDeepStrictEqual } from 'node:util';
import { parseAddress } from '../addr/address.js';
import { linkStatus, processUser } from '../admin/status.js';
import type { JumperMetrics } from '../admin/metrics.js';
import type { ProcessStatus } from '../admin/server.js';
import { ConfigError, InvalidArgumentError, JumperError } from '../errors.js';
import type { TunnelKey } from '../keys/key-file.js';
import { silentLogger, type Logger } from '../log/logger.js';
import { DEFAULTS, isBusyPollSetting, MAX_BUSY_POLL_US } from '../options.js';
import { checkDroppable, unprivilegedPortStart } from '../privilege/drop.js';
import type { BackendInput } from '../balance/pool.js';
import type { Jumper, ListenOptions } from '../roles/jumper.js';
import { buildLink, etcdFilesDigest, readLinkKeys } from './build-link.js';
import { applyBusyPoll } from '../native/busy-poll.js';
import { loadConfig } from './load.js';
import type { LinkSpec, RunSpec } from './schema.js';

interface Link {
  spec: LinkSpec;
  jumper: Jumper;
  state: 'running' | 'failed';
  error?: string;
  detach?: () => void;
}

interface Draining {
  name: string;
  jumper: Jumper;
  spec: LinkSpec;
}

export interface SupervisorOptions {
  /** The configuration file; re-read on every reload. */
  file: string;
  logger?: Logger;
  /** Count every link's traffic here (the admin endpoint's registry). */
  metrics?: JumperMetrics;
  /** Privileges will be dropped after start (--user), whatever the file says. */
  willDropPrivileges?: boolean;
  /**
   * Busy-poll budget in microseconds (--busy-poll): wins over the file's
   * `busy-poll`. Either is applied after start and after each reload, for
   * the whole process (setBusyPoll: the reactor threads are shared).
   */
  busyPollUs?: number;
}

/** What a reload did, by link name. */
export interface ReloadResult {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
}

function errorText(err: unknown): string {
  return err instanceof JumperError ? `${err.message} [${err.code}]` : err instanceof Error ? err.message : String(err);
}

export class Supervisor {
  /** etcdFilesDigest of each built jumper's spec, taken just before the build read the files: a change restarts the link on reload. */
  readonly #etcdFilesAtBuild = new WeakMap<Jumper, string>();
  readonly #options: SupervisorOptions;
  readonly #logger: Logger;
  readonly #links = new Map<string, Link>();
  readonly #draining = new Set<Draining>();
  readonly #started = Date.now();
  #spec: RunSpec = { links: [] };
  #loadedAt = new Date();
  #reloads = 0;
  #lastReloadError: string | undefined;
  #reloading: Promise<ReloadResult | undefined> | undefined;
  /** reload() was called while a reload ran: read the file once more after it. */
  #reloadAgain = false;
  #stopped = false;
  /** Set once root was given up: later links must not need it. */
  privilegesDropped = false;

  /** @throws InvalidArgumentError for a busyPollUs outside 0..MAX_BUSY_POLL_US */
  constructor(options: SupervisorOptions) {
    if (options.busyPollUs !== undefined && !isBusyPollSetting(options.busyPollUs)) {
      throw new InvalidArgumentError(`busyPollUs ${String(options.busyPollUs)}: expected whole microseconds from 0 to ${MAX_BUSY_POLL_US}`);
    }
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
  }

  /** The configuration in force. */
  get spec(): RunSpec {
    return this.#spec;
  }

  /** Running jumpers by link name. */
  jumper(name: string): Jumper | undefined {
    return this.#links.get(name)?.jumper;
  }

  /**
   * Load the file and start every link. A link that cannot listen fails the
   * start (the ones already listening are closed again).
   * @throws ConfigError (JUMPER_ERR_CONFIG) for an invalid file; the link's error (e.g. ListenError) otherwise.
   */
  async start(options: ListenOptions = {}): Promise<RunSpec> {
    const spec = await loadConfig(this.#options.file);
    if (spec.user !== undefined || this.#options.willDropPrivileges) checkLinksDroppable(spec.links);
    const built = await this.#buildAll(spec.links);
    try {
      for (const [spec, jumper] of built) {
        await jumper.listen(options);
        this.#install(spec, jumper);
        this.#logger.info({ link: spec.name, role: spec.role, listen: jumper.address(), connect: jumper.connectDescription, keys: keyFingerprints(jumper) }, 'link started');
      }
    } catch (err) {
      await Promise.all([...this.#links.values()].map((l) => l.jumper.close({ drainTimeoutMs: 0 })));
      this.#links.clear();
      throw err;
    }
    this.#spec = spec;
    this.#loadedAt = new Date();
    this.#applyBusyPoll();
    return spec;
  }

  #applyBusyPoll(): void {
    applyBusyPoll(this.#options.busyPollUs ?? this.#spec.busyPollUs ?? 0, this.#logger);
  }

  /**
   * Re-read the file and apply the difference. Never throws: an invalid file
   * or a link that cannot be built is logged and refused, and everything
   * keeps running as before. A call while a reload runs (it may have read
   * the file already) makes that reload read the file once more when it is
   * done; all such calls share the outcome of the last pass.
   * @returns what changed, or undefined when the reload was refused.
   */
  reload(): Promise<ReloadResult | undefined> {
    if (this.#reloading) {
      this.#reloadAgain = true;
      return this.#reloading;
    }
    this.#reloading = (async () => {
      let result: ReloadResult | undefined;
      do {
        this.#reloadAgain = false;
        result = await this.#reload();
      } while (this.#reloadAgain && !this.#stopped);
      return result;
    })().finally(() => (this.#reloading = undefined));
    return this.#reloading;
  }

  async #reload(): Promise<ReloadResult | undefined> {
    if (this.#stopped) return undefined;
    let next: RunSpec;
    const prepared = new Map<string, Jumper>();
    const freshKeys = new Map<string, TunnelKey[]>();
    let diff: ReloadResult;
    try {
      next = await loadConfig(this.#options.file);
      diff = this.#diff(next);
      const startNew = [...diff.added, ...diff.changed].map((n) => next.links.find((l) => l.name === n)!);
      if (this.privilegesDropped) for (const l of startNew) this.#checkUnprivileged(l);
      for (const [spec, jumper] of await this.#buildAll(startNew)) prepared.set(spec.name, jumper);
      // Unchanged links re-read their key files now, so a bad key refuses the reload too.
      for (const name of diff.unchanged) freshKeys.set(name, await readLinkKeys(this.#links.get(name)!.spec));
    } catch (err) {
      this.#lastReloadError = errorText(err);
      this.#logger.error({ err: this.#lastReloadError, code: (err as { code?: string }).code, file: this.#options.file }, 'reload refused: keeping the running configuration');
      return undefined;
    }
    for (const key of ['admin', 'user', 'group'] as const) {
      if (next[key] !== this.#spec[key]) this.#logger.warn({ key, running: this.#spec[key], file: next[key] }, `reload: "${key}" changes only on restart`);
    }
    const drainFor = (s: LinkSpec) => (s['drain-timeout'] as number | undefined) ?? next.drainTimeoutMs ?? DEFAULTS.drainTimeoutMs;
    // A changed link that discovers from the same place starts with the backends its old
    // instance knew: while etcd is slow or down, the last known set stays in force (and
    // streams do not meet an empty pool while the new instance reads the prefix).
    for (const name of diff.changed) this.#seedBackends(this.#links.get(name)!, next.links.find((l) => l.name === name)!, prepared.get(name)!);
    // Stop first, so an added or changed link may take over a freed address.
    for (const name of [...diff.removed, ...diff.changed]) this.#retire(name, drainFor(this.#links.get(name)!.spec));
    // One tick: the retired listeners' sockets are closed synchronously, let their close callbacks run.
    await new Promise((resolve) => setImmediate(resolve));
    // Together: each listen() waits for etcd (discovery, registration) after binding, and a
    // link must not stay down while another waits on an etcd that does not answer.
    await Promise.all(
      [...diff.changed, ...diff.added].map(async (name) => {
        const spec = next.links.find((l) => l.name === name)!;
        const jumper = prepared.get(name)!;
        try {
          await jumper.listen();
          this.#install(spec, jumper);
          this.#logger.info({ link: name, role: spec.role, listen: jumper.address(), keys: keyFingerprints(jumper), change: diff.added.includes(name) ? 'added' : 'changed' }, 'link started');
        } catch (err) {
          this.#install(spec, jumper, errorText(err));
          this.#logger.error({ link: name, err: errorText(err) }, 'link failed to start');
        }
      }),
    );
    for (const [name, keys] of freshKeys) {
      const link = this.#links.get(name)!;
      link.spec = next.links.find((l) => l.name === name)!;
      if (keys.length === 0) continue;
      const before = keyFingerprints(link.jumper);
      const target = link.jumper as unknown as { setKey?: (k: TunnelKey | TunnelKey[]) => void };
      target.setKey?.(link.spec.role === 'client' ? keys[0]! : keys);
      const after = keyFingerprints(link.jumper);
      // The rotation runbook follows fingerprints in the log: a link that only re-read its files says so.
      if (String(before) !== String(after)) this.#logger.info({ link: name, keys: after, previous: before }, 'link keys changed: new streams use them, open streams keep theirs');
    }
    this.#spec = next;
    this.#loadedAt = new Date();
    this.#reloads++;
    this.#lastReloadError = undefined;
    this.#logger.info({ ...diff }, 'configuration reloaded');
    this.#applyBusyPoll();
    return diff;
  }

  #diff(next: RunSpec): ReloadResult {
    const names = new Set(next.links.map((l) => l.name));
    const result: ReloadResult = { added: [], removed: [], changed: [], unchanged: [] };
    for (const name of this.#links.keys()) if (!names.has(name)) result.removed.push(name);
    for (const spec of next.links) {
      const old = this.#links.get(spec.name);
      if (!old) result.added.push(spec.name);
      // A failed link is retried on every reload.
      else if (old.state === 'failed' || !isDeepStrictEqual(old.spec, spec) || this.#etcdFilesChanged(old)) result.changed.push(spec.name);
      else result.unchanged.push(spec.name);
    }
    return result;
  }

  /** After the privilege drop, refuse what would need root again. */
  #checkUnprivileged(spec: LinkSpec): void {
    const where = `links "${spec.name}"`;
    const refuse = (what: string) => {
      throw new ConfigError(`${where}: ${what} needs root, and privileges were dropped (user: ${this.#spec.user}); restart to apply it`);
    };
    if (spec['listen-netns'] !== undefined) refuse('listen-netns');
    if (spec['listen-owner'] !== undefined) refuse('listen-owner');
    checkDroppable(where, { connectNetns: spec['connect-netns'] as string | undefined });
    if (!spec.listen.startsWith('/') && !spec.listen.startsWith('systemd') && !spec.listen.startsWith('fd:')) {
      const a = parseAddress(spec.listen);
      if (a.kind === 'tcp' && a.port !== 0 && a.port < unprivilegedPortStart()) refuse(`listening on port ${a.port}`);
    }
  }

  async #buildAll(specs: LinkSpec[]): Promise<[LinkSpec, Jumper][]> {
    const out: [LinkSpec, Jumper][] = [];
    for (const spec of specs) {
      try {
        // Before the build reads them: a change after this point is seen by the next reload.
        const etcdFiles = etcdFilesDigest(spec);
        const jumper = await buildLink(spec, (this.#logger.child?.({ link: spec.name }) ?? this.#logger) as Logger);
        if (etcdFiles !== undefined) this.#etcdFilesAtBuild.set(jumper, etcdFiles);
        out.push([spec, jumper]);
      } catch (err) {
        throw new ConfigError(`links "${spec.name}": ${errorText(err)}`, { cause: err });
      }
    }
    return out;
  }

  /**
   * Whether a running link's etcd certificate, key or password file changed
   * since it was built. A file the process cannot read now (root-only, after
   * the privilege drop) cannot be compared: the link keeps what it read.
   */
  #etcdFilesChanged(link: Link): boolean {
    const now = etcdFilesDigest(link.spec);
    if (now === undefined) {
      this.#logger.warn({ link: link.spec.name }, 'reload: cannot read this link\'s etcd files now (privileges dropped?); changes to them apply on restart');
      return false;
    }
    return now !== this.#etcdFilesAtBuild.get(link.jumper);
  }

  #install(spec: LinkSpec, jumper: Jumper, error?: string): void {
    const link: Link = { spec, jumper, state: error ? 'failed' : 'running' };
    if (error) link.error = error;
    else if (this.#options.metrics) link.detach = this.#options.metrics.attach(spec.name, jumper);
    this.#options.metrics?.setLinkUp(spec.name, spec.role, !error);
    this.#links.set(spec.name, link);
  }

  /** Give a changed discovering link's new instance the backends of its running one (same discover URL only). */
  #seedBackends(old: Link, spec: LinkSpec, jumper: Jumper): void {
    if (old.state !== 'running' || spec.discover === undefined || spec.discover !== old.spec.discover) return;
    const known = old.jumper.backends().filter((b) => b.state !== 'draining');
    // One at a time: a backend the new instance refuses (a host name once it connects inside a
    // namespace) is left out, not the whole set. Sets are small.
    const carried: BackendInput[] = [];
    for (const b of known) {
      const next = [...carried, { address: b.address, weight: b.weight }];
      try {
        jumper.updateBackends(next);
        carried.push(next.at(-1)!);
      } catch (err) {
        this.#logger.warn({ link: spec.name, backend: b.address, err: errorText(err) }, 'reload: a known backend cannot be carried over; etcd decides about it');
      }
    }
  }

  /** Stop accepting on a link and let its streams finish in the background. */
  #retire(name: string, drainTimeoutMs: number): void {
    const link = this.#links.get(name)!;
    this.#links.delete(name);
    if (link.state === 'failed') {
      // Nothing to drain; its jumper_link_up 0 must not outlive it (a new instance sets its own).
      this.#options.metrics?.forgetLink(name);
      return;
    }
    const entry: Draining = { name, jumper: link.jumper, spec: link.spec };
    this.#draining.add(entry);
    const { active } = link.jumper.stats();
    this.#logger.info({ link: name, open: active, drainTimeoutMs }, 'link stopping: no new connections, draining open streams');
    // At once, registered or not: the address may go to the link's new instance
    // (which registers again), and operations.md promises it for a removed link.
    void link.jumper.close({ drainTimeoutMs, stopAcceptingAtOnce: true }).then(
      () => {
        this.#draining.delete(entry);
        link.detach?.();
        if (!this.#links.has(name)) this.#options.metrics?.forgetLink(name);
        this.#logger.info({ link: name, ...link.jumper.stats() }, 'link stopped');
      },
      (err: unknown) => {
        this.#draining.delete(entry);
        link.detach?.();
        if (!this.#links.has(name)) this.#options.metrics?.forgetLink(name);
        this.#logger.error({ link: name, err: errorText(err) }, 'error while stopping link');
      },
    );
  }

  /** Stop every link and wait for their streams (up to `drainTimeoutMs`). */
  async stop(drainTimeoutMs = this.#spec.drainTimeoutMs ?? DEFAULTS.drainTimeoutMs, options: { stopAcceptingAtOnce?: boolean } = {}): Promise<void> {
    this.#stopped = true;
    await this.#reloading;
    const all = [...[...this.#links.values()].filter((l) => l.state === 'running').map((l) => l.jumper), ...[...this.#draining].map((d) => d.jumper)];
    this.#links.clear();
    await Promise.all(all.map((j) => j.close({ drainTimeoutMs, ...options })));
  }

  /** Open streams over all links, draining ones included. */
  openStreams(): number {
    let n = 0;
    for (const l of this.#links.values()) n += l.jumper.stats().active;
    for (const d of this.#draining) n += d.jumper.stats().active;
    return n;
  }

  /** What /status shows. */
  status(): ProcessStatus {
    const links = [
      ...[...this.#links.entries()].map(([name, l]) => linkStatus(name, l.spec.role, l.jumper, l.state, l.error)),
      ...[...this.#draining].map((d) => linkStatus(d.name, d.spec.role, d.jumper, 'draining')),
    ];
    const status: ProcessStatus = {
      pid: process.pid,
      uptimeSeconds: Math.round((Date.now() - this.#started) / 1000),
      config: { file: this.#options.file, loadedAt: this.#loadedAt.toISOString(), reloads: this.#reloads },
      links,
    };
    if (this.#lastReloadError) status.config!.lastReloadError = this.#lastReloadError;
    const user = processUser();
    if (user) status.user = user;
    return status;
  }
}

/** The fingerprints of the key(s) a tunnel link's new streams use (none for forward and balance). */
function keyFingerprints(jumper: Jumper): string[] | undefined {
  const holder = jumper as unknown as { key?: TunnelKey; keys?: readonly TunnelKey[] };
  const keys = holder.keys ?? (holder.key ? [holder.key] : undefined);
  return keys?.map((k) => k.fingerprint);
}

/**
 * Refuse links that cannot run once privileges are dropped (connect-netns
 * enters a namespace per connection): for start and for run --check.
 * @throws InvalidArgumentError naming the link
 */
export function checkLinksDroppable(links: readonly LinkSpec[]): void {
  for (const l of links) checkDroppable(`links "${l.name}"`, { connectNetns: l['connect-netns'] as string | undefined });
}
