"""Checks of the test relay itself, on loopback addresses (no namespaces):
echo servers on 127.0.0.1 play the Pi, the relay listens on 127.0.0.2, the
client speaks from 127.0.0.3. Run inside a loopback-only namespace
(scripts/in-netns) as `python3 -m unittest tests/tunnel/test_relay.py`."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PI, EDGE, PHONE = "127.0.0.1", "127.0.0.2", "127.0.0.3"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, \
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
        t.bind((PI, 0))
        port = t.getsockname()[1]
        u.bind((PI, port))
        return port


class EchoServers:
    """UDP and TCP echo on one port of PI; each answer is the data followed by
    the sender's address as the server saw it."""

    def __init__(self):
        self.port = free_port()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((PI, self.port))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((PI, self.port))
        self.tcp.listen()
        self.udp_peers = []
        for fn in (self._udp, self._tcp):
            threading.Thread(target=fn, daemon=True).start()

    def _udp(self):
        while True:
            data, addr = self.udp.recvfrom(65536)
            self.udp_peers.append(addr)
            self.udp.sendto(data + f" {addr[0]}:{addr[1]}".encode(), addr)

    def _tcp(self):
        while True:
            conn, addr = self.tcp.accept()
            threading.Thread(target=self._tcp_conn, args=(conn, addr), daemon=True).start()

    def _tcp_conn(self, conn, addr):
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data + f" {addr[0]}:{addr[1]}".encode())


