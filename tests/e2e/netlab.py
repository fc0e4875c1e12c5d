"""Network-namespace harness for flowlatd's end-to-end tests (tier 3, root only).

A Lab is two fresh network namespaces joined by one veth pair, created directly inside
the namespaces so that nothing appears in the host's namespace:

    client namespace                      responder namespace
    flc0  198.18.0.1/24  fd00::1/64  <->  flr0  (no IP address, IPv6 disabled)

flowlatd runs on flc0. The responder side has no address, so its kernel never answers;
Python code answers there through AF_PACKET (see responder.py). The client side holds
static neighbour entries for the responder's addresses 198.18.0.2 and fd00::2, so no
ARP or neighbour discovery is needed. Only 198.18.0.0/15 and fd00::/8 are used.

Cleanup is guaranteed three ways: every Lab is closed in a finally block, an atexit hook
closes whatever is still open, and SIGTERM/SIGHUP (ctest's timeout) become SystemExit so
both run. Namespaces left by a crashed earlier run are removed at start when the pid in
their name no longer exists.
"""
from __future__ import annotations

import atexit
import ctypes
import datetime as dt
import decimal
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

NS_PREFIX = "fle2e-"
CLIENT_IF = "flc0"
RESPONDER_IF = "flr0"
CLIENT_V4, PEER_V4 = "198.18.0.1", "198.18.0.2"
CLIENT_V6, PEER_V6 = "fd00::1", "fd00::2"
ADDRS = {4: (CLIENT_V4, PEER_V4), 6: (CLIENT_V6, PEER_V6)}
FAMILY_NAME = {4: "ipv4", 6: "ipv6"}

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
# This thread's namespace at import time: the one to return to after a setns().
_HOME_NS_FD = os.open("/proc/thread-self/ns/net", os.O_RDONLY)

_open_resources: list = []


# --------------------------------------------------------------------------- basics

def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd: list[str], check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.strip()}")
    return proc


def flowlatd_path() -> str:
    """$FLOWLATD (set by ctest), else a build directory next to the sources."""
    path = os.environ.get("FLOWLATD")
    if not path:
        root = Path(os.environ.get("FLOWLAT_SOURCE_DIR", Path(__file__).resolve().parents[2]))
        for cand in (root / "build-e2e" / "flowlatd", root / "build" / "flowlatd"):
            if cand.exists():
                path = str(cand)
                break
    if not path or not os.access(path, os.X_OK):
        fail_hard(f"flowlatd binary not found (FLOWLATD={path!r}); build it and set FLOWLATD")
    return path


def require_root_tools() -> None:
    if os.geteuid() != 0:
        fail_hard("end-to-end tests need root (network namespaces, BPF)")
    for tool in ("ip", "tc", "dumpcap", "tshark", "bpftool"):
        if shutil.which(tool) is None:
            fail_hard(f"required tool not found on PATH: {tool}")


def fail_hard(msg: str) -> None:
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def _on_signal(signum, _frame):
    print(f"FAIL: interrupted by signal {signum}; cleaning up", file=sys.stderr, flush=True)
    raise SystemExit(128 + signum)


def _close_all() -> None:
    while _open_resources:
        res = _open_resources.pop()
        try:
            res.close()
        except Exception as exc:  # keep closing the rest
            print(f"cleanup: {exc}", file=sys.stderr)


atexit.register(_close_all)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGHUP, _on_signal)


