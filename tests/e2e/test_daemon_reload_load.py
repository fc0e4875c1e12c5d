#!/usr/bin/env python3
"""flowlatd daemon mode: reloads of a 10,000-group file while handshakes flow lose nothing.

A reload is read and validated on a worker thread and swapped in on the event loop, so the
loop keeps draining the ring buffer and sweeping timeouts meanwhile (issue 7: a 10,000-group
reload used to stop the loop for seconds and lose events). flowlatd runs on the client veth
with a 10,000-group config (IPv4 /24s and IPv6 /48s outside the lab's addresses, plus one
group for the responder) and a small ring buffer, so a stalled reader would overflow it.
While one thread connects to the responder without pause, the test reloads RELOADS times
(each with a changed file: one more group), once with two SIGHUPs back to back (coalesced:
the file is read again after the running reload), and fetches /healthz throughout.
Then: flowlat_handshakes_total equals the handshakes driven (completed = connected), the
lost/malformed/flow-table-full counters are 0, every /healthz answered 200, every reload
succeeded (flowlat_config_last_reload_successful 1, one "configuration reloaded" per
reload), and the last file's group is in effect.
"""
import signal
import threading
import time

import daemon_harness as H
import netlab as N
import responder as R

GROUPS = 10_000
RELOADS = 4
PORT = 5001


def config(extra_groups: int) -> str:
    lines = ["# test_daemon_reload_load", "interfaces: [flc0]", "handshake_timeout: 1s",
             "ring_buffer_size: 16KiB", "max_series: 100", "peer_groups:",
             f'  responder: ["{N.PEER_V4}/32", "{N.PEER_V6}/128"]']
    for i in range(GROUPS + extra_groups):
        lines.append(f'  g{i}: [{10 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}.0/24, "2001:db8:{i:x}::/48"]')
    return "\n".join(lines) + "\n"


class Driver(threading.Thread):
    """connect() to the responder in a loop, alternating IPv4 and IPv6, until stopped."""

    def __init__(self, lab: N.Lab):
        super().__init__(daemon=True)
        self.lab, self.results = lab, []
        self.halt = threading.Event()

    def run(self) -> None:
        family = 4
        while not self.halt.is_set():
            self.results.append(H.connect(self.lab, N.ADDRS[family][0], H.PEER[family], PORT, timeout=3))
            family = 6 if family == 4 else 4


def body() -> None:
    chk = N.Checker("test_daemon_reload_load")
    lab = N.Lab("drld")
    H.start_responder(lab, {PORT: R.PortPlan(delay=0.001)})
    cfg = H.write_file(lab, "flowlatd.yaml", config(0))
    N.run([N.flowlatd_path(), "--config.check", f"--config.file={cfg}"])

    fl = H.Daemon(lab, cfg)
    fl.wait_ready(timeout=60)
    driver = Driver(lab)
    driver.start()

    health: list[int] = []
    halt_health = threading.Event()

    def poll_health() -> None:
        while not halt_health.is_set():
            try:
                health.append(fl.get("/healthz").status)
            except OSError as exc:
                health.append(-1)
                N.log(f"/healthz: {exc}")
            time.sleep(0.05)

    poller = threading.Thread(target=poll_health, daemon=True)
    poller.start()

    time.sleep(1)
    before = fl.scrape().value("flowlat_events_lost_total")
    chk.check(before == 0, f"flowlat_events_lost_total = {before} before any reload: the ring buffer is too small")
    reloads = 0
    for n in range(1, RELOADS + 1):
        H.write_file(lab, "flowlatd.yaml", config(n))
        since = fl.log_count()
        t0 = time.monotonic()
        fl.kill(signal.SIGHUP)
        reloads += 1
        if n == 2:
            # A second SIGHUP once the first is being handled (two pending SIGHUPs are one):
            # while the reload runs it is coalesced into one more, else it is a reload of its own.
            fl.wait_log("SIGHUP: reloading", since, 10)
            fl.kill(signal.SIGHUP)
            reloads += 1
        line = fl.wait_log("configuration reloaded", since, 60)
        chk.check(line is not None, f"reload {n}: no 'configuration reloaded' within 60 s")
        if n == 2 and fl.wait_log("a reload is in progress", since, 5) is not None:
            chk.note("the second SIGHUP came during the reload and was coalesced into one more")
        chk.note(f"reload {n}: applied {time.monotonic() - t0:.2f}s after SIGHUP")
        time.sleep(0.5)
    # Every SIGHUP gives one reload: a coalesced one runs after the reload it came during.
    def reloaded_count() -> int:
        return sum(1 for _, l in fl.stderr if "configuration reloaded" in l)
    fl.wait_for(lambda: reloaded_count() >= reloads, 60)
    chk.check(reloaded_count() == reloads, f"{reloaded_count()} 'configuration reloaded' lines, want {reloads}")

    time.sleep(1)
    driver.halt.set()
    driver.join(10)
    halt_health.set()
    poller.join(5)
    results = driver.results
    connected = sum(1 for c in results if c.result == "connected")
    chk.note(f"drove {len(results)} handshakes ({connected} connected) across {reloads} reloads")
    chk.check(connected == len(results), f"harness: {len(results) - connected} connects did not connect")

    def total(m, **labels) -> float:
        return sum(s.value for s in m.find("flowlat_handshakes_total", **labels))

    m = fl.wait_metrics(lambda m: total(m) >= len(results), 10, "handshakes")
    chk.check(total(m) == len(results), f"flowlat_handshakes_total = {total(m)}, drove {len(results)}")
    chk.check(total(m, outcome="completed") == connected,
              f"completed = {total(m, outcome='completed')}, connected {connected}")
    for name in ("flowlat_events_lost_total", "flowlat_events_malformed_total", "flowlat_flow_table_full_total"):
        chk.check(m.value(name) == 0, f"{name} = {m.value(name)}, want 0")
    chk.check(m.value("flowlat_config_last_reload_successful") == 1,
              f"flowlat_config_last_reload_successful = {m.value('flowlat_config_last_reload_successful')}")
    peers = {s.labels.get("peer") for s in m.find("flowlat_handshakes_total")}
    chk.check(peers == {"responder"}, f"peer labels {peers}, want only the responder's group")
    bad = [s for s in health if s != 200]
    chk.check(health and not bad, f"/healthz answered {len(bad)} of {len(health)} times with {set(bad)}")
    chk.note(f"/healthz: {len(health)} answers, all 200" if not bad else f"/healthz: {bad}")

    rc, took = fl.terminate_timed()
    chk.check(rc == 0, f"flowlatd exit code after SIGTERM: {rc}\n{fl.stderr_text()[-2000:]}")
    errors = [l for _, l in fl.stderr if l.split(" ")[1:2] in (["level=error"], ["level=critical"])]
    chk.check(not errors, f"flowlatd logged errors: {errors[:5]}")
    chk.finish()


if __name__ == "__main__":
    N.main_guard(body)
