#!/usr/bin/env python3
"""A SYN flooder for the end-to-end tests: spoofed TCP SYNs written to an AF_PACKET socket
with sendmmsg(2), as fast as the kernel takes them or at a chosen rate.

Every frame is built before the clock starts (one contiguous buffer, checksums filled in
incrementally from a template), so the timed part is only sendmmsg() calls of BATCH frames.
Sources are spread over --src-net (which must lie in 198.18.0.0/15 or fd00::/8: the
harness never sends anything else), one address and source port pair per SYN, so every
SYN is a new flow for the probe. Run it inside a test namespace:

    ip netns exec NS python3 synflood.py --iface flr0 --src-mac M --dst-mac M \
        --src-net 198.19.0.0/16 --dst 198.18.0.1 --dport 7000 --count 1000000

It prints one JSON line: frames sent, seconds, and the rate reached (frames per second
that sendmmsg accepted; the receiving veth may still drop some, which the caller can read
from the interface counters).
"""
from __future__ import annotations

import argparse
import ctypes
import ipaddress
import json
import os
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
LIBC = ctypes.CDLL(None, use_errno=True)
ALLOWED = (ipaddress.ip_network("198.18.0.0/15"), ipaddress.ip_network("fd00::/8"))


class IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class MsgHdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.POINTER(IoVec)), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", MsgHdr), ("msg_len", ctypes.c_uint)]


LIBC.sendmmsg.argtypes = [ctypes.c_int, ctypes.POINTER(MMsgHdr), ctypes.c_uint, ctypes.c_int]
LIBC.sendmmsg.restype = ctypes.c_int


def _sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def _fold(s: int) -> int:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def mac_bytes(mac: str) -> bytes:
    return bytes(int(p, 16) for p in mac.split(":"))


