#!/usr/bin/env python3
"""Answers the client's kernel drops must not finish a handshake (issue 8, part 2), end to end.

Real kernel connect()s from the client namespace to the raw-socket responder. On each test
port the responder first sends, 3 ms after the SYN, one broken answer that the client's
stack drops: a SYN-ACK with a bad TCP checksum, a bad IPv4 checksum, IP version 5,
tot_len 20, MF set on a first fragment, a malformed IP option, a destination MAC that is
not the client's, the broadcast MAC, doff 15 past the packet, an IPv6 payload_len of 0;
or an RST-ACK with a bad TCP checksum. 30 ms after the SYN it sends the valid SYN-ACK, and
connect() succeeds.

flowlatd --print=json must print exactly one line per connect(): completed, with the RTT of
the valid answer (within 250 µs of dumpcap's SYN -> valid SYN-ACK on the probed veth, and
of the responder's own kernel-stamped gap), retransmits 0, and never a timeout or refusal
for the same connect (--handshake-timeout=1s, and the test waits past it). A second
phase runs the daemon and checks that flowlat_probe_answers_rejected_total counted the
broken answers while every handshake was counted once as completed.
"""
from __future__ import annotations

import heapq
import random
import struct
import time
from ipaddress import ip_address

import daemon_harness as H
import netlab as N
import packets as P
import responder as R
from groundtruth import RTT_TOLERANCE_NS, Errors, truth

VALID_DELAY = 0.030
BROKEN_AFTER = 0.003
# port -> (what, families it applies to)
BROKEN = {
    6001: ("SYN-ACK with a bad TCP checksum", (4, 6)),
    6002: ("SYN-ACK with a bad IPv4 checksum", (4,)),
    6003: ("SYN-ACK with IP version 5", (4,)),
    6004: ("SYN-ACK with tot_len 20", (4,)),
    6005: ("SYN-ACK as a first fragment with MF", (4,)),
    6006: ("SYN-ACK with a malformed IP option", (4,)),
    6007: ("SYN-ACK to a destination MAC not the client's", (4, 6)),
    6008: ("SYN-ACK to the broadcast MAC", (4, 6)),
    6009: ("SYN-ACK with doff 15 past the packet", (4, 6)),
    6010: ("SYN-ACK with IPv6 payload_len 0", (6,)),
    6011: ("RST-ACK with a bad TCP checksum", (4, 6)),
}
REPEATS = 2
PEER_SLACK_NS = 2_000_000


def _tcp_checksum(frame: bytearray, l3: int, l4: int, v6: bool) -> int:
    seg = bytes(frame[l4:])
    seg = seg[:16] + b"\0\0" + seg[18:]
    if v6:
        pseudo = bytes(frame[l3 + 8:l3 + 40]) + struct.pack("!IxxxB", len(seg), P.IPPROTO_TCP)
    else:
        pseudo = bytes(frame[l3 + 12:l3 + 20]) + struct.pack("!BBH", 0, P.IPPROTO_TCP, len(seg))
    return P._checksum(pseudo + seg)


def _fix_ipv4(frame: bytearray, l3: int) -> None:
    ihl = (frame[l3] & 15) * 4
    frame[l3 + 10:l3 + 12] = b"\0\0"
    frame[l3 + 10:l3 + 12] = struct.pack("!H", P._checksum(bytes(frame[l3:l3 + ihl])))


