#!/usr/bin/env python3
"""flowlatd daemon mode: /metrics after known handshakes, against dumpcap ground truth.

flowlatd runs on the client veth (flc0) with a test config: custom buckets that bracket
the injected delays, a peer group `db` = {198.18.0.3/32, fd00::3/128}, flow_table_size
4096 and handshake_timeout 1s. Driven, over IPv4 and IPv6:
  * outbound, to the ungrouped responder address (198.18.0.2 / fd00::2) and to the grouped
    one (198.18.0.3 / fd00::3): REPEATS connects each to ports 5001/5002/5003, answered
    after 5/20/80 ms; refused ones (port 5004, RST-ACK after 2 ms); timed-out ones (5009,
    silent; connect given up after 0.4 s, so there is exactly one SYN);
  * inbound, to a real listener on port 7000, from both addresses: a raw client ACKs the
    SYN-ACK after 20 ms; refused ones to port 7999 (nothing listens: the kernel's RST).
Then one scrape must show, per (direction, family, peer, port): handshakes_total exact per
outcome; RTT and duration histograms whose per-bucket counts are the buckets of the
dumpcap-measured values, whose _count is the number of completed handshakes and whose
_sum is within 250 µs per handshake of the dumpcap sum, and (independently of dumpcap)
at least N x delay and at most N x the delay's bucket bound. The gap between the RTT and
the injected delay is the Python responder's reaction time (up to ~4 ms on a loaded
2-CPU machine), not the probe's error; it is reported, and the buckets leave room for it; peer="db" for the grouped
addresses, the address (outbound) or its /24, /48 fold (inbound) for the others; exactly
these label sets and no others. Also: operational metrics, `promtool check metrics` on
the real scrape prints nothing, gzip (curl --compressed and a gzip;q=0 refusal), / and 404.
"""
import collections
import gzip
import math
import time

import daemon_harness as H
import netlab as N
import responder as R
from groundtruth import truth

# Each delay's bucket leaves room above it for the Python responder's reaction time, which
# reached 4 ms on a loaded 2-CPU machine: 5 ms -> (4, 12], 20 ms -> (16, 35], 80 ms -> (70, 150].
BUCKETS = [0.001, 0.004, 0.012, 0.016, 0.035, 0.07, 0.15, 0.5, 1.5]
DELAYS = {5001: 0.005, 5002: 0.020, 5003: 0.080}
CLOSED, SILENT = 5004, 5009
LISTEN, LISTEN_CLOSED = 7000, 7999
INBOUND_ACK_DELAY = 0.020
REPEATS = 4
NS_TOL = 250_000            # per handshake: daemon vs dumpcap (the probe's precision)
DELAY_FLOOR_TOL = 50e-6     # per handshake: how far below the injected delay the mean RTT may be
FLOW_TABLE_SIZE = 4096

CONFIG = f"""# test_daemon_metrics
interfaces: [flc0]
log:
  level: debug
buckets: {BUCKETS}
peer_groups:
  db: ["{H.GROUP_V4}/32", "{H.GROUP_V6}/128"]
handshake_timeout: 1s
flow_table_size: {FLOW_TABLE_SIZE}
"""

HIST = ("flowlat_handshake_rtt_seconds", "flowlat_handshake_duration_seconds")


def peer_label(direction: str, family: int, addr: str) -> str:
    if addr in (H.GROUP_V4, H.GROUP_V6):
        return "db"
    if direction == "outbound":
        return addr
    return "198.18.0.0/24" if family == 4 else "fd00::/48"  # default inbound folding


class Expect:
    """What one label set must show."""

    def __init__(self):
        self.outcomes = collections.Counter()
        self.rtt_ns: list[int] = []
        self.dur_ns: list[int] = []
        self.delay = None


