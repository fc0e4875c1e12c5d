#!/usr/bin/env python3
"""Listen-queue overflow is not a completed handshake (issue 8, part 3), end to end.

In the probed (client) namespace real listeners never call accept() until the end:
port 7100 with a backlog of 1, port 7300 with a backlog of 4; net.ipv4.tcp_abort_on_overflow
is 0 and syncookies keep the default (1). The raw client in the responder namespace (no
address there, so its kernel never resets the handshakes it opens) drives each, per family:

1. `held` SYNs, answered at once. Linux (6.18) gives each a request sock while the
   listener has at most `backlog` of them (inet_csk_reqsk_queue_is_full: qlen > backlog).
2. `cookie` SYNs (port 7100 only): the request queue now counts as full, so these get
   SYN-cookie SYN-ACKs, which have no request sock and so no retransmission timer.
3. `fillers` handshakes completed at once (on 7100 cookies too): they fill the accept
   queue, which holds backlog + 1 connections (sk_acceptq_is_full: ack_backlog > backlog).
   The test waits until the listener shows them queued (TCP_INFO tcpi_unacked, what ss
   prints as Recv-Q).
4. The final ACKs of the held and cookie handshakes, back to back. The listener drops them
   all (TcpExtListenOverflows). A held one keeps its request sock, marked acked, and its
   timer sends our SYN-ACK again with the same sequence number ~1 s and ~3 s after the
   first: the probe sees that and reports an accept-queue overflow. A cookie one leaves
   nothing behind and nothing is sent again: invisible to the probe (docs/metrics.md).
   On 7300 no cookie is involved, so every overflow there must be seen.

A control listener on port 7200 with a backlog of 128 that accepts gets the 7100 treatment
and must show no overflow at all. Ground truth, checked before flowlatd is judged: the
kernel's counters (ListenOverflows, ListenDrops, SyncookiesSent/Recv), what each
never-accepting listener's queue held (accept()ed at the end), and dumpcap on the probed
veth (which conversations had our SYN-ACK sent again after the client's final ACK).
flowlatd --print=json must print "completed" then "accept_overflow" for exactly the
handshakes the capture shows a SYN-ACK sent again after the ACK, and "completed" alone for
every other one (queued, cookie, control); the daemon must count the same per port in
flowlat_handshake_accept_overflows_total.
"""
from __future__ import annotations

import json
import socket
import struct
import time
from dataclasses import dataclass

import daemon_harness as H
import netlab as N
import packets as P
import responder as R


@dataclass(frozen=True)
class Plan:
    backlog: int  # 0: the accepting control listener (backlog 128)
    held: int
    cookie: int
    fillers: int

    @property
    def handshakes(self) -> int:
        return self.held + self.cookie + self.fillers


FULL_PORT, BIG_PORT, CONTROL_PORT = 7100, 7300, 7200
PLANS = {FULL_PORT: Plan(backlog=1, held=2, cookie=1, fillers=2),
         BIG_PORT: Plan(backlog=4, held=3, cookie=0, fillers=5),
         CONTROL_PORT: Plan(backlog=0, held=2, cookie=1, fillers=2)}
NEVER_ACCEPT = (FULL_PORT, BIG_PORT)
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
    """A listener on both families that nobody accept()s until drain()."""

    def __init__(self, lab: N.Lab, port: int, backlog: int):
        self.socks = {}
        for family in FAMILIES:
            s = lab.client_socket(family)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((N.ADDRS[family][0], port))
            s.listen(backlog)
            self.socks[family] = s
        N._open_resources.append(self)

    def wait_queued(self, family: int, want: int, timeout: float = 5.0) -> None:
        # The fillers' ACKs may still wait in a softirq backlog (or another CPU's) when the
        # raw client has sent them; the late ACKs must reach a full queue.
        deadline = time.monotonic() + timeout
        while (got := accept_queue(self.socks[family])[0]) != want:
            if time.monotonic() > deadline:
                N.fail_hard(f"harness: a never-accepting listener holds {got} connections, want {want}")
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


