/**
 * Plain forwarder: no key, no encryption; bytes and half-close pass through.
 * Its use is crossing namespaces on one host (see --listen-netns).
 */
import type { Socket } from 'node:net';
import { runHandoffForwardConn } from '../activation/handoff.js';
import { runForwardConn, type Conn } from '../proto/conn.js';
import { Jumper, type CommonOptions } from './jumper.js';

export type ForwardOptions = CommonOptions;

export class ForwardJumper extends Jumper {
  constructor(options: ForwardOptions) {
    super('forward', options, 'target');
  }

  protected serve(conn: Conn, socket: Socket): Promise<void> {
    // handoff: the accepted socket itself goes to the receiver (zero copy).
    if (this.handoffPath !== undefined) return runHandoffForwardConn(conn, socket, this.handoffPath);
    return runForwardConn(conn, socket, { dial: this.dial });
  }
}

/** Create (not start) a plain forwarder; call `listen()`. */
export function createForward(options: ForwardOptions): ForwardJumper {
  return new ForwardJumper(options);
}
