#!/usr/bin/env python3
"""flowlatd daemon mode: reload, interfaces coming and going, health, shutdown, --config.check.

Daemon 1 runs with interfaces: ["flc*"] (only flc0 exists at start):
  1. start: /healthz 200, flowlat_config_last_reload_successful 1; 3 handshakes to
     198.18.0.3 are labelled peer="198.18.0.3".
  2. SIGHUP with a good file that adds peer group db = 198.18.0.3/32: reload metric stays 1,
     its timestamp advances, no counter goes backwards, the old series keeps its 3, and new
     handshakes to 198.18.0.3 are counted under peer="db".
  3. SIGHUP with a type error, then with a YAML syntax error: flowlatd stays up, logs the
     error as file:line:column: key: message, the reload metric is 0, the timestamp does
     not move, and the old config keeps measuring (new handshakes still counted, as db).
     A good file again brings the metric back to 1.
  4. A veth HOTPLUG_IF (flc"x\\1, matching flc*) created while running is attached
     (flowlat_probe_attached 1, label escaped, promtool clean) and measures; when it is deleted its
     flowlat_probe_attached series goes (it is no longer wanted) and its handshake series stay;
     /healthz stays 200 (a glob may match nothing).
  5. SIGTERM: exit 0 within 2 s; no flowlat program left on flc0 (TCX queried from the
     kernel, `tc filter show`), and the programs/links seen while running are gone
     (`bpftool prog/link show`).
--config.check: a good file exits 0; a file with four errors exits 1 and prints exactly
one `file:line:column: key: message` line per error at the right line/column; a YAML
syntax error prints `file:line:column: message`.
Daemon 2 runs with interfaces: [flc0, nosuch0] and its listen address from the file:
/healthz 503 naming nosuch0, flowlat_probe_attached{interface="nosuch0"} 0; once nosuch0
is created: 1 and 200. A reload that changes web.listen_addresses moves the listener (the
old port is closed); one to a port that is taken fails (reload metric 0) and the previous
listener serves again. Stray USR1, USR2, ALRM, PWR and RTMIN+2 are each logged as ignored,
and nothing changes; SIGQUIT then stops it like SIGTERM (exit 0 within 2 s, detached).
"""
import os
import re
import signal
import time

import daemon_harness as H
import netlab as N
import responder as R

PORT = 5001
SHUTDOWN_LIMIT = 2.0
# Signals whose default action ends a process; flowlatd must log and ignore them.
STRAY_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGPWR, signal.SIGRTMIN + 2)
PLANS = {PORT: R.PortPlan(delay=0.005)}
# The interface that comes and goes matches flc* and holds a quote and a backslash (both
# legal in Linux interface names), so its label must be escaped in the exposition.
HOTPLUG_IF = 'flc"x\\1'


BASE = """# test_daemon_lifecycle
interfaces: ["flc*"]
log: {level: info}
handshake_timeout: 1s
"""
WITH_GROUP = BASE + f"""peer_groups:
  db: ["{H.GROUP_V4}/32"]
"""
TYPE_ERROR = WITH_GROUP + 'max_series: "lots"\n'          # line 7
SYNTAX_ERROR = WITH_GROUP + "ports: {include: [80, 443\n"  # unclosed flow sequence

# --config.check: four errors at known places (line, column, key).
BAD_CHECK = (
    'max_series: "lots"\n'             # 1:13 max_series
    "peer_groups:\n"
    '  db: ["198.18.0.3/24"]\n'        # 3:8  peer_groups.db[0] (host bits set)
    "web:\n"
    '  listen: [":1"]\n'               # 5:3  web.listen (unknown key)
    "handshake_timeout: 1ms\n"         # 6:20 handshake_timeout (below 100ms)
)
BAD_CHECK_WANT = [(1, 13, "max_series"), (3, 8, "peer_groups.db[0]"), (5, 3, "web.listen"),
                  (6, 20, "handshake_timeout")]