def open_handshakes(client: R.RawClient, never: dict[int, NeverAccepts], family: int,
                    port: int) -> dict[str, list]:
    """Steps 1 to 4 of the module docstring towards one listener; the handshakes by role."""
    server, me = N.ADDRS[family]
    plan = PLANS[port]
    roles: dict[str, list] = {"held": [], "cookie": [], "filler": []}

    def syn(role: str, complete: bool) -> None:
        h = client.handshake(family, me, server, port, ack_delay=0, send_ack=complete, reset=False,
                             timestamps=False)
        if h.result != ("completed" if complete else "synack-only"):
            N.fail_hard(f"harness: {role} SYN to [{server}]:{port} gave {h.result}")
        roles[role].append(h)

    for _ in range(plan.held):
        syn("held", False)
    for _ in range(plan.cookie):
        syn("cookie", False)
    for _ in range(plan.fillers):
        syn("filler", True)
    if port in never:
        never[port].wait_queued(family, plan.fillers)
    for h in roles["held"] + roles["cookie"]:
        client._tx.send(client._frame(h, h.isn + 1, h.server_isn + 1, P.ACK))
    return roles


def setup(lab: N.Lab) -> tuple[R.RawClient, dict[int, NeverAccepts], N.Capture]:
    N.Lab.sysctl(lab.client_ns, "net.ipv4.tcp_abort_on_overflow", "0")
    N.Lab.sysctl(lab.client_ns, "net.ipv4.tcp_syncookies", "1")
    never = {port: NeverAccepts(lab, port, PLANS[port].backlog) for port in NEVER_ACCEPT}
    N.Listener(lab, CONTROL_PORT)
    with N.netns(lab.peer_ns):
        sock = R.open_packet_socket(lab.peer_if)
    client = R.RawClient(sock, lab.peer_mac, lab.client_mac)
    N._open_resources.append(client)
    cap = N.Capture(lab, lab.client_ns, lab.client_if)
    return client, never, cap


class Run:
    """One drive of every listener in both families, with its ground truth."""

    def __init__(self, lab: N.Lab, client: R.RawClient, never: dict[int, NeverAccepts], cap: N.Capture):
        before = tcp_ext(lab.client_ns)
        self.roles: list[tuple[str, R.ClientHandshake]] = []
        for family in FAMILIES:
            for port in PLANS:
                for role, hs in open_handshakes(client, never, family, port).items():
                    self.roles += [(role, h) for h in hs]
        time.sleep(WAIT)
        after = tcp_ext(lab.client_ns)
        self.kernel = {k: after.get(k, 0) - before.get(k, 0) for k in KERNEL_COUNTERS}
        self.queued = {(port, family): never[port].drain(family) for port in NEVER_ACCEPT for family in FAMILIES}
        for _, h in self.roles:
            client.reset(h)
        pkts = cap.packets()
        # Per handshake: our SYN-ACKs with its first one's sequence number sent after the
        # client's final ACK reached the probed veth (-1: no final ACK in the capture).
        self.resent: dict[int, int] = {}
        for _, h in self.roles:
            conv = N.conversation(pkts, h.dst, h.dport, h.src, h.sport)
            acks = [p.t_ns for p in conv if p.src == h.src and p.is_("ACK") and p.ack == (h.server_isn + 1) % 2**32]
            again = [p for p in conv if p.src == h.dst and p.is_("SYN", "ACK") and p.seq == h.server_isn
                     and acks and p.t_ns > acks[0]]
            self.resent[h.sport] = len(again) if acks else -1

    def check_ground_truth(self, chk: N.Checker, tag: str) -> None:
        """The kernel did what the module docstring says, or the test proves nothing."""
        for (port, family), queued in self.queued.items():
            fillers = {h.sport for role, h in self.roles if role == "filler" and h.dport == port
                       and h.family == family}
            chk.check(queued == fillers, f"{tag} harness: ipv{family} port {port} accept queue held ports"
                                         f" {sorted(queued)}, want the fillers {sorted(fillers)}")
        fams = len(FAMILIES)
        dropped = fams * sum(PLANS[p].held + PLANS[p].cookie for p in NEVER_ACCEPT)
        cookies = fams * (PLANS[FULL_PORT].cookie + PLANS[FULL_PORT].fillers)
        # A valid cookie ACK is counted (SyncookiesRecv) before the queue is found full.
        want = {"ListenOverflows": dropped, "ListenDrops": dropped, "SyncookiesSent": cookies,
                "SyncookiesRecv": cookies}
        chk.check(self.kernel == want, f"{tag} harness: kernel counters {self.kernel}, want {want}")
        for role, h in self.roles:
            n = self.resent[h.sport]
            what = f"{tag} harness: {N.FAMILY_NAME[h.family]} port {h.dport} :{h.sport} ({role}) had {n}"
            if role == "held" and h.dport in NEVER_ACCEPT:
                chk.check(n >= 2, f"{what} SYN-ACKs sent again after its final ACK in the capture,"
                                  f" want 2 (at ~1 s and ~3 s)")
            else:
                chk.check(n == 0, f"{what} SYN-ACKs sent again after its final ACK, want 0")
        chk.note(f"{tag}: kernel {self.kernel}; capture: {self.visible(FULL_PORT)} + {self.visible(BIG_PORT)}"
                 f" handshakes with the SYN-ACK sent again after the final ACK (ports {FULL_PORT} + {BIG_PORT}),"
                 f" {sum(n for n in self.resent.values() if n > 0)} such SYN-ACKs")

    def overflowed(self, sport: int) -> bool:
        """The ground truth flowlatd is judged by: the capture, not the role."""
        return self.resent[sport] > 0

    def dropped(self, port: int) -> int:
        """Final ACKs the kernel dropped on a never-accepting listener: its handshakes that
        are not in its queue (their sum is checked against ListenOverflows)."""
        return sum(1 for _, h in self.roles if h.dport == port and h.sport not in self.queued[(port, h.family)])

    def visible(self, port: int) -> int:
        return sum(1 for _, h in self.roles if h.dport == port and self.overflowed(h.sport))


