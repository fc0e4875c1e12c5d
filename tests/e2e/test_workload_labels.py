#!/usr/bin/env python3
"""The workload label, end to end: the cgroup v2 id of the local socket, named.

Two namespaces joined by the lab's veth; here the responder side gets 198.18.0.2/24, so its
kernel is a real TCP peer. flowlatd runs in the client namespace on flc0. The test finds
the cgroup2 mount in /proc/self/mountinfo (hybrid hosts: /sys/fs/cgroup/unified) and
creates flowlat-test.slice/client.scope and flowlat-test.slice/server.service under it.
Helper processes move themselves into a cgroup first, then enter a namespace (setns: `ip
netns exec` would hide the cgroup2 mount behind a fresh /sys), then make their sockets,
which is when a socket takes its cgroup:

  * outbound: a client in client.scope (client namespace) connects to a listener in
    server.service in the responder namespace, through the probed veth;
  * inbound: a client in client.scope in the responder namespace (another network
    namespace, crossing the veth) connects to a listener in server.service in the client
    namespace: our SYN-ACK, owned by the request socket, names the listener's cgroup;
  * the root cgroup: a client that stays in the root cgroup shows workload="/";
  * SYN cookies (tcp_syncookies=2 in the client namespace): the SYN-ACK carries no socket,
    and the inbound handshake is counted under workload="unknown", not guessed.

Each mode runs its own flowlatd (workload: cgroup, then unit with workload_include), and
/metrics must show each handshake under its workload; --print=json shows them too, run as
nobody with only the unit's three capabilities (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON). Then
the daemon is reloaded to unit mode without patterns. flowlatd runs under `nsenter --net`
for the same reason as the helpers: it must see the cgroup2 mount. The cgroups are removed
at the end, also when the test fails.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import daemon_harness as D
import netlab as N

OUT_PORT, IN_PORT, COOKIE_PORT, ROOT_PORT = 7100, 7200, 7300, 7400
SLICE = "flowlat-test.slice"
CLIENT_CG = f"{SLICE}/client.scope"
SERVER_CG = f"{SLICE}/server.service"
COUNT = 3

# Runs as its own process: join the cgroup, then the namespace, then the sockets.
HELPER = r"""
import ctypes, os, socket, sys
cgroup, netns, role, addr, port, count = sys.argv[1:7]
port, count = int(port), int(count)
if cgroup:
    with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(netns, os.O_RDONLY)
if libc.setns(fd, 0x40000000) != 0:
    sys.exit("setns failed: " + os.strerror(ctypes.get_errno()))
if role == "listen":
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(16)
    print("ready", flush=True)
    for _ in range(count):
        c, _ = s.accept()
        c.recv(1)
        c.close()
else:
    for _ in range(count):
        c = socket.create_connection((addr, port), timeout=5)
        c.close()