def broken_answer(port: int, seg: P.Segment, mac: str) -> bytes:
    """The broken answer for `port` to the SYN `seg` (ack = ISN + 1, so only its brokenness
    keeps it from completing the handshake)."""
    rst = port == 6011
    opts = b"" if rst else P.tcp_options(mss=1460)
    kw = dict(src_mac=mac, dst_mac=seg.src_mac, src=seg.dst, dst=seg.src, sport=seg.dport, dport=seg.sport,
              seq=0 if rst else random.getrandbits(32), ack=seg.seq + 1,
              flags=(P.RST | P.ACK) if rst else (P.SYN | P.ACK), window=0 if rst else 65160, options=opts,
              ip_id=random.getrandbits(16))
    if port == 6006:
        kw["ipv4_options"] = bytes([7, 1, 0, 0])  # record route with length 1
    f = bytearray(P.build_frame(**kw))
    v6 = seg.family == 6
    l3 = 14
    l4 = l3 + (40 if v6 else (f[l3] & 15) * 4)
    if port in (6001, 6011):
        f[l4 + 16] ^= 0x5A
    elif port == 6002:
        f[l3 + 10] ^= 0x5A
    elif port == 6003:
        f[l3] = 0x50 | (f[l3] & 15)
        _fix_ipv4(f, l3)
    elif port == 6004:
        f[l3 + 2:l3 + 4] = struct.pack("!H", 20)
        _fix_ipv4(f, l3)
    elif port == 6005:
        f[l3 + 6:l3 + 8] = struct.pack("!H", 0x2000)
        _fix_ipv4(f, l3)
    elif port == 6007:
        f[0:6] = P.mac_bytes("02:00:00:00:00:99")
    elif port == 6008:
        f[0:6] = b"\xff" * 6
    elif port == 6009:
        f[l4 + 12] = 0xF0 | (f[l4 + 12] & 15)
        f[l4 + 16:l4 + 18] = struct.pack("!H", _tcp_checksum(f, l3, l4, v6))
    elif port == 6010:
        f[l3 + 4:l3 + 6] = b"\0\0"
    return bytes(f)


class BrokenFirstResponder(R.Responder):
    """The lab's responder, plus one broken answer BROKEN_AFTER after each SYN on a BROKEN port."""

    def _on_frame(self, frame: bytes, rx_ns: int) -> None:
        seg = P.parse_frame(frame)
        if seg is not None and seg.dst in self.addrs and seg.handshake_flags == P.SYN and seg.dport in BROKEN:
            bad = broken_answer(seg.dport, seg, self.mac)
            self._seq += 1
            note = R.Answer(seg.family, seg.src, seg.sport, seg.dport, seg.seq, seg.tsval, rx_ns, "broken")
            heapq.heappush(self._pending, (time.monotonic() + BROKEN_AFTER, self._seq, bad, note))
            with self._lock:
                self.answers.append(note)
        super()._on_frame(frame, rx_ns)


def start(lab: N.Lab) -> BrokenFirstResponder:
    with N.netns(lab.peer_ns):
        sock = R.open_packet_socket(lab.peer_if)
    plans = {port: R.PortPlan(delay=VALID_DELAY) for port in BROKEN}
    resp = BrokenFirstResponder(sock, lab.peer_mac, [N.PEER_V4, N.PEER_V6], plans).start()
    N._open_resources.append(resp)
    return resp


def connects(lab: N.Lab) -> list[N.Connect]:
    out = []
    for _ in range(REPEATS):
        for port, (what, families) in BROKEN.items():
            for family in families:
                # A port of its own per connect(): a reused 4-tuple would blur the capture's truth.
                c = lab.connect(family, port, timeout=3, local_port=41000 + len(out))
                if c.result != "connected":
                    N.fail_hard(f"harness: connect() after a {what} gave {c.result}")
                out.append(c)
    return out


