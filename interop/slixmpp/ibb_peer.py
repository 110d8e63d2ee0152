#!/usr/bin/env python3
"""slixmpp XEP-0047 (In-Band Bytestreams) peer for the xtlsjingle interop tests.

Started by internal/integration/ibb_test.go; it connects to a local Prosody only.

    ibb_peer.py --jid user@localhost/slix --port 5222 --ca cert.pem --mode send \
        --peer go@localhost/res --sid s1 --size 1048576 [--messages] [--timing]
    ibb_peer.py ... --mode recv [--timing]

The password comes from the environment variable IBB_PEER_PASSWORD. The script prints
"READY <full JID>" when its session started, and "RESULT <sha256 hex> <length>" for the bytes
it sent (mode send) or received (mode recv), then disconnects. Errors go to stderr with exit
status 1.

With --timing (used by cmd/xtlsbench), mode send also prints "TIMING <seconds> <length>": the
wall time from the accepted open to the acknowledged close (every data IQ acknowledged), the
open handshake left out; mode recv then hashes each block as it arrives instead of gather(),
which copies the whole buffer again for every block.
"""

import argparse
import asyncio
import hashlib
import ipaddress
import logging
import os
import sys
import time

import slixmpp


def emit(*words):
    print(*words, flush=True)


class Peer(slixmpp.ClientXMPP):
    def __init__(self, args):
        super().__init__(args.jid, os.environ["IBB_PEER_PASSWORD"])
        self.args = args
        self.failed = None
        self.ca_certs = args.ca
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0047", {"auto_accept": True, "max_block_size": 65535})
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("ibb_stream_start", self.on_stream)

    async def on_start(self, _event):
        self.send_presence()
        emit("READY", self.boundjid.full)
        if self.args.mode == "send":
            try:
                await self.send_random()
            except Exception as e:  # report and stop
                self.fail("send: %r" % (e,))

    async def send_random(self):
        data = os.urandom(self.args.size)
        stream = await self["xep_0047"].open_stream(
            self.args.peer, sid=self.args.sid, block_size=self.args.block_size,
            use_messages=self.args.messages, timeout=30)
        t0 = time.monotonic()
        await stream.sendall(data, timeout=60)
        await stream.close(timeout=30)
        if self.args.timing:
            emit("TIMING", "%.6f" % (time.monotonic() - t0), len(data))
        emit("RESULT", hashlib.sha256(data).hexdigest(), len(data))
        self.disconnect()

    def on_stream(self, stream):
        if self.args.mode != "recv":
            return
        if self.args.timing:
            self.consume(stream)
        else:
            asyncio.ensure_future(self.gather(stream))

    def consume(self, stream):
        h, n = hashlib.sha256(), 0

        def drain():
            nonlocal n
            while not stream.recv_queue.empty():
                block = stream.recv_queue.get_nowait()
                h.update(block)
                n += len(block)

        def on_data(s):
            if s is stream:
                drain()

        def on_end(s):
            if s is stream:
                drain()
                emit("RESULT", h.hexdigest(), n)
                self.disconnect()

        self.add_event_handler("ibb_stream_data", on_data)
        self.add_event_handler("ibb_stream_end", on_end)

    async def gather(self, stream):
        try:
            data = await stream.gather(timeout=self.args.timeout)
        except Exception as e:
            self.fail("gather: %r" % (e,))
            return
        emit("RESULT", hashlib.sha256(data).hexdigest(), len(data))
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
    p.add_argument("--mode", choices=("send", "recv"), required=True)
    p.add_argument("--peer", help="full JID to send to (mode send)")
    p.add_argument("--sid", default="slix-ibb")
    p.add_argument("--size", type=int, default=1 << 20)
    p.add_argument("--block-size", type=int, default=4096)
    p.add_argument("--messages", action="store_true", help="send data in message stanzas")
    p.add_argument("--timeout", type=int, default=120)
    p.add_argument("--timing", action="store_true",
                   help="print TIMING (send); hash blocks as they arrive (recv)")
    p.add_argument("--debug", action="store_true")
    args = p.parse_args()
    if not ipaddress.ip_address(args.host).is_loopback:
        sys.exit("ibb_peer.py connects to a loopback address only")
    if args.mode == "send" and not args.peer:
        sys.exit("--peer is required with --mode send")
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
