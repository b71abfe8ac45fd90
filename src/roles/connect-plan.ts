/**
 * Where a role's streams go, decided once at construction: one address, a
 * command (exec:), a hand-off receiver (handoff:), or a balanced pool of
 * backends (several addresses, or discovered in etcd). Produces the Dialer
 * the role uses for every stream.
 */
import { parseAddress, type Address } from '../addr/address.js';
import { createDialer, createNetnsDialer, type DialOptions, type Dialer } from '../addr/dial.js';
import { resolveNetns } from '../netns/designator.js';
import { PidNamespacePin } from '../netns/pid-pin.js';
import { checkNetnsTarget } from '../netns/sockets.js';
import { createExecDialer, EXEC_PREFIX } from '../activation/exec-target.js';
import { createHandoffDialer, HANDOFF_PREFIX } from '../activation/handoff.js';
import { parseBackendSpec, type BackendSpec } from '../balance/backend.js';
import { createBalancedDialer } from '../balance/balanced-dialer.js';
import { BackendPool } from '../balance/pool.js';
import type { StrategyName } from '../balance/strategy.js';
import { parseEtcdUrl } from '../discovery/etcd-url.js';
import { InvalidArgumentError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { DEFAULTS } from '../options.js';

/** How a balanced role spreads streams (several `connect` addresses or `discover`). */
export interface BalanceOptions {
  /** Default 'round-robin'. */
  strategy?: StrategyName;
  /** Connect failures in a row that eject a backend. Default 3. */
  ejectAfter?: number;
  /** First ejection's length, doubling per ejection in a row up to 30 s. Default 1000 ms. */
  ejectBaseMs?: number;
  /** Active TCP health checks every this many ms; off when absent. */
  healthIntervalMs?: number;
}

export interface ConnectPlanInput {
  connect?: string | Address | readonly string[] | undefined;
  discover?: string | undefined;
  balance?: BalanceOptions | undefined;
  connectNetns?: string | undefined;
  dialer?: Dialer | undefined;
  hasStart: boolean;
  /** Use a pool even for a single address. */
  alwaysPool?: boolean;
}

export interface ConnectPlan {
  dial: Dialer;
  /** The single target (a placeholder naming exec:/handoff:); undefined when balanced. */
  target: Address | undefined;
  /** For logs and the start-up line. */
  description: string;
  handoffPath?: string;
  /** With several addresses or discovery. */
  pool?: BackendPool;
  /** With discovery: the etcd URL. */
  discover?: string;
  /** With a pool: throws for an address the pool would refuse (the check discovery applies to registrations). */
  checkBackend?: (address: Address) => void;
}

/** Whether a --connect target is dialled (not exec: or handoff:, which start a command or pass the socket on). */
export function isDialledTarget(target: string): boolean {
  return !target.startsWith(EXEC_PREFIX) && !target.startsWith(HANDOFF_PREFIX);
}

export function planConnect(input: ConnectPlanInput, dialOptions: DialOptions, logger: Logger): ConnectPlan {
  const { connect, discover } = input;
  const list = Array.isArray(connect) ? (connect as readonly string[]) : undefined;
  if (discover !== undefined) {
    if (connect !== undefined && (list === undefined || list.length > 0)) {
      throw new InvalidArgumentError('give either --connect or --discover, not both');
    }
    parseEtcdUrl(discover); // fail early on a bad URL
    return balanced([], input, dialOptions, logger, discover);
  }
  if (list !== undefined) {
    if (list.length === 0) throw new InvalidArgumentError(input.alwaysPool ? 'a balancer needs at least one --backend' : '--connect needs at least one address');
    if (list.length > 1 || input.alwaysPool) return balanced(list.map(parseBackendSpec), input, dialOptions, logger);
    return single(list[0]!, input, dialOptions, logger);
  }
  if (connect === undefined) throw new InvalidArgumentError('--connect (or --discover) is required');
  return single(connect as string | Address, input, dialOptions, logger);
}

function single(connect: string | Address, input: ConnectPlanInput, dialOptions: DialOptions, logger: Logger): ConnectPlan {
  const text = typeof connect === 'string' ? connect : undefined;
  if (text !== undefined && /,weight=/.test(text)) {
    throw new InvalidArgumentError('a weight only applies when balancing over several addresses');
  }
  const handoffPath = text?.startsWith(HANDOFF_PREFIX) ? text.slice(HANDOFF_PREFIX.length) : undefined;
  if (handoffPath !== undefined && !handoffPath.startsWith('/')) {
    throw new InvalidArgumentError('handoff: needs an absolute Unix socket path, e.g. handoff:/run/app/handoff.sock');
  }
  const exec = text?.startsWith(EXEC_PREFIX) ? text.slice(EXEC_PREFIX.length) : undefined;
  if (exec !== undefined && !exec.trim()) throw new InvalidArgumentError('exec: needs a command, e.g. exec:cat');
  // exec: and handoff: have no address; the placeholder only names them in logs.
  const target: Address =
    exec !== undefined
      ? { kind: 'unix', path: `exec:${exec}` }
      : handoffPath !== undefined
        ? { kind: 'unix', path: handoffPath }
        : typeof connect === 'string'
          ? parseAddress(connect)
          : connect;
  if (handoffPath !== undefined && input.connectNetns) {
    throw new InvalidArgumentError('--connect-netns does not apply to handoff: (the path is reached through the file system)');
  }
  if (input.connectNetns && handoffPath === undefined && exec === undefined) checkNetnsTarget(input.connectNetns, target);
  let dial = input.dialer;
  if (!dial && exec !== undefined) {
    if (input.connectNetns) throw new InvalidArgumentError('--connect-netns does not apply to exec: targets');
    dial = createExecDialer(exec, { logger, label: dialOptions.label });
  }
  dial ??=
    handoffPath !== undefined
      ? createHandoffDialer(handoffPath, dialOptions.label)
      : input.connectNetns
        ? createNetnsDialer(input.connectNetns, target, dialOptions, PidNamespacePin.for(input.connectNetns))
        : createDialer(target, dialOptions);
  const plan: ConnectPlan = { dial, target, description: text ?? JSON.stringify(target) };
  if (handoffPath !== undefined) plan.handoffPath = handoffPath;
  return plan;
}

function balanced(
  backends: BackendSpec[],
  input: ConnectPlanInput,
  dialOptions: DialOptions,
  logger: Logger,
  discover?: string,
): ConnectPlan {
  if (input.hasStart) throw new InvalidArgumentError('--start works with one --connect address, not with balancing');
  for (const b of backends) {
    if (!isDialledTarget(b.address)) {
      throw new InvalidArgumentError(`"${b.address}": exec: and handoff: targets cannot be balanced`);
    }
  }
  const balance = input.balance ?? {};
  const netns = input.connectNetns;
  // Refused now even when no backend is configured yet (discovery only): a bad designator would refuse them all.
  if (netns) resolveNetns(netns);
  const pin = netns ? PidNamespacePin.for(netns) : undefined;
  // Inside a namespace only IP literals: a name would be resolved in ours.
  const checkBackend = (address: Address): void => {
    if (netns) checkNetnsTarget(netns, address);
  };
  const pool = new BackendPool({
    strategy: balance.strategy ?? 'round-robin',
    ejectAfter: balance.ejectAfter ?? DEFAULTS.ejectAfter,
    ejectBaseMs: balance.ejectBaseMs ?? DEFAULTS.ejectBaseMs,
    ejectMaxMs: DEFAULTS.ejectMaxMs,
    // Every address is checked before the pool takes it (configured ones at start, updateBackends'):
    // inside a namespace only IP literals. Discovery ignores a registration that fails the same check.
    makeDialer: (text) => {
      const address = parseAddress(text);
      checkBackend(address);
      return netns ? createNetnsDialer(netns, address, dialOptions, pin) : createDialer(address, dialOptions);
    },
    logger,
  });
  pool.update(backends);
  const plan: ConnectPlan = {
    dial: input.dialer ?? createBalancedDialer(pool, { logger }),
    target: undefined,
    description: discover ?? backends.map((b) => b.address).join(','),
    pool,
    checkBackend,
  };
  if (discover !== undefined) plan.discover = discover;
  return plan;
}