def print_phase(chk: N.Checker) -> None:
    lab = N.Lab("bad")
    try:
        resp = start(lab)
        cap = N.Capture(lab, lab.client_ns, lab.client_if)
        fl = N.Flowlatd(lab, ["--interface", lab.client_if, "--print=json", "--handshake-timeout=1s"])
        fl.wait_ready()
        conns = connects(lab)
        time.sleep(2.5)  # past handshake_timeout: a second report of any connect would show now
        rc = fl.stop()
        chk.check(rc == 0, f"flowlatd exit code after SIGTERM: {rc}\n{fl.stderr_text()}")
        pkts = cap.packets()
        events = fl.json_lines()
        by_key: dict[tuple, list[dict]] = {}
        for ev in events:
            by_key.setdefault((ev.get("family"), ev.get("local_port"), ev.get("peer_port")), []).append(ev)
        errs = Errors()
        for c in conns:
            what = f"{BROKEN[c.peer_port][0]} ({N.FAMILY_NAME[c.family]}, local port {c.local_port})"
            evs = by_key.pop((N.FAMILY_NAME[c.family], c.local_port, c.peer_port), [])
            if not chk.check(len(evs) == 1 and evs[0]["outcome"] == "completed",
                             f"{what}: want exactly one completed line for the connect(), got {evs}"):
                continue
            ev = evs[0]
            t = truth(pkts, "outbound", c.family, c.local, c.local_port, c.peer, c.peer_port)
            chk.check(ev["retransmits"] == 0, f"{what}: retransmits {ev['retransmits']}")
            if not chk.check(ev["rtt_ns"] is not None, f"{what}: no rtt_ns: {ev}"):
                continue
            # The capture's truth() takes the first answer acking the SYN; the valid one is the
            # last SYN-ACK seen, VALID_DELAY after the SYN.
            conv = [p for p in pkts if (p.src, p.sport, p.dst, p.dport) == (c.peer, c.peer_port, c.local, c.local_port)
                    and p.is_("SYN", "ACK")]
            if chk.check(bool(conv), f"harness: {what}: the capture has no SYN-ACK"):
                valid_rtt = conv[-1].t_ns - t.first_syn_ns
                err = ev["rtt_ns"] - valid_rtt
                errs.rtt.append(err)
                chk.check(abs(err) <= RTT_TOLERANCE_NS,
                          f"{what}: rtt_ns {ev['rtt_ns']} is not the valid answer's {valid_rtt} (capture; error"
                          f" {err / 1000:.1f} µs); the broken one came at {BROKEN_AFTER * 1000:.0f} ms")
            answers = [a for a in resp.answers_for(c.local_port, c.peer_port)
                       if a.action == "synack" and ip_address(a.client) == ip_address(c.local)]
            if chk.check(len(answers) == 1, f"harness: {what}: {len(answers)} valid answers recorded"):
                a = answers[0]
                if chk.check(a.gap_ns is not None, f"harness: {what}: the responder recorded no gap"):
                    err = ev["rtt_ns"] - a.gap_ns
                    errs.responder.append(err)
                    # The peer's gap leaves out both veth crossings, which a loaded host can stretch.
                    chk.check(-RTT_TOLERANCE_NS <= err <= PEER_SLACK_NS,
                              f"{what}: rtt_ns {ev['rtt_ns']} vs the responder's own gap {a.gap_ns}"
                              f" (error {err / 1000:.1f} µs)")
        for key, evs in by_key.items():
            for ev in evs:
                chk.check(False, f"a line for no connect() of the test: {ev}")
        for line in errs.summary()[:1] + errs.summary()[3:4]:
            chk.note(line)
    finally:
        lab.close()


def daemon_phase(chk: N.Checker) -> None:
    lab = N.Lab("badd")
    try:
        start(lab)
        cfg = H.write_file(lab, "flowlatd.yaml", "interfaces: [flc0]\nhandshake_timeout: 1s\n")
        fl = H.Daemon(lab, cfg)
        fl.wait_ready()
        before = fl.scrape()
        conns = connects(lab)
        time.sleep(2.5)
        m = fl.scrape()
        total = lambda mm, **kw: sum(s.value for s in mm.find("flowlat_handshakes_total", direction="outbound", **kw))
        done = total(m, outcome="completed") - total(before, outcome="completed")
        chk.check(done == len(conns), f"daemon: {done:.0f} completed handshakes counted for {len(conns)} connect()s")
        for outcome in ("timeout", "refused"):
            n = total(m, outcome=outcome) - total(before, outcome=outcome)
            chk.check(n == 0, f"daemon: {n:.0f} handshakes counted as {outcome}; every connect() completed")
        rejected = m.value("flowlat_probe_answers_rejected_total")
        if chk.check(rejected is not None, "daemon: /metrics has no flowlat_probe_answers_rejected_total"):
            chk.check(rejected > 0,
                      f"daemon: flowlat_probe_answers_rejected_total is {rejected:.0f} after {len(conns)} broken answers")
            chk.note(f"daemon: flowlat_probe_answers_rejected_total {rejected:.0f} after {len(conns)} broken answers")
        fl.check_clean_exit(chk)
    finally:
        lab.close()


def body() -> None:
    chk = N.Checker("test_probe_bad_answers")
    print_phase(chk)
    daemon_phase(chk)
    chk.finish()


if __name__ == "__main__":
    N.main_guard(body)
