#!/usr/bin/env python3
"""Listen-queue overflow is not a completed handshake (issue 8, part 3), end to end.

In the probed (client) namespace a real listener on port 7100 has a backlog of 1 and never
calls accept() until the end; net.ipv4.tcp_abort_on_overflow is 0 and syncookies keep the
default (1). The raw client in the responder namespace (no address there, so its kernel
never resets the handshakes it opens) drives, per family:

1. HELD SYNs, answered at once. Linux (6.18) gives each a request sock while the listener
   has at most `backlog` of them (inet_csk_reqsk_queue_is_full: qlen > backlog): two.
2. COOKIE SYNs: the request queue now counts as full, so these get SYN-cookie SYN-ACKs,
   which have no request sock and so no retransmission timer.
3. FILLERS handshakes completed at once (cookies as well): they fill the accept queue,
   which holds backlog + 1 = 2 connections (sk_acceptq_is_full: ack_backlog > backlog).
   The test waits until the listener shows them queued (TCP_INFO tcpi_unacked, what ss
   prints as Recv-Q).
4. The final ACKs of the HELD and COOKIE handshakes, back to back. The listener drops them
   all (TcpExtListenOverflows). A held one keeps its request sock, marked acked, and its
   timer sends our SYN-ACK again with the same sequence number ~1 s and ~3 s after the
   first: the probe sees that and reports an accept-queue overflow. A cookie one leaves
   nothing behind and nothing is sent again: invisible to the probe (docs/metrics.md).

A control listener on port 7200 with a backlog of 128 that accepts gets the same treatment
and must show no overflow at all. Ground truth, checked before flowlatd is judged: the
kernel's counters (ListenOverflows, ListenDrops, SyncookiesSent), what the full listener's
queue held (accept()ed at the end), and dumpcap on the probed veth (which conversations
had our SYN-ACK sent again after the client's final ACK). flowlatd --print=json must print
"completed" then "accept_overflow" for exactly the handshakes the capture shows a SYN-ACK
retransmitted after the ACK, and "completed" alone for every other one (queued, cookie,
control); the daemon must count the same in flowlat_handshake_accept_overflows_total.
"""
from __future__ import annotations

import json
import socket
import struct
import time

import daemon_harness as H
import netlab as N
import packets as P
import responder as R

FULL_PORT, CONTROL_PORT = 7100, 7200
HELD, COOKIE, FILLERS = 2, 1, 2
PER_FAMILY = HELD + COOKIE + FILLERS
FAMILIES = (4, 6)
# After the last final ACK: past the SYN-ACK retransmissions at ~1 s and ~3 s after the
# first SYN-ACK, so that each overflowed handshake is seen sent again twice (reported once).
WAIT = 4.0
KERNEL_COUNTERS = ("ListenOverflows", "ListenDrops", "SyncookiesSent", "SyncookiesRecv")


