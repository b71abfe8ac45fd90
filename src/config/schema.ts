/**
 * The `jumper run` configuration schema and its validator.
 *
 * Keys are the CLI's long option names (`connect-timeout`, `proxy-protocol`,
 * ...), so what an operator tried on the command line moves into a file
 * unchanged. The validator is hand-written rather than JSON Schema + ajv:
 * the schema is one table of ~30 keys, the messages name the offending key
 * by its path (`links[3] "db".connect-timeout`) with a hint in the CLI's own
 * words, and every problem is reported at once, not only the first.
 */
import { isIP } from 'node:net';
import { STRATEGIES } from '../balance/strategy.js';
import { MAX_WEIGHT } from '../balance/backend.js';
import { isDialledTarget } from '../roles/connect-plan.js';
import { durationMs, formatDurationMs, isPreconnectSetting, MAX_BUSY_POLL_US, MAX_DURATION_MS, MAX_PRECONNECT_WIRES, MIN_HEALTH_INTERVAL_MS, MIN_LEASE_TTL_MS, MIN_TIMEOUT_MS } from '../options.js';

export const ROLES = ['client', 'server', 'forward', 'balance'] as const;
export type LinkRole = (typeof ROLES)[number];

/** How one value is checked and turned into its normalized form. */
type Kind =
  | { type: 'string' }
  | { type: 'address' }
  | { type: 'duration'; min?: number }
  | { type: 'int'; min: number; max?: number }
  | { type: 'preconnect' }
  | { type: 'bool' }
  | { type: 'enum'; values: readonly string[] }
  | { type: 'strings'; item?: 'cidr' | 'address' }
  | { type: 'string-or-strings' }
  | { type: 'mode' }
  | { type: 'start' };

interface Field {
  kind: Kind;
  /** Roles that take the key (all when absent). */
  roles?: readonly LinkRole[];
  /** Roles for which the key is required. */
  requiredFor?: readonly LinkRole[];
  doc: string;
}

const TUNNEL: readonly LinkRole[] = ['client', 'server'];

