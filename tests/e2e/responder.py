"""The raw-socket TCP peer of the end-to-end tests.

Responder answers SYNs from the client namespace on the address-less responder veth:
per destination port it sends a SYN-ACK after a chosen delay (optionally echoing the
SYN's TSval as TSecr), an RST-ACK ("closed" port), or nothing ("silent"); it can also
ignore the first N SYNs of each connection to force SYN retransmissions.

RawClient is the other direction: it opens handshakes towards a real listening socket
in the client namespace, delaying the final ACK by a chosen time.

Both read frames with AF_PACKET and skip their own outgoing copies (PACKET_OUTGOING).
Their own timestamps (kernel receive time via SO_TIMESTAMPNS, wall clock right after
send) are recorded for comparison; the tests take ground truth from dumpcap on the
probed interface, which observes at the same point as the probe.

Run standalone for manual experiments:
    ip netns exec NS python3 responder.py --iface flr0 --addr 198.18.0.2 --addr fd00::2 \
        --port 5001:synack:5 --port 5002:rst
"""
from __future__ import annotations

import argparse
import heapq
import os
import random
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

import packets as P

PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35


@dataclass
class PortPlan:
    action: str = "synack"  # synack | rst | silent
    delay: float = 0.0      # seconds between the SYN's arrival and the answer
    timestamps: bool = True  # SYN-ACK carries the timestamp option (TSecr = SYN's TSval)
    ignore_first: int = 0   # SYNs of each connection left unanswered before answering
    answer_only: Optional[int] = None  # answer only this SYN of a connection (1-based)
    bogus_first: bool = False  # at once, a SYN-ACK whose ack number is wrong (then the real answer)


@dataclass
class Answer:
    """What the responder saw and did for one SYN."""
    family: int
    client: str
    client_port: int
    port: int
    syn_seq: int
    syn_tsval: Optional[int]
    syn_rx_ns: int           # kernel receive timestamp of the SYN (CLOCK_REALTIME)
    action: str              # synack | rst | ignored | silent
    tx_ns: Optional[int] = None  # wall clock right after the answer was sent
    tx_pre_ns: Optional[int] = None  # wall clock right before send()

    @property
    def gap_ns(self) -> Optional[int]:
        """SYN arrival to the answer, both from the responder's view. The clock is read
        just before send(): after it the GIL may go to the woken client thread first."""
        return None if self.tx_pre_ns is None else self.tx_pre_ns - self.syn_rx_ns


def open_packet_socket(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(P.ETH_P_ALL))
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((ifname, P.ETH_P_ALL))
    return s


def recv_frame(sock: socket.socket) -> Optional[tuple[bytes, int]]:
    """(frame, kernel receive time in ns) for an incoming frame, None for our own outgoing copies."""
    data, anc, _flags, addr = sock.recvmsg(65535, socket.CMSG_SPACE(16))
    if addr[2] == PACKET_OUTGOING:
        return None
    rx_ns = time.time_ns()
    for level, typ, cdata in anc:
        if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS and len(cdata) >= 16:
            sec, nsec = struct.unpack("qq", cdata[:16])
            rx_ns = sec * 1_000_000_000 + nsec
    return data, rx_ns


