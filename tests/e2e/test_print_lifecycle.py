#!/usr/bin/env python3
"""flowlatd --print: text format, live output, and a clean exit on SIGTERM and SIGINT.

Run 1: --print=text on two interfaces (flc0, flc1). flc0 already carries someone else's
clsact filters (u32, pref 7), which must survive. Handshakes on flc0: IPv4 completed,
IPv6 completed, IPv4 refused, IPv6 completed after a SYN retransmission answered without
timestamps (rtt=-). Each line must match the documented text format, carry the right
peer, outcome and numbers (vs dumpcap), and reach the pipe while flowlatd still runs.
SIGTERM: exit 0, and neither interface keeps a flowlat program (TCX, queried from the
kernel with BPF_PROG_QUERY, or classic tc); the programs and links seen while running are
gone from the kernel; the foreign filters are still there.
Run 2: bare --print (the default format is text), one handshake, SIGINT: exit 0, detached.
Run 3: FLOWLATD_ATTACH_MODE=clsact (the fallback for kernels without TCX) sharing flc0's
clsact qdisc with the foreign filters: flowlat filters visible in `tc filter show`, IPv4
and IPv6 handshakes measured as with TCX, and after SIGTERM no flowlat filter is left
while the foreign filters and the qdisc stay.
"""
import ipaddress
import signal
import time

import netlab as N
import responder as R
from groundtruth import RTT_TOLERANCE_NS, Errors, check_event, match_events, truth

PORTS = {5001: R.PortPlan(delay=0.005), 5002: R.PortPlan(delay=0.020),
         5004: R.PortPlan(action="rst", delay=0.002),
         5102: R.PortPlan(delay=0.010, ignore_first=1, timestamps=False)}
PLAN = [(4, 5001, "completed"), (6, 5002, "completed"), (4, 5004, "refused"), (6, 5102, "completed")]
LIVE_WITHIN = 1.0  # seconds from the end of connect() to the line arriving on the pipe


def add_foreign_filters(lab: N.Lab) -> None:
    """Someone else's filters on flc0 that match every packet. In classic tc a matching filter
    ends classification, so flowlatd's clsact filter (run 3) must sit before them (priority 1)
    to see any handshake; it returns TC_ACT_UNSPEC, so they still classify every packet."""
    N.run(["tc", "-n", lab.client_ns, "qdisc", "add", "dev", lab.client_if, "clsact"])
    for hook in ("ingress", "egress"):
        N.run(["tc", "-n", lab.client_ns, "filter", "add", "dev", lab.client_if, hook, "pref", "7",
               "u32", "match", "u32", "0", "0", "classid", "1:1"])


def foreign_filters_present(lab: N.Lab) -> bool:
    return all("pref 7 u32" in N.run(["tc", "-n", lab.client_ns, "filter", "show", "dev", lab.client_if,
                                      hook]).stdout for hook in ("ingress", "egress"))


def check_detached(chk: N.Checker, lab: N.Lab, ifnames: list[str], seen: list, what: str) -> None:
    for ifname in ifnames:
        left = N.attachments(lab.client_ns, ifname).flowlat()
        chk.check(not left, f"{what}: flowlat still attached to {ifname} after exit: {left}")
    # Program and link objects are released asynchronously (RCU); allow a moment.
    deadline = time.monotonic() + 3
    alive = seen
    while alive and time.monotonic() < deadline:
        alive = [(p, l) for p, l in alive if N.prog_name(p) is not None or N.link_exists(l)]
        if alive:
            time.sleep(0.2)
    chk.check(not alive, f"{what}: BPF programs/links still exist in the kernel after exit: {alive}")


def running_attachments(chk: N.Checker, lab: N.Lab, ifnames: list[str], what: str) -> list:
    seen = []
    for ifname in ifnames:
        a = N.attachments(lab.client_ns, ifname)
        found = a.flowlat()
        chk.check(len(found) >= 2, f"{what}: expected flowlat on ingress and egress of {ifname}, found {found}")
        seen += [(p, l) for entries in a.tcx.values() for p, l, name in entries if name and name.startswith("flowlat")]
    return seen