def remove_stale_namespaces() -> None:
    """Delete fle2e-<pid>-* namespaces whose creating process is gone."""
    for name in run(["ip", "netns", "list"], check=False).stdout.split():
        m = re.match(rf"{NS_PREFIX}(\d+)-", name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            run(["ip", "netns", "del", name], check=False)


# --------------------------------------------------------------------------- namespaces

@contextmanager
def netns(name: str):
    """Run the body with this thread in namespace `name`; sockets made inside stay there."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
        try:
            yield
        finally:
            if _libc.setns(_HOME_NS_FD, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                # Staying in a test namespace would make every later step lie; stop here.
                os.write(2, f"FATAL: cannot return from namespace {name}: {os.strerror(err)}\n".encode())
                os._exit(3)
    finally:
        os.close(fd)


def socket_in(ns: str, family: int, type_: int, proto: int = 0) -> socket.socket:
    with netns(ns):
        return socket.socket(family, type_, proto)


class Lab:
    """Two namespaces and a veth pair; see the module docstring."""

    def __init__(self, tag: str):
        remove_stale_namespaces()
        base = f"{NS_PREFIX}{os.getpid()}-{tag}"
        self.client_ns, self.peer_ns = f"{base}-c", f"{base}-r"
        self.client_if, self.peer_if = CLIENT_IF, RESPONDER_IF
        self._created: list[str] = []
        self.tmpdir = tempfile.mkdtemp(prefix=f"{base}-")
        _open_resources.append(self)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        for ns in (self.client_ns, self.peer_ns):
            run(["ip", "netns", "add", ns])
            self._created.append(ns)
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", self.client_ns, "link", "add", self.client_if, "type", "veth",
             "peer", "name", self.peer_if, "netns", self.peer_ns])
        # The responder kernel must stay silent: no addresses, no IPv6 at all.
        self.sysctl(self.peer_ns, f"net.ipv6.conf.{self.peer_if}.disable_ipv6", "1")
        run(["ip", "-n", self.client_ns, "addr", "add", f"{CLIENT_V4}/24", "dev", self.client_if])
        run(["ip", "-n", self.client_ns, "addr", "add", f"{CLIENT_V6}/64", "dev", self.client_if, "nodad"])
        for ns, ifname in ((self.client_ns, self.client_if), (self.peer_ns, self.peer_if)):
            run(["ip", "-n", ns, "link", "set", ifname, "up"])
        self.peer_mac = self.mac(self.peer_ns, self.peer_if)
        self.client_mac = self.mac(self.client_ns, self.client_if)
        for addr in (PEER_V4, PEER_V6):
            run(["ip", "-n", self.client_ns, "neigh", "replace", addr, "lladdr", self.peer_mac,
                 "dev", self.client_if, "nud", "permanent"])
        self.wait_link_up()

    @staticmethod
    def sysctl(ns: str, key: str, value: str) -> None:
        run(["ip", "netns", "exec", ns, "sysctl", "-qw", f"{key}={value}"])

    @staticmethod
    def mac(ns: str, ifname: str) -> str:
        info = json.loads(run(["ip", "-n", ns, "-j", "link", "show", "dev", ifname]).stdout)
        return info[0]["address"]

    def wait_link_up(self, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = json.loads(run(["ip", "-n", self.client_ns, "-j", "link", "show", "dev", self.client_if]).stdout)
            if "LOWER_UP" in info[0].get("flags", []) and info[0].get("operstate") == "UP":
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.client_if} did not come up")

    def add_client_veth(self, ifname: str, peer_ifname: str) -> None:
        """A second veth pair between the same namespaces (no addresses), for multi-interface runs."""
        run(["ip", "-n", self.client_ns, "link", "add", ifname, "type", "veth",
             "peer", "name", peer_ifname, "netns", self.peer_ns])
        self.sysctl(self.peer_ns, f"net.ipv6.conf.{peer_ifname}.disable_ipv6", "1")
        run(["ip", "-n", self.client_ns, "link", "set", ifname, "up"])
        run(["ip", "-n", self.peer_ns, "link", "set", peer_ifname, "up"])

    def exec_cmd(self, ns: str, cmd: list[str]) -> list[str]:
        return ["ip", "netns", "exec", ns, *cmd]

    def close(self) -> None:
        if self in _open_resources:
            _open_resources.remove(self)
        # Processes started inside are owned by their own objects, which registered
        # later and were closed first; deleting the namespace removes the veth pair.
        while self._created:
            ns = self._created.pop()
            run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    # ---- convenience for the client side

    def client_socket(self, family: int, type_: int = socket.SOCK_STREAM) -> socket.socket:
        return socket_in(self.client_ns, socket.AF_INET if family == 4 else socket.AF_INET6, type_)

    def connect(self, family: int, port: int, timeout: float, local_port: int = 0) -> "Connect":
        """A real kernel client connect() to the responder; closes with RST (SO_LINGER 0),
        so the same local_port can be reused at once."""
        local, peer = ADDRS[family]
        s = self.client_socket(family)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((local, local_port))  # bind first so the port is known even when connect fails
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
            return Connect(family, local, lport, peer, port, result, time.monotonic() - t0)
        finally:
            s.close()


@dataclass
class Connect:
    family: int
    local: str
    local_port: int
    peer: str
    peer_port: int
    result: str
    elapsed: float


class Listener:
    """Listeners on the client's addresses that accept and reset whatever arrives."""

    def __init__(self, lab: Lab, port: int):
        self.socks = []
        for family in (4, 6):
            s = lab.client_socket(family)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((ADDRS[family][0], port))
            s.listen(128)
            s.settimeout(0.2)
            self.socks.append(s)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._serve, args=(s,), daemon=True) for s in self.socks]
        for t in self._threads:
            t.start()
        _open_resources.append(self)

    def _serve(self, s: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = s.accept()
            except (socket.timeout, OSError):
                continue
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            conn.close()

    def close(self) -> None:
        if self in _open_resources:
            _open_resources.remove(self)
        self._stop.set()
        for t in self._threads:
            t.join(2)
        for s in self.socks:
            s.close()


# --------------------------------------------------------------------------- BPF attachments

# The bpftool on this machine (7.1) predates TCX: `bpftool net show` lists no TCX
# program and `tc filter show` cannot see them either. So ask the kernel directly with
# BPF_PROG_QUERY, which reports TCX programs and their links per interface.
_SYS_BPF = 321  # x86_64
_BPF_PROG_QUERY = 16
BPF_TCX_INGRESS, BPF_TCX_EGRESS = 46, 47
_libc.syscall.restype = ctypes.c_long


def _tcx_query(ifindex: int, attach_type: int) -> tuple[list[int], list[int]]:
    max_progs = 64
    prog_ids = (ctypes.c_uint32 * max_progs)()
    link_ids = (ctypes.c_uint32 * max_progs)()
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("IIII", attr, 0, ifindex, attach_type, 0, 0)
    struct.pack_into("Q", attr, 16, ctypes.addressof(prog_ids))
    struct.pack_into("I", attr, 24, max_progs)
    struct.pack_into("Q", attr, 40, ctypes.addressof(link_ids))
    if _libc.syscall(_SYS_BPF, _BPF_PROG_QUERY, attr, 64) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"BPF_PROG_QUERY(ifindex {ifindex}, attach type {attach_type}): {os.strerror(err)}")
    (count,) = struct.unpack_from("I", attr, 24)
    return list(prog_ids[:count]), list(link_ids[:count])


