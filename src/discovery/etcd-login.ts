/**
 * etcd3 (1.1.x) logs an etcd user in through a gRPC client it makes for that
 * one login and never closes. Each login leaves a channel behind: about
 * 12 KiB of heap that grpc-js keeps until the channel is closed, and a
 * reference that keeps the connection to etcd open after the etcd3 client
 * itself is closed (until gRPC's 30-minute idle timeout). A jumper whose
 * password etcd refuses logs in again every 30 s for as long as it runs, and
 * EtcdConnection makes a new client (so a new login) after every failure.
 *
 * This makes the login use the host's own cached Auth client instead: the
 * same gRPC call on the same channel the client's other calls use, closed
 * with the client. It reaches into etcd3's private ConnectionPool; when that
 * shape is not found (another etcd3 version) it changes nothing, and the
 * test "logins leave no connection behind" says so.
 */
import type { Etcd3 } from 'etcd3';

type Callback = (err: Error | null, res?: { token: string }) => void;

interface AuthService {
  authenticate(payload: { name: string; password: string }, options: object, callback: Callback): void;
}

interface PoolHost {
  readonly host: string;
  getServiceClient(name: 'Auth'): AuthService;
}

interface Authenticator {
  // etcd3 passes a fifth argument (the channel credentials) that only its own path uses.
  getCredentialsFromHost(address: string, name: string, password: string, callOptions: object | undefined, ...rest: unknown[]): Promise<string>;
}

/** The parts of etcd3's private ConnectionPool used here, or undefined when they are not there. */
function poolOf(client: Etcd3): { hosts: PoolHost[]; authenticator: Authenticator } | undefined {
  const pool = (client as unknown as { pool?: { hosts?: unknown; authenticator?: unknown } }).pool;
  const hosts = pool?.hosts;
  const authenticator = pool?.authenticator as Partial<Authenticator> | undefined;
  if (!Array.isArray(hosts) || typeof authenticator?.getCredentialsFromHost !== 'function') return undefined;
  if (!hosts.every((h: Partial<PoolHost>) => typeof h.host === 'string' && typeof h.getServiceClient === 'function')) return undefined;
  return { hosts: hosts as PoolHost[], authenticator: authenticator as Authenticator };
}

/**
 * Make `client`'s logins use its hosts' Auth clients. Whether etcd3's internals were found.
 * `castGrpcError`: etcd3's own mapping to its error classes (the caller holds the lazily loaded module).
 */
export function loginOnHostChannels(client: Etcd3, castGrpcError: (err: Error) => Error): boolean {
  const pool = poolOf(client);
  if (pool === undefined) return false;
  const original = pool.authenticator.getCredentialsFromHost.bind(pool.authenticator);
  pool.authenticator.getCredentialsFromHost = (address, name, password, callOptions, ...rest) => {
    const host = pool.hosts.find((h) => h.host === address);
    if (host === undefined) return original(address, name, password, callOptions, ...rest);
    return new Promise<string>((resolve, reject) => {
      // Throws ClientClosedError once the client is closed: a rejection, as any failed login.
      host.getServiceClient('Auth').authenticate({ name, password }, callOptions ?? {}, (err, res) => {
        if (err) reject(castGrpcError(err));
        else resolve(res!.token);
      });
    });
  };
  return true;
}
