"""Helpers for the daemon-mode end-to-end tests (test_daemon_*.py), on top of netlab.py,
responder.py and groundtruth.py, which are reused as they are.

What this adds:
  * Daemon: flowlatd in daemon mode inside the client namespace, with a YAML file written
    by the test, HTTP on 127.0.0.1:PORT of that namespace's own loopback, and checks that
    the Popen pid is flowlatd itself (so signals reach it, not an `ip netns exec` wrapper).
  * http_get(): HTTP from inside a namespace (the socket is made there, then used here).
  * parse_metrics()/Metrics: a strict reader of the Prometheus text format, so tests look
    up samples by name and labels instead of grepping.
  * Prometheus: a real /usr/bin/prometheus in the client namespace, and its query API.
  * More peers: extra responder addresses (198.18.0.3, fd00::3) with static neighbour
    entries, and connect() to any of them (Lab.connect only knows 198.18.0.2/fd00::2).
  * Veth: a second veth pair with addresses and its own responder, added and removed
    while flowlatd runs (interface globs, vanished interfaces).

Only 198.18.0.0/15 and fd00::/8 addresses are used, all inside the test's namespaces.
Every process and namespace is registered with netlab's cleanup (try/finally + atexit).
"""
from __future__ import annotations

import gzip
import http.client
import json
import math
import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Optional

import netlab as N
import responder as R

METRICS_PORT = 10435
PROMETHEUS_PORT = 9090
GROUP_V4, GROUP_V6 = "198.18.0.3", "fd00::3"  # extra responder addresses, put in a peer group
PEER = {4: N.PEER_V4, 6: N.PEER_V6}
GROUP_PEER = {4: GROUP_V4, 6: GROUP_V6}


# --------------------------------------------------------------------------- config files

def write_file(lab: N.Lab, name: str, text: str) -> str:
    path = os.path.join(lab.tmpdir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


# --------------------------------------------------------------------------- HTTP in a namespace

@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def http_get(ns: str, port: int, path: str, headers: Optional[dict[str, str]] = None,
             timeout: float = 5.0) -> Response:
    """GET http://127.0.0.1:port/path from inside namespace `ns`. Without an explicit
    Accept-Encoding, http.client sends `identity`, so the body comes uncompressed."""
    with N.netns(ns):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.connect()  # the socket is created here, inside the namespace
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
    finally:
        conn.close()


# --------------------------------------------------------------------------- exposition format

_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+-?\d+)?$")
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def _unescape(v: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}.get(m.group(1), m.group(0)), v)


