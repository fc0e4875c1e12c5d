#!/usr/bin/env python3
"""Attacks on an HTTP endpoint from one client host, and a scraper that times a normal scrape
while they run (issue 9: "nobody can blind it").

    python3 tests/e2e/web_attacks.py --target 127.0.0.1:10435 --attack slowloris -n 300 -s 20
    ip netns exec NS python3 tests/e2e/web_attacks.py --target '[::1]:10435' --attack wrk -n 200 -s 20

Attacks (each keeps `n` connections going for `s` seconds; a connection the server closes is
opened again at once, so the pressure never drops):
  slowloris  sends a request line, then one more header line every second, never the blank
             line that ends the headers;
  silent     connects and sends nothing (half-open from the server's point of view);
  parallel   opens all `n` at once; each sends one complete GET /metrics, reads the answer
             and then stays open and idle on the kept-alive connection;
  huge       sends headers of 64 KiB and more, as fast as the server takes them;
  wrk        `wrk -c n -d s` on /metrics (keep-alive, as fast as it answers).
Meanwhile the scraper opens a new connection every 0.25 s and times GET /metrics to its
last byte (Connection: close, 10 s limit). The summary (one JSON line on stdout) gives the
scrape latencies, how many attack connections were open at most and, with --pid, the
server's peak RSS. Standard library only; tests import run_attack().
"""
from __future__ import annotations

import argparse
import errno
import json
import resource
import selectors
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Optional


def split_target(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)


def family_of(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


@dataclass
class ScrapeLog:
    latencies: list[float] = field(default_factory=list)  # seconds, answered scrapes
    failures: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)


def scrape_once(host: str, port: int, timeout: float = 10.0, path: str = "/metrics",
                tls: Optional[ssl.SSLContext] = None, headers: str = "") -> tuple[float, int]:
    """Time one GET on a new connection to its last byte; returns (seconds, status)."""
    start = time.monotonic()
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock = tls.wrap_socket(raw, server_hostname=host) if tls else raw
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{headers}\r\n"
        sock.sendall(request.encode())
        data = b""
        while True:
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                raise TimeoutError("no complete answer")
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data.startswith(b"HTTP/1."):
        raise ConnectionError(f"not an HTTP answer: {data[:40]!r}")
    return time.monotonic() - start, int(data[9:12])


def scraper(host: str, port: int, stop: threading.Event, log: ScrapeLog, interval: float = 0.25,
            tls: Optional[ssl.SSLContext] = None, headers: str = "") -> None:
    while not stop.is_set():
        began = time.monotonic()
        try:
            took, status = scrape_once(host, port, tls=tls, headers=headers)
            log.latencies.append(took)
            log.statuses[status] = log.statuses.get(status, 0) + 1
        except Exception as e:  # noqa: BLE001 - every failure is a finding
            log.failures.append(f"{type(e).__name__}: {e}")
        stop.wait(max(0.0, interval - (time.monotonic() - began)))


