#!/usr/bin/env python3
"""A stand-in for Cloudflare's edge and cloudflared, for the remote-path test.

The real path is: the phone's WARP client carries a flow to Cloudflare's
edge, the edge hands it down the tunnel to cloudflared on the Pi, and
cloudflared opens a new flow of its own from the Pi to the Pi's LAN address.
Neither the edge nor a tunnel can be reached from a test machine, so this
relay plays both parts between two network namespaces:

- its listening sockets sit in the namespace it is started in (the "edge",
  which the phone routes the Pi's address to), bound to the Pi's address and
  the ports it is told to carry;
- every flow it accepts there is re-originated from a new socket made inside
  the Pi's namespace (`--home-netns`), bound to the Pi's own address, so the
  program on the Pi sees the flow come from its own address, as it does
  behind cloudflared.

It carries TCP connections and UDP flows, drops a UDP flow after it has been
idle for `--udp-idle-s` seconds (210 in cloudflared), adds delay and random
loss itself (the kernel here has no netem), can carry no UDP at all (as when
QUIC is blocked and cloudflared falls back to HTTP/2), and can be stopped and
started again while it runs: commands on a Unix socket (`--control`), one a
line, each answered with one line of JSON:

    stats | udp on | udp off | delay MS | loss PERCENT | stop | start

Python 3 standard library only.
"""

import argparse
import asyncio
import ctypes
import json
import os
import random
import signal
import socket
import sys
import time

CLONE_NEWNET = 0x40000000


def log(msg):
    print(f"relay: {msg}", file=sys.stderr, flush=True)


def parse_ports(spec):
    """'8080,50000-50009' -> [8080, 50000, ..., 50009]"""
    ports = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        lo, _, hi = part.partition("-")
        lo, hi = int(lo), int(hi or lo)
        if not 0 < lo <= hi < 65536:
            raise argparse.ArgumentTypeError(f"port range {part!r}: want 1-65535, low first")
        ports.extend(range(lo, hi + 1))
    return ports


class Netns:
    """Makes sockets inside another network namespace (or this one)."""

    def __init__(self, path):
        self.own = self.other = None
        if path:
            self.libc = ctypes.CDLL(None, use_errno=True)
            self.own = os.open("/proc/self/ns/net", os.O_RDONLY)
            self.other = os.open(path, os.O_RDONLY)

    def _enter(self, fd, name):
        if self.libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {name}: {os.strerror(err)}")

    def socket(self, kind):
        if self.other is None:
            return socket.socket(socket.AF_INET, kind)
        self._enter(self.other, "the Pi's namespace")
        try:
            return socket.socket(socket.AF_INET, kind)
        finally:
            self._enter(self.own, "the relay's own namespace")


class Settings:
    def __init__(self, args):
        self.udp = not args.no_udp
        self.delay = args.delay_ms / 1000.0
        self.loss = args.loss_pct / 100.0
        self.idle = args.udp_idle_s
        self.idle_from_phone_only = args.idle_counts == "phone"
        self.running = True


class Stats(dict):
    def __init__(self):
        super().__init__(
            udp_flows_opened=0, udp_flows_idle_dropped=0, udp_packets_to_pi=0,
            udp_packets_to_phone=0, udp_packets_lost=0, udp_packets_refused=0,
            tcp_connections=0, tcp_refused=0, tcp_bytes_to_pi=0, tcp_bytes_to_phone=0,
            udp_longest_phone_silence_s=0.0)

    def add(self, key, n=1):
        self[key] += n


class UdpFlow(asyncio.DatagramProtocol):
    """One phone address and port to one Pi port, re-originated from its own
    socket in the Pi's namespace."""

    def __init__(self, relay, port_proto, phone, port):
        self.relay, self.port_proto, self.phone, self.port = relay, port_proto, phone, port
        self.transport = None
        self.last = self.last_from_phone = time.monotonic()
        self.origin = None
        self.pending = []  # packets from the phone while the socket opens

    def connection_made(self, transport):
        self.transport = transport
        self.origin = transport.get_extra_info("sockname")

    def datagram_received(self, data, addr):
        relay = self.relay
        self.last = time.monotonic()
        if relay.lost():
            relay.stats.add("udp_packets_lost")
            return
        relay.stats.add("udp_packets_to_phone")
        relay.later(self.port_proto.send_to_phone, data, self.phone)

    def send_to_pi(self, data):
        now = time.monotonic()
        stats = self.relay.stats
        stats["udp_longest_phone_silence_s"] = max(
            stats["udp_longest_phone_silence_s"], round(now - self.last_from_phone, 3))
        self.last = self.last_from_phone = now
        if self.relay.lost():
            self.relay.stats.add("udp_packets_lost")
            return
        self.relay.stats.add("udp_packets_to_pi")
        self.relay.later(self._send, data)

    def _send(self, data):
        if self.transport and not self.transport.is_closing():
            self.transport.sendto(data)

    def error_received(self, exc):
        pass  # an ICMP error from the Pi's side; the flow stays until idle

    def idle_for(self, now):
        ref = self.last_from_phone if self.relay.settings.idle_from_phone_only else self.last
        return now - ref

    def close(self):
        if self.transport:
            self.transport.close()


