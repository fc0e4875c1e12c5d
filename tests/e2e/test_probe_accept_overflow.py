#!/usr/bin/env python3
"""Listen-queue overflow is not a completed handshake (issue 8, part 3), end to end.

In the probed (client) namespace a real listener on port 7100 has a backlog of 1 and never
calls accept(); net.ipv4.tcp_abort_on_overflow is 0 there. From the responder namespace the
raw client opens CLIENTS handshakes: every SYN gets its SYN-ACK while the accept queue is
still empty, then all final ACKs go out back to back. The kernel queues as many
connections as the backlog allows and drops the other ACKs (ListenOverflows), keeping
those requests and retransmitting their SYN-ACKs about a second later; their clients
believe they are connected. A control listener on port 7200 that accepts gets the same
treatment and must show no overflow.

Which handshakes overflowed is read from the kernel itself: at the end the test accept()s
what the queue holds. The probe reports every handshake "completed" at its final ACK (the RTT is real) and,
when its SYN-ACK goes out again afterwards, once more as "accept_overflow". flowlatd
--print=json must print "completed" alone for the queued ones (and for every control
one) and "completed" then "accept_overflow" for the others; the daemon must count them
in flowlat_handshake_accept_overflows_total{direction="inbound", port="7100"}, and none
for port 7200.
"""
from __future__ import annotations

import json
import socket
import time

import daemon_harness as H
import netlab as N
import packets as P
import responder as R

FULL_PORT, CONTROL_PORT = 7100, 7200
CLIENTS = 5
WAIT = 4.0  # past the first SYN-ACK retransmission Linux documents (1 s) and a second one (3 s)


class NeverAccepts:
    """A listener with backlog 1 on both families that nobody accept()s until drain()."""

    def __init__(self, lab: N.Lab, port: int):
        self.socks = {}
        for family in (4, 6):
            s = lab.client_socket(family)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((N.ADDRS[family][0], port))
            s.listen(1)
            self.socks[family] = s
        N._open_resources.append(self)

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


def open_handshakes(client: R.RawClient, family: int, port: int) -> list[R.ClientHandshake]:
    """CLIENTS SYNs answered one by one, then all the final ACKs back to back."""
    server, me = N.ADDRS[family]
    hs = []
    for _ in range(CLIENTS):
        h = client.handshake(family, me, server, port, ack_delay=0, send_ack=False, timestamps=False)
        if h.result != "synack-only":
            N.fail_hard(f"harness: SYN to {server}:{port} gave {h.result}")
        hs.append(h)
    for h in hs:
        client._tx.send(client._frame(h, h.isn + 1, h.server_isn + 1, P.ACK))
    return hs


def setup(lab: N.Lab) -> tuple[R.RawClient, NeverAccepts]:
    N.Lab.sysctl(lab.client_ns, "net.ipv4.tcp_abort_on_overflow", "0")
    full = NeverAccepts(lab, FULL_PORT)
    N.Listener(lab, CONTROL_PORT)
    with N.netns(lab.peer_ns):
        sock = R.open_packet_socket(lab.peer_if)
    client = R.RawClient(sock, lab.peer_mac, lab.client_mac)
    N._open_resources.append(client)
    return client, full


def drive(client: R.RawClient, full: NeverAccepts) -> tuple[list[R.ClientHandshake], dict[int, set[int]]]:
    """Both listeners, both families; returns the handshakes and, per family, the client
    ports the full listener's queue held."""
    hs = []
    for family in (4, 6):
        hs += open_handshakes(client, family, FULL_PORT)
        hs += open_handshakes(client, family, CONTROL_PORT)
    time.sleep(WAIT)
    queued = {family: full.drain(family) for family in (4, 6)}
    for h in hs:
        client.reset(h)
    return hs, queued


def print_phase(chk: N.Checker) -> None:
    lab = N.Lab("ovf")
    try:
        client, full = setup(lab)
        fl = N.Flowlatd(lab, ["--interface", lab.client_if, "--print=json"])
        fl.wait_ready()
        hs, queued = drive(client, full)
        time.sleep(1.0)
        rc = fl.stop()
        chk.check(rc == 0, f"flowlatd exit code after SIGTERM: {rc}\n{fl.stderr_text()}")
        lines = [json.loads(l) for _, l in fl.stdout if l.strip()]
        overflowed = 0
        for h in hs:
            key = (N.FAMILY_NAME[h.family], h.dport, h.sport)
            got = [ev for ev in lines if (ev.get("family"), ev.get("local_port"), ev.get("peer_port")) == key
                   and ev.get("direction") == "inbound"]
            if h.dport == CONTROL_PORT or h.sport in queued[h.family]:
                want = ["completed"]
            else:
                want = ["completed", "accept_overflow"]
            overflowed += len(want) == 2
            chk.check([ev["outcome"] for ev in got] == want,
                      f"port {h.dport} {key}: want the lines {want}, got {[ev['outcome'] for ev in got]}")
        chk.check(overflowed == 2 * (CLIENTS - 2),
                  f"harness: {overflowed} handshakes overflowed the queue, expected {2 * (CLIENTS - 2)}"
                  f" (backlog 1 holds two connections)")
        chk.note(f"--print: {len(hs)} handshakes, {overflowed} overflowed the accept queue of port {FULL_PORT}")
    finally:
        lab.close()


def daemon_phase(chk: N.Checker) -> None:
    lab = N.Lab("ovfd")
    try:
        client, full = setup(lab)
        cfg = H.write_file(lab, "flowlatd.yaml", "interfaces: [flc0]\n")
        fl = H.Daemon(lab, cfg)
        fl.wait_ready()
        hs, queued = drive(client, full)
        overflowed = sum(1 for h in hs if h.dport == FULL_PORT and h.sport not in queued[h.family])
        time.sleep(1.0)
        m = fl.scrape()

        def total(name: str, port: int, **kw: str) -> float:
            return sum(s.value for s in m.find(name, direction="inbound", port=str(port), **kw))

        got = total("flowlat_handshake_accept_overflows_total", FULL_PORT)
        chk.check(bool(m.find("flowlat_handshake_accept_overflows_total")),
                  "daemon: /metrics has no flowlat_handshake_accept_overflows_total")
        chk.check(got == overflowed, f"daemon: flowlat_handshake_accept_overflows_total{{port=\"{FULL_PORT}\"}}"
                                     f" is {got:.0f}, the kernel overflowed {overflowed}")
        ctl = total("flowlat_handshake_accept_overflows_total", CONTROL_PORT)
        chk.check(ctl == 0, f"daemon: {ctl:.0f} overflows counted on the accepting control listener")
        done = total("flowlat_handshakes_total", FULL_PORT, outcome="completed")
        chk.check(done == 2 * CLIENTS, f"daemon: {done:.0f} completed on port {FULL_PORT}, want {2 * CLIENTS}")
        done_ctl = total("flowlat_handshakes_total", CONTROL_PORT, outcome="completed")
        chk.check(done_ctl == 2 * CLIENTS, f"daemon: {done_ctl:.0f} completed on the control port, want {2 * CLIENTS}")
        chk.note(f"daemon: {got:.0f} accept-queue overflows counted of {overflowed}")
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
