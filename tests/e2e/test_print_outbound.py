#!/usr/bin/env python3
"""flowlatd --print=json, outbound handshakes (we are the client), IPv4 and IPv6.

Real kernel clients in the client namespace connect() to the raw-socket responder, which
answers port 5001/5002/5003 after 5/20/80 ms (echoing the SYN's TSval) and refuses port
5004 with an RST-ACK. flowlatd runs on the client veth. Every handshake must be printed
exactly once, with rtt_ns and handshake_ns within 250 µs of the SYN -> SYN-ACK (or RST)
gap that dumpcap measured on the same interface.
"""
import socket
import time

import netlab as N
import responder as R
from groundtruth import Errors, check_event, match_events, truth

DELAYS = {5001: 0.005, 5002: 0.020, 5003: 0.080}
CLOSED_PORT = 5004
REPEATS = 4


def body() -> None:
    chk = N.Checker("test_print_outbound")
    lab = N.Lab("out")
    with N.netns(lab.peer_ns):
        sock = R.open_packet_socket(lab.peer_if)
    plans = {p: R.PortPlan(delay=d) for p, d in DELAYS.items()}
    plans[CLOSED_PORT] = R.PortPlan(action="rst", delay=0.002)
    resp = R.Responder(sock, lab.peer_mac, [N.PEER_V4, N.PEER_V6], plans).start()
    N._open_resources.append(resp)

    cap = N.Capture(lab, lab.client_ns, lab.client_if)
    fl = N.Flowlatd(lab, ["--interface", lab.client_if, "--print=json"])
    fl.wait_ready()

    conns: list[N.Connect] = []
    for family in (4, 6):
        for port in DELAYS:
            for _ in range(REPEATS):
                conns.append(lab.connect(family, port, timeout=3))
        for _ in range(2):
            conns.append(lab.connect(family, CLOSED_PORT, timeout=3))
    for c in conns:
        want = "refused" if c.peer_port == CLOSED_PORT else "connected"
        if c.result != want:
            N.fail_hard(f"harness: connect to port {c.peer_port} gave {c.result}, expected {want}")

    # Every event is due the moment its SYN-ACK/RST passes the hook; give the reader time.
    time.sleep(1.0)
    rc = fl.stop()
    chk.check(rc == 0, f"flowlatd exit code after SIGTERM: {rc}\n{fl.stderr_text()}")
    pkts = cap.packets()
    events = fl.json_lines()
    N.log(f"{len(conns)} connects, {len(events)} lines printed, {len(pkts)} packets captured")

    expected = {("outbound", N.FAMILY_NAME[c.family], c.local_port, c.peer_port): c for c in conns}
    matched = match_events(chk, events, list(expected))
    errs = Errors()
    for key, ev in matched.items():
        c = expected[key]
        t = truth(pkts, "outbound", c.family, c.local, c.local_port, c.peer, c.peer_port)
        outcome = "refused" if c.peer_port == CLOSED_PORT else "completed"
        check_event(chk, errs, ev, t, lab.client_if, outcome, expect_rtt=None)
        if outcome == "completed":
            chk.check(t.retransmits == 0, f"harness: unexpected SYN retransmission on {key}")
            for a in resp.answers_for(c.local_port, c.peer_port):
                if a.action == "synack" and a.gap_ns is not None and ev["rtt_ns"] is not None:
                    errs.responder.append(ev["rtt_ns"] - a.gap_ns)
    for line in errs.summary():
        chk.note(line)
    chk.finish()


if __name__ == "__main__":
    N.main_guard(body)