def tcp_ext(ns: str) -> dict[str, int]:
    """The namespace's TcpExt counters (what `nstat` reads)."""
    lines = N.run(["ip", "netns", "exec", ns, "cat", "/proc/net/netstat"]).stdout.splitlines()
    out = {}
    for names, values in zip(lines[0::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            out.update(zip(names.split()[1:], map(int, values.split()[1:])))
    return out


def accept_queue(s: socket.socket) -> tuple[int, int]:
    """(queued connections, backlog) of a listener: for a listening socket Linux puts
    sk_ack_backlog and sk_max_ack_backlog in tcpi_unacked and tcpi_sacked."""
    info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return struct.unpack_from("II", info, 24)


class NeverAccepts:
    """A listener with backlog 1 on both families that nobody accept()s until drain()."""

    def __init__(self, lab: N.Lab, port: int):
        self.socks = {}
        for family in FAMILIES:
            s = lab.client_socket(family)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((N.ADDRS[family][0], port))
            s.listen(1)
            self.socks[family] = s
        N._open_resources.append(self)

    def wait_queued(self, family: int, want: int, timeout: float = 5.0) -> None:
        # The fillers' ACKs may still wait in a softirq backlog (or another CPU's) when the
        # raw client has sent them; the late ACKs must reach a full queue.
        deadline = time.monotonic() + timeout
        while (got := accept_queue(self.socks[family])[0]) != want:
            if time.monotonic() > deadline:
                N.fail_hard(f"harness: the backlog-1 listener holds {got} connections, want {want}")
            time.sleep(0.005)

    def drain(self, family: int) -> set[int]:
        """The client ports of the connections the accept queue held."""
        s = self.socks[family]
        s.setblocking(False)
        ports = set()
        while True:
            try:
                conn, addr = s.accept()
            except BlockingIOError:
                return ports
            ports.add(addr[1])
            conn.close()

    def close(self) -> None:
        if self in N._open_resources:
            N._open_resources.remove(self)
        for s in self.socks.values():
            s.close()


def final_ack(client: R.RawClient, h: R.ClientHandshake) -> None:
    client._tx.send(client._frame(h, h.isn + 1, h.server_isn + 1, P.ACK))


def open_handshakes(client: R.RawClient, full: NeverAccepts, family: int, port: int) -> dict[str, list]:
    """Steps 1 to 4 of the module docstring towards one listener; the handshakes by role."""
    server, me = N.ADDRS[family]
    roles: dict[str, list] = {"held": [], "cookie": [], "filler": []}

    def syn(role: str, complete: bool) -> None:
        h = client.handshake(family, me, server, port, ack_delay=0, send_ack=complete, reset=False,
                             timestamps=False)
        if h.result != ("completed" if complete else "synack-only"):
            N.fail_hard(f"harness: {role} SYN to [{server}]:{port} gave {h.result}")
        roles[role].append(h)

    for _ in range(HELD):
        syn("held", False)
    for _ in range(COOKIE):
        syn("cookie", False)
    for _ in range(FILLERS):
        syn("filler", True)
    if port == FULL_PORT:
        full.wait_queued(family, FILLERS)
    for h in roles["held"] + roles["cookie"]:
        final_ack(client, h)
    return roles


def setup(lab: N.Lab) -> tuple[R.RawClient, NeverAccepts, N.Capture]:
    N.Lab.sysctl(lab.client_ns, "net.ipv4.tcp_abort_on_overflow", "0")
    N.Lab.sysctl(lab.client_ns, "net.ipv4.tcp_syncookies", "1")
    full = NeverAccepts(lab, FULL_PORT)
    N.Listener(lab, CONTROL_PORT)
    with N.netns(lab.peer_ns):
        sock = R.open_packet_socket(lab.peer_if)
    client = R.RawClient(sock, lab.peer_mac, lab.client_mac)
    N._open_resources.append(client)
    cap = N.Capture(lab, lab.client_ns, lab.client_if)
    return client, full, cap


class Run:
    """One drive of both listeners in both families, with its ground truth."""

    def __init__(self, lab: N.Lab, client: R.RawClient, full: NeverAccepts, cap: N.Capture):
        before = tcp_ext(lab.client_ns)
        self.roles: list[tuple[str, R.ClientHandshake]] = []
        for family in FAMILIES:
            for port in (FULL_PORT, CONTROL_PORT):
                for role, hs in open_handshakes(client, full, family, port).items():
                    self.roles += [(role, h) for h in hs]
        time.sleep(WAIT)
        after = tcp_ext(lab.client_ns)
        self.kernel = {k: after.get(k, 0) - before.get(k, 0) for k in KERNEL_COUNTERS}
        self.queued = {family: full.drain(family) for family in FAMILIES}
        for _, h in self.roles:
            client.reset(h)
        pkts = cap.packets()
        # Per handshake: our SYN-ACKs with its first one's sequence number sent after the
        # client's final ACK reached the probed veth.
        self.resent: dict[int, int] = {}
        for _, h in self.roles:
            conv = N.conversation(pkts, h.dst, h.dport, h.src, h.sport)
            acks = [p.t_ns for p in conv if p.src == h.src and p.is_("ACK") and p.ack == (h.server_isn + 1) % 2**32]
            again = [p for p in conv if p.src == h.dst and p.is_("SYN", "ACK") and p.seq == h.server_isn
                     and acks and p.t_ns > acks[0]]
            self.resent[h.sport] = len(again) if acks else -1

    def check_ground_truth(self, chk: N.Checker, tag: str) -> None:
        """The kernel did what the module docstring says, or the test proves nothing."""
        fams = len(FAMILIES)
        for family in FAMILIES:
            fillers = {h.sport for role, h in self.roles if role == "filler" and h.dport == FULL_PORT
                       and h.family == family}
            chk.check(self.queued[family] == fillers,
                      f"{tag} harness: ipv{family} accept queue held ports {sorted(self.queued[family])},"
                      f" want the fillers {sorted(fillers)}")
        want = {"ListenOverflows": fams * (HELD + COOKIE), "ListenDrops": fams * (HELD + COOKIE),
                "SyncookiesSent": fams * (COOKIE + FILLERS),
                # a valid cookie ACK is counted before the queue is found full
                "SyncookiesRecv": fams * (COOKIE + FILLERS)}
        chk.check(self.kernel == want, f"{tag} harness: kernel counters {self.kernel}, want {want}")
        for role, h in self.roles:
            n = self.resent[h.sport]
            if role == "held" and h.dport == FULL_PORT:
                chk.check(n >= 2, f"{tag} harness: {N.FAMILY_NAME[h.family]} :{h.sport} (held) had {n} SYN-ACKs"
                                  f" sent again after its final ACK in the capture, want 2 (at ~1 s and ~3 s)")
            else:
                chk.check(n == 0, f"{tag} harness: {N.FAMILY_NAME[h.family]} port {h.dport} :{h.sport} ({role})"
                                  f" had {n} SYN-ACKs sent again after its final ACK, want 0")
        chk.note(f"{tag}: kernel {self.kernel}; capture: {self.visible()} handshakes with the SYN-ACK sent"
                 f" again after the final ACK, {sum(self.resent.values())} such SYN-ACKs")

    def overflowed(self, sport: int) -> bool:
        """The ground truth flowlatd is judged by: the capture, not the role."""
        return self.resent[sport] > 0

    def visible(self, port: int = FULL_PORT) -> int:
        return sum(1 for _, h in self.roles if h.dport == port and self.overflowed(h.sport))


def print_phase(chk: N.Checker) -> None:
    lab = N.Lab("ovf")
    try:
        client, full, cap = setup(lab)
        fl = N.Flowlatd(lab, ["--interface", lab.client_if, "--print=json"])
        fl.wait_ready()
        run = Run(lab, client, full, cap)
        rc = fl.stop()
        chk.check(rc == 0, f"flowlatd exit code after SIGTERM: {rc}\n{fl.stderr_text()}")
        run.check_ground_truth(chk, "print")
        lines = [json.loads(l) for _, l in fl.stdout if l.strip()]
        for role, h in run.roles:
            key = (N.FAMILY_NAME[h.family], h.dport, h.sport)
            got = [ev["outcome"] for ev in lines if ev.get("direction") == "inbound"
                   and (ev.get("family"), ev.get("local_port"), ev.get("peer_port")) == key]
            want = ["completed", "accept_overflow"] if run.overflowed(h.sport) else ["completed"]
            chk.check(got == want, f"print: port {h.dport} {key} ({role}): want the lines {want}, got {got}")
        printed = sum(1 for ev in lines if ev.get("outcome") == "accept_overflow")
        chk.note(f"print: {len(run.roles)} handshakes, {printed} accept_overflow lines; the kernel dropped"
                 f" {run.kernel['ListenOverflows']} final ACKs, {run.visible()} of them with a request sock"
                 f" (the rest were SYN-cookie handshakes: invisible)")
    finally:
        lab.close()


def daemon_phase(chk: N.Checker) -> None:
    lab = N.Lab("ovfd")
    try:
        client, full, cap = setup(lab)
        cfg = H.write_file(lab, "flowlatd.yaml", f"interfaces: [{lab.client_if}]\n")
        fl = H.Daemon(lab, cfg)
        fl.wait_ready()
        run = Run(lab, client, full, cap)
        run.check_ground_truth(chk, "daemon")
        m = fl.scrape()

        def total(name: str, port: int, **kw: str) -> float:
            return sum(s.value for s in m.find(name, direction="inbound", port=str(port), **kw))

        chk.check(bool(m.find("flowlat_handshake_accept_overflows_total")),
                  "daemon: /metrics has no flowlat_handshake_accept_overflows_total")
        got = total("flowlat_handshake_accept_overflows_total", FULL_PORT)
        chk.check(got == run.visible(), f"daemon: flowlat_handshake_accept_overflows_total{{port=\"{FULL_PORT}\"}}"
                                        f" is {got:.0f}; the capture shows {run.visible()} handshakes with the SYN-ACK sent again")
        ctl = total("flowlat_handshake_accept_overflows_total", CONTROL_PORT)
        chk.check(ctl == 0, f"daemon: {ctl:.0f} overflows counted on the accepting control listener")
        for port in (FULL_PORT, CONTROL_PORT):
            done = total("flowlat_handshakes_total", port, outcome="completed")
            chk.check(done == len(FAMILIES) * PER_FAMILY,
                      f"daemon: {done:.0f} completed on port {port}, want {len(FAMILIES) * PER_FAMILY}")
        chk.note(f"daemon: {got:.0f} accept-queue overflows counted on port {FULL_PORT}"
                 f" (kernel ListenOverflows {run.kernel['ListenOverflows']}), {ctl:.0f} on the control port")
        fl.check_clean_exit(chk)
    finally:
        lab.close()


def body() -> None:
    chk = N.Checker("test_probe_accept_overflow")
    print_phase(chk)
    daemon_phase(chk)
    chk.finish()


if __name__ == "__main__":
    N.main_guard(body)