def ts_clock() -> int:
    return (time.monotonic_ns() // 1_000_000) & 0xFFFFFFFF


class Responder:
    def __init__(self, sock: socket.socket, mac: str, addrs: list[str], plans: dict[int, PortPlan]):
        self.sock, self.mac, self.addrs, self.plans = sock, mac, set(addrs), plans
        self.answers: list[Answer] = []
        self._seen: dict[tuple, int] = {}  # connection -> SYNs seen
        self._pending: list[tuple[float, int, bytes, Answer]] = []
        self._seq = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="responder")

    def start(self) -> "Responder":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.sock.close()

    def answers_for(self, client_port: int, port: int) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if a.client_port == client_port and a.port == port]

    def _loop(self) -> None:
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        while not self._stop.is_set():
            timeout_ms = 50
            if self._pending:
                timeout_ms = max(0, min(50, int((self._pending[0][0] - time.monotonic()) * 1000)))
            # Sleep in poll until just before the earliest answer is due, then spin briefly.
            if poller.poll(timeout_ms):
                got = recv_frame(self.sock)
                if got:
                    self._on_frame(*got)
            self._send_due()

    def _send_due(self) -> None:
        while self._pending and self._pending[0][0] - time.monotonic() < 0.0015:
            due, _, frame, ans = self._pending[0]
            while time.monotonic() < due:
                pass
            heapq.heappop(self._pending)
            ans.tx_pre_ns = time.time_ns()
            self.sock.send(frame)
            ans.tx_ns = time.time_ns()

    def _on_frame(self, frame: bytes, rx_ns: int) -> None:
        seg = P.parse_frame(frame)
        if seg is None or seg.dst not in self.addrs or seg.handshake_flags != P.SYN:
            return  # ACKs, RSTs and FINs of finished connections need no answer
        plan = self.plans.get(seg.dport, PortPlan(action="silent"))
        conn = (seg.src, seg.sport, seg.dport, seg.seq)
        n = self._seen.get(conn, 0) + 1
        self._seen[conn] = n
        wanted = n > plan.ignore_first if plan.answer_only is None else n == plan.answer_only
        action = plan.action if wanted else "ignored"
        ans = Answer(seg.family, seg.src, seg.sport, seg.dport, seg.seq, seg.tsval, rx_ns, action)
        with self._lock:
            self.answers.append(ans)
        if action == "synack":
            ts = (ts_clock(), seg.tsval) if plan.timestamps and seg.tsval is not None else None
            opts = P.tcp_options(mss=1460, timestamps=ts)
            out = P.build_frame(src_mac=self.mac, dst_mac=seg.src_mac, src=seg.dst, dst=seg.src,
                                sport=seg.dport, dport=seg.sport, seq=random.getrandbits(32),
                                ack=seg.seq + 1, flags=P.SYN | P.ACK, window=65160, options=opts,
                                ip_id=random.getrandbits(16))
        elif action == "rst":
            out = P.build_frame(src_mac=self.mac, dst_mac=seg.src_mac, src=seg.dst, dst=seg.src,
                                sport=seg.dport, dport=seg.sport, seq=0, ack=seg.seq + 1,
                                flags=P.RST | P.ACK, window=0)
        else:
            return
        if plan.bogus_first and action == "synack":
            bogus = P.build_frame(src_mac=self.mac, dst_mac=seg.src_mac, src=seg.dst, dst=seg.src,
                                  sport=seg.dport, dport=seg.sport, seq=random.getrandbits(32),
                                  ack=seg.seq + 1001, flags=P.SYN | P.ACK, window=65160,
                                  options=P.tcp_options(mss=1460), ip_id=random.getrandbits(16))
            self._seq += 1
            heapq.heappush(self._pending, (time.monotonic(), self._seq, bogus,
                                           Answer(seg.family, seg.src, seg.sport, seg.dport, seg.seq,
                                                  seg.tsval, rx_ns, "bogus")))
        self._seq += 1
        heapq.heappush(self._pending, (time.monotonic() + plan.delay, self._seq, out, ans))


@dataclass
class ClientHandshake:
    """One handshake RawClient opened, with its own timing records."""
    family: int
    src: str
    sport: int
    dst: str
    dport: int
    isn: int = 0
    result: str = "none"      # completed | refused | no-answer
    synack_rx_ns: Optional[int] = None  # kernel receive time of the SYN-ACK the ACK answers
    synacks: int = 0                     # SYN-ACKs received before the ACK went out
    ip_extra: dict = field(default_factory=dict)  # ipv4_options / ipv6_ext for every frame sent
    ack_tx_ns: Optional[int] = None  # wall clock just before the ACK's send()
    server_isn: Optional[int] = None