class UdpPort(asyncio.DatagramProtocol):
    """The edge-side socket for one UDP port of the Pi's address."""

    def __init__(self, relay, port):
        self.relay, self.port, self.transport = relay, port, None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        relay = self.relay
        if not (relay.settings.running and relay.settings.udp):
            relay.stats.add("udp_packets_refused")
            return
        key = (addr, self.port)
        flow = relay.udp_flows.get(key)
        if flow is None:
            flow = UdpFlow(relay, self, addr, self.port)
            relay.udp_flows[key] = flow
            asyncio.ensure_future(relay.open_udp_flow(flow))
        if flow.transport is None:
            flow.pending.append(data)
        else:
            flow.send_to_pi(data)

    def send_to_phone(self, data, addr):
        if self.transport and not self.transport.is_closing():
            self.transport.sendto(data, addr)

    def error_received(self, exc):
        pass


class Relay:
    def __init__(self, args):
        self.args = args
        self.settings = Settings(args)
        self.stats = Stats()
        self.netns = Netns(args.home_netns)
        self.udp_flows = {}
        self.tcp_tasks = set()
        self.tcp_writers = set()
        self.rng = random.Random(args.seed)
        self.loop = asyncio.get_running_loop()

    def lost(self):
        return self.settings.loss > 0 and self.rng.random() < self.settings.loss

    def later(self, fn, *a):
        if self.settings.delay > 0:
            self.loop.call_later(self.settings.delay, fn, *a)
        else:
            fn(*a)

    async def start(self):
        a = self.args
        for port in a.udp:
            await self.loop.create_datagram_endpoint(
                lambda port=port: UdpPort(self, port), local_addr=(a.listen, port))
        for port in a.tcp:
            await asyncio.start_server(
                lambda r, w, port=port: self.tcp_accepted(r, w, port), a.listen, port)
        asyncio.ensure_future(self.sweep())
        if a.control:
            if os.path.exists(a.control):
                os.unlink(a.control)
            await asyncio.start_unix_server(self.control, a.control)
        log(f"carrying {a.listen} tcp {len(a.tcp)} ports, udp {len(a.udp)} ports "
            f"to {a.target} (udp {'on' if self.settings.udp else 'off'}, "
            f"delay {a.delay_ms} ms each way, loss {a.loss_pct} %, udp idle {a.udp_idle_s} s)")
        print("ready", flush=True)

    async def open_udp_flow(self, flow):
        try:
            sock = self.netns.socket(socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind((self.args.target, 0))
            sock.connect((self.args.target, flow.port))
            await self.loop.create_datagram_endpoint(lambda: flow, sock=sock)
        except OSError as e:
            log(f"udp flow {flow.phone[0]}:{flow.phone[1]} -> :{flow.port}: cannot open: {e}")
            self.udp_flows.pop((flow.phone, flow.port), None)
            return
        self.stats.add("udp_flows_opened")
        log(f"udp flow {flow.phone[0]}:{flow.phone[1]} -> :{flow.port} opened "
            f"from {flow.origin[0]}:{flow.origin[1]}")
        for data in flow.pending:
            flow.send_to_pi(data)
        flow.pending = []

    def close_udp_flows(self, why):
        for key, flow in list(self.udp_flows.items()):
            log(f"udp flow {key[0][0]}:{key[0][1]} -> :{key[1]} closed: {why}")
            flow.close()
        self.udp_flows.clear()

    async def sweep(self):
        while True:
            await asyncio.sleep(min(1.0, self.settings.idle / 4))
            now = time.monotonic()
            for key, flow in list(self.udp_flows.items()):
                idle = flow.idle_for(now)
                if flow.transport is not None and idle >= self.settings.idle:
                    log(f"udp flow {key[0][0]}:{key[0][1]} -> :{key[1]} dropped after "
                        f"{idle:.0f} s idle")
                    self.stats.add("udp_flows_idle_dropped")
                    flow.close()
                    del self.udp_flows[key]

    async def tcp_accepted(self, reader, writer, port):
        task = asyncio.current_task()
        self.tcp_tasks.add(task)
        try:
            await self._tcp(reader, writer, port)
        finally:
            self.tcp_tasks.discard(task)

    async def _tcp(self, reader, writer, port):
        phone = writer.get_extra_info("peername")
        if not self.settings.running:
            # The edge answers, but there is no connector behind it.
            self.stats.add("tcp_refused")
            writer.close()
            return
        try:
            sock = self.netns.socket(socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.bind((self.args.target, 0))
            await asyncio.wait_for(self.loop.sock_connect(sock, (self.args.target, port)), 10)
            pr, pw = await asyncio.open_connection(sock=sock)
        except (OSError, asyncio.TimeoutError) as e:
            log(f"tcp {phone[0]}:{phone[1]} -> :{port}: cannot reach the Pi: {e!r}")
            self.stats.add("tcp_refused")
            writer.close()
            return
        self.stats.add("tcp_connections")
        origin = pw.get_extra_info("sockname")
        log(f"tcp {phone[0]}:{phone[1]} -> :{port} opened from {origin[0]}:{origin[1]}")
        self.tcp_writers.update((writer, pw))
        try:
            await asyncio.gather(self._pipe(reader, pw, "tcp_bytes_to_pi"),
                                 self._pipe(pr, writer, "tcp_bytes_to_phone"))
        finally:
            for w in (writer, pw):
                self.tcp_writers.discard(w)
                w.close()

    async def _pipe(self, reader, writer, counter):
        """Copies one direction, each chunk held back by the delay in force
        when it was read; the order is kept."""
        queue = asyncio.Queue()

        async def feed():
            try:
                while data := await reader.read(65536):
                    await queue.put((time.monotonic() + self.settings.delay, data))
            except OSError:
                pass
            await queue.put((0, None))

        feeder = asyncio.ensure_future(feed())
        try:
            while True:
                due, data = await queue.get()
                if data is None:
                    if writer.can_write_eof():
                        writer.write_eof()
                    break
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                self.stats.add(counter, len(data))
                await writer.drain()
        except OSError:
            pass
        finally:
            feeder.cancel()

    def stop_flows(self, why):
        self.close_udp_flows(why)
        for w in list(self.tcp_writers):
            w.transport.abort()
        self.tcp_writers.clear()

    def command(self, line):
        s = self.settings
        words = line.split()
        match words:
            case ["stats"]:
                pass
            case ["udp", "on"]:
                s.udp = True
            case ["udp", "off"]:
                s.udp = False
                self.close_udp_flows("udp turned off")
            case ["delay", ms]:
                s.delay = float(ms) / 1000.0
            case ["loss", pct]:
                s.loss = float(pct) / 100.0
            case ["stop"]:
                s.running = False
                self.stop_flows("relay stopped")
            case ["start"]:
                s.running = True
            case _:
                return {"error": f"unknown command {line!r}"}
        if words != ["stats"]:
            log(f"control: {line}")
        return {"udp": s.udp, "running": s.running, "delay_ms": s.delay * 1000,
                "loss_pct": s.loss * 100, "udp_idle_s": s.idle,
                "udp_flows": len(self.udp_flows), **self.stats}

    async def control(self, reader, writer):
        try:
            while line := (await reader.readline()).decode().strip():
                try:
                    reply = self.command(line)
                except ValueError as e:
                    reply = {"error": f"{line!r}: {e}"}
                writer.write((json.dumps(reply) + "\n").encode())
                await writer.drain()
        finally:
            writer.close()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", required=True, help="address the phone reaches (the Pi's)")
    p.add_argument("--target", required=True, help="the Pi's address, bound and dialled in its namespace")
    p.add_argument("--home-netns", help="the Pi's network namespace, such as /run/netns/home")
    p.add_argument("--tcp", type=parse_ports, default=[], help="TCP ports, such as 8080,50000-50009")
    p.add_argument("--udp", type=parse_ports, default=[], help="UDP ports")
    p.add_argument("--no-udp", action="store_true", help="carry no UDP (QUIC blocked)")
    p.add_argument("--udp-idle-s", type=float, default=210.0, help="drop a UDP flow idle this long")
    p.add_argument("--idle-counts", choices=("both", "phone"), default="both",
                   help="which packets keep a UDP flow alive: both directions or the phone's only")
    p.add_argument("--delay-ms", type=float, default=0.0, help="delay added each way")
    p.add_argument("--loss-pct", type=float, default=0.0, help="UDP packets dropped, each way")
    p.add_argument("--seed", type=int, default=None, help="seed of the loss draws")
    p.add_argument("--control", help="Unix socket for commands while running")
    return p.parse_args(argv)


async def main(argv=None):
    relay = Relay(parse_args(argv))
    await relay.start()
    done = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        relay.loop.add_signal_handler(sig, done.set)
    await done.wait()
    relay.stop_flows("relay ending")
    log(f"ending: {json.dumps(relay.stats)}")


if __name__ == "__main__":
    asyncio.run(main())
