#!/usr/bin/env python3
"""Exposition v2 against real Prometheus 2.42 servers: native histograms, exemplars, OpenMetrics.

flowlatd runs on the client veth with its default buckets; the responder answers port 5001
after 5 ms, 5002 after 20 ms, 5003 after 80 ms and 5004 after 300 ms, over IPv4 and IPv6.
Two Prometheus servers scrape it every second in the same run:
  * "native": --enable-feature=native-histograms,exemplar-storage. It asks for protobuf and
    stores the native histograms (and, as 2.42 does, no classic buckets for them);
  * "classic": --enable-feature=exemplar-storage only. It asks for OpenMetrics 1.0, so its
    own OpenMetrics parser reads flowlatd's body (# EOF, _created, exemplars), and it stores
    the classic buckets.
Checks, after driving handshakes without pause for DRIVE_SECONDS:
  * both targets up, no scrape error, and each got the format it negotiated (the
    Content-Type flowlatd answers to each server's Accept header, gzip on);
  * native histogram_quantile(0.5, sum by (port) (rate(flowlat_handshake_rtt_seconds[1m])))
    within 5 % of each driven delay, or of the delay the Python responder really delivered
    (median of its kernel RX-to-TX stamps: on 2 loaded cores it adds up to ~0.5 ms, which is
    10 % of 5 ms); the classic quantile of the same run is noted (and must lie inside the
    classic bucket that holds the delivered median);
  * /api/v1/query_exemplars on both servers returns, for every port's series, exemplars that
    name the peer (its full address and port) with a value at or above that port's delay, so
    the slow series' exemplars name the slow peers.
"""
import gzip
import threading
import time

import daemon_harness as H
import netlab as N
import responder as R

DELAYS = {5001: 0.005, 5002: 0.020, 5003: 0.080, 5004: 0.300}
DRIVE_SECONDS = 30
NATIVE_PORT, CLASSIC_PORT = 9090, 9091

CONFIG = """# test_exposition_prometheus: defaults except the interface and the log level
interfaces: [flc0]
log: {level: info}
"""

PROTOBUF = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class Prometheus(H.Prometheus):
    """H.Prometheus with feature flags (the harness starts it without any)."""

    def __init__(self, lab: N.Lab, name: str, port: int, features: str):
        self.ns, self.port = lab.client_ns, port
        data = f"{lab.tmpdir}/prometheus-{name}"
        cfg = H.write_file(lab, f"prometheus-{name}.yml", (
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: flowlatd\n    static_configs:\n"
            f"      - targets: [\"127.0.0.1:{H.METRICS_PORT}\"]\n"))
        N.Proc.__init__(self, lab.exec_cmd(self.ns, [
            "/usr/bin/prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h",
            f"--enable-feature={features}",
            f"--web.console.templates={lab.tmpdir}", f"--web.console.libraries={lab.tmpdir}"]),
            f"prometheus-{name}")

    def exemplars(self, query: str, start: float, end: float) -> list[dict]:
        return self.api("/api/v1/query_exemplars", query=query, start=str(start), end=str(end))


