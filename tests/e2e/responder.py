"""The raw-socket TCP peer of the end-to-end tests.

Responder answers SYNs from the client namespace on the address-less responder veth:
per destination port it sends a SYN-ACK after a chosen delay (optionally echoing the
SYN's TSval as TSecr), an RST-ACK ("closed" port), or nothing ("silent"); it can also
ignore the first N SYNs of each connection to force SYN retransmissions.

RawClient is the other direction: it opens handshakes towards a real listening socket
in the client namespace, delaying the final ACK by a chosen time.

Both read frames with AF_PACKET and skip other sockets' outgoing copies (PACKET_OUTGOING).
Each records the gap it put between the packet it answers and its answer from kernel
timestamps taken at the responder veth, both CLOCK_REALTIME: the kernel receive stamp
of the incoming frame (SO_TIMESTAMPNS) and the software transmit stamp of the answer
(SO_TIMESTAMPING with SOF_TIMESTAMPING_TX_SOFTWARE: veth_xmit() calls
skb_tx_timestamp(), the stamp comes back on the socket's error queue). Python's clock read just before send() is kept as
a fallback for an answer whose transmit stamp never arrives; Answer.gap_kernel and
ClientHandshake.gap_kernel say which one a gap uses. The tests assert flowlatd's
rtt_ns against these gaps and, separately, against dumpcap on the probed interface.

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
SO_TIMESTAMPING = 37             # also the cmsg type SCM_TIMESTAMPING: 3 timespecs, [0] software
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_OPT_ID = 1 << 7       # ee_data numbers the socket's sends from 0
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11  # the error queue carries the stamp, not the frame
TX_STAMP_FLAGS = (SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE
                  | SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY)
SOL_PACKET = 263
PACKET_TX_TIMESTAMP = 16         # cmsg type of the sock_extended_err on a packet socket
SO_EE_ORIGIN_TIMESTAMPING = 4
SCM_TSTAMP_SND = 0               # ee_info: stamped by the driver (skb_tx_timestamp)
ANC_SPACE = 512                  # SO_TIMESTAMPNS + SCM_TIMESTAMPING + extended error, with room


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
    action: str              # synack | rst | ignored | silent | bogus
    tx_ns: Optional[int] = None  # wall clock right after the answer was sent
    tx_pre_ns: Optional[int] = None  # wall clock right before send()
    tx_kernel_ns: Optional[int] = None  # kernel software TX stamp of the answer (CLOCK_REALTIME)

    @property
    def gap_kernel(self) -> bool:
        """The gap is kernel stamp to kernel stamp (False: Python-clock fallback)."""
        return self.tx_kernel_ns is not None

    @property
    def gap_ns(self) -> Optional[int]:
        """SYN arrival to the answer's departure as the responder recorded them: the
        kernel's receive and transmit stamps at the responder veth. Without a transmit
        stamp, the Python clock read just before send() (after it the GIL may go to the
        woken client thread first), which has been seen up to ~0.25 ms off the packet."""
        if self.tx_kernel_ns is not None:
            return self.tx_kernel_ns - self.syn_rx_ns
        return None if self.tx_pre_ns is None else self.tx_pre_ns - self.syn_rx_ns


def open_packet_socket(ifname: str, tx_stamps: bool = True) -> socket.socket:
    """An AF_PACKET socket on ifname with kernel receive stamps and (tx_stamps) software
    transmit stamps for every frame it sends (read them through TxStamps)."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(P.ETH_P_ALL))
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    if tx_stamps:
        # Before any send: OPT_ID then numbers this socket's sends 0, 1, 2, ...
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, TX_STAMP_FLAGS)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((ifname, P.ETH_P_ALL))
    return s


def _timespec_ns(cdata: bytes) -> int:
    sec, nsec = struct.unpack("qq", cdata[:16])
    return sec * 1_000_000_000 + nsec