def prog_name(prog_id: int) -> Optional[str]:
    """The program's name, or None once it no longer exists."""
    proc = run(["bpftool", "-j", "prog", "show", "id", str(prog_id)], check=False)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout).get("name", "")


def link_exists(link_id: int) -> bool:
    return run(["bpftool", "link", "show", "id", str(link_id)], check=False).returncode == 0


@dataclass
class Attachments:
    tcx: dict[str, list[tuple[int, int, Optional[str]]]]  # "ingress"/"egress" -> (prog_id, link_id, name)
    tc_filters: dict[str, str]                            # "ingress"/"egress" -> `tc filter show` output
    bpftool_net: str = ""  # `bpftool net show dev X`: blind to TCX with bpftool 7.1, kept for clsact and newer tools

    def flowlat(self) -> list[str]:
        """Human-readable flowlat attachments found by either mechanism."""
        found = [f"tcx/{hook} prog {pid} link {lid} ({name})"
                 for hook, entries in self.tcx.items() for pid, lid, name in entries
                 if name and name.startswith("flowlat")]
        found += [f"tc {hook}: {line.strip()}" for hook, text in self.tc_filters.items()
                  for line in text.splitlines() if "flowlat" in line]
        found += [f"bpftool net: {line.strip()}" for line in self.bpftool_net.splitlines() if "flowlat" in line]
        return found