print("done", flush=True)
"""


def cgroup2_mount() -> str:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            dash = fields.index("-")
            if fields[dash + 1] == "cgroup2":
                return fields[4].encode().decode("unicode_escape")
    N.fail_hard("no cgroup2 mount in /proc/self/mountinfo")
    return ""


class Cgroups:
    """flowlat-test.slice and its two children; removed on close (processes gone first)."""

    def __init__(self, mount: str):
        self.mount = mount
        self.made: list[str] = []
        for rel in (SLICE, CLIENT_CG, SERVER_CG):
            path = os.path.join(mount, rel)
            if not os.path.isdir(path):
                os.mkdir(path)
            self.made.append(path)
        N._open_resources.append(self)

    def path(self, rel: str) -> str:
        """A cgroup directory; "/" is the root cgroup itself."""
        return self.mount if rel == "/" else os.path.join(self.mount, rel)

    def close(self) -> None:
        if self in N._open_resources:
            N._open_resources.remove(self)
        for path in reversed(self.made):
            for _ in range(50):
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)  # a helper still exiting
        self.made.clear()


class Helper:
    def __init__(self, cgroup: str, ns: str, role: str, addr: str, port: int, count: int = COUNT):
        self.proc = subprocess.Popen([sys.executable, "-c", HELPER, cgroup, f"/run/netns/{ns}", role, addr,
                                      str(port), str(count)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        N._open_resources.append(self)
        if role == "listen":
            line = self.proc.stdout.readline().strip()
            if line != "ready":
                N.fail_hard(f"helper listener on {addr}:{port} did not start: {line} {self.proc.stderr.read()}")

    def wait(self, timeout: float = 20) -> None:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            N.fail_hard("a helper did not finish in time")
        if self.proc.returncode != 0 or "done" not in out:
            N.fail_hard(f"helper failed ({self.proc.returncode}): {err.strip()}")
        self.close()

    def close(self) -> None:
        if self in N._open_resources:
            N._open_resources.remove(self)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class NsenterLab(N.Lab):
    """The lab, with processes entering only the network namespace (see the docstring)."""

    def exec_cmd(self, ns: str, cmd: list[str]) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{ns}", *cmd]


class Unprivileged:
    """The lab's commands as nobody with only the unit's capabilities: naming cgroups must
    need nothing more (open_by_handle_at would need CAP_DAC_READ_SEARCH)."""

    CAPS = "+bpf,+net_admin,+perfmon"

    def __init__(self, lab: N.Lab):
        self.lab, self.client_ns = lab, lab.client_ns

    def exec_cmd(self, ns: str, cmd: list[str]) -> list[str]:
        return self.lab.exec_cmd(ns, ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                      f"--inh-caps=-all,{self.CAPS}", f"--ambient-caps=-all,{self.CAPS}",
                                      f"--bounding-set=-all,{self.CAPS}", *cmd])


def traffic(lab: N.Lab, cg: Cgroups) -> None:
    """Every scenario once: COUNT handshakes each, then waits for the helpers."""
    server_out = Helper(cg.path(SERVER_CG), lab.peer_ns, "listen", N.PEER_V4, OUT_PORT)
    Helper(cg.path(CLIENT_CG), lab.client_ns, "connect", N.PEER_V4, OUT_PORT).wait()
    server_out.wait()

    server_in = Helper(cg.path(SERVER_CG), lab.client_ns, "listen", N.CLIENT_V4, IN_PORT)
    Helper(cg.path(CLIENT_CG), lab.peer_ns, "connect", N.CLIENT_V4, IN_PORT).wait()
    server_in.wait()

    server_root = Helper("", lab.peer_ns, "listen", N.PEER_V4, ROOT_PORT)
    Helper(cg.path("/"), lab.client_ns, "connect", N.PEER_V4, ROOT_PORT).wait()
    server_root.wait()

    # SYN cookies on every SYN: the SYN-ACK leaves without a socket.
    lab.sysctl(lab.client_ns, "net.ipv4.tcp_syncookies", "2")
    server_cookie = Helper(cg.path(SERVER_CG), lab.client_ns, "listen", N.CLIENT_V4, COOKIE_PORT)
    Helper(cg.path(CLIENT_CG), lab.peer_ns, "connect", N.CLIENT_V4, COOKIE_PORT).wait()
    server_cookie.wait()
    lab.sysctl(lab.client_ns, "net.ipv4.tcp_syncookies", "1")


def completed(m: D.Metrics, direction: str, port: int, workload: str) -> float:
    return m.value("flowlat_handshakes_total", 0, direction=direction, port=str(port), workload=workload,
                   outcome="completed")


def check_mode(chk: N.Checker, lab: N.Lab, cg: Cgroups, mode: str, expect: dict[tuple, str],
               include: list[str] | None = None) -> None:
    lines = [f"interfaces: [{lab.client_if}]", f"workload: {mode}", "ports:", "  include: [7100, 7200, 7300, 7400]"]
    if include is not None:
        lines.append("workload_include: [" + ", ".join(f'"{p}"' for p in include) + "]")
    config = D.write_file(lab, f"{mode}.yaml", "\n".join(lines) + "\n")
    fl = D.Daemon(lab, config)
    fl.wait_ready()
    printer = N.Flowlatd(Unprivileged(lab), ["--interface", lab.client_if, "--print=json"])
    printer.wait_ready()
    with open(f"/proc/{printer.proc.pid}/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    chk.check(status["Uid"].split()[0] == "65534" and int(status["CapEff"], 16) == (1 << 39) | (1 << 38) | (1 << 12),
              f"--print is not nobody with CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN: Uid {status['Uid'].strip()}, "
              f"CapEff {status['CapEff'].strip()}")
    try:
        traffic(lab, cg)
        want = {key: COUNT for key in expect}

        def seen(m: D.Metrics) -> bool:
            return all(completed(m, d, p, w) >= want[(d, p)] for (d, p), w in expect.items())

        m = fl.wait_metrics(seen, 10, "workload handshakes")
        for (direction, port), workload in expect.items():
            got = completed(m, direction, port, workload)
            chk.check(got == COUNT, f"{mode}: {direction} port {port}: {got} completed handshakes under "
                                    f"workload={workload!r}, want {COUNT}; series: "
                                    f"{m.label_sets('flowlat_handshakes_total')}")
        for sample in m.find("flowlat_handshakes_total"):
            chk.check("workload" in sample.labels, f"{mode}: a handshake series without workload: {sample.labels}")
        chk.check(m.value("flowlat_workload_unresolved_total", -1) == 0,
                  f"{mode}: unresolved cgroup ids: {m.value('flowlat_workload_unresolved_total')}")
        chk.check(D.promtool_check_metrics(fl.get("/metrics").text).returncode == 0, f"{mode}: promtool rejects")

        # --print names the cgroup path whatever the mode (it reads no configuration). It runs
        # as nobody with CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON only.
        printer.wait_for(lambda: len(printer.json_lines()) >= 4 * COUNT, 5)
        events = printer.json_lines()
        paths = {(e["direction"], e["local_port"] if e["direction"] == "inbound" else e["peer_port"]): e["workload"]
                 for e in events}
        for key, want_path in {("outbound", OUT_PORT): CLIENT_CG, ("inbound", IN_PORT): SERVER_CG,
                               ("outbound", ROOT_PORT): "/", ("inbound", COOKIE_PORT): "unknown"}.items():
            chk.check(paths.get(key) == want_path, f"--print {key}: workload {paths.get(key)!r}, want {want_path!r}")
        for e in events:
            chk.json_shape(e)
        if mode == "unit" and include is not None:
            # A reload drops the patterns: new handshakes are labelled by their unit again.
            since = fl.log_count()
            D.write_file(lab, f"{mode}.yaml", "\n".join(lines[:-1]) + "\n")
            fl.kill(signal.SIGHUP)
            chk.check(fl.wait_log("configuration reloaded", since, 10) is not None, "reload did not happen")
            traffic(lab, cg)
            m = fl.wait_metrics(lambda mm: completed(mm, "outbound", OUT_PORT, "client.scope") >= COUNT, 10, "")
            chk.check(completed(m, "outbound", OUT_PORT, "client.scope") == COUNT,
                      f"after reload: outbound client.scope {completed(m, 'outbound', OUT_PORT, 'client.scope')}")
            chk.check(completed(m, "inbound", IN_PORT, "server.service") == 2 * COUNT,
                      f"after reload: inbound server.service {completed(m, 'inbound', IN_PORT, 'server.service')}")
            chk.check(completed(m, "outbound", OUT_PORT, "other") == COUNT,
                      "after reload: the earlier series (workload=other) keeps its count")
    finally:
        printer.stop()
        fl.check_clean_exit(chk)


def body() -> None:
    chk = N.Checker("test_workload_labels")
    mount = cgroup2_mount()
    N.log(f"cgroup2 mount: {mount}")
    with open("/proc/self/cgroup") as f:
        own = [l.strip() for l in f if l.startswith("0::")]
    lab = NsenterLab("wl")
    N.run(["ip", "-n", lab.peer_ns, "addr", "add", f"{N.PEER_V4}/24", "dev", lab.peer_if])
    cg = Cgroups(mount)
    try:
        N.log(f"test process cgroup: {own}")
        check_mode(chk, lab, cg, "cgroup", {
            ("outbound", OUT_PORT): CLIENT_CG,
            ("inbound", IN_PORT): SERVER_CG,
            ("outbound", ROOT_PORT): "/",
            ("inbound", COOKIE_PORT): "unknown",
        })
        check_mode(chk, lab, cg, "unit", {
            ("outbound", OUT_PORT): "other",
            ("inbound", IN_PORT): "server.service",
            ("outbound", ROOT_PORT): "/",
            ("inbound", COOKIE_PORT): "unknown",
        }, include=["*.service", "/"])
    finally:
        cg.close()
        lab.close()
    chk.finish()


if __name__ == "__main__":
    N.main_guard(body)