class Attacker:
    """Keeps `n` attack connections open, in one thread with non-blocking sockets."""

    def __init__(self, kind: str, host: str, port: int, n: int):
        self.kind, self.host, self.port, self.n = kind, host, port, n
        self.sel = selectors.DefaultSelector()
        self.open = 0          # connections established now
        self.peak_open = 0
        self.connects = 0      # connections established in all
        self.connect_errors = 0
        self.closed_by_server = 0
        self.answers: dict[int, int] = {}
        self.state: dict[socket.socket, dict] = {}

    def _start_one(self) -> None:
        s = socket.socket(family_of(self.host), socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex((self.host, self.port))
        if err not in (0, errno.EINPROGRESS):
            self.connect_errors += 1
            s.close()
            return
        self.state[s] = {"connected": False, "since": time.monotonic(), "next": 0.0, "sent": 0, "buf": b""}
        self.sel.register(s, selectors.EVENT_WRITE)

    def _drop(self, s: socket.socket, by_server: bool) -> None:
        st = self.state.pop(s)
        if st["connected"]:
            self.open -= 1
            if by_server:
                self.closed_by_server += 1
        else:
            self.connect_errors += 1
        self.sel.unregister(s)
        s.close()

    def _on_connected(self, s: socket.socket, st: dict) -> None:
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
            self._drop(s, False)
            return
        st["connected"] = True
        self.open += 1
        self.connects += 1
        self.peak_open = max(self.peak_open, self.open)
        self.sel.modify(s, selectors.EVENT_READ)
        if self.kind == "slowloris":
            self._send(s, f"GET /metrics HTTP/1.1\r\nHost: {self.host}\r\n".encode())
            st["next"] = time.monotonic() + 1.0
        elif self.kind == "parallel":
            self._send(s, f"GET /metrics HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        elif self.kind == "huge":
            self._send(s, f"GET /metrics HTTP/1.1\r\nHost: {self.host}\r\n".encode())
            st["next"] = 0.0

    def _send(self, s: socket.socket, data: bytes) -> None:
        try:
            s.send(data)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._drop(s, True)

    def _on_readable(self, s: socket.socket, st: dict) -> None:
        try:
            data = s.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(s, True)
            return
        if not st["buf"] and data.startswith(b"HTTP/1."):
            status = int(data[9:12])
            self.answers[status] = self.answers.get(status, 0) + 1
        st["buf"] = b"x"  # counted; the rest of the body is read and dropped

    def _tick(self, now: float) -> None:
        for s, st in list(self.state.items()):
            if not st["connected"] or s not in self.state:
                continue
            if self.kind == "slowloris" and now >= st["next"]:
                st["sent"] += 1
                self._send(s, f"X-Slow-{st['sent']}: {st['sent']}\r\n".encode())
                st["next"] = now + 1.0
            elif self.kind == "huge" and st["sent"] < 64:
                st["sent"] += 1
                self._send(s, b"X-Huge: " + b"a" * 4096 + b"\r\n")

    def run(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            # Opens up to 200 a round, so a refused flood cannot starve the event loop.
            for _ in range(min(200, max(0, self.n - len(self.state)))):
                self._start_one()
            for key, events in self.sel.select(timeout=0.05):
                s = key.fileobj
                st = self.state.get(s)
                if st is None:
                    continue
                if not st["connected"]:
                    self._on_connected(s, st)
                elif events & selectors.EVENT_READ:
                    self._on_readable(s, st)
            self._tick(time.monotonic())
        for s in list(self.state):
            self._drop(s, False)

    def summary(self) -> dict:
        return {"peak_open": self.peak_open, "connects": self.connects, "connect_errors": self.connect_errors,
                "closed_by_server": self.closed_by_server, "answers": self.answers}


def peak_rss_kib(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def current_rss_kib(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def run_attack(kind: str, target: str, n: int, seconds: float, pid: Optional[int] = None,
               settle: float = 1.0) -> dict:
    """Runs one attack for `seconds` while scraping; the scraper starts after `settle` s, once
    the attack connections are up. Returns the summary."""
    host, port = split_target(target)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, n + 1024)), hard))
    log = ScrapeLog()
    stop = threading.Event()
    attacker = Attacker(kind, host, port, n) if kind != "wrk" else None
    wrk_out = ""
    rss_samples: list[int] = []

    def sample_rss() -> None:
        while pid and not stop.is_set():
            value = current_rss_kib(pid)
            if value:
                rss_samples.append(value)
            stop.wait(0.2)

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    if attacker:
        thread = threading.Thread(target=attacker.run, args=(seconds + settle,), daemon=True)
    else:
        url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/metrics"
        cmd = ["wrk", "-t2", f"-c{n}", f"-d{int(seconds + settle)}s", "--timeout", "5s", url]

        def run_wrk() -> None:
            nonlocal wrk_out
            wrk_out = subprocess.run(cmd, capture_output=True, text=True).stdout

        thread = threading.Thread(target=run_wrk, daemon=True)
    thread.start()
    time.sleep(settle)
    scraping = threading.Thread(target=scraper, args=(host, port, stop, log), daemon=True)
    scraping.start()
    thread.join(seconds + settle + 30)
    stop.set()
    scraping.join(15)
    lat = sorted(log.latencies)
    summary = {
        "attack": kind, "connections": n, "seconds": seconds, "scrapes": len(lat),
        "scrape_failures": len(log.failures), "failure_examples": log.failures[:3],
        "scrape_statuses": log.statuses,
        "scrape_max_s": round(lat[-1], 4) if lat else None,
        "scrape_p50_s": round(lat[len(lat) // 2], 4) if lat else None,
        "scrape_p99_s": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 4) if lat else None,
    }
    if attacker:
        summary["attacker"] = attacker.summary()
    else:
        summary["wrk"] = " | ".join(line.strip() for line in wrk_out.splitlines()
                                    if "Requests/sec" in line or "Latency" in line or "Socket errors" in line
                                    or "Non-2xx" in line or "requests in" in line)
    if pid:
        summary["server_rss_peak_kib_during"] = max(rss_samples) if rss_samples else None
        summary["server_vmhwm_kib"] = peak_rss_kib(pid)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True, help="HOST:PORT or [IPv6]:PORT")
    parser.add_argument("--attack", required=True, choices=["slowloris", "silent", "parallel", "huge", "wrk"])
    parser.add_argument("-n", "--connections", type=int, default=300)
    parser.add_argument("-s", "--seconds", type=float, default=20)
    parser.add_argument("--pid", type=int, help="server pid, for its RSS")
    args = parser.parse_args()
    print(json.dumps(run_attack(args.attack, args.target, args.connections, args.seconds, args.pid)))


if __name__ == "__main__":
    main()
