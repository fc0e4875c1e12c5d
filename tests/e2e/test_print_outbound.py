#!/usr/bin/env python3
"""flowlatd --print=json, outbound handshakes (we are the client), IPv4 and IPv6.

Real kernel clients in the client namespace connect() to the raw-socket responder, which
answers port 5001/5002/5003 after 5/20/80 ms (echoing the SYN's TSval) and refuses port
5004 with an RST-ACK. flowlatd runs on the client veth. Every handshake must be printed
exactly once, with rtt_ns and handshake_ns within 250 µs of the SYN -> SYN-ACK (or RST)
gap that dumpcap measured on the same interface, and every printed rtt_ns also within
250 µs of the gap the responder recorded for that SYN (kernel receive stamp of the SYN
to kernel software TX stamp of its answer, at the responder veth).

Two stress cases follow: a burst of 48 concurrent connects (IPv4 and IPv6 at once), and
a 4-tuple reused for three back-to-back connections (fixed local port, closed with RST so
it is free again at once): each connection must be printed, in order, with its own RTT.
Port 5005 first sends a SYN-ACK with a wrong ack number (the client kernel answers it
with an RST and resends its SYN), then the real SYN-ACK after 20 ms: the bogus answer and
the client's RST must not end or time the handshake.
"""
import threading
import time
from ipaddress import ip_address

import netlab as N
import responder as R
from groundtruth import Errors, check_event, check_peer_coverage, check_peer_gap, match_events_in_order, truth

DELAYS = {5001: 0.005, 5002: 0.020, 5003: 0.080}
CLOSED_PORT = 5004
REPEATS = 4
BOGUS_PORT = 5005
BURST_PORT, BURST = 5002, 24        # per family, all in flight together
REUSE_PORT, REUSE = 5001, 3         # connections per fixed 4-tuple
REUSE_LOCAL = {4: 45001, 6: 45002}


def body() -> None:
    chk = N.Checker("test_print_outbound")
    lab = N.Lab("out")
    with N.netns(lab.peer_ns):
        sock = R.open_packet_socket(lab.peer_if)
    plans = {p: R.PortPlan(delay=d) for p, d in DELAYS.items()}
    plans[CLOSED_PORT] = R.PortPlan(action="rst", delay=0.002)
    plans[BOGUS_PORT] = R.PortPlan(delay=0.020, bogus_first=True)
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
            conns.append(lab.connect(family, BOGUS_PORT, timeout=3))
    burst: list[N.Connect] = []
    lock = threading.Lock()

    def one(family: int) -> None:
        c = lab.connect(family, BURST_PORT, timeout=5)
        with lock:
            burst.append(c)
    threads = [threading.Thread(target=one, args=(f,)) for f in (4, 6) for _ in range(BURST)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    conns += burst
    for family in (4, 6):
        for _ in range(REUSE):
            conns.append(lab.connect(family, REUSE_PORT, timeout=3, local_port=REUSE_LOCAL[family]))

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

    expected: dict[tuple, list[N.Connect]] = {}
    for c in conns:
        expected.setdefault(("outbound", N.FAMILY_NAME[c.family], c.local_port, c.peer_port), []).append(c)
    keys = [k for k, cs in expected.items() for _ in cs]
    matched = match_events_in_order(chk, events, keys)
    errs = Errors()
    for key, ev, c, epoch in ((k, ev, expected[k][i], i) for k, evs in matched.items() for i, ev in enumerate(evs)):
        t = truth(pkts, "outbound", c.family, c.local, c.local_port, c.peer, c.peer_port, epoch=epoch)
        outcome = "refused" if c.peer_port == CLOSED_PORT else "completed"
        check_event(chk, errs, ev, t, lab.client_if, outcome, expect_rtt=None)
        if outcome == "completed" and c.peer_port != BOGUS_PORT:
            chk.check(t.retransmits == 0, f"harness: unexpected SYN retransmission on {key}")
        if ev["rtt_ns"] is None:
            continue  # Karn's rule (check_event asserted that null is right)
        # The responder's record of this connection: its answer (SYN-ACK, or RST on the
        # closed port) to the SYN the printed rtt_ns times. Ports repeat across families and
        # freed ephemeral ports come back, so the SYN is named by address, ISN and TSval (the
        # TSecr the client's kernel accepted); on the bogus port that is the first SYN, not
        # its retransmission. The burst is included: both stamps are the kernel's, so the
        # Python thread's lag in answering 48 SYNs changes the delay, not its record.
        answers = [a for a in resp.answers_for(c.local_port, c.peer_port)
                   if a.action in ("synack", "rst") and ip_address(a.client) == ip_address(c.local)
                   and a.syn_seq == t.initiator_isn
                   and (t.answered_tsecr is None or a.syn_tsval == t.answered_tsecr)]
        what = f"{key} connection #{epoch}" + (" (burst)" if c in burst else "")
        if chk.check(len(answers) >= 1, f"{what}: the responder recorded no answer to its SYN"):
            a = answers[0]
            check_peer_gap(chk, errs, what, ev["rtt_ns"], a.gap_ns, a.gap_kernel, a.syn_rx_ns, t)
    check_peer_coverage(chk, errs)
    for line in errs.summary():
        chk.note(line)
    chk.finish()


if __name__ == "__main__":
    N.main_guard(body)
