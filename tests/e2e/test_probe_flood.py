#!/usr/bin/env python3
"""A SYN flood must not blind the probe (issue 8, part 1), in each direction.

flowlatd runs as a daemon on the client veth. synflood.py (sendmmsg on an AF_PACKET
socket, spoofed sources from 198.19.0.0/16 and fd00:1::/32 only) floods:
  * inbound: from the responder namespace towards a real listener in the client namespace
    (its kernel answers every SYN, with syncookies once the SYN queue is full; a route
    sends those SYN-ACKs to the responder veth, where they die);
  * outbound: from the client namespace's own veth towards 198.18.0.3/fd00::3, which
    nothing answers.
Meanwhile real handshakes of known RTT (10 ms; the raw client's ACK delay inbound, the
responder's SYN-ACK delay outbound) run to the same listener / responder, and a second
batch runs the moment the flood has ended. The real peers sit behind a socket filter, so
the flood costs them CPU but not their packets.

Checked from /metrics (peer groups "real" and "flood" keep the series bounded) against
dumpcap on the probed veth, filtered to the real peers' addresses:
  * during the flood at least 99 % of the real handshakes the capture shows completing are
    counted as completed, and no more than happened;
  * right after it, 100 %, at once (the flood's entries have not timed out yet:
    handshake_timeout is 10 s and this batch runs within a few seconds);
  * their RTTs are right: the histogram's buckets (narrow ones around 10 ms) hold no more
    samples than the capture's RTTs (±250 µs) allow, up to 1 % of the samples (the issue's
    99 % rule), and the _sum lies within the sums of the smallest and largest captured
    RTTs (each ±250 µs);
  * the flood is visible: flowlat_flow_table_evictions_total or
    flowlat_flow_table_full_total grew.

CI floods 150,000 SYNs per direction at 40,000/s into a flow table of 16,384 entries.
The full run of the issue (1,000,000 SYNs at the highest rate reached, the default
65,536-entry table), whose figures docs/performance.md records:
    FLOWLAT_FLOOD_SYNS=1000000 FLOWLAT_FLOOD_RATE=0 FLOWLAT_FLOOD_TABLE=65536 \
        FLOWLATD=build/flowlatd python3 tests/e2e/test_probe_flood.py
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import daemon_harness as H
import netlab as N
import responder as R
import synflood
from groundtruth import RTT_TOLERANCE_NS, truth

SYNS = int(os.environ.get("FLOWLAT_FLOOD_SYNS", "150000"))
RATE = float(os.environ.get("FLOWLAT_FLOOD_RATE", "40000"))  # 0: as fast as it goes
TABLE = int(os.environ.get("FLOWLAT_FLOOD_TABLE", "16384"))
LISTEN_PORT = 7000
PEER_PORT = 5001
FLOOD_PORT = 9
DELAY = 0.010
AFTER = 100  # real handshakes right after the flood, per direction
FLOOD_V4, FLOOD_V6 = "198.19.0.0/16", "fd00:1::/32"
SILENT_V4, SILENT_V6 = "198.18.0.3", "fd00::3"
BUCKETS = [0.005, 0.0095, 0.00975, 0.01, 0.01025, 0.0105, 0.011, 0.012, 0.015, 0.025, 0.05, 0.1, 1]
CONFIG = f"""# test_probe_flood
interfaces: [flc0]
buckets: {BUCKETS}
peer_groups:
  real: ["{N.CLIENT_V4}/32", "{N.PEER_V4}/32", "{N.CLIENT_V6}/128", "{N.PEER_V6}/128"]
  flood: ["{FLOOD_V4}", "{FLOOD_V6}", "{SILENT_V4}/32", "{SILENT_V6}/128"]
