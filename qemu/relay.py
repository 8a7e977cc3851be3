#!/usr/bin/env python3
"""qemu/relay.py — relay one guest TCP connection to a server on the host's loopback.

QEMU's user networking runs this for every connection the guest opens to the guestfwd address
(-netdev user,restrict=on,guestfwd=tcp:10.0.2.100:8080-cmd:relay.py PORT): the guest's
connection is this process's stdin/stdout, and the relay copies bytes both ways between it and
127.0.0.1:PORT. It only ever connects to 127.0.0.1.
"""
import os
import select
import socket
import sys


def main() -> int:
    port = int(sys.argv[1])
    upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
    upstream.settimeout(None)
    guest_in, guest_out = sys.stdin.fileno(), sys.stdout.fileno()
    guest_sending = True
    while True:
        watch = [upstream] + ([guest_in] if guest_sending else [])
        readable, _, _ = select.select(watch, [], [], 300)
        if not readable:
            return 1  # idle for 5 minutes: give up
        if guest_in in readable:
            data = os.read(guest_in, 65536)
            if data:
                upstream.sendall(data)
            else:  # the guest finished sending
                guest_sending = False
                upstream.shutdown(socket.SHUT_WR)
        if upstream in readable:
            data = upstream.recv(65536)
            if not data:  # the server is done: end the guest's connection too
                break
            view = memoryview(data)
            while view:
                view = view[os.write(guest_out, view):]
    return 0


if __name__ == "__main__":
    sys.exit(main())