def body() -> None:
    chk = N.Checker("test_exposition_prometheus")
    lab = N.Lab("dexpo")
    resp = H.start_responder(lab, {p: R.PortPlan(delay=d) for p, d in DELAYS.items()})
    cfg = H.write_file(lab, "flowlatd.yaml", CONFIG)
    fl = H.Daemon(lab, cfg)
    fl.wait_ready()
    native = Prometheus(lab, "native", NATIVE_PORT, "native-histograms,exemplar-storage")
    classic = Prometheus(lab, "classic", CLASSIC_PORT, "exemplar-storage")
    native.wait_ready()
    classic.wait_ready()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if all(p.targets() and p.targets()[0].get("health") == "up" for p in (native, classic)):
            break
        time.sleep(0.5)

    # ------------------------------------------------------------------ what each format looks like
    for accept, want in ((native_accept := "application/vnd.google.protobuf;proto=io.prometheus.client."
                          "MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,"
                          "application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,"
                          "*/*;q=0.1", PROTOBUF),
                         ("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5", OPENMETRICS),
                         ("", "text/plain; version=0.0.4; charset=utf-8")):
        r = H.http_get(lab.client_ns, H.METRICS_PORT, "/metrics",
                       headers={"Accept": accept, "Accept-Encoding": "gzip"} if accept else {"Accept-Encoding": "gzip"})
        chk.check(r.status == 200 and r.headers.get("content-type") == want and
                  r.headers.get("content-encoding") == "gzip",
                  f"Accept {accept[:40]!r}: HTTP {r.status}, {r.headers}")
        if r.status == 200 and r.headers.get("content-encoding") == "gzip":
            plain = gzip.decompress(r.body)
            if want == OPENMETRICS:
                chk.check(plain.endswith(b"# EOF\n"), "OpenMetrics body does not end with # EOF")
    del native_accept

    # ------------------------------------------------------------------ drive
    made: dict[int, int] = {p: 0 for p in DELAYS}
    bad: list[N.Connect] = []
    stop = threading.Event()

    def drive(port: int) -> None:
        i = 0
        while not stop.is_set():
            family = 4 if i % 2 == 0 else 6
            i += 1
            c = H.connect(lab, N.ADDRS[family][0], H.PEER[family], port, timeout=3)
            if c.result != "connected":
                bad.append(c)
            else:
                made[port] += 1
            # A pause between connects keeps the Python responder's own delay small on 2 cores.
            stop.wait(0.02)

    threads = [threading.Thread(target=drive, args=(p,), daemon=True, name=f"drive-{p}") for p in DELAYS]
    t0 = time.time()
    for t in threads:
        t.start()
    try:
        while time.time() - t0 < DRIVE_SECONDS:
            time.sleep(1)
            if any(p.proc.poll() is not None for p in (fl, native, classic)):
                break
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    N.log(f"drove {sum(made.values())} handshakes in {time.time() - t0:.1f}s: {made}")
    if bad:
        N.fail_hard(f"harness: {len(bad)} connects failed, first: {bad[0]}")
    for p in (fl, native, classic):
        chk.check(p.proc.poll() is None, f"{p.name} exited during the run:\n{p.stderr_text()[-2000:]}")
    time.sleep(2.5)
    t1 = time.time()

    for p in (native, classic):
        targets = p.targets()
        chk.check(len(targets) == 1 and targets[0].get("health") == "up" and not targets[0].get("lastError"),
                  f"{p.name}: scrape target not healthy: {targets}")

    # ------------------------------------------------------------------ quantiles
    # What the responder delivered: SYN in to SYN-ACK out, kernel stamps at its veth. The RTT
    # at the client's hook is that plus two veth crossings (microseconds).
    resp.settle()
    with resp._lock:
        gaps = {port: sorted(a.gap_ns for a in resp.answers if a.port == port and a.action == "synack"
                             and a.gap_ns is not None) for port in DELAYS}
    delivered = {port: g[len(g) // 2] / 1e9 for port, g in gaps.items() if g}
    m = fl.scrape()
    nq = native.query("histogram_quantile(0.5, sum by (port) (rate(flowlat_handshake_rtt_seconds[1m])))")
    cq = classic.query("histogram_quantile(0.5, sum by (le, port) (rate(flowlat_handshake_rtt_seconds_bucket[1m])))")
    nat = {int(r["metric"]["port"]): float(r["value"][1]) for r in nq}
    cla = {int(r["metric"]["port"]): float(r["value"][1]) for r in cq}
    chk.check(set(nat) == set(DELAYS), f"native quantile series for ports {sorted(nat)}, want {sorted(DELAYS)}")
    chk.check(set(cla) == set(DELAYS), f"classic quantile series for ports {sorted(cla)}, want {sorted(DELAYS)}")
    bounds = [0.0] + sorted({float(s.labels["le"]) for s in m.samples
                             if s.name == "flowlat_handshake_rtt_seconds_bucket" and s.labels["le"] != "+Inf"})
    for port, delay in sorted(DELAYS.items()):
        count = sum(s.value for s in m.samples if s.name == "flowlat_handshake_rtt_seconds_count"
                    and s.labels.get("port") == str(port))
        total = sum(s.value for s in m.samples if s.name == "flowlat_handshake_rtt_seconds_sum"
                    and s.labels.get("port") == str(port))
        mean = total / count if count else float("nan")
        n, c = nat.get(port, float("nan")), cla.get(port, float("nan"))
        truth = delivered.get(port, float("nan"))
        chk.note(f"port {port}: driven {delay * 1e3:g} ms, delivered median {truth * 1e3:.3f} ms, flowlatd mean"
                 f" {mean * 1e3:.3f} ms; histogram_quantile(0.5): native {n * 1e3:.3f} ms"
                 f" ({(n / delay - 1) * 100:+.1f} % of driven, {(n / truth - 1) * 100:+.1f} % of delivered),"
                 f" classic {c * 1e3:.3f} ms ({(c / delay - 1) * 100:+.1f} %, {(c / truth - 1) * 100:+.1f} %)")
        chk.check(abs(n / delay - 1) <= 0.05 or abs(n / truth - 1) <= 0.05,
                  f"port {port}: native histogram_quantile(0.5) = {n}, not within 5 % of the driven {delay}"
                  f" nor of the delivered median {truth}")
        lo = max(b for b in bounds if b < truth)
        hi = min(b for b in bounds if b >= truth)
        chk.check(lo < c <= hi, f"port {port}: classic median {c} outside the bucket ({lo}, {hi}] of {truth}")

    # What each server stored of the RTT histogram (docs/metrics.md says 2.42 keeps no classic
    # buckets of a histogram that arrives with native ones).
    for p in (native, classic):
        stored = {name: len(p.query(name))
                  for name in ("flowlat_handshake_rtt_seconds", "flowlat_handshake_rtt_seconds_bucket")}
        chk.note(f"{p.name}: series stored: {stored}")
    chk.check(len(native.query("flowlat_handshake_rtt_seconds_bucket")) == 0 and
              len(classic.query("flowlat_handshake_rtt_seconds_bucket")) > 0,
              "the native server stored classic buckets, or the classic one none")

    # ------------------------------------------------------------------ exemplars
    peers = {H.PEER[4], H.PEER[6]}
    for p, query in ((native, "flowlat_handshake_rtt_seconds"), (classic, "flowlat_handshake_rtt_seconds_bucket")):
        found: dict[int, list[tuple[str, float]]] = {port: [] for port in DELAYS}
        for series in p.exemplars(query, t0 - 5, t1 + 1):
            port = int(series["seriesLabels"].get("port", 0))
            for e in series["exemplars"]:
                if port in found:
                    found[port].append((f"{e['labels'].get('peer_address')}:{e['labels'].get('peer_port')}",
                                        float(e["value"])))
        for port, delay in sorted(DELAYS.items()):
            # A handshake's RTT is never below the responder's delay.
            named = [(who, v) for who, v in found[port]
                     if who.rsplit(":", 1)[0] in peers and who.rsplit(":", 1)[1] == str(port) and v >= delay]
            chk.note(f"{p.name}: port {port}: {len(found[port])} exemplars, {len(named)} name the peer,"
                     f" e.g. {found[port][:2]}")
            chk.check(len(named) > 0 and len(named) == len(found[port]),
                      f"{p.name}: exemplars of port {port} ({delay * 1e3:g} ms) do not all name the peer: "
                      f"{found[port][:5]}")

    for p in (native, classic):
        p.close()
    rc, _ = fl.terminate_timed()
    chk.check(rc == 0, f"flowlatd exit code after SIGTERM: {rc}\n{fl.stderr_text()[-2000:]}")
    chk.finish()


if __name__ == "__main__":
    N.main_guard(body)
