/**
 * Plain forwarder: no key, no encryption; bytes and half-close pass through.
 * Its use is crossing namespaces on one host (see --listen-netns).
 */
import type { Socket } from 'node:net';
import { runHandoffForwardConn } from '../activation/handoff.js';
import { InvalidArgumentError } from '../errors.js';
import { runForwardConn, type Conn } from '../proto/conn.js';
import { proxyHeaderForSocket } from '../proto/origin.js';
import type { ProxyVersion } from '../proto/proxy-header.js';
import { Jumper, type CommonOptions } from './jumper.js';

export interface ForwardOptions extends CommonOptions {
  /** Write a PROXY header (v1 or v2) with the accepted peer's address to the target before any data. */
  proxyProtocol?: ProxyVersion;
}

export class ForwardJumper extends Jumper {
  readonly #proxyProtocol: ProxyVersion | undefined;

  constructor(options: ForwardOptions) {
    super('forward', options, 'target');
    this.#proxyProtocol = options.proxyProtocol;
    if (this.#proxyProtocol && this.handoffPath !== undefined) {
      throw new InvalidArgumentError('--proxy-protocol does not apply to handoff: (the receiver gets the socket itself, peer address included)');
    }
    // The accepted socket goes to the receiver without a dial, so nothing
    // would wait for a started receiver or count its streams for --idle-stop.
    if (options.start && this.handoffPath !== undefined) {
      throw new InvalidArgumentError('--start does not apply to forward --connect handoff: (start the receiver with systemd, or use a server jumper, whose hand-off waits for --start)');
    }
  }

  protected override get keepsAcceptedSockets(): boolean {
    return this.handoffPath === undefined;
  }

  protected serve(conn: Conn, socket: Socket): Promise<void> {
    // handoff: the accepted socket itself goes to the receiver (zero copy).
    if (this.handoffPath !== undefined) return runHandoffForwardConn(conn, socket, this.handoffPath);
    const version = this.#proxyProtocol;
    if (!version) return runForwardConn(conn, socket, { dial: this.dial });
    // The header goes out first, before any byte of the stream.
    const header = proxyHeaderForSocket(version, socket);
    const dial = async () => {
      const target = await this.dial();
      target.write(header);
      return target;
    };
    return runForwardConn(conn, socket, { dial });
  }
}

/** Create (not start) a plain forwarder; call `listen()`. */
export function createForward(options: ForwardOptions): ForwardJumper {
  return new ForwardJumper(options);
}