def counters(m: H.Metrics) -> dict[tuple, float]:
    """Every monotonic sample (counters and histogram parts) by name and labels."""
    out = {}
    for s in m.samples:
        if s.name.startswith("flowlat_") and s.name.endswith(("_total", "_bucket", "_count", "_sum")):
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def completed(m: H.Metrics, peer: str, interface: str = N.CLIENT_IF) -> float:
    return m.value("flowlat_handshakes_total", default=0, peer=peer, outcome="completed", interface=interface,
                   direction="outbound", family="ipv4", port=str(PORT))


def drive(chk: N.Checker, lab: N.Lab, n: int, local: str = N.CLIENT_V4, peer: str = H.GROUP_V4) -> None:
    for _ in range(n):
        c = H.connect(lab, local, peer, PORT, timeout=3)
        if c.result != "connected":
            N.fail_hard(f"harness: connect to {peer}:{PORT} gave {c.result}")


def sighup(chk: N.Checker, fl: H.Daemon, path: str, text: str, expect_ok: bool, what: str) -> H.Metrics:
    with open(path, "w") as f:
        f.write(text)
    since = fl.log_count()
    fl.kill(signal.SIGHUP)
    needle = "configuration reloaded" if expect_ok else "reload failed"
    line = fl.wait_log(needle, since, 5)
    chk.check(line is not None, f"{what}: no '{needle}' log line within 5 s after SIGHUP; log since:\n"
                                + "\n".join(l for _, l in fl.stderr[since:]))
    chk.check(fl.alive(), f"{what}: flowlatd exited after SIGHUP (rc={fl.proc.poll()}):\n{fl.stderr_text()[-2000:]}")
    if not fl.alive():
        N.fail_hard(f"{what}: flowlatd is gone, cannot continue")
    # The outcome is logged a moment before the reload metric is set; the caller checks it.
    want = 1 if expect_ok else 0
    return fl.wait_metrics(lambda m: m.value("flowlat_config_last_reload_successful") == want, 2, what)


def signal_name(sig: int) -> str:
    """The name flowlatd logs (it counts real-time signals from SIGRTMIN, as glibc does)."""
    if signal.SIGRTMIN <= sig <= signal.SIGRTMAX:
        return "SIGRTMIN" if sig == signal.SIGRTMIN else f"SIGRTMIN+{sig - signal.SIGRTMIN}"
    return signal.Signals(sig).name


def kernel_objects(lab: N.Lab, ifname: str) -> list[tuple[int, int]]:
    a = N.attachments(lab.client_ns, ifname)
    return [(p, l) for entries in a.tcx.values() for p, l, name in entries if name and name.startswith("flowlat")]