/** Every key a link may have; docs/operations.md prints this table. */
export const LINK_FIELDS: Record<string, Field> = {
  name: { kind: { type: 'string' }, requiredFor: ROLES, doc: 'unique name: the label in logs, metrics and /status ([A-Za-z0-9_.-])' },
  role: { kind: { type: 'enum', values: ROLES }, requiredFor: ROLES, doc: 'client, server, forward or balance' },
  listen: { kind: { type: 'string' }, requiredFor: ROLES, doc: 'host:port, [v6]:port, /path.sock, systemd, systemd:NAME or fd:N' },
  connect: {
    kind: { type: 'string-or-strings' },
    roles: ['client', 'server', 'forward'],
    doc: 'host:port, /path.sock, exec:COMMAND or handoff:/path.sock; a list balances new streams over several (ADDR,weight=W)',
  },
  key: { kind: { type: 'string-or-strings' }, roles: TUNNEL, requiredFor: TUNNEL, doc: 'key file; a server takes a list during a rotation (first = primary)' },
  'allow-insecure-key': { kind: { type: 'bool' }, roles: TUNNEL, doc: 'accept a key file group/others can read' },
  'handshake-timeout': { kind: { type: 'duration', min: MIN_TIMEOUT_MS }, roles: TUNNEL, doc: 'time allowed for the peer to prove the key (default 5s)' },
  protocol: { kind: { type: 'enum', values: ['jumper', 'spiped'] }, roles: TUNNEL, doc: 'jumper (default) or spiped' },
  pfs: { kind: { type: 'enum', values: ['default', 'off', 'require'] }, roles: TUNNEL, doc: 'spiped only: off = spiped -f, require = spiped -g' },
  preconnect: { kind: { type: 'preconnect' }, roles: ['client'], doc: 'client: wires kept dialled and handshaken ahead of demand: auto (default: one, while streams come in a row), a number, or 0 = off' },
  'preconnect-idle': { kind: { type: 'duration', min: MIN_TIMEOUT_MS }, roles: ['client'], doc: "client: retire a preconnected wire after this long unused, and (auto) the gap within which streams count as in a row; below the server's handshake-timeout (default 2s)" },
  'proxy-protocol': {
    kind: { type: 'enum', values: ['v1', 'v2'] },
    roles: ['server', 'forward'],
    doc: "write a PROXY header with the consumer's address to the provider before any data",
  },
  backends: { kind: { type: 'strings', item: 'address' }, roles: ['balance'], doc: 'balance: the backend addresses' },
  discover: { kind: { type: 'string' }, doc: 'etcd://HOST:PORT/PREFIX (etcds:// for TLS): balance over the backends registered there (instead of connect/backends)' },
  strategy: { kind: { type: 'enum', values: STRATEGIES }, doc: 'with several backends: how one is picked (see jumper balance --help)' },
  'eject-after': { kind: { type: 'int', min: 1 }, doc: 'with several backends: connect failures in a row that eject one (default 3)' },
  'health-interval': { kind: { type: 'duration', min: MIN_HEALTH_INTERVAL_MS }, doc: 'with several backends: TCP health check period (off by default)' },
  register: { kind: { type: 'string' }, doc: 'etcd://HOST:PORT/PREFIX (etcds:// for TLS): register this link there while it runs (needs advertise; docs/discovery.md)' },
  advertise: { kind: { type: 'string' }, doc: 'with register: the host:port balancers and clients connect to' },
  weight: { kind: { type: 'int', min: 1, max: MAX_WEIGHT }, doc: 'with register: relative share of streams (1-1000, default 1)' },
  'lease-ttl': { kind: { type: 'duration', min: MIN_LEASE_TTL_MS }, doc: 'with register: etcd lease TTL, at least 2s (default 10s)' },
  'deregister-delay': { kind: { type: 'duration' }, doc: 'with register: when the link stops, on SIGTERM/SIGINT (not on a reload), keep accepting this long after deregistering (default 1s)' },
  'etcd-ca': { kind: { type: 'string' }, doc: "with discover/register and etcds://: PEM CA that signed etcd's certificate (default: Node's built-in public CAs)" },
  'etcd-cert': { kind: { type: 'string' }, doc: 'with discover/register and etcds://: PEM client certificate (needs etcd-key)' },
  'etcd-key': { kind: { type: 'string' }, doc: 'PEM private key of etcd-cert' },
  'etcd-user': { kind: { type: 'string' }, doc: 'with discover/register: etcd user, when etcd has authentication enabled (needs etcd-password-file)' },
  'etcd-password-file': { kind: { type: 'string' }, doc: "file whose first line is etcd-user's password" },
  'max-connections': { kind: { type: 'int', min: 1 }, doc: 'streams served at once (default 1000)' },
  'max-handshakes': {
    kind: { type: 'int', min: 1 },
    roles: ['server', 'client'],
    doc: 'server, jumper protocol: connections still proving the key (default 4096); streams count against max-connections only once authenticated. client: streams dialling and handshaking with the server at once; more wait their turn (default 256)',
  },
  'connect-timeout': { kind: { type: 'duration', min: MIN_TIMEOUT_MS }, doc: 'time allowed to connect onward (default 5s)' },
  keepalive: { kind: { type: 'bool' }, doc: 'TCP keep-alive (default true)' },
  backlog: { kind: { type: 'int', min: 1 }, doc: 'listen backlog (default 4096)' },
  'listen-netns': { kind: { type: 'string' }, doc: 'create the listener in this network namespace (needs root)' },
  'connect-netns': { kind: { type: 'string' }, doc: 'connect from this network namespace (needs root for every connection)' },
  allow: { kind: { type: 'strings', item: 'cidr' }, doc: 'accept only peers in these CIDRs/addresses; others are closed at accept (reason not_allowed)' },
  'listen-mode': { kind: { type: 'mode' }, doc: 'Unix listener: file mode as an octal string, e.g. "0660"' },
  'listen-owner': { kind: { type: 'string' }, doc: 'Unix listener: owner as user[:group] (set before dropping privileges)' },
  'drain-timeout': { kind: { type: 'duration' }, doc: 'when the link is removed or restarted, how long its streams may finish (default: top-level drain-timeout)' },
  start: { kind: { type: 'start' }, roles: ['server', 'forward'], doc: 'on-demand provider: { command, start-timeout, idle-stop }' },
};

