#!/usr/bin/env python3
"""flowlatd --print=json: unanswered SYNs (timeout) and retransmitted SYNs (Karn's rule).

Phase A, --handshake-timeout=1s:
  * outbound: connect() to a port the responder never answers, given up after 0.4 s
    (one SYN, no retransmission)             -> timeout, rtt_ns null, handshake_ns >= 1 s
  * inbound: a raw SYN to the real listener, the SYN-ACK never ACKed  -> timeout
    The half-open connection keeps retransmitting SYN-ACKs afterwards; those must not
    produce further lines.
  * outbound: connect() to the silent port for 3.5 s: the kernel resends the SYN at ~1 s
    and ~3 s, the last one after flowlatd reported the timeout -> exactly one line, timeout After an RST clears it, the same 4-tuple (so the same slot of
    the probe's ACK filter) opens a new handshake with a 5 ms ACK delay on the same
    flowlatd instance: completed, measured as usual.
Phase B, a fresh flowlatd with --handshake-timeout=5s (a 1 s timeout would race with
handshakes that take just over 1 s because of the retransmission):
  * outbound "tsecho": first SYN ignored, the retransmission answered after 10 ms with
    TSecr = its TSval                         -> completed, retransmits 1, rtt ~ 10 ms
  * outbound "nots": same, SYN-ACK without the timestamp option
                                              -> completed, retransmits 1, rtt_ns null,
                                                 handshake_ns >= 1 s
  * outbound "late": the first SYN answered after 1.2 s, the retransmission at 1 s
    ignored; TSecr names the first SYN         -> rtt ~ 1.2 s (not ~0.2 s)
  * outbound "refused late": first SYN ignored, the retransmission refused (RST-ACK)
                                              -> refused, retransmits 1, handshake_ns >= 1 s
  * inbound: the raw client ACKs 1.2 s after the first SYN-ACK, echoing the TSval of the
    retransmitted SYN-ACK                      -> completed, retransmits 1, rtt ~ 0.2 s
  * inbound without timestamps: the same, but no timestamp option was negotiated
                                              -> completed, retransmits 1, rtt_ns null
All values are compared with dumpcap's capture of the probed veth.
"""
import time

import netlab as N
import responder as R
from groundtruth import Errors, check_event, match_events, match_events_in_order, truth

SILENT, TSECHO, NOTS, LATE, RST_LATE = 5009, 5101, 5102, 5103, 5104
LISTEN = 7000
SECOND = 1_000_000_000


def wait_lines(fl: N.Flowlatd, n: int, timeout: float) -> bool:
    return fl.wait_for(lambda: sum(1 for _, l in fl.stdout if l.strip()) >= n, timeout)