def attachments(ns: str, ifname: str) -> Attachments:
    tcx = {}
    with netns(ns):
        ifindex = socket.if_nametoindex(ifname)
        for hook, at in (("ingress", BPF_TCX_INGRESS), ("egress", BPF_TCX_EGRESS)):
            progs, links = _tcx_query(ifindex, at)
            tcx[hook] = list(zip(progs, links))
    tcx = {hook: [(p, l, prog_name(p)) for p, l in entries] for hook, entries in tcx.items()}
    filters = {}
    for hook in ("ingress", "egress"):
        proc = run(["ip", "netns", "exec", ns, "tc", "filter", "show", "dev", ifname, hook], check=False)
        filters[hook] = proc.stdout + proc.stderr
    net = run(["ip", "netns", "exec", ns, "bpftool", "net", "show", "dev", ifname], check=False).stdout
    return Attachments(tcx, filters, net)


# --------------------------------------------------------------------------- processes

class Proc:
    """A subprocess with its stdout and stderr read line by line, each with its arrival time."""

    def __init__(self, cmd: list[str], name: str, env: Optional[dict] = None):
        self.name, self.cmd = name, cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1,
                                     env=None if env is None else {**os.environ, **env})
        self.stdout: list[tuple[float, str]] = []
        self.stderr: list[tuple[float, str]] = []
        self._cv = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True)]
        for t in self._readers:
            t.start()
        _open_resources.append(self)

    def _read(self, stream, sink) -> None:
        for line in stream:
            with self._cv:
                sink.append((time.time(), line.rstrip("\n")))
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def wait_for(self, pred: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cv:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.1))
            return True

    def wait_stderr(self, needle: str, timeout: float) -> bool:
        return self.wait_for(lambda: any(needle in l for _, l in self.stderr) or self.proc.poll() is not None,
                             timeout) and any(needle in l for _, l in self.stderr)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> Optional[int]:
        """Signal the process (our own child, by pid) and wait; None if it had to be killed."""
        rc: Optional[int] = None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                rc = None
        else:
            rc = self.proc.returncode
        for t in self._readers:
            t.join(5)
        if os.environ.get("E2E_VERBOSE"):
            for _, line in self.stdout + self.stderr:
                log(f"{self.name}: {line}")
        return rc

    def stderr_text(self) -> str:
        return "\n".join(l for _, l in self.stderr)

    def close(self) -> None:
        if self in _open_resources:
            _open_resources.remove(self)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Flowlatd(Proc):
    def __init__(self, lab: Lab, args: list[str], ns: Optional[str] = None, env: Optional[dict] = None):
        self.lab = lab
        super().__init__(lab.exec_cmd(ns or lab.client_ns, [flowlatd_path(), *args]), "flowlatd", env)

    def wait_ready(self, timeout: float = 15) -> None:
        if not self.wait_stderr("ready", timeout):
            rc = self.proc.poll()
            self.close()
            fail_hard(f"flowlatd did not log 'ready' within {timeout}s (exit={rc});"
                      f" cmd={' '.join(self.cmd)}\nstderr:\n{self.stderr_text()}")

    def json_lines(self) -> list[dict]:
        out = []
        for _, line in self.stdout:
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise AssertionError(f"stdout line is not JSON ({exc}): {line!r}")
        return out