def daemon_one(chk: N.Checker, lab: N.Lab) -> None:
    cfg = H.write_file(lab, "flowlatd.yaml", BASE)
    fl = H.Daemon(lab, cfg)
    fl.wait_ready()

    # ------------------------------------------------------------------ 1. start
    r = fl.get("/healthz")
    chk.check(r.status == 200, f"/healthz at start = {r.status} {r.text!r}, want 200")
    drive(chk, lab, 3)
    m0 = fl.wait_metrics(lambda m: completed(m, H.GROUP_V4) >= 3, 3, "first handshakes")
    chk.check(completed(m0, H.GROUP_V4) == 3, f"peer={H.GROUP_V4}: {completed(m0, H.GROUP_V4)} completed, want 3")
    chk.check(m0.value("flowlat_config_last_reload_successful") == 1, "reload_successful != 1 at start")
    ts0 = m0.value("flowlat_config_last_reload_success_timestamp_seconds")
    seen = kernel_objects(lab, lab.client_if)
    chk.check(len(seen) >= 2, f"expected flowlat TCX programs on flc0 ingress and egress, found {seen}")

    # ------------------------------------------------------------------ 2. good reload
    time.sleep(0.05)
    m1 = sighup(chk, fl, cfg, WITH_GROUP, True, "good reload")
    chk.check(m1.value("flowlat_config_last_reload_successful") == 1,
              f"after a good reload reload_successful = {m1.value('flowlat_config_last_reload_successful')}")
    ts1 = m1.value("flowlat_config_last_reload_success_timestamp_seconds")
    chk.check(ts1 is not None and ts0 is not None and ts1 > ts0,
              f"reload success timestamp did not advance: {ts0} -> {ts1}")
    before, after = counters(m0), counters(m1)
    back = [(k, v, after.get(k)) for k, v in before.items() if after.get(k) is None or after[k] < v]
    chk.check(not back, f"counters went backwards or vanished across the good reload: {back[:5]}")
    drive(chk, lab, 2)
    m2 = fl.wait_metrics(lambda m: completed(m, "db") >= 2, 3, "db handshakes")
    chk.check(completed(m2, "db") == 2, f"after the reload: peer=db completed {completed(m2, 'db')}, want 2")
    chk.check(completed(m2, H.GROUP_V4) == 3,
              f"old series peer={H.GROUP_V4} should keep its 3, has {completed(m2, H.GROUP_V4)}")

    # ------------------------------------------------------------------ 3. bad reloads
    want_db = 2
    for what, text in (("type error", TYPE_ERROR), ("syntax error", SYNTAX_ERROR)):
        since = fl.log_count()
        m = sighup(chk, fl, cfg, text, False, f"bad reload ({what})")
        chk.check(m.value("flowlat_config_last_reload_successful") == 0,
                  f"bad reload ({what}): reload_successful = {m.value('flowlat_config_last_reload_successful')}, want 0")
        chk.check(m.value("flowlat_config_last_reload_success_timestamp_seconds") == ts1,
                  f"bad reload ({what}): success timestamp moved from {ts1}"
                  f" to {m.value('flowlat_config_last_reload_success_timestamp_seconds')}")
        pos = re.compile(re.escape(cfg) + r":\d+:\d+: ")
        diag = [l for _, l in fl.stderr[since:] if pos.search(l)]
        chk.check(bool(diag), f"bad reload ({what}): no '{cfg}:line:column: ...' line logged:\n"
                              + "\n".join(l for _, l in fl.stderr[since:]))
        if what == "type error":
            chk.check(any(f"{cfg}:7:13: max_series:" in l for l in diag),
                      f"type error: want a '{cfg}:7:13: max_series: ...' line, got {diag}")
        before = counters(m)
        drive(chk, lab, 2)
        want_db += 2
        m = fl.wait_metrics(lambda m: completed(m, "db") >= want_db, 3, "handshakes after a bad reload")
        chk.check(completed(m, "db") == want_db,
                  f"after a bad reload ({what}) the old config must keep measuring: peer=db completed"
                  f" {completed(m, 'db')}, want {want_db}")
        after = counters(m)
        back = [(k, v, after.get(k)) for k, v in before.items() if after.get(k) is None or after[k] < v]
        chk.check(not back, f"counters went backwards after the bad reload ({what}): {back[:5]}")
    m = sighup(chk, fl, cfg, WITH_GROUP, True, "good reload after bad ones")
    chk.check(m.value("flowlat_config_last_reload_successful") == 1,
              "a good reload after a failed one must set reload_successful back to 1")

    # ------------------------------------------------------------------ 4. interfaces come and go
    veth = H.Veth(lab, HOTPLUG_IF, "flr1", 1, PLANS)
    m = fl.wait_metrics(lambda m: m.value("flowlat_probe_attached", default=0, interface=HOTPLUG_IF) == 1, 5, "hotplug")
    chk.check(m.value("flowlat_probe_attached", default=None, interface=HOTPLUG_IF) == 1,
              f"{HOTPLUG_IF!r} appeared and matches flc*, but flowlat_probe_attached = {m.find('flowlat_probe_attached')}")
    seen_hotplug = kernel_objects(lab, HOTPLUG_IF)
    chk.check(len(seen_hotplug) >= 2, f"expected flowlat TCX programs on {HOTPLUG_IF!r}, found {seen_hotplug}")
    drive(chk, lab, 2, veth.local[4], veth.peer[4])
    m = fl.wait_metrics(lambda m: completed(m, veth.peer[4], HOTPLUG_IF) >= 2, 3, "hotplug handshakes")
    lint = H.promtool_check_metrics(m.text)
    chk.check(lint.returncode == 0 and not (lint.stdout + lint.stderr).strip(),
              f"promtool check metrics with interface {HOTPLUG_IF!r}: {lint.stdout}{lint.stderr}")
    chk.check(completed(m, veth.peer[4], HOTPLUG_IF) == 2,
              f"handshakes over {HOTPLUG_IF!r}: {completed(m, veth.peer[4], HOTPLUG_IF)} completed, want 2")
    veth.delete()
    m = fl.wait_metrics(lambda m: m.value("flowlat_probe_attached", default=None, interface=HOTPLUG_IF) is None, 5,
                        "hotplug gone")
    chk.check(m.value("flowlat_probe_attached", default=None, interface=HOTPLUG_IF) is None,
              f"{HOTPLUG_IF!r} was deleted, flowlat_probe_attached = {m.find('flowlat_probe_attached')}"
              " (a glob match that vanished is no longer wanted: want no series, not a 0 that pages forever)")
    chk.check(m.value("flowlat_probe_attached", default=None, interface=lab.client_if) == 1,
              f"flc0 must stay attached: {m.find('flowlat_probe_attached')}")
    chk.check(completed(m, veth.peer[4], HOTPLUG_IF) == 2,
              f"the series of the vanished {HOTPLUG_IF!r} must stay: {completed(m, veth.peer[4], HOTPLUG_IF)} completed, want 2")
    r = fl.get("/healthz")
    chk.check(r.status == 200, f"/healthz after a glob-matched interface vanished = {r.status} {r.text!r}, want 200")
    chk.check(fl.alive(), f"flowlatd exited after {HOTPLUG_IF!r} was deleted")

    # ------------------------------------------------------------------ 5. SIGTERM
    rc, took = fl.terminate_timed(signal.SIGTERM)
    chk.note(f"SIGTERM -> exit {rc} after {took:.2f}s")
    chk.check(rc == 0, f"exit code after SIGTERM: {rc}\n{fl.stderr_text()[-2000:]}")
    chk.check(took <= SHUTDOWN_LIMIT, f"flowlatd took {took:.2f}s to exit after SIGTERM (limit {SHUTDOWN_LIMIT}s)")
    left = N.attachments(lab.client_ns, lab.client_if).flowlat()
    chk.check(not left, f"flowlat still attached to {lab.client_if} after exit: {left}")
    for hook in ("ingress", "egress"):
        out = N.run(lab.exec_cmd(lab.client_ns, ["tc", "filter", "show", "dev", lab.client_if, hook]), check=False)
        chk.check("flowlat" not in out.stdout, f"tc filter show dev {lab.client_if} {hook}: {out.stdout}")
    deadline = time.monotonic() + 3
    alive = seen + seen_hotplug
    while alive and time.monotonic() < deadline:
        alive = [(p, l) for p, l in alive if N.prog_name(p) is not None or N.link_exists(l)]
        if alive:
            time.sleep(0.2)
    chk.check(not alive, f"BPF programs/links (prog id, link id) still exist after exit: {alive}")
    links = N.run(["bpftool", "-j", "link", "show"], check=False).stdout
    ours = {l for _, l in seen + seen_hotplug}
    still = [l for l in ours if re.search(rf'"id":\s*{l}\b', links)]
    chk.check(not still, f"bpftool link show still lists links {still}")


