#!/usr/bin/env python3
"""Smaller truths of issue 8, part 4, end to end: ICMP errors and a client's early reset.

Unreachable: real kernel connect()s from the client namespace to the raw-socket responder,
which answers each SYN, 5 ms later, with an ICMP error quoting it: port unreachable,
host unreachable and administratively prohibited (IPv4), port unreachable and
administratively prohibited (ICMPv6). The client's kernel ends connect() at once
(ECONNREFUSED, EHOSTUNREACH, EACCES). flowlatd --print=json (handshake_timeout 2 s, and
the test waits past it) must print exactly one line per connect(): outcome "unreachable",
with a handshake_ns of about 5 ms, never a timeout. The ICMP frames are crafted: the
responder's kernel has no address and stays silent, and an address without a listener
would answer with an RST, not ICMP.

Aborted at SYN_RECEIVED: a listener with backlog 1 that never accept()s holds two
completed connections, so its kernel drops every further SYN (ListenOverflows) and the
probe sees the SYN and no SYN-ACK. The raw client then gives up with an RST (sequence
ISN + 1). The daemon (handshake_timeout 1 s) must count each in
flowlat_handshakes_aborted_total and none as a timeout. The daemon phase also checks
flowlat_handshakes_total{outcome="unreachable"}.
"""
from __future__ import annotations

import errno
import heapq
import socket
import struct
import time

import daemon_harness as H
import netlab as N
import packets as P
import responder as R

ICMP_AFTER = 0.005
# port -> (family, ICMP type, code, what, the errno connect() ends with)
ICMP_PORTS = {
    6101: (4, 3, 3, "ICMP port unreachable", errno.ECONNREFUSED),
    6102: (4, 3, 1, "ICMP host unreachable", errno.EHOSTUNREACH),
    6103: (4, 3, 13, "ICMP administratively prohibited", errno.EHOSTUNREACH),
    6104: (6, 1, 4, "ICMPv6 port unreachable", errno.ECONNREFUSED),
    6105: (6, 1, 1, "ICMPv6 administratively prohibited", errno.EACCES),
}
REPEATS = 2
FULL_PORT = 7300
EARLY_RESETS = 4


def icmp_error(seg_frame: bytes, seg: P.Segment, mac: str, icmp_type: int, code: int) -> bytes:
    """An ICMP/ICMPv6 error from the peer quoting the client's SYN (as much as fits)."""
    eth = P.mac_bytes(seg.src_mac) + P.mac_bytes(mac)
    quoted = seg_frame[14:]
    if seg.family == 4:
        ihl = (quoted[0] & 15) * 4
        quoted = quoted[:ihl + 8]  # RFC 792: the IP header and 64 bits of the datagram
        body = struct.pack("!BBHI", icmp_type, code, 0, 0) + quoted
        body = body[:2] + struct.pack("!H", P._checksum(body)) + body[4:]
        src, dst = socket.inet_aton(seg.dst), socket.inet_aton(seg.src)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0x4321, 0, 64, 1, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", P._checksum(ip)) + ip[12:]
        return eth + struct.pack("!H", P.ETH_P_IP) + ip + body
    body = struct.pack("!BBHI", icmp_type, code, 0, 0) + quoted
    src, dst = socket.inet_pton(socket.AF_INET6, seg.dst), socket.inet_pton(socket.AF_INET6, seg.src)
    pseudo = src + dst + struct.pack("!IxxxB", len(body), 58)
    body = body[:2] + struct.pack("!H", P._checksum(pseudo + body)) + body[4:]
    ip = struct.pack("!IHBB16s16s", 6 << 28, len(body), 58, 64, src, dst)
    return eth + struct.pack("!H", P.ETH_P_IPV6) + ip + body


class IcmpResponder(R.Responder):
    """Answers SYNs on the ICMP_PORTS with the port's ICMP error; other ports as planned."""

    def _on_frame(self, frame: bytes, rx_ns: int) -> None:
        seg = P.parse_frame(frame)
        if seg is not None and seg.dst in self.addrs and seg.handshake_flags == P.SYN and seg.dport in ICMP_PORTS:
            _fam, typ, code, _what, _err = ICMP_PORTS[seg.dport]
            note = R.Answer(seg.family, seg.src, seg.sport, seg.dport, seg.seq, seg.tsval, rx_ns, "icmp")
            self._seq += 1
            heapq.heappush(self._pending, (time.monotonic() + ICMP_AFTER, self._seq,
                                           icmp_error(frame, seg, self.mac, typ, code), note))
            with self._lock:
                self.answers.append(note)
            return
        super()._on_frame(frame, rx_ns)


def connect(lab: N.Lab, family: int, port: int, local_port: int) -> tuple[int, int, float]:
    """(local port, errno or 0, seconds connect() took)."""
    s = lab.client_socket(family)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((N.ADDRS[family][0], local_port))
        lport = s.getsockname()[1]
        s.settimeout(3)
        t0 = time.monotonic()
        err = s.connect_ex((N.ADDRS[family][1], port))
        return lport, err, time.monotonic() - t0
    finally:
        s.close()


def start(lab: N.Lab) -> IcmpResponder:
    with N.netns(lab.peer_ns):
        sock = R.open_packet_socket(lab.peer_if)
    resp = IcmpResponder(sock, lab.peer_mac, [N.PEER_V4, N.PEER_V6], {}).start()
    N._open_resources.append(resp)
    return resp


