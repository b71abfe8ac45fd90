#!/usr/bin/env python3
"""Minimal jumper hand-off sender for tests (stdlib only).

Usage: handoff_send.py LISTEN_PORT SOCKET_PATH [COUNT]

Listens on 127.0.0.1:LISTEN_PORT (TCP). For each accepted TCP connection (up to
COUNT, default unlimited) it performs the hand-off protocol v1 to SOCKET_PATH:
connect to the Unix stream socket, send one message with payload b'\\x01' and
SCM_RIGHTS carrying the connection's fd, close the Unix socket, then close its
own copy of the TCP connection. Like jumper (libuv) it hands over the socket
in O_NONBLOCK mode, so receivers must set the blocking mode they want.

Prints one JSON line {"ready": true, "port": N} on stdout once listening, and
{"handed": N} after each successful hand-off; errors go to stderr as JSON.
"""
import json
import socket
import sys


def hand_off(conn: socket.socket, path: str) -> None:
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        u.settimeout(10)
        u.connect(path)
        socket.send_fds(u, [b'\x01'], [conn.fileno()])
    finally:
        u.close()


def main() -> int:
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    port = int(sys.argv[1])
    path = sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) == 4 else -1

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(('127.0.0.1', port))
    srv.listen(64)
    print(json.dumps({'ready': True, 'port': srv.getsockname()[1]}), flush=True)

    handed = 0
    while count < 0 or handed < count:
        conn, _peer = srv.accept()
        try:
            conn.setblocking(False)  # mimic jumper/libuv sockets
            hand_off(conn, path)
            handed += 1
            print(json.dumps({'handed': handed}), flush=True)
        except OSError as e:
            print(json.dumps({'error': str(e)}), file=sys.stderr, flush=True)
        finally:
            conn.close()
    srv.close()
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
