#!/usr/bin/env python3
"""slixmpp XEP-0065 (SOCKS5 Bytestreams) peer for the xtlsjingle interop tests.

Started by internal/integration/socks5_test.go; it connects to a local Prosody only.

    s5b_peer.py --jid user@localhost/slix --port 5222 --ca cert.pem --mode target
    s5b_peer.py ... --mode requester --peer go@localhost/res --size 4194304

mode target: accept any bytestream offer (slixmpp tries the offered streamhosts), read until
the other side closes, print the result.
mode requester: discover the server's proxy, offer it to --peer (slixmpp's handshake:
request, streamhost-used, connect, activate), send --size random bytes, close.

The password comes from the environment variable S5B_PEER_PASSWORD. The script prints
"READY <full JID>" when its session started, and "RESULT <sha256 hex> <length>" for the bytes
it sent (requester) or received (target), then disconnects. Errors go to stderr with exit
status 1.
"""

import argparse
import asyncio
import hashlib
import ipaddress
import logging
import os
import sys

import slixmpp


def emit(*words):
    print(*words, flush=True)


class Peer(slixmpp.ClientXMPP):
    def __init__(self, args):
        super().__init__(args.jid, os.environ["S5B_PEER_PASSWORD"])
        self.args = args
        self.failed = None
        self.ca_certs = args.ca
        self.received = hashlib.sha256()
        self.count = 0
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0065", {"auto_accept": True})
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("socks5_data", self.on_data)
        self.add_event_handler("socks5_closed", self.on_closed)

    async def on_start(self, _event):
        self.send_presence()
        emit("READY", self.boundjid.full)
        if self.args.mode == "requester":
            try:
                await self.send_random()
            except Exception as e:  # report and stop
                self.fail("requester: %r" % (e,))

    async def send_random(self):
        data = os.urandom(self.args.size)
        proxies = await self["xep_0065"].discover_proxies(timeout=30)
        for jid, (host, _port) in proxies.items():
            if not ipaddress.ip_address(host).is_loopback:
                raise RuntimeError("proxy %s is not on loopback: %s" % (jid, host))
        sock = await self["xep_0065"].handshake(self.args.peer, timeout=30)
        if sock is None:
            raise RuntimeError("handshake failed")
        await sock.write(data)
        sock.transport.close()  # flushes, then closes
        emit("RESULT", hashlib.sha256(data).hexdigest(), len(data))
        await asyncio.sleep(0.5)
        self.disconnect()

    def on_data(self, data):
        if self.args.mode == "target":
            self.received.update(data)
            self.count += len(data)

    def on_closed(self, _exc):
        if self.args.mode == "target" and self.count > 0:
            emit("RESULT", self.received.hexdigest(), self.count)
            self.disconnect()

    def fail(self, msg):
        self.failed = msg
        print(msg, file=sys.stderr, flush=True)
        self.disconnect()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jid", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True, help="PEM file with the server certificate")
    p.add_argument("--mode", choices=("target", "requester"), required=True)
    p.add_argument("--peer", help="full JID to offer the bytestream to (mode requester)")
    p.add_argument("--size", type=int, default=4 << 20)
    p.add_argument("--timeout", type=int, default=120)
    p.add_argument("--debug", action="store_true")
    args = p.parse_args()
    if not ipaddress.ip_address(args.host).is_loopback:
        sys.exit("s5b_peer.py connects to a loopback address only")
    if args.mode == "requester" and not args.peer:
        sys.exit("--peer is required with --mode requester")
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR,
                        stream=sys.stderr)
    xmpp = Peer(args)
    xmpp.connect(address=(args.host, args.port))
    try:
        xmpp.loop.run_until_complete(
            asyncio.wait_for(xmpp.disconnected, args.timeout + 30))
    except asyncio.TimeoutError:
        xmpp.failed = xmpp.failed or "timed out"
        print("timed out", file=sys.stderr, flush=True)
    sys.exit(1 if xmpp.failed else 0)


if __name__ == "__main__":
    main()