def drive_icmp(lab: N.Lab) -> list[tuple[int, int, int]]:
    """(family, local port, peer port) of every connect(), each ended by its ICMP error."""
    done = []
    for _ in range(REPEATS):
        for port, (family, _t, _c, what, want) in ICMP_PORTS.items():
            # A port of its own per connect(), so each printed line names one connect().
            lport, err, took = connect(lab, family, port, 42000 + len(done))
            if err != want or took > 1.0:
                N.fail_hard(f"harness: connect() answered by {what} ended with errno {err}"
                            f" ({errno.errorcode.get(err, '?')}) after {took:.3f} s; want {errno.errorcode[want]}")
            done.append((family, lport, port))
    return done


def print_phase(chk: N.Checker) -> None:
    lab = N.Lab("icmp")
    try:
        start(lab)
        fl = N.Flowlatd(lab, ["--interface", lab.client_if, "--print=json", "--handshake-timeout=2s"])
        fl.wait_ready()
        done = drive_icmp(lab)
        time.sleep(3.5)  # past handshake_timeout and its sweep: a timeout would be printed by now
        rc = fl.stop()
        chk.check(rc == 0, f"flowlatd exit code after SIGTERM: {rc}\n{fl.stderr_text()}")
        lines = fl.json_lines()
        for family, lport, port in done:
            what = f"{ICMP_PORTS[port][3]} ({N.FAMILY_NAME[family]}, local port {lport})"
            got = [ev for ev in lines if (ev.get("family"), ev.get("local_port"), ev.get("peer_port"))
                   == (N.FAMILY_NAME[family], lport, port)]
            if not chk.check([ev["outcome"] for ev in got] == ["unreachable"],
                             f"{what}: want exactly one unreachable line, got {got}"):
                continue
            ev = got[0]
            chk.check(ev["direction"] == "outbound", f"{what}: direction {ev['direction']}")
            # The ICMP error came ICMP_AFTER after the SYN: the handshake ended then, not at a timeout.
            chk.check(ICMP_AFTER * 1e9 * 0.8 <= ev["handshake_ns"] <= 0.5e9,
                      f"{what}: handshake_ns {ev['handshake_ns']} is not the time to the ICMP error (~5 ms)")
        chk.note(f"--print: {len(done)} connect()s ended by ICMP errors, {len(lines)} lines printed")
    finally:
        lab.close()


def daemon_phase(chk: N.Checker) -> None:
    lab = N.Lab("icmpd")
    try:
        start(lab)
        full = []
        for family in (4, 6):
            s = lab.client_socket(family)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((N.ADDRS[family][0], FULL_PORT))
            s.listen(1)
            full.append(s)
        with N.netns(lab.peer_ns):
            sock = R.open_packet_socket(lab.peer_if)
        client = R.RawClient(sock, lab.peer_mac, lab.client_mac)
        N._open_resources.append(client)
        cfg = H.write_file(lab, "flowlatd.yaml", "interfaces: [flc0]\nhandshake_timeout: 1s\n")
        fl = H.Daemon(lab, cfg)
        fl.wait_ready()

        # Fill both accept queues (backlog 1 holds two), without resets: they stay queued.
        for family in (4, 6):
            server, me = N.ADDRS[family]
            for _ in range(2):
                h = client.handshake(family, me, server, FULL_PORT, ack_delay=0.001, reset=False, timestamps=False)
                if h.result != "completed":
                    N.fail_hard(f"harness: filling the queue of {server}:{FULL_PORT} gave {h.result}")
        time.sleep(0.5)
        m0 = fl.scrape()
        done = drive_icmp(lab)
        early = 0
        for family in (4, 6):
            server, me = N.ADDRS[family]
            for _ in range(EARLY_RESETS // 2):
                h = R.ClientHandshake(family, me, client.new_port(), server, FULL_PORT)
                h.isn = isn = 0x10000000 + early * 7919
                client._tx.send(client._frame(h, isn, 0, P.SYN, P.tcp_options(mss=1460)))
                if client._wait(h, 0.3) is not None:
                    N.fail_hard(f"harness: the full listener answered a SYN on {server}:{FULL_PORT}")
                client.reset(h)  # RST, seq ISN + 1: the client gave up before any SYN-ACK
                early += 1
        time.sleep(2.5)  # past handshake_timeout (1 s) and the sweep
        m1 = fl.scrape()

        def delta(name: str, **kw: str) -> float:
            return (sum(s.value for s in m1.find(name, **kw)) - sum(s.value for s in m0.find(name, **kw)))

        unreach = delta("flowlat_handshakes_total", direction="outbound", outcome="unreachable")
        chk.check(unreach == len(done), f"daemon: flowlat_handshakes_total{{outcome=\"unreachable\"}} grew by"
                                        f" {unreach:.0f} for {len(done)} connect()s ended by ICMP")
        out_timeouts = delta("flowlat_handshakes_total", direction="outbound", outcome="timeout")
        chk.check(out_timeouts == 0, f"daemon: {out_timeouts:.0f} outbound timeouts; every connect() ended by ICMP")
        aborted = delta("flowlat_handshakes_aborted_total")
        chk.check(aborted == early, f"daemon: flowlat_handshakes_aborted_total grew by {aborted:.0f} for {early}"
                                    f" clients that reset at SYN_RECEIVED")
        in_timeouts = delta("flowlat_handshakes_total", direction="inbound", outcome="timeout")
        chk.check(in_timeouts == 0, f"daemon: {in_timeouts:.0f} inbound timeouts; the {early} clients reset instead")
        chk.note(f"daemon: {unreach:.0f} unreachable of {len(done)}, {aborted:.0f} aborted of {early},"
                 f" timeouts {out_timeouts:.0f} out / {in_timeouts:.0f} in")
        fl.check_clean_exit(chk)
        for s in full:
            s.close()
    finally:
        lab.close()


def body() -> None:
    chk = N.Checker("test_probe_icmp_unreachable")
    print_phase(chk)
    daemon_phase(chk)
    chk.finish()


if __name__ == "__main__":
    N.main_guard(body)