export const TOP_FIELDS: Record<string, Field> = {
  admin: { kind: { type: 'address' }, doc: 'admin HTTP endpoint (host:port or /path.sock): /metrics, /healthz, /status' },
  user: { kind: { type: 'string' }, doc: 'drop to this user after listening (name or uid)' },
  group: { kind: { type: 'string' }, doc: "drop to this group (default: the user's primary group)" },
  'drain-timeout': { kind: { type: 'duration' }, doc: 'on SIGTERM, and for removed links, how long open streams may finish (default 30s)' },
  'log-level': { kind: { type: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] }, doc: 'log level (the CLI flag wins)' },
  'busy-poll': { kind: { type: 'int', min: 0, max: MAX_BUSY_POLL_US }, doc: 'microseconds native data-path threads poll before sleeping, for every link (default 0 = off; the CLI flag wins; a reload applies a change)' },
  links: { kind: { type: 'string' }, doc: 'the list of links' }, // checked by hand below
};

const START_FIELDS = ['command', 'start-timeout', 'idle-stop'];
/** The etcd credentials a link's discover and register share. */
export const ETCD_ACCESS_KEYS = ['etcd-ca', 'etcd-cert', 'etcd-key', 'etcd-user', 'etcd-password-file'] as const;
const NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** One problem, with the path of the offending key. */
export interface ConfigIssue {
  /** e.g. ['links', 3, 'connect-timeout'] */
  path: (string | number)[];
  message: string;
}

/** A validated link: keys as in the file, values normalized (durations in ms, modes as numbers). */
export type LinkSpec = { name: string; role: LinkRole; listen: string } & Record<string, unknown>;

export interface RunSpec {
  admin?: string;
  user?: string;
  group?: string;
  drainTimeoutMs?: number;
  logLevel?: string;
  busyPollUs?: number;
  links: LinkSpec[];
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a mapping' : typeof v === 'number' ? `number ${String(v)}` : `${typeof v} ${JSON.stringify(v)}`;
}