class RawClient:
    """Handshakes from the responder namespace towards a real server in the client namespace."""

    def __init__(self, sock: socket.socket, mac: str, server_mac: str):
        self.sock, self.mac, self.server_mac = sock, mac, server_mac
        self.sock.setblocking(False)
        self._ports: set[int] = set()

    def close(self) -> None:
        self.sock.close()

    def new_port(self) -> int:
        while True:
            p = random.randint(40000, 60999)
            if p not in self._ports:
                self._ports.add(p)
                return p

    def _frame(self, h: ClientHandshake, seq: int, ack: int, flags: int, options: bytes = b"") -> bytes:
        return P.build_frame(src_mac=self.mac, dst_mac=self.server_mac, src=h.src, dst=h.dst,
                             sport=h.sport, dport=h.dport, seq=seq, ack=ack, flags=flags,
                             window=64240 if not flags & P.RST else 0, options=options,
                             ip_id=random.getrandbits(16), **h.ip_extra)

    def _wait(self, h: ClientHandshake, timeout: float) -> Optional[tuple[P.Segment, int]]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            got = recv_frame(self.sock)
            if not got:
                continue
            seg = P.parse_frame(got[0])
            if seg and seg.src == h.dst and seg.sport == h.dport and seg.dst == h.src and seg.dport == h.sport:
                return seg, got[1]

    def handshake(self, family: int, src: str, dst: str, dport: int, ack_delay: float,
                  send_ack: bool = True, reset: bool = True, timeout: float = 3.0,
                  ip_extra: Optional[dict] = None, dup_syn_after: Optional[float] = None,
                  timestamps: bool = True, sport: Optional[int] = None) -> ClientHandshake:
        """SYN; on SYN-ACK wait ack_delay then ACK (ack = server ISN + 1); then RST to clean up.
        SYN-ACK retransmissions arriving during the delay are collected; the ACK echoes
        the TSval of the last one, which makes that transmission the timed one.
        dup_syn_after: resend the SYN (same ISN, new TSval) that long after the first
        SYN-ACK, as a client whose SYN-ACK was lost would; the server answers it again.
        timestamps=False leaves the timestamp option out of the SYN, so none is negotiated."""
        h = ClientHandshake(family, src, sport or self.new_port(), dst, dport, ip_extra=dict(ip_extra or {}))
        isn = h.isn = random.getrandbits(32)
        self._drain()
        def syn() -> bytes:
            ts_opt = (ts_clock(), 0) if timestamps else None
            return self._frame(h, isn, 0, P.SYN,
                               P.tcp_options(mss=1460, sack_perm=True, timestamps=ts_opt, wscale=7))
        self.sock.send(syn())
        got = self._wait(h, timeout)
        if got is None:
            h.result = "no-answer"
            return h
        seg, rx_ns = got
        if seg.has(P.RST):
            h.result = "refused"
            return h
        if seg.handshake_flags != P.SYN | P.ACK or seg.ack != (isn + 1) & 0xFFFFFFFF:
            h.result = f"unexpected flags={seg.flags:#x} ack={seg.ack}"
            return h
        h.synack_rx_ns, h.server_isn, h.synacks = rx_ns, seg.seq, 1
        if not send_ack:
            h.result = "synack-only"
            return h
        # Deadline from the SYN-ACK's kernel receive time, so Python's wake-up lag is not added.
        due = time.monotonic() + ack_delay - (time.time_ns() - rx_ns) / 1e9
        dup_at = None if dup_syn_after is None else due - ack_delay + dup_syn_after
        while due - time.monotonic() > 0.002:
            if dup_at is not None and time.monotonic() >= dup_at:
                self.sock.send(syn())
                dup_at = None
            until = due if dup_at is None else min(due, dup_at + 0.0015)
            again = self._wait(h, max(0.0, until - time.monotonic() - 0.0015))
            if again and again[0].handshake_flags == P.SYN | P.ACK:
                seg, h.synack_rx_ns = again
                h.synacks += 1
        while time.monotonic() < due:
            pass
        ts = (ts_clock(), seg.tsval) if seg.tsval is not None else None
        ack = self._frame(h, isn + 1, seg.seq + 1, P.ACK, P.tcp_options(timestamps=ts))
        h.ack_tx_ns = time.time_ns()  # before send(): after it the woken server thread may hold the GIL
        self.sock.send(ack)
        h.result = "completed"
        if reset:
            self.sock.send(self._frame(h, isn + 1, 0, P.RST))
        return h

    def reset(self, h: ClientHandshake) -> None:
        """RST for a handshake left half-open (send_ack=False)."""
        self.sock.send(self._frame(h, h.isn + 1, 0, P.RST))

    def _drain(self) -> None:
        while True:
            try:
                self.sock.recv(65535)
            except BlockingIOError:
                return


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iface", required=True)
    ap.add_argument("--addr", action="append", required=True)
    ap.add_argument("--port", action="append", default=[],
                    help="PORT:ACTION[:DELAY_MS[:notimestamps][:ignore=N]]")
    args = ap.parse_args()
    plans = {}
    for spec in args.port:
        parts = spec.split(":")
        plan = PortPlan(action=parts[1] if len(parts) > 1 else "synack")
        for extra in parts[2:]:
            if extra == "notimestamps":
                plan.timestamps = False
            elif extra.startswith("ignore="):
                plan.ignore_first = int(extra[7:])
            else:
                plan.delay = float(extra) / 1000
        plans[int(parts[0])] = plan
    sock = open_packet_socket(args.iface)
    mac = open(f"/sys/class/net/{args.iface}/address").read().strip()
    r = Responder(sock, mac, args.addr, plans).start()
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        r.close()
        for a in r.answers:
            print(a)


if __name__ == "__main__":
    main()
