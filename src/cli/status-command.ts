/**
 * `jumper status --admin ADDR`: ask a running jumper's admin endpoint for
 * /status and print its links and live counters as a table.
 */
import type { Command } from 'commander';
import http from 'node:http';
import { parseAddress } from '../addr/address.js';
import type { LinkStatus, ProcessStatus } from '../admin/server.js';
import { ConnectFailedError } from '../errors.js';

/** How long to wait for the admin endpoint. */
const STATUS_TIMEOUT_MS = 5_000;

/** GET /status from host:port or /path.sock. */
export function fetchStatus(admin: string): Promise<ProcessStatus> {
  const target = parseAddress(admin);
  const where = target.kind === 'unix' ? { socketPath: target.path } : { host: target.host, port: target.port };
  return new Promise((resolve, reject) => {
    const req = http.get({ ...where, path: '/status', timeout: STATUS_TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => {
        if (res.statusCode !== 200) {
          reject(new ConnectFailedError(`admin endpoint ${admin} answered ${res.statusCode}`));
          return;
        }
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as ProcessStatus);
        } catch (err) {
          reject(new ConnectFailedError(`admin endpoint ${admin} sent no JSON status`, { cause: err }));
        }
      });
    });
    req.once('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.once('error', (err: NodeJS.ErrnoException) =>
      reject(new ConnectFailedError(`cannot reach the admin endpoint ${admin}: ${err.code ?? err.message}`, { cause: err, errno: err.code ?? 'EIO' })),
    );
  });
}

/** 1536 -> "1.5 KiB". */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ').trimEnd()).join('\n');
}

/** The human table for a status document. */
export function formatStatus(status: ProcessStatus): string {
  const rows: string[][] = [['LINK', 'ROLE', 'STATE', 'LISTEN', 'CONNECT', 'OPEN', 'WAIT', 'TOTAL', 'FAILED', 'UP', 'DOWN']];
  const notes: string[] = [];
  for (const l of status.links as LinkStatus[]) {
    const s = l.stats;
    rows.push([l.name, l.role, l.state, l.listen, l.connect ?? '', String(s.active), String(s.waiting), String(s.total), String(s.failed), formatBytes(s.bytesUp), formatBytes(s.bytesDown)]);
    for (const b of l.backends ?? []) rows.push([`  ${b.backend}`, '', b.healthy ? 'up' : b.draining ? 'draining' : 'down', '', '', String(b.active), '', '', '', '', '']);
    const reasons = Object.entries(s.failures).sort((a, b) => b[1] - a[1]);
    if (reasons.length > 0) notes.push(`${l.name} failures: ${reasons.map(([r, n]) => `${r}=${n}`).join(' ')}`);
    if (l.error) notes.push(`${l.name} error: ${l.error}`);
  }
  const head = [`pid ${status.pid}, up ${status.uptimeSeconds}s`];
  if (status.user) head.push(`uid ${status.user.uid}`);
  if (status.config) head.push(`config ${status.config.file} (reloads: ${status.config.reloads})`);
  const lines = [head.join(', '), table(rows), ...notes];
  if (status.config?.lastReloadError) lines.push(`last reload refused: ${status.config.lastReloadError}`);
  return `${lines.join('\n')}\n`;
}

export function addStatusCommand(program: Command): void {
  program
    .command('status')
    .description("print a running jumper's links and live counters (from its --admin endpoint)")
    .requiredOption('--admin <addr>', 'the admin endpoint: host:port or /path.sock')
    .option('--json', 'print the raw /status JSON')
    .addHelpText(
      'after',
      `
Columns: OPEN streams now, WAIT held over --max-connections, TOTAL accepted, FAILED ended
with an error (reasons listed below the table), UP/DOWN plaintext bytes of closed streams
(up = toward the provider). A balancer lists its backends under its row.

Example:
  jumper status --admin 127.0.0.1:9100`,
    )
    .action(async (flags: { admin: string; json?: boolean }) => {
      const status = await fetchStatus(flags.admin);
      process.stdout.write(flags.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
    });
}
