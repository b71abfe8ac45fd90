/**
 * Run as a child by discovery-tls.test.ts (node --import tsx): log in to
 * etcd URL as USER with PASSWORD COUNT times, each time on a fresh client as
 * EtcdConnection does after a failure, then close the connection and stay
 * alive, so the parent can see which sockets to etcd this process still holds.
 * Prints one JSON line: { refused, succeeded }.
 */
import { EtcdConnection } from '../../src/discovery/etcd-client.js';

const [url, user, password, count] = process.argv.slice(2);
const conn = new EtcdConnection(url!, { user, password });
let refused = 0;
let succeeded = 0;
for (let i = 0; i < Number(count); i++) {
  try {
    await conn.client.get(`${conn.location.prefix}probe`);
    succeeded++;
  } catch (err) {
    if (/authentication failed|invalid user ID or password/i.test(String(err))) refused++;
  }
  conn.failed(new Error('next login'));
}
conn.close();
process.stdout.write(`${JSON.stringify({ refused, succeeded })}\n`);
setInterval(() => undefined, 60_000);