def print_phase(chk: N.Checker) -> None:
    lab = N.Lab("ovf")
    try:
        client, never, cap = setup(lab)
        fl = N.Flowlatd(lab, ["--interface", lab.client_if, "--print=json"])
        fl.wait_ready()
        run = Run(lab, client, never, cap)
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
                 f" {run.kernel['ListenOverflows']} final ACKs, {run.dropped(FULL_PORT) - run.visible(FULL_PORT)}"
                 f" of them of SYN-cookie handshakes (invisible)")
    finally:
        lab.close()


def daemon_phase(chk: N.Checker) -> None:
    lab = N.Lab("ovfd")
    try:
        client, never, cap = setup(lab)
        cfg = H.write_file(lab, "flowlatd.yaml", f"interfaces: [{lab.client_if}]\n")
        fl = H.Daemon(lab, cfg)
        fl.wait_ready()
        run = Run(lab, client, never, cap)
        run.check_ground_truth(chk, "daemon")
        m = fl.scrape()

        def total(name: str, port: int, **kw: str) -> float:
            return sum(s.value for s in m.find(name, direction="inbound", port=str(port), **kw))

        chk.check(bool(m.find("flowlat_handshake_accept_overflows_total")),
                  "daemon: /metrics has no flowlat_handshake_accept_overflows_total")
        counted = {}
        for port in PLANS:
            got = counted[port] = total("flowlat_handshake_accept_overflows_total", port)
            chk.check(got == run.visible(port),
                      f"daemon: flowlat_handshake_accept_overflows_total{{port=\"{port}\"}} is {got:.0f}; the"
                      f" capture shows {run.visible(port)} handshakes with the SYN-ACK sent again")
            done = total("flowlat_handshakes_total", port, outcome="completed")
            want = len(FAMILIES) * PLANS[port].handshakes
            chk.check(done == want, f"daemon: {done:.0f} completed on port {port}, want {want}")
        chk.check(counted[CONTROL_PORT] == 0,
                  f"daemon: {counted[CONTROL_PORT]:.0f} overflows counted on the accepting control listener")
        # Without cookies every overflow is visible: the count is the kernel's own.
        chk.check(counted[BIG_PORT] == run.dropped(BIG_PORT),
                  f"daemon: {counted[BIG_PORT]:.0f} overflows counted on port {BIG_PORT}, the kernel dropped"
                  f" {run.dropped(BIG_PORT)} final ACKs there")
        chk.note(f"daemon: accept-queue overflows counted {counted[FULL_PORT]:.0f} on port {FULL_PORT} (kernel"
                 f" dropped {run.dropped(FULL_PORT)}), {counted[BIG_PORT]:.0f} on {BIG_PORT} (kernel"
                 f" {run.dropped(BIG_PORT)}), {counted[CONTROL_PORT]:.0f} on the control port; kernel"
                 f" ListenOverflows {run.kernel['ListenOverflows']}")
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