flow_table_size: {TABLE}
handshake_timeout: 10s
"""
HERE = Path(__file__).resolve().parent


def completed(m: H.Metrics, direction: str) -> float:
    return sum(s.value for s in m.find("flowlat_handshakes_total", direction=direction, peer="real",
                                       outcome="completed"))


def rtt_hist(m: H.Metrics, direction: str) -> tuple[dict[float, float], float, float]:
    """Per-bucket (non-cumulative) counts, _sum and _count of the real peers' RTTs, all series."""
    per: dict[float, float] = {}
    total_sum = total_count = 0.0
    for s in m.find("flowlat_handshake_rtt_seconds_bucket", direction=direction, peer="real"):
        le = float(s.labels["le"].replace("Inf", "inf"))
        per[le] = per.get(le, 0.0) + s.value
    for s in m.find("flowlat_handshake_rtt_seconds_sum", direction=direction, peer="real"):
        total_sum += s.value
    for s in m.find("flowlat_handshake_rtt_seconds_count", direction=direction, peer="real"):
        total_count += s.value
    out, prev = {}, 0.0
    for le in sorted(per):
        out[le] = per[le] - prev
        prev = per[le]
    return out, total_sum, total_count


def flood_counters(m: H.Metrics) -> dict[str, float]:
    names = ("flowlat_flow_table_evictions_total", "flowlat_flow_table_full_total", "flowlat_events_lost_total")
    return {n: sum(s.value for s in m.find(n)) for n in names}


def iface_packets(ns: str, ifname: str) -> tuple[int, int, int]:
    info = json.loads(N.run(["ip", "-n", ns, "-j", "-s", "link", "show", "dev", ifname]).stdout)[0]["stats64"]
    return info["rx"]["packets"], info["rx"]["dropped"], info["tx"]["packets"]


class Driver:
    """Real handshakes of one direction, over and over, until stopped; records every one."""

    def __init__(self, lab: N.Lab, direction: str, client: R.RawClient | None):
        self.lab, self.direction, self.client = lab, direction, client
        self.done: list[tuple] = []  # (family, local, lport, peer, pport, epoch)
        # Freed ephemeral ports come back: the n-th connection of a 4-tuple is epoch n in the capture.
        self._uses: dict[tuple, int] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def one(self, family: int) -> None:
        if self.direction == "outbound":
            c = self.lab.connect(family, PEER_PORT, timeout=4)
            key = (family, c.local, c.local_port, c.peer, c.peer_port)
        else:
            server, me = N.ADDRS[family]
            h = self.client.handshake(family, me, server, LISTEN_PORT, ack_delay=DELAY, timeout=4)
            key = (family, h.dst, h.dport, h.src, h.sport)
        epoch = self._uses.get(key, 0)
        self._uses[key] = epoch + 1
        self.done.append((*key, epoch))

    def _loop(self, families: tuple[int, ...]) -> None:
        i = 0
        while not self._stop.is_set():
            self.one(families[i % len(families)])
            i += 1

    def start(self) -> None:
        # The raw client owns one socket: one thread. Outbound, one thread per family.
        groups = [(4, 6)] if self.direction == "inbound" else [(4,), (6,)]
        self._threads = [threading.Thread(target=self._loop, args=(g,), daemon=True) for g in groups]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)


