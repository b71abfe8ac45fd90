/**
 * A mark for sockets whose lifecycle the JavaScript side must keep watching
 * (e.g. an exec: target's socket ends its command when it closes), so the
 * native pump must not take them over.
 */
import type { Socket } from 'node:net';

const JS_DATA_PATH = Symbol('jumper.jsDataPath');

export function keepInJs(socket: Socket): Socket {
  (socket as Socket & { [JS_DATA_PATH]?: true })[JS_DATA_PATH] = true;
  return socket;
}

export function mustStayInJs(socket: Socket): boolean {
  return (socket as Socket & { [JS_DATA_PATH]?: true })[JS_DATA_PATH] === true;
}