def _parse_labels(text: str, line: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        m = _LABEL_RE.match(text, pos)
        if not m:
            raise AssertionError(f"cannot parse labels in exposition line: {line!r}")
        if m.group(1) in labels:
            raise AssertionError(f"label {m.group(1)} repeated in: {line!r}")
        labels[m.group(1)] = _unescape(m.group(2))
        pos = m.end()
    return labels


def _value(text: str, line: str) -> float:
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    try:
        return float(text)
    except ValueError:
        raise AssertionError(f"bad sample value in exposition line: {line!r}") from None


@dataclass
class Sample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass
class Histogram:
    labels: dict[str, str]
    buckets: list[tuple[float, float]]  # (le, cumulative count), sorted by le, +Inf last
    sum: float
    count: float

    def per_bucket(self) -> dict[float, float]:
        """Non-cumulative count per upper bound."""
        out, prev = {}, 0.0
        for le, c in self.buckets:
            out[le] = c - prev
            prev = c
        return out


@dataclass
class Metrics:
    text: str
    samples: list[Sample]
    types: dict[str, str] = field(default_factory=dict)
    helps: dict[str, str] = field(default_factory=dict)

    def find(self, name: str, **labels: str) -> list[Sample]:
        return [s for s in self.samples
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]

    def value(self, name: str, default: Optional[float] = None, **labels: str) -> Optional[float]:
        """The one sample matching; `default` when none; an error when several match."""
        found = self.find(name, **labels)
        if not found:
            return default
        if len(found) > 1:
            raise AssertionError(f"{name}{labels} matches {len(found)} samples: {[s.labels for s in found]}")
        return found[0].value

    def histogram(self, base: str, **labels: str) -> Optional[Histogram]:
        """The histogram whose series labels (without le) are exactly `labels`."""
        def exact(s: Sample, drop: tuple = ()) -> bool:
            return {k: v for k, v in s.labels.items() if k not in drop} == labels
        buckets = sorted((float(s.labels["le"].replace("Inf", "inf")), s.value)
                         for s in self.samples if s.name == base + "_bucket" and exact(s, ("le",)))
        sums = [s.value for s in self.samples if s.name == base + "_sum" and exact(s)]
        counts = [s.value for s in self.samples if s.name == base + "_count" and exact(s)]
        if not buckets and not sums and not counts:
            return None
        if len(sums) != 1 or len(counts) != 1 or not buckets:
            raise AssertionError(f"{base}{labels}: incomplete histogram ({len(buckets)} buckets,"
                                 f" {len(sums)} _sum, {len(counts)} _count)")
        return Histogram(labels, buckets, sums[0], counts[0])

    def label_sets(self, name: str, drop: tuple = ()) -> set[tuple]:
        return {tuple(sorted((k, v) for k, v in s.labels.items() if k not in drop))
                for s in self.samples if s.name == name}


def parse_metrics(text: str) -> Metrics:
    m = Metrics(text, [])
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] == "TYPE":
                m.types[parts[2]] = parts[3] if len(parts) > 3 else ""
            elif len(parts) >= 3 and parts[1] == "HELP":
                m.helps[parts[2]] = parts[3] if len(parts) > 3 else ""
            continue
        sm = _SAMPLE_RE.match(line)
        if not sm:
            raise AssertionError(f"cannot parse exposition line: {line!r}")
        m.samples.append(Sample(sm.group(1), _parse_labels(sm.group(2) or "", line), _value(sm.group(3), line)))
    return m


def promtool_check_metrics(text: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                          timeout=30)


def bucket_of(bounds: list[float], value_s: float) -> float:
    """The `le` of the bucket a value lands in (Prometheus: first bound >= value)."""
    for b in bounds:
        if value_s <= b:
            return b
    return math.inf


# --------------------------------------------------------------------------- flowlatd