def check_phase(chk: N.Checker, what: str, direction: str, done: list[tuple], pkts: list, before: H.Metrics,
                after: H.Metrics, minimum: float) -> dict:
    """The metrics' delta between two scrapes against the capture's truth of `done`."""
    rtts = []
    happened = 0
    for family, local, lport, peer, pport, epoch in done:
        try:
            t = truth(pkts, direction, family, local, lport, peer, pport, epoch=epoch)
        except AssertionError:
            continue  # never reached the wire
        if t.outcome != "completed":
            continue
        happened += 1
        if t.rtt_unambiguous and t.rtt_ns is not None:
            rtts.append(t.rtt_ns)
    got = completed(after, direction) - completed(before, direction)
    chk.check(happened >= (10 if minimum < 1 else AFTER // 2),
              f"harness: {what}: only {happened} real handshakes completed on the wire")
    chk.check(got <= happened, f"{what}: {got:.0f} completed handshakes counted, but only {happened} happened")
    chk.check(got >= minimum * happened,
              f"{what}: {got:.0f} of {happened} real handshakes counted ({100 * got / max(happened, 1):.1f} %,"
              f" want >= {100 * minimum:.0f} %)")
    h0, s0, c0 = rtt_hist(before, direction)
    h1, s1, c1 = rtt_hist(after, direction)
    n = c1 - c0
    rsum = s1 - s0
    chk.check(n <= len(rtts), f"{what}: {n:.0f} RTT samples but the capture has {len(rtts)} unambiguous ones")
    chk.check(n >= minimum * len(rtts), f"{what}: {n:.0f} RTT samples of {len(rtts)} (want >= {100 * minimum:.0f} %)")
    # Samples no captured RTT (±250 µs) explains, bucket by bucket. The 99 % rule is
    # applied to them too: one run in about eight on a busy machine showed one inbound sample
    # 3.7 ms above every captured RTT of its bucket, cause unknown (see the report of issue 8).
    bounds = sorted(h1)
    excess = 0
    where = []
    for i, le in enumerate(bounds):
        lo = bounds[i - 1] if i else 0.0
        count = h1[le] - h0.get(le, 0.0)
        allowed = sum(1 for r in rtts if r / 1e9 - RTT_TOLERANCE_NS / 1e9 <= le and r / 1e9 + RTT_TOLERANCE_NS / 1e9 > lo)
        if count > allowed:
            excess += int(count - allowed)
            where.append(f"{count - allowed:.0f} more in ({lo}, {le}] s than the {allowed} captured RTTs there"
                         f" (near: {sorted(round(r / 1e6, 3) for r in rtts if lo * 0.8e9 <= r <= le * 1.2e9)[:12]} ms)")
    chk.check(excess <= 0.01 * max(n, 1), f"{what}: {excess} of {n:.0f} RTT samples match no captured RTT: {where}")
    if excess:
        chk.note(f"{what}: {excess} of {n:.0f} RTT samples matched no captured RTT (within the 1 %): {where}")
    k = int(round(n))
    srt = sorted(rtts)
    if 0 < k <= len(srt):
        tol = k * RTT_TOLERANCE_NS / 1e9
        low, high = sum(srt[:k]) / 1e9 - tol, sum(srt[-k:]) / 1e9 + tol
        chk.check(low <= rsum <= high, f"{what}: RTT _sum {rsum:.6f} s outside [{low:.6f}, {high:.6f}] allowed by"
                                       f" the capture's RTTs")
    mean_truth = sum(rtts) / len(rtts) / 1e6 if rtts else 0
    mean_got = rsum / n * 1e3 if n else 0
    return {"happened": happened, "counted": got, "rtt_samples": n, "mean_rtt_ms": mean_got,
            "mean_truth_ms": mean_truth}


def run_direction(chk: N.Checker, direction: str) -> None:
    lab = N.Lab(f"fl{direction[:2]}")
    try:
        # SYN-ACKs to the spoofed sources leave through the probed veth towards the peer.
        N.run(["ip", "-n", lab.client_ns, "route", "add", FLOOD_V4, "via", N.PEER_V4, "dev", lab.client_if])
        N.run(["ip", "-n", lab.client_ns, "-6", "route", "add", FLOOD_V6, "via", N.PEER_V6, "dev", lab.client_if])
        for addr in (SILENT_V4, SILENT_V6):
            N.run(["ip", "-n", lab.client_ns, "neigh", "replace", addr, "lladdr", lab.peer_mac,
                   "dev", lab.client_if, "nud", "permanent"])
        client = None
        if direction == "inbound":
            N.Listener(lab, LISTEN_PORT)
            with N.netns(lab.peer_ns):
                sock = R.open_packet_socket(lab.peer_if)
            synflood.attach_dst_filter(sock, N.PEER_V4, N.PEER_V6)
            client = R.RawClient(sock, lab.peer_mac, lab.client_mac)
            N._open_resources.append(client)
        else:
            with N.netns(lab.peer_ns):
                sock = R.open_packet_socket(lab.peer_if)
            synflood.attach_dst_filter(sock, N.PEER_V4, N.PEER_V6)
            resp = R.Responder(sock, lab.peer_mac, [N.PEER_V4, N.PEER_V6],
                               {PEER_PORT: R.PortPlan(delay=DELAY)}).start()
            N._open_resources.append(resp)
        cap = N.Capture(lab, lab.client_ns, lab.client_if,
                        bpf_filter=f"host {N.PEER_V4} or host {N.PEER_V6}")
        cfg = H.write_file(lab, "flowlatd.yaml", CONFIG)
        fl = H.Daemon(lab, cfg)
        fl.wait_ready()

        drv = Driver(lab, direction, client)
        for fam in (4, 6):  # warm-up: the path works before the flood
            drv.one(fam)
        time.sleep(0.5)
        m0 = fl.scrape()
        drv.done.clear()

        if direction == "inbound":
            ns, ifname, src_mac, dst_mac, dst = lab.peer_ns, lab.peer_if, lab.peer_mac, lab.client_mac, N.CLIENT_V4
            dst6, dport = N.CLIENT_V6, LISTEN_PORT
        else:
            ns, ifname, src_mac, dst_mac, dst = lab.client_ns, lab.client_if, lab.client_mac, lab.peer_mac, SILENT_V4
            dst6, dport = SILENT_V6, FLOOD_PORT
        # The veth end that receives the flood.
        rx_at = (lab.client_ns, lab.client_if) if direction == "inbound" else (lab.peer_ns, lab.peer_if)
        rx0 = iface_packets(*rx_at)
        # One flooder per family, each half the SYNs and half the rate, in their own processes.
        floods = []
        for net, d in ((FLOOD_V4, dst), (FLOOD_V6, dst6)):
            cmd = lab.exec_cmd(ns, [sys.executable, str(HERE / "synflood.py"), "--iface", ifname, "--src-mac", src_mac,
                                    "--dst-mac", dst_mac, "--src-net", net, "--dst", d, "--dport", str(dport),
                                    "--count", str(SYNS // 2), "--rate", str(RATE / 2)])
            floods.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        # The flooders build their frames first; start the real handshakes once they send.
        for p in floods:
            line = p.stdout.readline()
            if '"built"' not in line:
                N.fail_hard(f"synflood did not start: {line!r} {p.stderr.read()}")
        drv.start()
        results = []
        for p in floods:
            out, err = p.communicate(timeout=300)
            if p.returncode != 0:
                N.fail_hard(f"synflood failed ({p.returncode}): {err}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        drv.stop()
        during = list(drv.done)
        rx1 = iface_packets(*rx_at)
        flood_end = time.monotonic()

        time.sleep(1.5)  # the during-phase events reach the aggregator
        m1 = fl.scrape()

        # Right after the flood, well inside handshake_timeout of its last SYNs.
        drv.done.clear()
        for i in range(AFTER):
            drv.one((4, 6)[i % 2])
        after_batch = list(drv.done)
        after_took = time.monotonic() - flood_end
        time.sleep(1.5)
        m2 = fl.scrape()
        pkts = cap.packets()

        stats_during = check_phase(chk, f"{direction}, during the flood", direction, during, pkts, m0, m1, 0.99)
        stats_after = check_phase(chk, f"{direction}, right after the flood", direction, after_batch, pkts, m1, m2,
                                  1.0)
        counters = flood_counters(m2)
        chk.check(counters["flowlat_flow_table_evictions_total"] + counters["flowlat_flow_table_full_total"] > 0,
                  f"{direction}: the flood is invisible: flowlat_flow_table_evictions_total and"
                  f" flowlat_flow_table_full_total are both 0 ({counters})")
        sent = sum(r["sent"] for r in results)
        took = max(r["seconds"] for r in results)
        chk.note(f"{direction}: flood of {sent} SYNs in {took:.2f} s = {sent / took:.0f} SYN/s sent"
                 f" (peer veth received {rx1[0] - rx0[0]}, dropped {rx1[1] - rx0[1]});"
                 f" {counters}")
        for name, st in (("during the flood", stats_during), ("right after it", stats_after)):
            chk.note(f"{direction}, {name}: {st['counted']:.0f} of {st['happened']} real handshakes counted,"
                     f" {st['rtt_samples']:.0f} RTT samples, mean {st['mean_rtt_ms']:.3f} ms vs capture"
                     f" {st['mean_truth_ms']:.3f} ms")
        chk.note(f"{direction}: the after-flood batch was done {after_took:.1f} s after the flood's last SYN")
        fl.check_clean_exit(chk)
    finally:
        lab.close()


def body() -> None:
    chk = N.Checker("test_probe_flood")
    N.log(f"flood: {SYNS} SYNs per direction at {'max' if RATE == 0 else f'{RATE:.0f}/s'}, flow table {TABLE}")
    for direction in ("inbound", "outbound"):
        run_direction(chk, direction)
    chk.finish()


if __name__ == "__main__":
    N.main_guard(body)