def build_frames(count: int, src_net: str, dst: str, dport: int, src_mac: str, dst_mac: str,
                 seed: int = 1) -> tuple[bytearray, int]:
    """count SYN frames of equal length in one buffer; (buffer, frame length)."""
    net = ipaddress.ip_network(src_net)
    daddr = ipaddress.ip_address(dst)
    if not any(net.subnet_of(a) for a in ALLOWED if a.version == net.version) or \
            not any(daddr in a for a in ALLOWED):
        raise SystemExit(f"synflood: {src_net} -> {dst} is outside 198.18.0.0/15 and fd00::/8")
    v6 = net.version == 6
    host_bits = net.max_prefixlen - net.prefixlen
    hosts = (1 << min(host_bits, 32)) - (0 if v6 else 2)
    base_addr = int(net.network_address) + (0 if v6 else 1)
    eth = mac_bytes(dst_mac) + mac_bytes(src_mac) + struct.pack("!H", 0x86DD if v6 else 0x0800)
    # TCP: SYN with an MSS option (24 bytes), window 64240.
    tcp_tmpl = struct.pack("!HHIIBBHHH", 0, dport, 0, 0, 6 << 4, 0x02, 64240, 0, 0) + struct.pack("!BBH", 2, 4, 1460)
    tcp_len = len(tcp_tmpl)
    if v6:
        # The prefix part of every source is the template's; only the low 32 bits vary.
        src_tmpl = base_addr.to_bytes(16, "big")
        ip_tmpl = struct.pack("!IHBB16s16s", 6 << 28, tcp_len, 6, 64, src_tmpl, daddr.packed)
        pseudo_base = _sum16(daddr.packed) + _sum16(src_tmpl[:12]) + tcp_len + 6
    else:
        ip_tmpl = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + tcp_len, 0, 0x4000, 64, 6, 0, bytes(4), daddr.packed)
        pseudo_base = _sum16(daddr.packed) + tcp_len + 6
        ip_base = _sum16(ip_tmpl)
    tcp_base = pseudo_base + _sum16(tcp_tmpl)
    frame = eth + ip_tmpl + tcp_tmpl
    flen = len(frame)
    l3 = len(eth)
    l4 = l3 + len(ip_tmpl)
    src_low = l3 + (20 if v6 else 12)  # the last four bytes of the source address
    buf = bytearray(frame * count)
    pack_into = struct.pack_into
    seq = seed * 2654435761 & 0xFFFFFFFF
    ports = 64000
    for i in range(count):
        lo32 = (base_addr + i % hosts) & 0xFFFFFFFF
        sport = 1024 + (i // hosts) % ports
        seq = (seq * 1103515245 + 12345) & 0xFFFFFFFF
        off = i * flen
        s = tcp_base + (lo32 >> 16) + (lo32 & 0xFFFF) + sport + (seq >> 16) + (seq & 0xFFFF)
        pack_into("!I", buf, off + src_low, lo32)
        if not v6:
            ip_id = i & 0xFFFF
            pack_into("!H", buf, off + l3 + 4, ip_id)
            pack_into("!H", buf, off + l3 + 10, ~_fold(ip_base + (lo32 >> 16) + (lo32 & 0xFFFF) + ip_id) & 0xFFFF)
        pack_into("!HHI", buf, off + l4, sport, dport, seq)
        pack_into("!H", buf, off + l4 + 16, ~_fold(s) & 0xFFFF)
    return buf, flen


def flood(iface: str, buf: bytearray, flen: int, count: int, batch: int, rate: float) -> tuple[int, float]:
    """Send the frames; (frames sendmmsg accepted, seconds)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((iface, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    cbuf = (ctypes.c_char * len(buf)).from_buffer(buf)
    base = ctypes.addressof(cbuf)
    iovs = (IoVec * batch)()
    msgs = (MMsgHdr * batch)()
    for j in range(batch):
        msgs[j].msg_hdr.msg_iov = ctypes.pointer(iovs[j])
        msgs[j].msg_hdr.msg_iovlen = 1
        iovs[j].iov_len = flen
    sent = 0
    fd = sock.fileno()
    t0 = time.monotonic()
    while sent < count:
        n = min(batch, count - sent)
        for j in range(n):
            iovs[j].iov_base = base + (sent + j) * flen
        got = LIBC.sendmmsg(fd, msgs, n, 0)
        if got < 0:
            err = ctypes.get_errno()
            if err in (105, 11):  # ENOBUFS, EAGAIN: the device queue is full; yield and retry
                time.sleep(0.0002)
                continue
            raise OSError(err, f"sendmmsg: {os.strerror(err)}")
        sent += got
        if rate > 0:
            ahead = sent / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    took = time.monotonic() - t0
    sock.close()
    del cbuf
    return sent, took


SO_ATTACH_FILTER = 26


def attach_dst_filter(sock: socket.socket, v4: str, v6: str) -> None:
    """A classic BPF filter on a packet socket: only untagged frames to IPv4 address v4 or
    IPv6 address v6 reach it. A raw-socket peer in a flooded namespace must not wade through
    the flood's frames (or the SYN-ACKs answering it) in Python."""
    a4 = int(ipaddress.IPv4Address(v4))
    w6 = struct.unpack("!4I", ipaddress.IPv6Address(v6).packed)
    ldh, ld, jeq, ret = 0x28, 0x20, 0x15, 0x06
    prog = [
        (ldh, 0, 0, 12),            # 0 ethertype
        (jeq, 0, 2, 0x0800),        # 1 IPv4? -> 2, else 4
        (ld, 0, 0, 30),             # 2 IPv4 destination
        (jeq, 9, 10, a4),           # 3 -> 13 accept, else 14 drop
        (jeq, 0, 9, 0x86DD),        # 4 IPv6? -> 5, else 14
        (ld, 0, 0, 38), (jeq, 0, 7, w6[0]),   # 5, 6 IPv6 destination, word by word
        (ld, 0, 0, 42), (jeq, 0, 5, w6[1]),   # 7, 8
        (ld, 0, 0, 46), (jeq, 0, 3, w6[2]),   # 9, 10
        (ld, 0, 0, 50), (jeq, 0, 1, w6[3]),   # 11, 12
        (ret, 0, 0, 0x40000),       # 13 accept
        (ret, 0, 0, 0),             # 14 drop
    ]
    code = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    holder = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HxxxxxxQ", len(prog), ctypes.addressof(holder))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iface", required=True)
    ap.add_argument("--src-mac", required=True)
    ap.add_argument("--dst-mac", required=True)
    ap.add_argument("--src-net", required=True, help="spoofed sources, inside 198.18.0.0/15 or fd00::/8")
    ap.add_argument("--dst", required=True)
    ap.add_argument("--dport", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--rate", type=float, default=0, help="frames per second (0: as fast as possible)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    t0 = time.monotonic()
    buf, flen = build_frames(args.count, args.src_net, args.dst, args.dport, args.src_mac, args.dst_mac, args.seed)
    built = time.monotonic() - t0
    print(json.dumps({"event": "built", "frames": args.count, "seconds": round(built, 3)}), flush=True)
    sent, took = flood(args.iface, buf, flen, args.count, args.batch, args.rate)
    print(json.dumps({"event": "done", "sent": sent, "seconds": round(took, 4),
                      "rate": round(sent / took) if took > 0 else 0, "frame_bytes": flen}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
