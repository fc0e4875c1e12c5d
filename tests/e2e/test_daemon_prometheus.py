#!/usr/bin/env python3
"""flowlatd daemon mode scraped by a real Prometheus (/usr/bin/prometheus).

flowlatd runs on the client veth with the default buckets (no `buckets` key) and serves
127.0.0.1:10435 in the client namespace; Prometheus runs in the same namespace with its
own config (scrape_interval 1s), a TSDB in the test's temp dir and 127.0.0.1:9090. For
DRIVE_SECONDS a thread makes handshakes without pause to the responder, which answers
port 5002 after 20 ms and port 5003 after 80 ms, over IPv4 and IPv6. Then through
Prometheus' HTTP API:
  * the target is up and its last scrape had no error;
  * histogram_quantile(0.5, sum by (le, peer, port) (rate(flowlat_handshake_rtt_seconds_bucket[1m])))
    is, for each of the four (peer, port) series, inside the default bucket that holds
    the injected delay: (0.01, 0.025] for 20 ms, (0.05, 0.1] for 80 ms; the same for the
    duration histogram;
  * the completed-handshake counters Prometheus stored equal the daemon's own /metrics
    once traffic has stopped, and the number of connects the test made.
"""
import threading
import time

import daemon_harness as H
import netlab as N
import responder as R

DELAYS = {5002: 0.020, 5003: 0.080}
BUCKET = {5002: (0.01, 0.025), 5003: (0.05, 0.1)}  # default buckets around each delay
DRIVE_SECONDS = 25

CONFIG = """# test_daemon_prometheus: defaults except the interface and the log level
interfaces: [flc0]
log: {level: info}
"""

QUERY = "histogram_quantile(0.5, sum by (le, peer, port) (rate(%s_bucket[1m])))"


def body() -> None:
    chk = N.Checker("test_daemon_prometheus")
    lab = N.Lab("dprom")
    H.start_responder(lab, {p: R.PortPlan(delay=d) for p, d in DELAYS.items()})
    cfg = H.write_file(lab, "flowlatd.yaml", CONFIG)
    fl = H.Daemon(lab, cfg)
    fl.wait_ready()
    prom = H.Prometheus(lab, [f"127.0.0.1:{H.METRICS_PORT}"])
    prom.wait_ready()
    # Wait for the first successful scrape, so the rate window covers the whole drive.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        t = prom.targets()
        if t and t[0].get("health") == "up":
            break
        time.sleep(0.5)
    N.log(f"prometheus ready, target: {[(x.get('scrapeUrl'), x.get('health'), x.get('lastError')) for x in t]}")

    made: dict[tuple, int] = {}
    bad: list[N.Connect] = []
    stop = threading.Event()

    def drive() -> None:
        i = 0
        while not stop.is_set():
            family = 4 if i % 2 == 0 else 6
            port = 5002 if (i // 2) % 2 == 0 else 5003
            i += 1
            c = H.connect(lab, N.ADDRS[family][0], H.PEER[family], port, timeout=3)
            if c.result != "connected":
                bad.append(c)
            else:
                key = (H.PEER[family], str(port))
                made[key] = made.get(key, 0) + 1

    th = threading.Thread(target=drive, daemon=True, name="driver")
    t0 = time.monotonic()
    th.start()
    try:
        while time.monotonic() - t0 < DRIVE_SECONDS:
            time.sleep(1)
            if fl.proc.poll() is not None or prom.proc.poll() is not None:
                break
    finally:
        stop.set()
        th.join(10)
    N.log(f"drove {sum(made.values())} handshakes in {time.monotonic() - t0:.1f}s: {made}")
    if bad:
        N.fail_hard(f"harness: {len(bad)} connects failed, first: {bad[0]}")
    chk.check(fl.proc.poll() is None, f"flowlatd exited during the run:\n{fl.stderr_text()[-2000:]}")
    chk.check(prom.proc.poll() is None, f"prometheus exited during the run:\n{prom.stderr_text()[-2000:]}")
    time.sleep(2.5)  # at least two more scrapes after the last handshake

    # ------------------------------------------------------------------ the target
    targets = prom.targets()
    chk.check(len(targets) == 1 and targets[0].get("health") == "up" and not targets[0].get("lastError"),
              f"scrape target not healthy: {targets}")

    # ------------------------------------------------------------------ quantiles
    for metric in ("flowlat_handshake_rtt_seconds", "flowlat_handshake_duration_seconds"):
        result = prom.query(QUERY % metric)
        got = {(r["metric"].get("peer"), r["metric"].get("port")): float(r["value"][1]) for r in result}
        chk.check(set(got) == set(made), f"{metric}: quantile series {sorted(got)} != driven {sorted(made)}")
        for (peer, port), value in sorted(got.items()):
            lo, hi = BUCKET[int(port)]
            delay = DELAYS[int(port)]
            chk.note(f"{metric}: median peer={peer} port={port} = {value * 1e3:.3f} ms"
                     f" (injected {delay * 1e3:g} ms, bucket ({lo * 1e3:g}, {hi * 1e3:g}] ms)")
            chk.check(lo < value <= hi,
                      f"{metric}: histogram_quantile(0.5) for peer={peer} port={port} = {value}, not inside the"
                      f" bucket ({lo}, {hi}] that holds the injected {delay * 1e3:g} ms")

    # ------------------------------------------------------------------ stored counters vs /metrics
    m = fl.scrape()
    stored = prom.query('flowlat_handshakes_total{outcome="completed"}')
    stored = {(r["metric"]["peer"], r["metric"]["port"]): float(r["value"][1]) for r in stored}
    for key, n in sorted(made.items()):
        own = m.value("flowlat_handshakes_total", default=None, peer=key[0], port=key[1], outcome="completed",
                      interface=lab.client_if, direction="outbound")
        chk.check(own == n, f"/metrics completed handshakes for {key} = {own}, the test made {n}")
        chk.check(stored.get(key) == own, f"Prometheus stored {stored.get(key)} completed handshakes for {key},"
                                          f" /metrics says {own}")
    for name in ("flowlat_events_lost_total", "flowlat_series_overflow_total"):
        chk.check(m.value(name) == 0, f"{name} = {m.value(name)}")

    prom.close()
    rc, took = fl.terminate_timed()
    chk.check(rc == 0, f"flowlatd exit code after SIGTERM: {rc}\n{fl.stderr_text()[-2000:]}")
    chk.finish()


if __name__ == "__main__":
    N.main_guard(body)
