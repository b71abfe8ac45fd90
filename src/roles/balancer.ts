/**
 * Balancing jumper: an L4 pass-through in front of several server jumpers
 * (or any TCP/Unix backends). It holds no key and never sees plaintext:
 * jumper streams stay encrypted end to end between client and server
 * jumpers. Backends come from `backends` or from etcd (`discover`).
 */
import type { Socket } from 'node:net';
import { runForwardConn, type Conn } from '../proto/conn.js';
import { InvalidArgumentError } from '../errors.js';
import { Jumper, type CommonOptions } from './jumper.js';

export interface BalancerOptions extends Omit<CommonOptions, 'connect' | 'start'> {
  /** Backend addresses, each optionally `ADDR,weight=W`. Or use `discover`. */
  backends?: readonly string[];
}

export class BalanceJumper extends Jumper {
  constructor(options: BalancerOptions) {
    const { backends, ...common } = options;
    if (backends === undefined && options.discover === undefined) {
      throw new InvalidArgumentError('a balancer needs --backend addresses or --discover etcd://HOST:PORT/PREFIX');
    }
    super('balance', { ...common, connect: backends ?? [] }, 'backend');
  }

  protected serve(conn: Conn, socket: Socket): Promise<void> {
    return runForwardConn(conn, socket, { dial: this.dial });
  }
}

/** Create (not start) a balancer; call `listen()`. */
export function createBalancer(options: BalancerOptions): BalanceJumper {
  return new BalanceJumper(options);
}
