#!/usr/bin/env python3
"""flowlatd --print=json, inbound handshakes (we are the server), IPv4 and IPv6.

A real listening socket in the client namespace serves port 7000 on the probed veth's
addresses. From the responder namespace a raw client sends a SYN, waits 5/20/80 ms after
the SYN-ACK, sends the final ACK and then an RST. rtt_ns must be within 250 µs of the
SYN-ACK (egress) -> ACK (ingress) gap dumpcap measured on the probed veth, and within
250 µs of the gap the raw client recorded itself (kernel receive stamp of the SYN-ACK to
kernel software TX stamp of its ACK, at the responder veth). A SYN to port 7999, where
nothing listens, draws the kernel's RST: outcome refused.

The raw client also sends handshakes whose every frame carries IPv4 options (4 and 40
bytes of NOP/EOL) or IPv6 extension headers (Hop-by-Hop; Hop-by-Hop + Destination
Options). The kernel accepts them, so the probe must follow the header chain to TCP.

Finally a client that "lost" the SYN-ACK resends its SYN 100 ms later; the server sends
the SYN-ACK again and the ACK (50 ms later) echoes the second one's TSval: one completed
line, retransmits 1, rtt_ns ~ 50 ms measured from the second SYN-ACK.
"""
import time

import netlab as N
import packets as P
import responder as R
from groundtruth import Errors, check_event, check_peer_coverage, check_peer_gap, match_events, truth

PORT, CLOSED_PORT = 7000, 7999
DELAYS = (0.005, 0.020, 0.080)
REPEATS = 3
HEADER_VARIANTS = {
    4: [{"ipv4_options": bytes([1, 1, 1, 0])}, {"ipv4_options": bytes([1] * 39 + [0])}],
    6: [{"ipv6_ext": (P.IPV6_HOPOPTS,)}, {"ipv6_ext": (P.IPV6_HOPOPTS, P.IPV6_DSTOPTS)}],
}


def body() -> None:
    chk = N.Checker("test_print_inbound")
    lab = N.Lab("in")
    N.Listener(lab, PORT)
    with N.netns(lab.peer_ns):
        sock = R.open_packet_socket(lab.peer_if)
    client = R.RawClient(sock, lab.peer_mac, lab.client_mac)
    N._open_resources.append(client)

    cap = N.Capture(lab, lab.client_ns, lab.client_if)
    fl = N.Flowlatd(lab, ["--interface", lab.client_if, "--print=json"])
    fl.wait_ready()

    done: list[R.ClientHandshake] = []
    for family in (4, 6):
        server, me = N.ADDRS[family]
        for _ in range(REPEATS):
            for delay in DELAYS:
                h = client.handshake(family, me, server, PORT, ack_delay=delay)
                if h.result != "completed":
                    N.fail_hard(f"harness: raw handshake to {server}:{PORT} gave {h.result}")
                done.append(h)
        for extra in HEADER_VARIANTS[family]:
            h = client.handshake(family, me, server, PORT, ack_delay=0.010, ip_extra=extra)
            if h.result != "completed":
                N.fail_hard(f"harness: handshake with {extra} to {server}:{PORT} gave {h.result}")
            done.append(h)
        h = client.handshake(family, me, server, PORT, ack_delay=0.150, dup_syn_after=0.100)
        if h.result != "completed" or h.synacks != 2:
            N.fail_hard(f"harness: duplicate-SYN handshake gave {h.result} with {h.synacks} SYN-ACKs")
        done.append(h)
        for _ in range(2):
            h = client.handshake(family, me, server, CLOSED_PORT, ack_delay=0)
            if h.result != "refused":
                N.fail_hard(f"harness: SYN to closed {server}:{CLOSED_PORT} gave {h.result}")
            done.append(h)

    time.sleep(1.0)
    rc = fl.stop()
    chk.check(rc == 0, f"flowlatd exit code after SIGTERM: {rc}\n{fl.stderr_text()}")
    pkts = cap.packets()
    events = fl.json_lines()
    N.log(f"{len(done)} handshakes, {len(events)} lines printed, {len(pkts)} packets captured")

    # From the probed host's view the server port is local and the raw client is the peer.
    expected = {("inbound", N.FAMILY_NAME[h.family], h.dport, h.sport): h for h in done}
    matched = match_events(chk, events, list(expected))
    errs = Errors()
    for key, ev in matched.items():
        h = expected[key]
        t = truth(pkts, "inbound", h.family, h.dst, h.dport, h.src, h.sport)
        outcome = "refused" if h.dport == CLOSED_PORT else "completed"
        check_event(chk, errs, ev, t, lab.client_if, outcome)
        if outcome == "completed":
            chk.check(t.retransmits == (1 if h.synacks > 1 else 0),
                      f"harness: {t.retransmits} SYN-ACK retransmissions on {key}, the client saw {h.synacks}")
            if ev["rtt_ns"] is not None:
                # The raw client's own record: the timed (last) SYN-ACK's kernel receive
                # stamp -> its ACK's kernel TX stamp.
                check_peer_gap(chk, errs, f"{key}", ev["rtt_ns"], h.gap_ns, h.gap_kernel, h.synack_rx_ns, t)
    check_peer_coverage(chk, errs)
    for line in errs.summary():
        chk.note(line)
    chk.finish()


if __name__ == "__main__":
    N.main_guard(body)