def body() -> None:
    chk = N.Checker("test_daemon_metrics")
    lab = N.Lab("dmet")
    H.add_group_peers(lab)
    plans = {p: R.PortPlan(delay=d) for p, d in DELAYS.items()}
    plans[CLOSED] = R.PortPlan(action="rst", delay=0.002)
    H.start_responder(lab, plans)
    N.Listener(lab, LISTEN)
    with N.netns(lab.peer_ns):
        csock = R.open_packet_socket(lab.peer_if)
    raw = R.RawClient(csock, lab.peer_mac, lab.client_mac)
    N._open_resources.append(raw)
    cfg = H.write_file(lab, "flowlatd.yaml", CONFIG)

    cap = N.Capture(lab, lab.client_ns, lab.client_if)
    t_start = time.time()
    fl = H.Daemon(lab, cfg)
    fl.wait_ready()

    # ------------------------------------------------------------------ drive
    outbound: list[N.Connect] = []
    for family in (4, 6):
        local = N.ADDRS[family][0]
        for peer in (H.PEER[family], H.GROUP_PEER[family]):
            for _ in range(REPEATS):
                for port in DELAYS:
                    outbound.append(H.connect(lab, local, peer, port, timeout=3))
            for _ in range(2):
                outbound.append(H.connect(lab, local, peer, CLOSED, timeout=3))
            outbound.append(H.connect(lab, local, peer, SILENT, timeout=0.4))
    inbound: list[R.ClientHandshake] = []
    for family in (4, 6):
        me = N.ADDRS[family][0]
        for peer in (H.PEER[family], H.GROUP_PEER[family]):
            for _ in range(3):
                inbound.append(raw.handshake(family, peer, me, LISTEN, ack_delay=INBOUND_ACK_DELAY))
        for _ in range(2):
            inbound.append(raw.handshake(family, H.PEER[family], me, LISTEN_CLOSED, ack_delay=0))
    for c in outbound:
        want = {CLOSED: "refused", SILENT: "timeout"}.get(c.peer_port, "connected")
        if c.result != want:
            N.fail_hard(f"harness: connect to {c.peer}:{c.peer_port} gave {c.result}, expected {want}")
    for h in inbound:
        want = "refused" if h.dport == LISTEN_CLOSED else "completed"
        if h.result != want:
            N.fail_hard(f"harness: raw handshake to {h.dst}:{h.dport} gave {h.result}, expected {want}")
    n_timeouts = sum(1 for c in outbound if c.peer_port == SILENT)
    N.log(f"drove {len(outbound)} outbound and {len(inbound)} inbound handshakes")

    # Timeouts are reported by the sweep once 1 s has passed; wait for all of them.
    m = fl.wait_metrics(lambda m: sum(s.value for s in m.find("flowlat_handshakes_total", outcome="timeout"))
                        >= n_timeouts, 8, "timeouts")
    time.sleep(0.5)
    pkts = cap.packets()

    # ------------------------------------------------------------------ expected, from the capture
    expect: dict[tuple, Expect] = collections.defaultdict(Expect)
    for c in outbound:
        key = ("outbound", N.FAMILY_NAME[c.family], peer_label("outbound", c.family, c.peer), str(c.peer_port))
        t = truth(pkts, "outbound", c.family, c.local, c.local_port, c.peer, c.peer_port)
        e = expect[key]
        if c.peer_port == SILENT:
            chk.check(t.outcome == "none" and t.retransmits == 0,
                      f"harness: silent-port connect {c} saw {t.outcome}, {t.retransmits} retransmits")
            e.outcomes["timeout"] += 1
            continue
        chk.check(t.retransmits == 0, f"harness: SYN retransmitted on {key} (load?)")
        e.outcomes[t.outcome] += 1
        if t.outcome == "completed":
            e.rtt_ns.append(t.rtt_ns)
            e.dur_ns.append(t.handshake_ns)
            e.delay = DELAYS[c.peer_port]
    for h in inbound:
        key = ("inbound", N.FAMILY_NAME[h.family], peer_label("inbound", h.family, h.src), str(h.dport))
        t = truth(pkts, "inbound", h.family, h.dst, h.dport, h.src, h.sport)
        e = expect[key]
        e.outcomes[t.outcome] += 1
        if t.outcome == "completed":
            chk.check(t.retransmits == 0, f"harness: SYN-ACK retransmitted on {key} (load?)")
            e.rtt_ns.append(t.rtt_ns)
            e.dur_ns.append(t.handshake_ns)
            e.delay = INBOUND_ACK_DELAY

    # ------------------------------------------------------------------ the scrape
    m = fl.scrape()
    raw_text = m.text
    base = {"interface": lab.client_if}
    want_sets = set()
    for (direction, family, peer, port) in expect:
        want_sets.add(tuple(sorted({"interface": lab.client_if, "direction": direction, "family": family,
                                    "peer": peer, "port": port}.items())))
    have_sets = m.label_sets("flowlat_handshakes_total", drop=("outcome",))
    chk.check(have_sets == want_sets,
              f"label sets of flowlat_handshakes_total differ: missing {sorted(want_sets - have_sets)},"
              f" unexpected {sorted(have_sets - want_sets)}")

    worst_truth, worst_delay = 0.0, 0.0
    bounds_seen = None
    for (direction, family, peer, port), e in sorted(expect.items()):
        labels = dict(base, direction=direction, family=family, peer=peer, port=port)
        what = f"{direction} {family} peer={peer} port={port}"
        for outcome in ("completed", "refused", "timeout"):
            got = m.value("flowlat_handshakes_total", default=None, outcome=outcome, **labels)
            chk.check(got == e.outcomes[outcome],
                      f"{what}: handshakes_total{{outcome={outcome}}} = {got}, drove {e.outcomes[outcome]}")
        got = m.value("flowlat_syn_retransmits_total", default=None, **labels)
        chk.check(got == 0, f"{what}: syn_retransmits_total = {got}, want 0")
        for name, values in zip(HIST, (e.rtt_ns, e.dur_ns)):
            h = m.histogram(name, **labels)
            if not values:
                # Refusals and timeouts carry no RTT (the HELP text: SYN to SYN-ACK) and no
                # duration (completed handshakes only).
                chk.check(h is None or h.count == 0, f"{what}: {name} has {h and h.count} observations, want none")
                continue
            if not chk.check(h is not None, f"{what}: {name} missing"):
                continue
            les = [le for le, _ in h.buckets]
            bounds_seen = les
            chk.check(les == BUCKETS + [math.inf], f"{what}: {name} le bounds {les}, want {BUCKETS} + +Inf")
            chk.check(h.count == len(values), f"{what}: {name}_count = {h.count}, drove {len(values)}")
            chk.check(h.buckets[-1][1] == h.count, f"{what}: {name} +Inf bucket {h.buckets[-1][1]} != _count {h.count}")
            want_b = collections.Counter(H.bucket_of(BUCKETS, v / 1e9) for v in values)
            got_b = {le: c for le, c in h.per_bucket().items() if c}
            chk.check(got_b == dict(want_b),
                      f"{what}: {name} per-bucket counts {got_b}, dumpcap values {sorted(v / 1e6 for v in values)} ms"
                      f" give {dict(want_b)}")
            # The harness: the quickest handshake lands in the injected delay's bucket, so the
            # buckets were exercised as designed. Slower ones may carry the host's scheduling
            # delay on the veth; dumpcap saw it too, and the per-bucket check above holds them.
            want_delay_b = H.bucket_of(BUCKETS, e.delay)
            chk.check(H.bucket_of(BUCKETS, min(values) / 1e9) == want_delay_b,
                      f"harness: {what}: the quickest of {sorted(v / 1e6 for v in values)} ms is not in"
                      f" the bucket of the {e.delay * 1e3:g} ms delay (le={want_delay_b})")
            err_truth = h.sum - sum(values) / 1e9
            worst_truth = max(worst_truth, abs(err_truth) / len(values))
            chk.check(abs(err_truth) <= len(values) * NS_TOL / 1e9,
                      f"{what}: {name}_sum {h.sum:.6f} vs dumpcap sum {sum(values) / 1e9:.6f}"
                      f" (error {err_truth * 1e6:.1f} µs over {len(values)})")
            # Independent of dumpcap: no RTT can be shorter than the injected delay.
            err_delay = h.sum - len(values) * e.delay
            worst_delay = max(worst_delay, err_delay / len(values))
            chk.check(-len(values) * DELAY_FLOOR_TOL <= err_delay,
                      f"{what}: {name}_sum {h.sum:.6f} vs {len(values)} x {e.delay * 1e3:g} ms: mean excess"
                      f" {err_delay * 1e6 / len(values):.1f} µs, want >= -{DELAY_FLOOR_TOL * 1e6:.0f} µs")
    chk.note(f"histogram _sum vs dumpcap truth: worst {worst_truth * 1e6:.1f} µs per handshake")
    chk.note(f"histogram _sum vs injected delay: worst excess {worst_delay * 1e6:.1f} µs per handshake")

    # ------------------------------------------------------------------ types, operational metrics
    for name, typ in (("flowlat_handshake_rtt_seconds", "histogram"), ("flowlat_handshake_duration_seconds", "histogram"),
                      ("flowlat_handshakes_total", "counter"), ("flowlat_syn_retransmits_total", "counter"),
                      ("flowlat_events_lost_total", "counter"), ("flowlat_flow_table_entries", "gauge"),
                      ("flowlat_flow_table_size", "gauge"), ("flowlat_flow_table_full_total", "counter"),
                      ("flowlat_series_overflow_total", "counter"), ("flowlat_probe_attached", "gauge"),
                      ("flowlat_build_info", "gauge"), ("flowlat_config_last_reload_successful", "gauge"),
                      ("flowlat_config_last_reload_success_timestamp_seconds", "gauge"),
                      ("process_cpu_seconds_total", "counter"), ("process_resident_memory_bytes", "gauge"),
                      ("process_start_time_seconds", "gauge"), ("process_open_fds", "gauge")):
        chk.check(m.types.get(name) == typ, f"# TYPE {name} is {m.types.get(name)!r}, want {typ}")
        chk.check(bool(m.helps.get(name)), f"# HELP {name} missing or empty")
    # Every handshake ended; those reported as timeouts stay recorded (docs/metrics.md), so
    # that their SYN retransmissions are not counted again.
    timed_out = sum(e.outcomes["timeout"] for e in expect.values())
    # Completed inbound handshakes stay recorded too, for 10 s (FLOWLAT_ACKED_KEPT_NS), to see
    # an accept-queue overflow's SYN-ACK retransmission.
    acked = sum(e.outcomes["completed"] for (direction, _, _, _), e in expect.items() if direction == "inbound")
    for name, want in (("flowlat_events_lost_total", 0), ("flowlat_flow_table_full_total", 0),
                       ("flowlat_series_overflow_total", 0), ("flowlat_flow_table_entries", timed_out + acked),
                       ("flowlat_flow_table_size", FLOW_TABLE_SIZE), ("flowlat_config_last_reload_successful", 1)):
        got = m.value(name)
        chk.check(got == want, f"{name} = {got}, want {want}")
    chk.check(m.value("flowlat_series") == len(expect), f"flowlat_series = {m.value('flowlat_series')},"
                                                         f" want {len(expect)} label sets")
    chk.check(m.value("flowlat_probe_attached", interface=lab.client_if) == 1,
              f"flowlat_probe_attached{{interface={lab.client_if}}} = {m.find('flowlat_probe_attached')}")
    bi = m.find("flowlat_build_info")
    chk.check(len(bi) == 1 and bi[0].value == 1 and bi[0].labels.get("version"),
              f"flowlat_build_info should be one sample = 1 with a version label: {bi}")
    ts = m.value("flowlat_config_last_reload_success_timestamp_seconds") or 0
    chk.check(t_start - 1 <= ts <= time.time() + 1,
              f"config_last_reload_success_timestamp_seconds {ts} is not the start time (~{t_start:.0f})")
    st = m.value("process_start_time_seconds") or 0
    chk.check(abs(st - t_start) < 5, f"process_start_time_seconds {st} vs start {t_start:.0f}")

    # ------------------------------------------------------------------ promtool on the real scrape
    lint = H.promtool_check_metrics(raw_text)
    chk.check(lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(),
              f"promtool check metrics: exit {lint.returncode}\n{lint.stdout}{lint.stderr}")

    # ------------------------------------------------------------------ gzip, /, /healthz, 404
    curl = N.run(lab.exec_cmd(lab.client_ns, ["curl", "-sS", "--compressed", "-D", "-", "-o",
                                              f"{lab.tmpdir}/curl-body",
                                              f"http://127.0.0.1:{H.METRICS_PORT}/metrics"]), check=False)
    chk.check(curl.returncode == 0, f"curl --compressed failed: {curl.stderr}")
    chk.check("content-encoding: gzip" in curl.stdout.lower(),
              f"curl --compressed: no Content-Encoding: gzip in the response headers:\n{curl.stdout}")
    with open(f"{lab.tmpdir}/curl-body") as f:
        unz = H.parse_metrics(f.read())
    chk.check(unz.find("flowlat_handshakes_total") == m.find("flowlat_handshakes_total"),
              "the gzip-decoded /metrics (curl) differs from the plain one in flowlat_handshakes_total")
    g = fl.get("/metrics", {"Accept-Encoding": "gzip"})
    ok = g.status == 200 and g.headers.get("content-encoding") == "gzip"
    chk.check(ok, f"Accept-Encoding: gzip -> {g.status} {g.headers}")
    if ok:
        try:
            text = gzip.decompress(g.body).decode()
            chk.check(H.parse_metrics(text).find("flowlat_handshake_rtt_seconds_count")
                      == m.find("flowlat_handshake_rtt_seconds_count"), "gzip body differs from the plain scrape")
            # /metrics is streamed (chunked transfer encoding), so it carries no Content-Length.
            framing_ok = (g.headers.get("transfer-encoding") == "chunked" and "content-length" not in g.headers) \
                or int(g.headers.get("content-length", -1)) == len(g.body)
            chk.check(framing_ok, f"gzip body framing: {g.headers} for a body of {len(g.body)} bytes")
        except OSError as exc:
            chk.check(False, f"gzip body does not decompress: {exc}")
    g = fl.get("/metrics", {"Accept-Encoding": "gzip;q=0, identity"})
    chk.check(g.status == 200 and "content-encoding" not in g.headers and b"flowlat_" in g.body,
              f"Accept-Encoding: gzip;q=0 must get a plain body: {g.status} {g.headers}")
    r = fl.get("/")
    chk.check(r.status == 200 and r.headers.get("content-type", "").startswith("text/html")
              and "/metrics" in r.text and lab.client_if in r.text,
              f"/ should be HTML linking /metrics and naming {lab.client_if}: {r.status} {r.headers} {r.text[:300]}")
    r = fl.get("/healthz")
    chk.check(r.status == 200, f"/healthz = {r.status} {r.text!r}, want 200")
    for path in ("/nope", "/metrics/x", "/healthzz"):
        r = fl.get(path)
        chk.check(r.status == 404, f"{path} = {r.status}, want 404")

    rc, took = fl.terminate_timed()
    chk.check(rc == 0, f"flowlatd exit code after SIGTERM: {rc}\n{fl.stderr_text()[-2000:]}")
    errors = [l for _, l in fl.stderr if l.split(" ")[1:2] in (["level=error"], ["level=critical"])]
    chk.check(not errors, f"flowlatd logged errors: {errors}")
    chk.note(f"SIGTERM -> exit in {took:.2f}s")
    chk.finish()


if __name__ == "__main__":
    N.main_guard(body)