class Capture(Proc):
    """dumpcap on one interface of one namespace: the ground truth at the probe's observation point."""

    # libpcap's "tcp" does not follow IPv6 extension headers, so take all of IPv6;
    # tshark then finds TCP behind any header chain and packets without TCP are skipped.
    def __init__(self, lab: Lab, ns: str, ifname: str, bpf_filter: str = "tcp or ip6"):
        self.path = os.path.join(lab.tmpdir, f"{ns}-{ifname}.pcapng")
        super().__init__(lab.exec_cmd(ns, ["dumpcap", "-q", "-i", ifname, "-f", bpf_filter, "-w", self.path]),
                         "dumpcap")
        if not self.wait_stderr("Capturing on", 10):
            fail_hard(f"dumpcap did not start:\n{self.stderr_text()}")
        time.sleep(0.2)

    def packets(self, settle: float = 1.2) -> list["Packet"]:
        # dumpcap hands packets over in TPACKET_V3 blocks that are flushed on a timer
        # (about a second); a block still open when SIGINT arrives is lost. Wait it out.
        time.sleep(settle)
        self.stop(signal.SIGINT)
        fields = ["frame.time_epoch", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport",
                  "tcp.dstport", "tcp.flags", "tcp.seq_raw", "tcp.ack_raw",
                  "tcp.options.timestamp.tsval", "tcp.options.timestamp.tsecr"]
        cmd = ["tshark", "-n", "-r", self.path, "-T", "fields", "-E", "occurrence=f"]
        for f in fields:
            cmd += ["-e", f]
        out = run(cmd, timeout=60).stdout
        pkts = []
        for line in out.splitlines():
            v = line.split("\t")
            if len(v) != len(fields) or not v[5]:
                continue
            t_ns = int(decimal.Decimal(v[0]) * 1_000_000_000)
            if v[1]:
                fam, src, dst = 4, v[1], v[2]
            else:
                fam, src, dst = 6, norm6(v[3]), norm6(v[4])
            pkts.append(Packet(t_ns, fam, src, dst, int(v[5]), int(v[6]), int(v[7], 16),
                               int(v[8]), int(v[9]),
                               int(v[10]) if v[10] else None, int(v[11]) if v[11] else None))
        return pkts


def norm6(a: str) -> str:
    return str(ipaddress.IPv6Address(a)) if a else a


@dataclass
class Packet:
    t_ns: int  # wall-clock capture time, ns since the epoch (µs resolution)
    family: int
    src: str
    dst: str
    sport: int
    dport: int
    flags: int
    seq: int
    ack: int
    tsval: Optional[int]
    tsecr: Optional[int]

    def is_(self, *names: str) -> bool:
        """Exactly these of SYN/ACK/RST/FIN set (PSH etc. ignored)."""
        want = 0
        for n in names:
            want |= {"SYN": 0x02, "ACK": 0x10, "RST": 0x04, "FIN": 0x01}[n]
        return self.flags & 0x17 == want


def conversation(pkts: Iterable[Packet], local: str, lport: int, peer: str, pport: int) -> list[Packet]:
    """Packets of one TCP connection, in capture order."""
    return [p for p in pkts
            if (p.src, p.sport, p.dst, p.dport) in ((local, lport, peer, pport), (peer, pport, local, lport))]


# --------------------------------------------------------------------------- checking

JSON_KEYS = {"ts", "interface", "direction", "outcome", "family", "local", "local_port", "peer",
             "peer_port", "rtt_ns", "handshake_ns", "retransmits", "cgroup_id", "workload"}
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
TEXT_RE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (?P<iface>\S+) (?P<direction>outbound|inbound)"
    r" (?P<outcome>completed|refused|timeout)"
    r" (?:\[(?P<peer6>[0-9a-fA-F:.]+)\]|(?P<peer4>\d{1,3}(?:\.\d{1,3}){3})):(?P<port>\d+)"
    r" rtt=(?:(?P<rtt>\d+\.\d{3})ms|-) handshake=(?P<hs>\d+\.\d{3})ms retrans=(?P<retrans>\d+)"
    r" workload=(?P<workload>\S+|\"(?:[^\"\\]|\\.)*\")$")