def body() -> None:
    chk = N.Checker("test_print_timeout_retransmit")
    errs = Errors()
    lab = N.Lab("tmo")
    N.Listener(lab, LISTEN)
    with N.netns(lab.peer_ns):
        rsock = R.open_packet_socket(lab.peer_if)
    with N.netns(lab.peer_ns):
        csock = R.open_packet_socket(lab.peer_if)
    plans = {
        SILENT: R.PortPlan(action="silent"),
        TSECHO: R.PortPlan(delay=0.010, ignore_first=1),
        NOTS: R.PortPlan(delay=0.010, ignore_first=1, timestamps=False),
        LATE: R.PortPlan(delay=1.200, answer_only=1),
        RST_LATE: R.PortPlan(action="rst", delay=0.002, ignore_first=1),
    }
    resp = R.Responder(rsock, lab.peer_mac, [N.PEER_V4, N.PEER_V6], plans).start()
    N._open_resources.append(resp)
    client = R.RawClient(csock, lab.peer_mac, lab.client_mac)
    N._open_resources.append(client)
    cap = N.Capture(lab, lab.client_ns, lab.client_if)

    # ---------------------------------------------------------------- phase A: timeouts
    fl = N.Flowlatd(lab, ["--interface", lab.client_if, "--print=json", "--handshake-timeout=1s"])
    fl.wait_ready()
    out_conns, half_open = [], []
    for family in (4, 6):
        c = lab.connect(family, SILENT, timeout=0.4)
        if c.result != "timeout":
            N.fail_hard(f"harness: connect to silent port gave {c.result}")
        out_conns.append(c)
        server, me = N.ADDRS[family]
        h = client.handshake(family, me, server, LISTEN, ack_delay=0, send_ack=False)
        if h.result != "synack-only":
            N.fail_hard(f"harness: raw SYN to the listener gave {h.result}")
        half_open.append(h)
    # A client that keeps trying: the kernel resends the SYN at ~1 s and ~3 s, the second time
    # after flowlatd has reported the timeout. One connect() is one handshake: one line.
    retrying = lab.connect(4, SILENT, timeout=3.5)
    if retrying.result != "timeout":
        N.fail_hard(f"harness: retrying connect to the silent port gave {retrying.result}")
    t_last = time.monotonic()
    arrived = wait_lines(fl, 5, timeout=6)
    chk.check(arrived, f"5 timeout lines expected within {time.monotonic() - t_last:.1f}s of the last SYN,"
                       f" got {len(fl.stdout)}")
    # Past the 1 s SYN-ACK retransmission and well past the sweep: nothing more may appear.
    time.sleep(max(0.0, t_last + 3.5 - time.monotonic()))
    for h in half_open:
        client.reset(h)
    time.sleep(0.1)
    reused = []
    for h in half_open:
        h2 = client.handshake(h.family, h.src, h.dst, LISTEN, ack_delay=0.005, sport=h.sport)
        if h2.result != "completed":
            N.fail_hard(f"harness: handshake on the reused 4-tuple gave {h2.result}")
        reused.append(h2)
    time.sleep(0.3)
    rc = fl.stop()
    chk.check(rc == 0, f"flowlatd (phase A) exit code after SIGTERM: {rc}\n{fl.stderr_text()}")
    events_a = fl.json_lines()

    # ---------------------------------------------------------------- phase B: retransmits
    fl = N.Flowlatd(lab, ["--interface", lab.client_if, "--print=json", "--handshake-timeout=5s"])
    fl.wait_ready()
    retrans_conns, retrans_in = [], []
    for family in (4, 6):
        for port in (TSECHO, NOTS, LATE, RST_LATE):
            c = lab.connect(family, port, timeout=4)
            if c.result != ("refused" if port == RST_LATE else "connected"):
                N.fail_hard(f"harness: connect to port {port} gave {c.result}")
            retrans_conns.append(c)
        server, me = N.ADDRS[family]
        for with_ts in (True, False):
            h = client.handshake(family, me, server, LISTEN, ack_delay=1.2, timestamps=with_ts)
            if h.result != "completed" or h.synacks < 2:
                N.fail_hard(f"harness: inbound retransmit handshake gave {h.result} after {h.synacks} SYN-ACKs")
            retrans_in.append(h)
    time.sleep(1.0)
    rc = fl.stop()
    chk.check(rc == 0, f"flowlatd (phase B) exit code after SIGTERM: {rc}\n{fl.stderr_text()}")
    events_b = fl.json_lines()
    pkts = cap.packets()

    # ---------------------------------------------------------------- checks, phase A
    exp_a = {("outbound", N.FAMILY_NAME[c.family], c.local_port, c.peer_port): ("out", c) for c in out_conns}
    exp_a.update({("inbound", N.FAMILY_NAME[h.family], h.dport, h.sport): ("in", h) for h in half_open})
    retry_key = ("outbound", "ipv4", retrying.local_port, retrying.peer_port)
    keys_a = list(exp_a) + [("inbound", N.FAMILY_NAME[h.family], h.dport, h.sport) for h in reused] + [retry_key]
    for key, evs in match_events_in_order(chk, events_a, keys_a).items():
        if key == retry_key:
            t = truth(pkts, "outbound", 4, retrying.local, retrying.local_port, retrying.peer, retrying.peer_port)
            late = [s for s in t.timed_ns if s > N.parse_ts(evs[0]["ts"])]
            chk.check(len(t.timed_ns) >= 3 and late,
                      f"harness: the retrying connect should resend its SYN after the timeout line:"
                      f" SYNs at {[(s - t.first_syn_ns) / 1e9 for s in t.timed_ns]} s, line at {evs[0]['ts']}")
            chk.check(evs[0].get("outcome") == "timeout",
                      f"{key}: one line, a timeout, for a connect() whose SYN was resent after it: {evs}")
            continue
        kind, x = exp_a[key]
        ev = evs[0]
        if kind == "in" and len(evs) > 1:
            t2 = truth(pkts, "inbound", x.family, x.dst, x.dport, x.src, x.sport, epoch=1)
            check_event(chk, errs, evs[1], t2, lab.client_if, "completed")
        if kind == "out":
            t = truth(pkts, "outbound", x.family, x.local, x.local_port, x.peer, x.peer_port)
            chk.check(t.retransmits == 0, f"harness: the silent-port SYN was retransmitted ({key})")
        else:
            t = truth(pkts, "inbound", x.family, x.dst, x.dport, x.src, x.sport)
        check_event(chk, errs, ev, t, lab.client_if, "timeout")
        if ev.get("outcome") != "timeout":
            continue
        chk.check(ev["rtt_ns"] is None, f"{key}: timeout with rtt_ns {ev['rtt_ns']} (want null)")
        chk.check(SECOND <= ev["handshake_ns"] <= 4 * SECOND,
                  f"{key}: timeout handshake_ns {ev['handshake_ns']} not in [1 s, 4 s]")
        ts = N.parse_ts(ev["ts"])
        chk.check(t.first_syn_ns + SECOND - 1_000_000 <= ts <= t.first_syn_ns + 4 * SECOND,
                  f"{key}: timeout ts {ev['ts']} is {(ts - t.first_syn_ns) / 1e9:.3f}s after the SYN,"
                  f" want 1..4 s")
        # handshake_ns runs from the first SYN to the sweep, which is also when ts is taken.
        chk.check(abs(ts - t.first_syn_ns - ev["handshake_ns"]) <= 5_000_000,
                  f"{key}: ts - first SYN = {(ts - t.first_syn_ns) / 1e6:.3f} ms but handshake_ns ="
                  f" {ev['handshake_ns'] / 1e6:.3f} ms")
        if kind == "out":
            chk.check(ev["retransmits"] == 0, f"{key}: timeout retransmits {ev['retransmits']} (want 0)")

    # ---------------------------------------------------------------- checks, phase B
    exp_b = {("outbound", N.FAMILY_NAME[c.family], c.local_port, c.peer_port): ("out", c) for c in retrans_conns}
    exp_b.update({("inbound", N.FAMILY_NAME[h.family], h.dport, h.sport): ("in", h) for h in retrans_in})
    for key, ev in match_events(chk, events_b, list(exp_b)).items():
        kind, x = exp_b[key]
        if kind == "out":
            t = truth(pkts, "outbound", x.family, x.local, x.local_port, x.peer, x.peer_port)
            want_rtt = x.peer_port != NOTS
            chk.check(t.retransmits >= 1, f"harness: no SYN retransmission for {key}")
        else:
            t = truth(pkts, "inbound", x.family, x.dst, x.dport, x.src, x.sport)
            want_rtt = t.answered_tsecr is not None  # the ACK names the SYN-ACK it answers
            chk.check(t.retransmits >= 1, f"harness: no SYN-ACK retransmission for {key}")
        outcome = "refused" if kind == "out" and x.peer_port == RST_LATE else "completed"
        check_event(chk, errs, ev, t, lab.client_if, outcome, expect_rtt=want_rtt)
        if ev.get("outcome") != outcome:
            continue
        chk.check(ev["retransmits"] >= 1, f"{key}: retransmits {ev['retransmits']} (want >= 1)")
        chk.check(ev["handshake_ns"] >= SECOND, f"{key}: handshake_ns {ev['handshake_ns']} < 1 s")
        if kind == "out" and x.peer_port == LATE and ev["rtt_ns"] is not None:
            chk.check(ev["rtt_ns"] >= SECOND,
                      f"{key}: SYN-ACK echoes the first SYN, so rtt_ns must be ~1.2 s, got {ev['rtt_ns']}")
        if kind == "out" and x.peer_port == TSECHO and ev["rtt_ns"] is not None:
            chk.check(ev["rtt_ns"] < 100_000_000,
                      f"{key}: SYN-ACK echoes the retransmission, so rtt_ns must be ~10 ms, got {ev['rtt_ns']}")
    for line in errs.summary():
        chk.note(line)
    chk.finish()


if __name__ == "__main__":
    N.main_guard(body)