class Daemon(N.Proc):
    """flowlatd in daemon mode, run in a namespace of the lab; signals go to flowlatd itself."""

    def __init__(self, lab: N.Lab, config: Optional[str], args: tuple = (), ns: Optional[str] = None,
                 port: int = METRICS_PORT, listen: bool = True, prefix: tuple = ()):
        """prefix: a command that ends by exec-ing its arguments (the pid must stay flowlatd's)."""
        self.lab, self.ns, self.port = lab, ns or lab.client_ns, port
        cmd = [N.flowlatd_path()]
        if config:
            cmd.append(f"--config.file={config}")
        if listen:
            cmd.append(f"--web.listen-address=127.0.0.1:{port}")
        cmd += list(args)
        super().__init__([*prefix, *lab.exec_cmd(self.ns, cmd)], "flowlatd")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 15) -> None:
        if not self.wait_stderr("ready:", timeout):
            rc = self.proc.poll()
            raise AssertionError(f"flowlatd did not log 'ready:' within {timeout}s (exit={rc});"
                                 f" cmd={' '.join(self.cmd)}\nstderr:\n{self.stderr_text()}")
        # `ip netns exec` execs the command, so the child we hold must be flowlatd itself.
        exe = os.readlink(f"/proc/{self.pid}/exe")
        want = os.path.realpath(N.flowlatd_path())
        if exe != want:
            raise AssertionError(f"pid {self.pid} is {exe}, not {want}: signals would miss flowlatd")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_count(self) -> int:
        with self._cv:
            return len(self.stderr)

    def wait_log(self, needle: str, since: int, timeout: float) -> Optional[str]:
        """The first stderr line at index >= since that contains `needle`."""
        def found() -> Optional[str]:
            return next((l for _, l in self.stderr[since:] if needle in l), None)
        self.wait_for(lambda: found() is not None or self.proc.poll() is not None, timeout)
        with self._cv:
            return found()

    def kill(self, sig: int) -> None:
        """Signal flowlatd itself (our own child, by pid)."""
        os.kill(self.pid, sig)

    def get(self, path: str, headers: Optional[dict[str, str]] = None) -> Response:
        return http_get(self.ns, self.port, path, headers)

    def scrape(self) -> Metrics:
        r = self.get("/metrics")
        if r.status != 200:
            raise AssertionError(f"/metrics answered {r.status}: {r.text[:500]}")
        return parse_metrics(r.text)

    def wait_metrics(self, pred, timeout: float, what: str) -> Metrics:
        """Scrape until pred(metrics) is true; the last scrape either way."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.scrape()
            if pred(m) or time.monotonic() > deadline:
                return m
            time.sleep(0.2)

    def check_clean_exit(self, chk: N.Checker) -> float:
        """SIGTERM, and a check that flowlatd exits 0 in time; the seconds it took."""
        rc, took = self.terminate_timed()
        chk.check(rc == 0, f"flowlatd exit code after SIGTERM: {rc}\n{self.stderr_text()[-2000:]}")
        return took

    def terminate_timed(self, sig: int = signal.SIGTERM, limit: float = 10) -> tuple[Optional[int], float]:
        """Send `sig`, wait up to `limit` s; (exit code or None if it had to be killed, seconds taken)."""
        t0 = time.monotonic()
        self.kill(sig)
        try:
            rc = self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            rc = None
        took = time.monotonic() - t0
        self.stop()  # kills if still running, joins the readers
        return rc, took


def config_check(lab: N.Lab, path: str) -> subprocess.CompletedProcess:
    return N.run([N.flowlatd_path(), "--config.check", f"--config.file={path}"], check=False)


# --------------------------------------------------------------------------- peers and handshakes

def add_group_peers(lab: N.Lab) -> None:
    """Static neighbours for the extra responder addresses (on the responder veth's MAC)."""
    for addr in (GROUP_V4, GROUP_V6):
        N.run(["ip", "-n", lab.client_ns, "neigh", "replace", addr, "lladdr", lab.peer_mac,
               "dev", lab.client_if, "nud", "permanent"])


def start_responder(lab: N.Lab, plans: dict[int, R.PortPlan], ifname: Optional[str] = None,
                    mac: Optional[str] = None, addrs: Optional[list[str]] = None) -> R.Responder:
    with N.netns(lab.peer_ns):
        sock = R.open_packet_socket(ifname or lab.peer_if)
    resp = R.Responder(sock, mac or lab.peer_mac,
                       addrs or [N.PEER_V4, N.PEER_V6, GROUP_V4, GROUP_V6], plans).start()
    N._open_resources.append(resp)
    return resp


def connect(lab: N.Lab, local: str, peer: str, port: int, timeout: float) -> N.Connect:
    """Lab.connect() towards any peer address: a real kernel connect(), closed with RST."""
    family = 6 if ":" in peer else 4
    s = lab.client_socket(family)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        s.bind((local, 0))
        lport = s.getsockname()[1]
        s.settimeout(timeout)
        t0 = time.monotonic()
        try:
            s.connect((peer, port))
            result = "connected"
        except ConnectionRefusedError:
            result = "refused"
        except (socket.timeout, TimeoutError):
            result = "timeout"
        return N.Connect(family, local, lport, peer, port, result, time.monotonic() - t0)
    finally:
        s.close()


class Veth:
    """An extra veth pair between the lab's namespaces, with addresses on the client side
    (198.18.<n>.1/24, fd00:<n>::1/64) and a responder on the peer side (<n>.2, ::2)."""

    def __init__(self, lab: N.Lab, client_if: str, peer_if: str, n: int, plans: dict[int, R.PortPlan]):
        self.lab, self.client_if, self.peer_if = lab, client_if, peer_if
        self.local = {4: f"198.18.{n}.1", 6: f"fd00:{n}::1"}
        self.peer = {4: f"198.18.{n}.2", 6: f"fd00:{n}::2"}
        lab.add_client_veth(client_if, peer_if)
        N.run(["ip", "-n", lab.client_ns, "addr", "add", f"{self.local[4]}/24", "dev", client_if])
        N.run(["ip", "-n", lab.client_ns, "addr", "add", f"{self.local[6]}/64", "dev", client_if, "nodad"])
        self.peer_mac = N.Lab.mac(lab.peer_ns, peer_if)
        for addr in self.peer.values():
            N.run(["ip", "-n", lab.client_ns, "neigh", "replace", addr, "lladdr", self.peer_mac,
                   "dev", client_if, "nud", "permanent"])
        self.resp = start_responder(lab, plans, peer_if, self.peer_mac, list(self.peer.values()))

    def delete(self) -> None:
        self.resp.close()
        if self.resp in N._open_resources:
            N._open_resources.remove(self.resp)
        N.run(["ip", "-n", self.lab.client_ns, "link", "del", self.client_if])


# --------------------------------------------------------------------------- Prometheus

class Prometheus(N.Proc):
    """A real Prometheus server in a namespace, scraping flowlatd every second."""

    def __init__(self, lab: N.Lab, targets: list[str], ns: Optional[str] = None, port: int = PROMETHEUS_PORT,
                 job_extra: str = ""):
        """job_extra: more keys of the scrape job (scheme, tls_config, basic_auth), 4-space indented."""
        self.ns, self.port = ns or lab.client_ns, port
        data = os.path.join(lab.tmpdir, "prometheus-data")
        os.makedirs(data, exist_ok=True)
        cfg = write_file(lab, "prometheus.yml", (
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: flowlatd\n    static_configs:\n"
            f"      - targets: {json.dumps(targets)}\n" + job_extra))
        check = N.run(["promtool", "check", "config", cfg], check=False)
        if check.returncode != 0:
            raise AssertionError(f"harness: promtool rejects the Prometheus config:\n{check.stdout}{check.stderr}")
        super().__init__(lab.exec_cmd(self.ns, [
            "/usr/bin/prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h",
            f"--web.console.templates={lab.tmpdir}", f"--web.console.libraries={lab.tmpdir}"]),
            "prometheus")

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                r = http_get(self.ns, self.port, "/-/ready", timeout=2)
                if r.status == 200:
                    return
                last = f"{r.status} {r.text.strip()}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.3)
        raise AssertionError(f"prometheus not ready within {timeout}s (exit={self.proc.poll()}, last: {last})\n"
                             + self.stderr_text()[-3000:])

    def api(self, path: str, **params: str) -> dict:
        q = urllib.parse.urlencode(params)
        r = http_get(self.ns, self.port, f"{path}?{q}" if q else path, timeout=10)
        try:
            doc = json.loads(r.body)
        except json.JSONDecodeError:
            raise AssertionError(f"prometheus {path}: HTTP {r.status}, not JSON: {r.text[:300]}") from None
        if r.status != 200 or doc.get("status") != "success":
            raise AssertionError(f"prometheus {path}?{q}: HTTP {r.status}: {doc}")
        return doc["data"]

    def query(self, promql: str) -> list[dict]:
        data = self.api("/api/v1/query", query=promql)
        if data.get("resultType") != "vector":
            raise AssertionError(f"query {promql!r}: result type {data.get('resultType')}, want vector")
        return data["result"]

    def targets(self) -> list[dict]:
        return self.api("/api/v1/targets")["activeTargets"]

    def close(self) -> None:
        # A gentle stop first, so the TSDB closes cleanly; then netlab's kill.
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        super().close()