def recv_frame(sock: socket.socket) -> Optional[tuple[bytes, int]]:
    """(frame, kernel receive time in ns) for an incoming frame, None for outgoing copies."""
    data, anc, _flags, addr = sock.recvmsg(65535, ANC_SPACE)
    if addr[2] == PACKET_OUTGOING:
        return None
    rx_ns = None
    for level, typ, cdata in anc:
        if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS and len(cdata) >= 16:
            rx_ns = _timespec_ns(cdata)
        elif level == socket.SOL_SOCKET and typ == SO_TIMESTAMPING and len(cdata) >= 16 and rx_ns is None:
            rx_ns = _timespec_ns(cdata) or None
    return data, rx_ns if rx_ns is not None else time.time_ns()


class TxStamps:
    """Software transmit stamps of the frames one packet socket sends.

    open_packet_socket() set SO_TIMESTAMPING with OPT_ID, so the kernel numbers the
    socket's sends from 0 and queues one (number, stamp) record per frame on the error
    queue when the driver transmits it (veth: skb_tx_timestamp() in veth_xmit(), during
    send() itself since veth has no qdisc). send() returns that number; only the stamps
    of sends made with want=True are kept. All sends of the socket must go through here
    so the numbering stays in step. A socket opened without stamps gives None."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.enabled = bool(sock.getsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING) & SOF_TIMESTAMPING_TX_SOFTWARE)
        self._next = 0
        self._wanted: set[int] = set()
        self._got: dict[int, int] = {}

    def send(self, frame: bytes, want: bool = False) -> Optional[int]:
        key = self._next
        self.sock.send(frame)
        self._next += 1
        if not self.enabled:
            return None
        if want:
            self._wanted.add(key)
        return key

    def drain(self) -> list[tuple[int, int]]:
        """Read the error queue; returns the new (number, stamp ns) pairs of wanted sends."""
        new = []
        while True:
            try:
                _data, anc, _flags, _addr = self.sock.recvmsg(64, ANC_SPACE,
                                                              socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return new
            stamp = key = None
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPING and len(cdata) >= 16:
                    stamp = _timespec_ns(cdata) or None  # [0], the software stamp
                elif level == SOL_PACKET and typ == PACKET_TX_TIMESTAMP and len(cdata) >= 16:
                    _errno, origin, _t, _c, _p, info, data = struct.unpack("IBBBBII", cdata[:16])
                    if origin == SO_EE_ORIGIN_TIMESTAMPING and info == SCM_TSTAMP_SND:
                        key = data
            if key is not None and stamp is not None and key in self._wanted:
                self._wanted.discard(key)
                self._got[key] = stamp
                new.append((key, stamp))

    def take(self, key: Optional[int], wait: float = 0.05) -> Optional[int]:
        """The stamp of send number key, waiting up to wait seconds for it (None: missing)."""
        if key is None:
            return None
        deadline = time.monotonic() + wait
        while True:
            self.drain()
            if key in self._got:
                return self._got.pop(key)
            left = deadline - time.monotonic()
            if left <= 0:
                self._wanted.discard(key)
                return None
            waiter = select.poll()
            waiter.register(self.sock, select.POLLERR)  # the error queue is not POLLIN
            waiter.poll(max(1, int(min(left, 0.005) * 1000)))


def ts_clock() -> int:
    return (time.monotonic_ns() // 1_000_000) & 0xFFFFFFFF


class Responder:
    def __init__(self, sock: socket.socket, mac: str, addrs: list[str], plans: dict[int, PortPlan]):
        self.sock, self.mac, self.addrs, self.plans = sock, mac, set(addrs), plans
        self.answers: list[Answer] = []
        self._tx = TxStamps(sock)
        self._unstamped: dict[int, Answer] = {}  # send number -> answer awaiting its TX stamp
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
        self.settle()
        with self._lock:
            return [a for a in self.answers if a.client_port == client_port and a.port == port]

    def settle(self, timeout: float = 1.0) -> None:
        """Wait (up to timeout) until every answer sent so far has its TX stamp recorded.
        Stamps arrive during send() on veth; the responder thread files them."""
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            with self._lock:
                if not self._unstamped:
                    return
            time.sleep(0.005)
        with self._lock:
            self._unstamped.clear()  # given up: those gaps stay on the Python clock

    @property
    def tx_stamps_missing(self) -> int:
        """Answers sent whose gap falls back to the Python clock."""
        with self._lock:
            return sum(1 for a in self.answers if a.tx_pre_ns is not None and a.tx_kernel_ns is None)

    def _loop(self) -> None:
        poller = select.poll()
        poller.register(self.sock, select.POLLIN | select.POLLERR)
        while not self._stop.is_set():
            timeout_ms = 50
            if self._pending:
                timeout_ms = max(0, min(50, int((self._pending[0][0] - time.monotonic()) * 1000)))
            # Sleep in poll until just before the earliest answer is due, then spin briefly.
            for _fd, ev in poller.poll(timeout_ms):
                if ev & select.POLLERR:
                    self._file_stamps()
                if ev & select.POLLIN:
                    got = recv_frame(self.sock)
                    if got:
                        self._on_frame(*got)
            self._send_due()
        self._file_stamps()
        with self._lock:
            self._unstamped.clear()  # no more will come: those gaps use the Python clock

    def _file_stamps(self) -> None:
        for key, stamp in self._tx.drain():
            with self._lock:
                ans = self._unstamped.pop(key, None)
            if ans is not None:
                ans.tx_kernel_ns = stamp

    def _send_due(self) -> None:
        while self._pending and self._pending[0][0] - time.monotonic() < 0.0015:
            due, _, frame, ans = self._pending[0]
            while time.monotonic() < due:
                pass
            heapq.heappop(self._pending)
            ans.tx_pre_ns = time.time_ns()
            key = self._tx.send(frame, want=True)
            ans.tx_ns = time.time_ns()
            if key is not None:
                with self._lock:
                    self._unstamped[key] = ans

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
    ack_tx_kernel_ns: Optional[int] = None  # kernel software TX stamp of the ACK (CLOCK_REALTIME)

    @property
    def gap_kernel(self) -> bool:
        """The gap is kernel stamp to kernel stamp (False: Python-clock fallback)."""
        return self.ack_tx_kernel_ns is not None

    @property
    def gap_ns(self) -> Optional[int]:
        """The timed SYN-ACK's arrival to the ACK's departure as the client recorded them
        (kernel receive and transmit stamps at the responder veth; without a transmit
        stamp, the Python clock just before the ACK's send())."""
        if self.synack_rx_ns is None:
            return None
        tx = self.ack_tx_kernel_ns if self.ack_tx_kernel_ns is not None else self.ack_tx_ns
        return None if tx is None else tx - self.synack_rx_ns


class RawClient:
    """Handshakes from the responder namespace towards a real server in the client namespace."""

    def __init__(self, sock: socket.socket, mac: str, server_mac: str):
        self.sock, self.mac, self.server_mac = sock, mac, server_mac
        self.sock.setblocking(False)
        self._tx = TxStamps(sock)
        self._ports: set[int] = set()
        self.tx_stamps_missing = 0  # completed handshakes whose ACK got no TX stamp

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
            self._tx.drain()  # the error queue also makes the socket readable
            try:
                got = recv_frame(self.sock)
            except (BlockingIOError, InterruptedError):
                continue
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
        self._tx.send(syn())
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
                self._tx.send(syn())
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
        key = self._tx.send(ack, want=True)
        h.result = "completed"
        if reset:
            self._tx.send(self._frame(h, isn + 1, 0, P.RST))
        h.ack_tx_kernel_ns = self._tx.take(key, wait=0.1)
        if h.ack_tx_kernel_ns is None:
            self.tx_stamps_missing += 1
        return h

    def reset(self, h: ClientHandshake) -> None:
        """RST for a handshake left half-open (send_ack=False)."""
        self._tx.send(self._frame(h, h.isn + 1, 0, P.RST))

    def _drain(self) -> None:
        self._tx.drain()
        while True:
            try:
                self.sock.recv(65535)
            except (BlockingIOError, InterruptedError):
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