/** Closest known key, for "did you mean" (edit distance ≤ 2). */
function suggest(key: string, known: string[]): string | undefined {
  const dist = (a: string, b: string): number => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0]![j] = j;
    for (let i = 1; i <= a.length; i++)
      for (let j = 1; j <= b.length; j++)
        d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    return d[a.length]![b.length]!;
  };
  const norm = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`).replace(/_/g, '-');
  if (known.includes(norm)) return norm;
  let best: string | undefined;
  let bestD = 3;
  for (const k of known) {
    const d = dist(norm, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best;
}

/** Is `text` an IP address or CIDR block? */
export function parseCidr(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [address, prefixText, extra] = text.split('/');
  if (extra !== undefined || !address) return undefined;
  const v = isIP(address);
  if (v === 0) return undefined;
  const max = v === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return undefined;
  return { address, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
}

/** Check one value against its kind; returns the normalized value or pushes an issue. */
function checkValue(kind: Kind, value: unknown, path: (string | number)[], issues: ConfigIssue[]): unknown {
  const bad = (message: string) => {
    issues.push({ path, message });
    return undefined;
  };
  switch (kind.type) {
    case 'string':
    case 'address':
      if (typeof value !== 'string' || value.length === 0) return bad(`expected a non-empty string, got ${typeName(value)}`);
      return value;
    case 'duration': {
      const ms = typeof value === 'number' && value >= 0 ? Math.round(value * 1000) : typeof value === 'string' ? durationMs(value) : NaN;
      if (Number.isNaN(ms)) return bad(`expected a duration such as 5s, 250ms or 2m (a bare number is seconds), got ${typeName(value)}`);
      // .inf, or beyond what a timer holds (it would fire at once).
      if (!(ms <= MAX_DURATION_MS)) return bad(`expected at most ${MAX_DURATION_MS} ms (about 24 days), got ${typeName(value)}`);
      if (kind.min !== undefined && ms < kind.min) return bad(`expected at least ${formatDurationMs(kind.min)}, got ${typeName(value)}`);
      return ms;
    }
    case 'int':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < kind.min || (kind.max !== undefined && value > kind.max)) {
        return bad(kind.max === undefined ? `expected an integer ≥ ${kind.min}, got ${typeName(value)}` : `expected an integer from ${kind.min} to ${kind.max}, got ${typeName(value)}`);
      }
      return value;
    case 'preconnect':
      if (!isPreconnectSetting(value)) return bad(`expected auto or an integer from 0 to ${MAX_PRECONNECT_WIRES}, got ${typeName(value)}`);
      return value;
    case 'bool':
      if (typeof value !== 'boolean') return bad(`expected true or false, got ${typeName(value)}`);
      return value;
    case 'enum':
      if (typeof value !== 'string' || !kind.values.includes(value)) return bad(`expected one of ${kind.values.join(', ')}, got ${typeName(value)}`);
      return value;
    case 'string-or-strings':
      if (typeof value === 'string' && value) return value;
      if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string' && v)) return value;
      return bad(`expected a string or a non-empty list of strings, got ${typeName(value)}`);
    case 'strings': {
      const list = typeof value === 'string' ? [value] : value;
      if (!Array.isArray(list) || list.length === 0) return bad(`expected a non-empty list, got ${typeName(value)}`);
      list.forEach((item, i) => {
        if (typeof item !== 'string' || !item) bad(`item ${i}: expected a string, got ${typeName(item)}`);
        else if (kind.item === 'cidr' && !parseCidr(item)) issues.push({ path: [...path, i], message: `expected an IP address or CIDR such as 10.0.0.0/8, got "${item}"` });
      });
      return list;
    }
    case 'mode': {
      if (typeof value !== 'string' || !/^0?[0-7]{3}$/.test(value)) {
        return bad(`expected an octal mode as a quoted string such as "0660" (an unquoted 0660 is not octal in YAML), got ${typeName(value)}`);
      }
      return parseInt(value, 8);
    }
    case 'start': {
      const v = typeof value === 'string' ? { command: value } : value;
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad(`expected a command string or { command, start-timeout, idle-stop }, got ${typeName(value)}`);
      const o = v as Record<string, unknown>;
      for (const k of Object.keys(o)) {
        if (!START_FIELDS.includes(k)) {
          const hint = suggest(k, START_FIELDS);
          issues.push({ path: [...path, k], message: `unknown key${hint ? ` (did you mean "${hint}"?)` : ''}` });
        }
      }
      const command = checkValue({ type: 'string' }, o.command, [...path, 'command'], issues);
      const out: Record<string, unknown> = { command };
      if (o['start-timeout'] !== undefined) out.startTimeoutMs = checkValue({ type: 'duration', min: MIN_TIMEOUT_MS }, o['start-timeout'], [...path, 'start-timeout'], issues);
      if (o['idle-stop'] !== undefined) out.idleStopMs = checkValue({ type: 'duration' }, o['idle-stop'], [...path, 'idle-stop'], issues);
      return out;
    }
  }
}

function checkLink(raw: unknown, index: number, issues: ConfigIssue[]): LinkSpec | undefined {
  const base: (string | number)[] = ['links', index];
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    issues.push({ path: base, message: `expected a mapping with name, role, listen, ..., got ${typeName(raw)}` });
    return undefined;
  }
  const link = raw as Record<string, unknown>;
  const role = ROLES.includes(link.role as LinkRole) ? (link.role as LinkRole) : undefined;
  const out: Record<string, unknown> = {};
  const known = Object.keys(LINK_FIELDS);
  for (const [key, value] of Object.entries(link)) {
    const field = LINK_FIELDS[key];
    if (!field) {
      const hint = suggest(key, known);
      const message = Object.hasOwn(TOP_FIELDS, key) && key !== 'links' ? 'a top-level key: it applies to the whole process, not to one link' : `unknown key${hint ? ` (did you mean "${hint}"?)` : ''}`;
      issues.push({ path: [...base, key], message });
      continue;
    }
    if (role && field.roles && !field.roles.includes(role)) {
      issues.push({ path: [...base, key], message: `does not apply to role ${role} (only ${field.roles.join(', ')})` });
      continue;
    }
    out[key] = checkValue(field.kind, value, [...base, key], issues);
  }
  for (const [key, field] of Object.entries(LINK_FIELDS)) {
    if (link[key] !== undefined) continue;
    if (key === 'role' || (role && field.requiredFor?.includes(role))) issues.push({ path: [...base, key], message: 'required' });
  }
  if (typeof link.name === 'string' && !NAME.test(link.name)) {
    issues.push({ path: [...base, 'name'], message: `"${link.name}": use 1-64 characters of A-Z a-z 0-9 _ . -` });
  }
  if (role === 'client' && Array.isArray(link.key) && link.key.length !== 1) {
    issues.push({ path: [...base, 'key'], message: 'a client takes exactly one key' });
  }
  if (role === 'balance' && link.backends === undefined && link.discover === undefined) {
    issues.push({ path: [...base, 'backends'], message: 'a balance link needs backends (or discover)' });
  }
  if (link.register !== undefined && link.advertise === undefined) {
    issues.push({ path: [...base, 'advertise'], message: 'required with register (the host:port others connect to)' });
  }
  for (const k of ['advertise', 'weight', 'lease-ttl', 'deregister-delay']) {
    if (link[k] !== undefined && link.register === undefined) issues.push({ path: [...base, k], message: 'only applies with register' });
  }
  for (const k of ETCD_ACCESS_KEYS) {
    if (link[k] !== undefined && link.discover === undefined && link.register === undefined) issues.push({ path: [...base, k], message: 'only applies with discover or register' });
  }
  if (role && role !== 'balance' && link.connect === undefined && link.discover === undefined) {
    issues.push({ path: [...base, 'connect'], message: 'required (or discover)' });
  }
  if (link.pfs !== undefined && link.pfs !== 'default' && link.protocol !== 'spiped') {
    issues.push({ path: [...base, 'pfs'], message: 'applies to protocol: spiped only; the jumper protocol always has forward secrecy' });
  }
  // Keys that would be silently ignored where they stand.
  const balancing = role === 'balance' || link.discover !== undefined || (Array.isArray(link.connect) && link.connect.length > 1);
  for (const k of ['strategy', 'eject-after', 'health-interval']) {
    if (link[k] !== undefined && !balancing) issues.push({ path: [...base, k], message: 'only applies when balancing (several connect targets, or discover)' });
  }
  const connects: unknown[] = Array.isArray(link.connect) ? link.connect : [link.connect];
  if (link['connect-timeout'] !== undefined && connects.some((c) => typeof c === 'string' && !isDialledTarget(c))) {
    issues.push({ path: [...base, 'connect-timeout'], message: 'exec: and handoff: targets are not dialled: no connect timeout applies' });
  }
  if (link['preconnect-idle'] !== undefined && (link.preconnect === 0 || link.protocol === 'spiped')) {
    issues.push({ path: [...base, 'preconnect-idle'], message: 'only applies with preconnect (not 0) and the jumper protocol' });
  }
  if (link['max-handshakes'] !== undefined && link.role === 'server' && link.protocol === 'spiped') {
    issues.push({ path: [...base, 'max-handshakes'], message: 'applies to the jumper protocol only (a spiped handshake holds a max-connections slot)' });
  }
  if (link['proxy-protocol'] !== undefined && link.protocol === 'spiped') {
    issues.push({ path: [...base, 'proxy-protocol'], message: 'spiped carries no origin: use the jumper protocol' });
  }
  const listen = typeof link.listen === 'string' ? link.listen : '';
  if ((link['listen-mode'] !== undefined || link['listen-owner'] !== undefined) && !listen.startsWith('/')) {
    issues.push({ path: [...base, link['listen-mode'] !== undefined ? 'listen-mode' : 'listen-owner'], message: 'applies to a Unix socket listener (listen: /path.sock) only' });
  }
  if (link.allow !== undefined && listen.startsWith('/')) {
    issues.push({ path: [...base, 'allow'], message: 'a Unix socket has no peer address: use listen-mode/listen-owner instead' });
  }
  return out as LinkSpec;
}

/**
 * Validate a parsed configuration document.
 * @returns the normalized spec and every issue found (the spec is only usable when there are none).
 */
export function validateConfig(doc: unknown): { spec: RunSpec; issues: ConfigIssue[] } {
  const issues: ConfigIssue[] = [];
  const spec: RunSpec = { links: [] };
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    issues.push({ path: [], message: `expected a mapping with a links list, got ${typeName(doc)}` });
    return { spec, issues };
  }
  const top = doc as Record<string, unknown>;
  const known = Object.keys(TOP_FIELDS);
  for (const [key, value] of Object.entries(top)) {
    const field = TOP_FIELDS[key];
    if (!field) {
      const hint = suggest(key, known);
      issues.push({ path: [key], message: `unknown key${hint ? ` (did you mean "${hint}"?)` : ''}` });
      continue;
    }
    if (key === 'links') continue;
    // A numeric uid/gid is fine as a number.
    const given = (key === 'user' || key === 'group') && typeof value === 'number' ? String(value) : value;
    const v = checkValue(field.kind, given, [key], issues);
    if (v === undefined) continue;
    if (key === 'admin') spec.admin = v as string;
    else if (key === 'user') spec.user = String(v);
    else if (key === 'group') spec.group = String(v);
    else if (key === 'drain-timeout') spec.drainTimeoutMs = v as number;
    else if (key === 'log-level') spec.logLevel = v as string;
    else if (key === 'busy-poll') spec.busyPollUs = v as number;
  }
  if (top.group !== undefined && top.user === undefined) issues.push({ path: ['group'], message: 'only applies with user (the group is set when dropping to the user)' });
  if (!Array.isArray(top.links)) {
    issues.push({ path: ['links'], message: top.links === undefined ? 'required' : `expected a list of links, got ${typeName(top.links)}` });
    return { spec, issues };
  }
  const seen = new Map<string, number>();
  top.links.forEach((raw, i) => {
    const link = checkLink(raw, i, issues);
    if (!link) return;
    if (typeof link.name === 'string') {
      const first = seen.get(link.name);
      if (first !== undefined) issues.push({ path: ['links', i, 'name'], message: `"${link.name}" is already the name of links[${first}]` });
      else seen.set(link.name, i);
    }
    spec.links.push(link);
  });
  return { spec, issues };
}

/** "links[3].connect-timeout" */
export function formatPath(path: (string | number)[]): string {
  return path.reduce<string>((s, p) => (typeof p === 'number' ? `${s}[${p}]` : s ? `${s}.${p}` : p), '') || '(top level)';
}