def config_check(chk: N.Checker, lab: N.Lab) -> None:
    good = H.write_file(lab, "good.yaml", WITH_GROUP)
    p = H.config_check(lab, good)
    chk.check(p.returncode == 0 and "configuration is valid" in p.stdout and not p.stderr.strip(),
              f"--config.check on a good file: exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    bad = H.write_file(lab, "bad.yaml", BAD_CHECK)
    p = H.config_check(lab, bad)
    chk.check(p.returncode == 1, f"--config.check on a bad file: exit {p.returncode}, want 1\n{p.stderr}")
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    line_re = re.compile(re.escape(bad) + r":(\d+):(\d+): ([A-Za-z0-9_.\[\]]+): (.+)$")
    got = []
    for l in lines:
        mm = line_re.match(l)
        if chk.check(mm is not None, f"--config.check line not in 'file:line:column: key: message' form: {l!r}"):
            got.append((int(mm.group(1)), int(mm.group(2)), mm.group(3)))
    chk.check(got == BAD_CHECK_WANT, f"--config.check errors (line, column, key) = {got}, want {BAD_CHECK_WANT}"
                                     f"\n{p.stderr}")
    syntax = H.write_file(lab, "syntax.yaml", SYNTAX_ERROR)
    p = H.config_check(lab, syntax)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    chk.check(p.returncode == 1 and len(lines) == 1 and re.match(re.escape(syntax) + r":\d+:\d+: \S.*", lines[0]),
              f"--config.check on a YAML syntax error: exit {p.returncode}, want 1 and one"
              f" 'file:line:column: message' line:\n{p.stderr}")


def daemon_two(chk: N.Checker, lab: N.Lab) -> None:
    """Listen addresses from the file (no flag), a missing named interface, and reloads
    that move the listener."""
    text = "interfaces: [flc0, nosuch0]\nlog: {level: info}\nweb: {listen_addresses: ['127.0.0.1:%d']}\n"
    cfg = H.write_file(lab, "missing-if.yaml", text % H.METRICS_PORT)
    fl = H.Daemon(lab, cfg, listen=False)
    fl.wait_ready()
    r = fl.get("/healthz")
    chk.check(r.status == 503 and "nosuch0" in r.text,
              f"/healthz with a missing named interface = {r.status} {r.text!r}, want 503 naming nosuch0")
    warned = [l for _, l in fl.stderr if "nosuch0: configured interface does not exist" in l]
    chk.check(len(warned) == 1, f"a missing configured interface is logged once at start: {fl.stderr_text()[-2000:]}")
    m = fl.scrape()
    chk.check(m.value("flowlat_probe_attached", default=None, interface="nosuch0") == 0
              and m.value("flowlat_probe_attached", default=None, interface=lab.client_if) == 1,
              f"flowlat_probe_attached with nosuch0 missing: {m.find('flowlat_probe_attached')}")
    N.run(["ip", "-n", lab.client_ns, "link", "add", "nosuch0", "type", "veth", "peer", "name", "nosuchp0",
           "netns", lab.peer_ns])
    N.run(["ip", "-n", lab.client_ns, "link", "set", "nosuch0", "up"])
    m = fl.wait_metrics(lambda m: m.value("flowlat_probe_attached", default=0, interface="nosuch0") == 1, 5,
                        "nosuch0 appears")
    chk.check(m.value("flowlat_probe_attached", default=None, interface="nosuch0") == 1,
              f"nosuch0 was created, flowlat_probe_attached = {m.find('flowlat_probe_attached')}")
    r = fl.get("/healthz")
    chk.check(r.status == 200, f"/healthz once nosuch0 exists = {r.status} {r.text!r}, want 200")

    # The listener moves on reload (docs/configuration.md, Reloading).
    new_port, taken_port = H.METRICS_PORT + 1, H.METRICS_PORT + 2
    t0 = time.monotonic()
    with open(cfg, "w") as f:
        f.write(text % new_port)
    since = fl.log_count()
    fl.kill(signal.SIGHUP)
    ok = fl.wait_log("configuration reloaded", since, 8)
    took = time.monotonic() - t0
    chk.note(f"reload that moves the listener took {took:.2f}s")
    chk.check(ok is not None, "reload to a new listen address: no 'configuration reloaded' line")
    fl.port = new_port
    r = fl.get("/healthz")
    chk.check(r.status == 200, f"after moving the listener to :{new_port}: /healthz {r.status}")
    try:
        H.http_get(fl.ns, H.METRICS_PORT, "/healthz", timeout=2)
        chk.check(False, f"the old listener :{H.METRICS_PORT} still answers after the reload moved it")
    except OSError:
        pass
    with N.netns(lab.client_ns):
        blocker = __import__("socket").socket()
    try:
        blocker.bind(("127.0.0.1", taken_port))
        blocker.listen()
        with open(cfg, "w") as f:
            f.write(text % taken_port)
        since = fl.log_count()
        fl.kill(signal.SIGHUP)
        line = fl.wait_log("reload failed", since, 8)
        chk.check(line is not None and str(taken_port) in line,
                  f"reload to a taken port must fail naming it; log: {[l for _, l in fl.stderr[since:]]}")
        chk.check(fl.alive(), "flowlatd exited after a reload to a taken port")
        m = fl.scrape()  # the previous listener (new_port) must be back
        chk.check(m.value("flowlat_config_last_reload_successful") == 0,
                  "a reload that cannot bind must set reload_successful to 0")
    finally:
        blocker.close()

    # Stray signals whose default action would kill the process: logged, ignored, nothing lost.
    before = counters(fl.scrape())
    for sig in STRAY_SIGNALS:
        since = fl.log_count()
        fl.kill(sig)
        line = fl.wait_log("ignored", since, 5)
        chk.check(line is not None and signal_name(sig) in line,
                  f"{signal_name(sig)}: want a log line naming it as ignored; log: {[l for _, l in fl.stderr[since:]]}")
        chk.check(fl.alive(), f"flowlatd exited on {signal_name(sig)} (rc={fl.proc.poll()})")
        if not fl.alive():
            N.fail_hard(f"flowlatd is gone after {signal_name(sig)}, cannot continue")
    m = fl.scrape()
    chk.check(counters(m) == before and m.value("flowlat_probe_attached", default=None, interface="nosuch0") == 1,
              f"after stray signals: counters {counters(m)} (were {before}), attached {m.find('flowlat_probe_attached')}")
    chk.check(fl.get("/healthz").status == 200, "after stray signals: /healthz is not 200")

    # SIGQUIT stops like SIGTERM: exit 0, probes detached.
    rc, took = fl.terminate_timed(signal.SIGQUIT)
    chk.check(rc == 0 and took <= SHUTDOWN_LIMIT,
              f"daemon 2: SIGQUIT gave exit code {rc} after {took:.2f}s\n{fl.stderr_text()[-2000:]}")
    for ifname in (lab.client_if, "nosuch0"):
        chk.check(not N.attachments(lab.client_ns, ifname).flowlat(), f"flowlat still attached to {ifname} after SIGQUIT")


def daemon_default(chk: N.Checker, lab: N.Lab) -> None:
    """The README's run command: no file, no flag. The embedded default probes the
    interfaces of the default route and follows it as it comes, moves and goes."""
    if os.path.exists("/etc/flowlatd/flowlatd.yaml"):
        chk.note("/etc/flowlatd/flowlatd.yaml exists on this host: the embedded default is not what runs; skipped")
        return
    fl = H.Daemon(lab, None, listen=False, port=10435)
    fl.wait_ready()
    chk.check(fl.wait_log("<embedded default>", 0, 1) is not None,
              f"a start without a file must say it runs on the embedded default:\n{fl.stderr_text()[-1000:]}")
    r = fl.get("/healthz")
    chk.check(r.status == 503, f"no default route yet: /healthz {r.status} {r.text!r}, want 503")

    # A default route that appears after start (DHCP at boot) is followed without a reload.
    N.run(["ip", "-n", lab.client_ns, "route", "add", "default", "dev", lab.client_if])
    m = fl.wait_metrics(lambda m: m.value("flowlat_probe_attached", default=0, interface=lab.client_if) == 1, 5,
                        "default route added")
    chk.check(m.value("flowlat_probe_attached", default=0, interface=lab.client_if) == 1,
              f"default route via {lab.client_if} added: flowlat_probe_attached = {m.find('flowlat_probe_attached')}")
    chk.check(fl.get("/healthz").status == 200, "default route present: /healthz is not 200")
    drive(chk, lab, 2)
    m = fl.wait_metrics(lambda m: completed(m, H.GROUP_V4, lab.client_if) == 2, 3, "handshakes on the default route")
    chk.check(completed(m, H.GROUP_V4, lab.client_if) == 2,
              f"2 handshakes over the default route's interface: counted {completed(m, H.GROUP_V4, lab.client_if)}")

    # The route goes: the probe is detached and its series stay.
    N.run(["ip", "-n", lab.client_ns, "route", "del", "default", "dev", lab.client_if])
    m = fl.wait_metrics(lambda m: m.value("flowlat_probe_attached", default=None, interface=lab.client_if) is None, 5,
                        "default route removed")
    chk.check(m.value("flowlat_probe_attached", default=None, interface=lab.client_if) is None,
              f"default route removed: flowlat_probe_attached = {m.find('flowlat_probe_attached')}, want no series")
    chk.check(completed(m, H.GROUP_V4, lab.client_if) == 2, "the series must stay after the route went away")
    chk.check(not N.attachments(lab.client_ns, lab.client_if).flowlat(),
              "flowlat still attached after the default route went away")

    # An IPv6 default without a gateway (as WireGuard and tunnels set it) counts as well.
    N.run(["ip", "-n", lab.client_ns, "-6", "route", "add", "default", "dev", lab.client_if])
    m = fl.wait_metrics(lambda m: m.value("flowlat_probe_attached", default=0, interface=lab.client_if) == 1, 5,
                        "IPv6 default dev added")
    chk.check(m.value("flowlat_probe_attached", default=0, interface=lab.client_if) == 1,
              f"IPv6 'default dev {lab.client_if}' added: flowlat_probe_attached = {m.find('flowlat_probe_attached')}")
    N.run(["ip", "-n", lab.client_ns, "-6", "route", "del", "default", "dev", lab.client_if])
    rc, took = fl.terminate_timed(signal.SIGTERM)
    chk.check(rc == 0 and took < SHUTDOWN_LIMIT, f"embedded default: SIGTERM gave {rc} after {took:.2f}s")


def default_file_vanishes(chk: N.Checker, lab: N.Lab) -> None:
    """Without --config.file the daemon reads /etc/flowlatd/flowlatd.yaml. If that file goes away
    while it runs, SIGHUP must fail the reload, not fall back to the embedded default (which would
    move the listener to :10435 and the probes to the default route's interfaces). The file lives
    on a tmpfs in a private mount namespace, so the host's /etc is never written (only an empty
    /etc/flowlatd mount point is created, and removed again, if the host has none)."""
    etc_dir = "/etc/flowlatd"
    created = not os.path.isdir(etc_dir)
    if created:
        os.mkdir(etc_dir)
    try:
        cfg = H.write_file(lab, "etc-default.yaml", f"interfaces: [{lab.client_if}]\nlog: {{level: info}}\n")
        setup = (f"mount -t tmpfs -o size=1m flowlat-test {etc_dir} && cp {cfg} {etc_dir}/flowlatd.yaml"
                 ' && exec "$@"')
        fl = H.Daemon(lab, None, prefix=("unshare", "-m", "--propagation", "private", "sh", "-c", setup, "sh"))
        fl.wait_ready()
        m = fl.scrape()
        chk.check(m.value("flowlat_probe_attached", default=None, interface=lab.client_if) == 1,
                  f"default file: {lab.client_if} attached as the file says: {m.find('flowlat_probe_attached')}")
        N.run(["nsenter", "-t", str(fl.pid), "-m", "rm", f"{etc_dir}/flowlatd.yaml"])
        since = fl.log_count()
        fl.kill(signal.SIGHUP)
        line = fl.wait_log("reload failed", since, 5)
        chk.check(line is not None and "no longer exists" in line,
                  f"default file removed, SIGHUP: want a failed reload naming it; log: {[l for _, l in fl.stderr[since:]]}")
        m = fl.wait_metrics(lambda m: m.value("flowlat_config_last_reload_successful") == 0, 3, "vanished file")
        chk.check(m.value("flowlat_config_last_reload_successful") == 0
                  and m.value("flowlat_probe_attached", default=None, interface=lab.client_if) == 1,
                  f"default file removed: reload_successful {m.value('flowlat_config_last_reload_successful')},"
                  f" attached {m.find('flowlat_probe_attached')}; want 0 and the file's interface still attached")
        rc, took = fl.terminate_timed(signal.SIGTERM)
        chk.check(rc == 0, f"default file daemon: SIGTERM gave {rc}")
    finally:
        if created:
            os.rmdir(etc_dir)


def body() -> None:
    chk = N.Checker("test_daemon_lifecycle")
    lab = N.Lab("dlife")
    H.add_group_peers(lab)
    H.start_responder(lab, PLANS)
    daemon_one(chk, lab)
    config_check(chk, lab)
    daemon_two(chk, lab)
    daemon_default(chk, lab)
    default_file_vanishes(chk, lab)
    chk.finish()


if __name__ == "__main__":
    N.main_guard(body)