def body() -> None:
    chk = N.Checker("test_print_lifecycle")
    lab = N.Lab("life")
    lab.add_client_veth("flc1", "flr1")
    add_foreign_filters(lab)
    with N.netns(lab.peer_ns):
        sock = R.open_packet_socket(lab.peer_if)
    resp = R.Responder(sock, lab.peer_mac, [N.PEER_V4, N.PEER_V6], PORTS).start()
    N._open_resources.append(resp)
    ifnames = [lab.client_if, "flc1"]
    for ifname in ifnames:
        chk.check(not N.attachments(lab.client_ns, ifname).flowlat(), f"{ifname} has flowlat before the test")

    # ------------------------------------------------------------------ run 1: text, SIGTERM
    cap = N.Capture(lab, lab.client_ns, lab.client_if)
    fl = N.Flowlatd(lab, ["--interface", lab.client_if, "--interface", "flc1", "--print=text"])
    fl.wait_ready()
    seen = running_attachments(chk, lab, ifnames, "run 1")
    conns = []
    for family, port, _ in PLAN:
        c = lab.connect(family, port, timeout=4)
        conns.append((c, time.time()))
    fl.wait_for(lambda: len(fl.stdout) >= len(PLAN), 3)
    t_term = time.time()
    rc = fl.stop(signal.SIGTERM)
    chk.check(rc == 0, f"exit code after SIGTERM: {rc} (want 0)\n{fl.stderr_text()}")
    pkts = cap.packets()
    check_detached(chk, lab, ifnames, seen, "SIGTERM")
    chk.check(foreign_filters_present(lab), "the foreign u32 filters on flc0 were removed")

    lines = [(t, l) for t, l in fl.stdout if l.strip()]
    chk.check(len(lines) == len(PLAN), f"{len(lines)} lines printed, want {len(PLAN)}: {[l for _, l in lines]}")
    by_port = {}
    for t, line in lines:
        m = N.TEXT_RE.match(line)
        if not chk.check(m is not None, f"text line does not match the documented format: {line!r}"):
            continue
        by_port.setdefault(int(m["port"]), []).append((t, m, line))
    worst = 0
    for (family, port, outcome), (c, t_done) in zip(PLAN, conns):
        got = by_port.get(port, [])
        if not chk.check(len(got) == 1, f"port {port}: {len(got)} text lines (want 1)"):
            continue
        t_line, m, line = got[0]
        peer = str(ipaddress.ip_address(c.peer))
        chk.check(m["iface"] == lab.client_if and m["direction"] == "outbound" and m["outcome"] == outcome,
                  f"port {port}: want '{lab.client_if} outbound {outcome}': {line!r}")
        if family == 4:
            chk.check(m["peer4"] == peer, f"IPv4 peer must be written without brackets as {peer}: {line!r}")
        else:
            chk.check(m["peer6"] == peer, f"IPv6 peer must be written as [{peer}]: {line!r}")
        chk.check(t_line < t_term and t_line - t_done <= LIVE_WITHIN,
                  f"port {port}: line reached the pipe {t_line - t_done:.3f}s after the handshake"
                  f" ({'before' if t_line < t_term else 'only after'} SIGTERM); want within {LIVE_WITHIN}s")
        t = truth(pkts, "outbound", family, c.local, c.local_port, c.peer, c.peer_port)
        chk.check(int(m["retrans"]) == t.retransmits, f"port {port}: retrans {m['retrans']} != {t.retransmits}")
        hs_err = round(float(m["hs"]) * 1e6) - t.handshake_ns
        chk.check(abs(hs_err) <= RTT_TOLERANCE_NS, f"port {port}: handshake off by {hs_err / 1000:.1f} µs: {line!r}")
        worst = max(worst, abs(hs_err))
        if port == 5102:
            chk.check(m["rtt"] is None, f"ambiguous RTT must print rtt=-: {line!r}")
        elif outcome == "completed":
            if chk.check(m["rtt"] is not None, f"port {port}: rtt missing: {line!r}"):
                err = round(float(m["rtt"]) * 1e6) - t.rtt_ns
                worst = max(worst, abs(err))
                chk.check(abs(err) <= RTT_TOLERANCE_NS, f"port {port}: rtt off by {err / 1000:.1f} µs: {line!r}")
    chk.note(f"text mode: max |rtt or handshake - dumpcap truth| = {worst / 1000:.1f} µs")

    # ------------------------------------------------------------------ run 2: bare --print, SIGINT
    fl = N.Flowlatd(lab, ["--interface", lab.client_if, "--print"])
    fl.wait_ready()
    seen = running_attachments(chk, lab, [lab.client_if], "run 2")
    lab.connect(4, 5001, timeout=3)
    fl.wait_for(lambda: len(fl.stdout) >= 1, 3)
    rc = fl.stop(signal.SIGINT)
    chk.check(rc == 0, f"exit code after SIGINT: {rc} (want 0)\n{fl.stderr_text()}")
    lines = [l for _, l in fl.stdout if l.strip()]
    chk.check(len(lines) == 1 and N.TEXT_RE.match(lines[0]) is not None,
              f"bare --print should print one text line, got {lines}")
    check_detached(chk, lab, [lab.client_if], seen, "SIGINT")
    chk.check(foreign_filters_present(lab), "the foreign u32 filters on flc0 were removed (run 2)")

    # ------------------------------------------------------------------ run 3: clsact fallback
    cap = N.Capture(lab, lab.client_ns, lab.client_if)
    fl = N.Flowlatd(lab, ["--interface", lab.client_if, "--print=json"], env={"FLOWLATD_ATTACH_MODE": "clsact"})
    fl.wait_ready()
    a = N.attachments(lab.client_ns, lab.client_if)
    tc_found = [f for f in a.flowlat() if f.startswith("tc ")]
    chk.check(len(tc_found) >= 2, f"clsact mode: expected flowlat filters on both hooks, found {a.flowlat()}")
    conns = [lab.connect(4, 5001, timeout=3), lab.connect(6, 5002, timeout=3)]
    fl.wait_for(lambda: len(fl.stdout) >= 2, 3)
    rc = fl.stop()
    chk.check(rc == 0, f"clsact mode: exit code after SIGTERM: {rc}\n{fl.stderr_text()}")
    pkts = cap.packets()
    errs = Errors()
    keys = [("outbound", N.FAMILY_NAME[c.family], c.local_port, c.peer_port) for c in conns]
    for key, ev in match_events(chk, fl.json_lines(), keys).items():
        c = conns[keys.index(key)]
        check_event(chk, errs, ev, truth(pkts, "outbound", c.family, c.local, c.local_port, c.peer, c.peer_port),
                    lab.client_if, "completed")
    left = N.attachments(lab.client_ns, lab.client_if).flowlat()
    chk.check(not left, f"clsact mode: flowlat left on {lab.client_if} after SIGTERM: {left}")
    chk.check(foreign_filters_present(lab), "clsact mode: the foreign u32 filters (or their qdisc) were removed")
    chk.note(f"clsact mode: max |rtt - dumpcap truth| = {max([abs(e) for e in errs.rtt] or [0]) / 1000:.1f} µs")
    chk.finish()


if __name__ == "__main__":
    N.main_guard(body)