class RelayTest(unittest.TestCase):
    def start_relay(self, *extra):
        self.echo = EchoServers()
        self.ctl = os.path.join(tempfile.mkdtemp(), "ctl")
        args = [sys.executable, os.path.join(HERE, "relay.py"), "--listen", EDGE,
                "--target", PI, "--tcp", str(self.echo.port), "--udp", str(self.echo.port),
                "--control", self.ctl, "--seed", "1", *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(self.stop_relay)
        self.assertEqual(self.proc.stdout.readline().strip(), "ready", "the relay did not start")
        self.client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.client.bind((PHONE, 0))
        self.client.settimeout(1.0)
        self.addCleanup(self.client.close)

    def stop_relay(self):
        self.proc.terminate()
        self.proc.communicate(timeout=5)

    def control(self, cmd):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.ctl)
            s.sendall(cmd.encode() + b"\n")
            return json.loads(s.makefile().readline())

    def udp_ask(self, data=b"ping"):
        self.client.sendto(data, (EDGE, self.echo.port))
        try:
            return self.client.recvfrom(65536)[0].decode()
        except socket.timeout:
            return None

    def tcp_ask(self, data=b"ping"):
        with socket.create_connection((EDGE, self.echo.port), timeout=2) as c:
            c.sendall(data)
            return c.recv(65536).decode()

    def test_udp_is_re_originated_from_the_pi_address(self):
        self.start_relay()
        reply = self.udp_ask()
        self.assertIsNotNone(reply, "no UDP answer through the relay")
        data, seen = reply.split()
        self.assertEqual(data, "ping")
        self.assertEqual(seen.split(":")[0], PI, "the Pi saw the phone's address, not its own")
        # The same phone port keeps the same flow, so the same origin port.
        time.sleep(0.3)
        self.assertEqual(self.udp_ask().split()[1], seen)
        stats = self.control("stats")
        self.assertEqual(stats["udp_flows_opened"], 1)
        self.assertGreaterEqual(stats["udp_longest_phone_silence_s"], 0.3)

    def test_tcp_is_re_originated_from_the_pi_address(self):
        self.start_relay()
        data, seen = self.tcp_ask().split()
        self.assertEqual(data, "ping")
        self.assertEqual(seen.split(":")[0], PI)

    def test_idle_udp_flow_is_dropped_and_a_new_one_opened(self):
        self.start_relay("--udp-idle-s", "0.5")
        first = self.udp_ask().split()[1]
        self.assertEqual(self.udp_ask().split()[1], first, "a busy flow was replaced")
        time.sleep(1.5)
        second = self.udp_ask().split()[1]
        self.assertNotEqual(second, first, "the idle flow was kept")
        stats = self.control("stats")
        self.assertEqual(stats["udp_flows_idle_dropped"], 1)
        self.assertEqual(stats["udp_flows_opened"], 2)

    def test_traffic_from_the_pi_alone_keeps_a_flow_only_when_both_count(self):
        for counts, dropped in (("both", 0), ("phone", 1)):
            with self.subTest(idle_counts=counts):
                self.start_relay("--udp-idle-s", "0.6", "--idle-counts", counts)
                self.udp_ask()
                origin = self.echo.udp_peers[-1]
                for _ in range(12):  # the Pi talks, the phone stays silent
                    self.echo.udp.sendto(b"keepalive", origin)
                    time.sleep(0.1)
                self.assertEqual(self.control("stats")["udp_flows_idle_dropped"], dropped)
                self.doCleanups()

    def test_udp_off_carries_tcp_only(self):
        self.start_relay("--no-udp")
        self.assertIsNone(self.udp_ask())
        self.assertTrue(self.tcp_ask().startswith("ping "))
        self.assertGreater(self.control("stats")["udp_packets_refused"], 0)
        self.control("udp on")
        self.assertIsNotNone(self.udp_ask())
        self.control("udp off")
        self.assertIsNone(self.udp_ask())

    def test_delay_is_added_each_way(self):
        self.start_relay("--delay-ms", "150")
        t = time.monotonic()
        self.assertIsNotNone(self.udp_ask())
        self.assertGreaterEqual(time.monotonic() - t, 0.3)
        with socket.create_connection((EDGE, self.echo.port), timeout=2) as c:
            time.sleep(0.2)  # the connection is set up
            t = time.monotonic()
            c.sendall(b"x")
            c.recv(100)
            self.assertGreaterEqual(time.monotonic() - t, 0.3)
        self.control("delay 0")
        t = time.monotonic()
        self.udp_ask()
        self.assertLess(time.monotonic() - t, 0.3)

    def test_loss_is_counted(self):
        self.start_relay("--loss-pct", "20")
        self.client.settimeout(0.5)
        sent, got = 400, 0

        def receive():
            nonlocal got
            while True:
                try:
                    self.client.recvfrom(65536)
                    got += 1
                except socket.timeout:
                    return

        reader = threading.Thread(target=receive)
        reader.start()
        for i in range(sent):
            self.client.sendto(b"%d" % i, (EDGE, self.echo.port))
            time.sleep(0.001)
        reader.join()
        stats = self.control("stats")
        lost = stats["udp_packets_lost"]
        # 20 % each way: about 36 % of round trips fail.
        self.assertTrue(0.2 * sent < sent - got < 0.5 * sent, f"{got} of {sent} came back")
        self.assertEqual(got + lost, sent, stats)

    def test_stop_and_start(self):
        self.start_relay()
        self.assertIsNotNone(self.udp_ask())
        with socket.create_connection((EDGE, self.echo.port), timeout=2) as held:
            held.sendall(b"a")
            held.recv(100)
            self.control("stop")
            held.settimeout(2)
            try:
                self.assertEqual(held.recv(100), b"", "a connection outlived the stop")
            except ConnectionResetError:
                pass
        self.assertIsNone(self.udp_ask())
        with socket.create_connection((EDGE, self.echo.port), timeout=2) as c:
            c.sendall(b"x")
            c.settimeout(2)
            try:
                self.assertEqual(c.recv(100), b"")
            except ConnectionResetError:
                pass
        self.control("start")
        self.assertIsNotNone(self.udp_ask())
        self.assertTrue(self.tcp_ask().startswith("ping "))


if __name__ == "__main__":
    unittest.main()
