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
Runs 4-7 end --print in the other ways, all in clsact mode, whose filters (unlike TCX
links) outlive a killed process, so a missed detach shows in `tc filter show`:
  4. `flowlatd --print=json | head -1`: head exits after the first handshake's line;
     flowlatd notices the reader has gone without waiting for another line, detaches,
     exits 0 (a second handshake is made if it did not, to expose a SIGPIPE death).
  5. SIGUSR1 and SIGALRM are logged as ignored and the next handshake is still printed;
     then SIGHUP (the terminal hung up): detach, exit 0. The same again ending with SIGQUIT.
  6. SIGTERM during attach: stderr is a pipe filled to capacity, so flowlatd blocks on its
     first log line, "flc0: probe attached", with flc0 attached and flc1 not yet; SIGTERM
     then, and the pipe drained: flowlatd attaches nothing more, detaches flc0, exits 0.
  7. stdout is /dev/full: the first line fails with ENOSPC: detach, exit 2 with one line
     naming stdout.
"""
import fcntl
import ipaddress
import os
import signal
import subprocess
import threading
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

    run_head(chk, lab)
    run_stop_signal(chk, lab, signal.SIGHUP)
    run_stop_signal(chk, lab, signal.SIGQUIT)
    run_sigterm_during_attach(chk, lab, ifnames)
    run_dev_full(chk, lab)
    chk.finish()


CLSACT = {"FLOWLATD_ATTACH_MODE": "clsact"}


class Started:
    """flowlatd (clsact mode) with stdout and stderr wired by the caller; stderr goes to a file
    unless a descriptor is given. Our own child: signalled and killed by pid only."""

    def __init__(self, lab: N.Lab, args: list[str], stdout, stderr=None):
        self.err_path = os.path.join(lab.tmpdir, f"flowlatd-{time.monotonic_ns()}.err")
        err = stderr if stderr is not None else open(self.err_path, "w")
        self.proc = subprocess.Popen(lab.exec_cmd(lab.client_ns, [N.flowlatd_path(), *args]),
                                     stdin=subprocess.DEVNULL, stdout=stdout, stderr=err,
                                     env={**os.environ, **CLSACT})
        if stderr is None:
            err.close()
        N._open_resources.append(self)

    def stderr_text(self) -> str:
        try:
            with open(self.err_path) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_stderr(self, needle: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.stderr_text():
                return True
            if self.proc.poll() is not None:
                return needle in self.stderr_text()
            time.sleep(0.05)
        return False

    def wait(self, timeout: float):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        if self in N._open_resources:
            N._open_resources.remove(self)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def tc_flowlat(lab: N.Lab, ifname: str) -> list[str]:
    return [f for f in N.attachments(lab.client_ns, ifname).flowlat() if f.startswith("tc ")]


def run_head(chk: N.Checker, lab: N.Lab) -> None:
    what = "| head -1"
    fl = Started(lab, ["--interface", lab.client_if, "--print=json"], stdout=subprocess.PIPE)
    head = subprocess.Popen(["head", "-1"], stdin=fl.proc.stdout, stdout=subprocess.PIPE, text=True)
    fl.proc.stdout.close()  # head holds the only read end now
    if not chk.check(fl.wait_stderr("ready", 15), f"{what}: flowlatd not ready:\n{fl.stderr_text()}"):
        head.kill()
        head.wait()
        fl.close()
        return
    chk.check(len(tc_flowlat(lab, lab.client_if)) >= 2, f"{what}: flowlat filters not attached")
    lab.connect(4, 5001, timeout=3)
    try:
        out, _ = head.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        head.kill()
        out, _ = head.communicate()
    chk.check(len(out.splitlines()) == 1 and out.startswith("{"), f"{what}: head printed {out!r}")
    rc = fl.wait(3)
    chk.check(rc is not None, f"{what}: flowlatd still runs 3 s after its reader has gone")
    if rc is None:  # a second line would meet the closed pipe: SIGPIPE, or EPIPE when ignored
        lab.connect(4, 5001, timeout=3)
        rc = fl.wait(5)
    fl.close()
    chk.check(rc == 0, f"{what}: exit code {rc} (want 0)\n{fl.stderr_text()}")
    left = tc_flowlat(lab, lab.client_if)
    chk.check(not left, f"{what}: flowlat filters left on {lab.client_if}: {left}")
    chk.check(foreign_filters_present(lab), f"{what}: the foreign u32 filters were removed")


def run_stop_signal(chk: N.Checker, lab: N.Lab, sig: int) -> None:
    """Stray signals first (logged and ignored: the handshake after them is still printed),
    then `sig` stops --print: exit 0, detached."""
    what = signal.Signals(sig).name
    fl = N.Flowlatd(lab, ["--interface", lab.client_if, "--print=json"], env=CLSACT)
    fl.wait_ready()
    chk.check(len(tc_flowlat(lab, lab.client_if)) >= 2, f"{what}: flowlat filters not attached")
    for stray in (signal.SIGUSR1, signal.SIGALRM):
        fl.proc.send_signal(stray)
        name = signal.Signals(stray).name
        ignored = fl.wait_for(lambda: any(name in l and "ignored" in l for _, l in fl.stderr), 3)
        chk.check(ignored and fl.proc.poll() is None,
                  f"{name}: want a log line naming it as ignored and flowlatd running (rc={fl.proc.poll()})\n"
                  f"{fl.stderr_text()}")
    lab.connect(4, 5001, timeout=3)
    fl.wait_for(lambda: len(fl.stdout) >= 1, 3)
    rc = fl.stop(sig)
    chk.check(rc == 0, f"{what}: exit code {rc} (want 0)\n{fl.stderr_text()}")
    chk.check(len(fl.json_lines()) == 1, f"{what}: want the handshake's line, got {fl.stdout}")
    left = tc_flowlat(lab, lab.client_if)
    chk.check(not left, f"{what}: flowlat filters left on {lab.client_if}: {left}")
    chk.check(foreign_filters_present(lab), f"{what}: the foreign u32 filters were removed")


def run_sigterm_during_attach(chk: N.Checker, lab: N.Lab, ifnames: list[str]) -> None:
    what = "SIGTERM during attach"
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, 1031, 4096)  # F_SETPIPE_SZ: one page
    os.set_blocking(write_end, False)
    try:
        while True:
            os.write(write_end, b"-" * 4096)
    except BlockingIOError:
        pass
    os.set_blocking(write_end, True)
    args = [a for i in ifnames for a in ("--interface", i)] + ["--print=json"]
    fl = Started(lab, args, stdout=subprocess.DEVNULL, stderr=write_end)
    os.close(write_end)
    drained: list[bytes] = []

    def drain() -> None:
        while chunk := os.read(read_end, 65536):
            drained.append(chunk)
        os.close(read_end)

    # flowlatd blocks writing its first log line, which follows the first attach.
    deadline = time.monotonic() + 10
    while not tc_flowlat(lab, ifnames[0]) and time.monotonic() < deadline and fl.proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.2)
    mid_attach = bool(tc_flowlat(lab, ifnames[0])) and not tc_flowlat(lab, ifnames[1])
    chk.check(mid_attach, f"{what}: flowlatd was not caught with {ifnames[0]} attached and {ifnames[1]} not: "
                          f"{tc_flowlat(lab, ifnames[0])} / {tc_flowlat(lab, ifnames[1])}")
    if fl.proc.poll() is None:
        fl.proc.send_signal(signal.SIGTERM)
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    rc = fl.wait(10)
    fl.close()
    reader.join(5)
    err = b"".join(drained).decode(errors="replace").lstrip("-")
    N.log(f"{what}: rc={rc}, stderr: {err.strip()}")
    chk.check(rc == 0, f"{what}: exit code {rc} (want 0)\n{err}")
    chk.check("during start-up" in err and "ready" not in err,
              f"{what}: flowlatd should stop during start-up, without going on to 'ready':\n{err}")
    for ifname in ifnames:
        left = tc_flowlat(lab, ifname)
        chk.check(not left, f"{what}: flowlat filters left on {ifname}: {left}")
    chk.check(foreign_filters_present(lab), f"{what}: the foreign u32 filters were removed")


def run_dev_full(chk: N.Checker, lab: N.Lab) -> None:
    what = "stdout /dev/full"
    with open("/dev/full", "w") as full:
        fl = Started(lab, ["--interface", lab.client_if, "--print=json"], stdout=full)
    if not chk.check(fl.wait_stderr("ready", 15), f"{what}: flowlatd not ready:\n{fl.stderr_text()}"):
        fl.close()
        return
    lab.connect(4, 5001, timeout=3)
    rc = fl.wait(5)
    fl.close()
    err = fl.stderr_text()
    chk.check(rc == 2, f"{what}: exit code {rc} (want 2)\n{err}")
    want = "flowlatd: cannot write to stdout: No space left on device"
    errors = [l for l in err.splitlines() if l.startswith("flowlatd:")]
    chk.check(errors == [want], f"{what}: want the one line {want!r}, got {errors}\n{err}")
    left = tc_flowlat(lab, lab.client_if)
    chk.check(not left, f"{what}: flowlat filters left on {lab.client_if}: {left}")


if __name__ == "__main__":
    N.main_guard(body)