def parse_ts(ts: str) -> int:
    """RFC 3339 UTC with microseconds -> ns since the epoch."""
    d = dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)
    return (int(d.timestamp()) * 1_000_000 + d.microsecond) * 1000


class Checker:
    def __init__(self, name: str):
        self.name = name
        self.failures: list[str] = []
        self.passes = 0
        self.started = time.monotonic()
        self.notes: list[str] = []

    def check(self, cond: bool, msg: str) -> bool:
        if cond:
            self.passes += 1
        else:
            self.failures.append(msg)
            print(f"FAIL: {msg}", flush=True)
        return bool(cond)

    def note(self, msg: str) -> None:
        self.notes.append(msg)
        log(msg)

    def json_shape(self, ev: dict) -> bool:
        """Exactly the documented keys with the documented types."""
        ok = self.check(set(ev) == JSON_KEYS, f"JSON keys {sorted(ev)} != {sorted(JSON_KEYS)}: {ev}")
        if not ok:
            return False
        ok &= self.check(isinstance(ev["ts"], str) and bool(TS_RE.match(ev["ts"])), f"bad ts: {ev}")
        ok &= self.check(ev["direction"] in ("outbound", "inbound"), f"bad direction: {ev}")
        ok &= self.check(ev["outcome"] in ("completed", "refused", "timeout"), f"bad outcome: {ev}")
        ok &= self.check(ev["family"] in ("ipv4", "ipv6"), f"bad family: {ev}")
        for k in ("local_port", "peer_port", "handshake_ns", "retransmits"):
            ok &= self.check(type(ev[k]) is int and ev[k] >= 0, f"{k} is not a non-negative integer: {ev}")
        ok &= self.check(ev["rtt_ns"] is None or (type(ev["rtt_ns"]) is int and ev["rtt_ns"] >= 0),
                         f"rtt_ns is neither null nor a non-negative integer: {ev}")
        ok &= self.check(type(ev["cgroup_id"]) is int and isinstance(ev["workload"], str) and ev["workload"] != ""
                         and (ev["cgroup_id"] != 0 or ev["workload"] == "unknown"),
                         f"bad cgroup_id/workload: {ev}")
        ok &= self.check(isinstance(ev["local"], str) and isinstance(ev["peer"], str)
                         and isinstance(ev["interface"], str), f"bad address/interface types: {ev}")
        return ok

    def finish(self) -> None:
        took = time.monotonic() - self.started
        print(f"\n=== {self.name}: {self.passes} checks passed, {len(self.failures)} failed, {took:.1f}s ===")
        for n in self.notes:
            print(f"  {n}")
        if self.failures:
            print("Failures:")
            for f in self.failures:
                print(f"  - {f}")
            sys.stdout.flush()
            sys.exit(1)
        sys.stdout.flush()


def index_events(events: list[dict]) -> dict[tuple, list[dict]]:
    """Events keyed by (direction, family, local_port, peer_port)."""
    idx: dict[tuple, list[dict]] = {}
    for ev in events:
        key = (ev.get("direction"), ev.get("family"), ev.get("local_port"), ev.get("peer_port"))
        idx.setdefault(key, []).append(ev)
    return idx


def main_guard(fn: Callable[[], None]) -> None:
    """Run a test body; any escaping exception fails the test with its message after cleanup."""
    require_root_tools()
    try:
        fn()
    except AssertionError as exc:
        _close_all()
        fail_hard(str(exc))
    except SystemExit:
        _close_all()
        raise
    except BaseException:
        import traceback
        traceback.print_exc()
        _close_all()
        fail_hard("test aborted by an exception (see traceback above)")
    _close_all()
