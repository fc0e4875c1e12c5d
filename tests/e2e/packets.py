"""Ethernet/IPv4/IPv6/TCP frames built and parsed with the standard library only.

The end-to-end tests write raw frames to AF_PACKET sockets. scapy would do, but it
is slow enough to add milliseconds to a timed answer and it is not importable from
every python3 on the machine, so the few header layouts needed here are spelled out.
Every multi-byte field is in network byte order on the wire; the parsed values are
plain Python integers.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Optional

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
IPPROTO_TCP = 6

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

TCPOPT_EOL, TCPOPT_NOP, TCPOPT_MSS, TCPOPT_WSCALE, TCPOPT_SACK_PERM, TCPOPT_TIMESTAMP = 0, 1, 2, 3, 4, 8


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@dataclass
class Segment:
    """A parsed TCP segment with the addressing around it."""
    family: int  # 4 or 6
    src_mac: str
    dst_mac: str
    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    tsval: Optional[int] = None
    tsecr: Optional[int] = None
    mss: Optional[int] = None

    def has(self, flags: int) -> bool:
        return self.flags & flags == flags

    @property
    def handshake_flags(self) -> int:
        return self.flags & (SYN | ACK | RST | FIN)


def tcp_options(mss: Optional[int] = None, wscale: Optional[int] = None, sack_perm: bool = False,
                timestamps: Optional[tuple[int, int]] = None) -> bytes:
    """Options in the order Linux writes them, padded to a multiple of four bytes."""
    out = b""
    if mss is not None:
        out += struct.pack("!BBH", TCPOPT_MSS, 4, mss)
    if sack_perm and timestamps is not None:
        out += struct.pack("!BB", TCPOPT_SACK_PERM, 2)
        out += struct.pack("!BBII", TCPOPT_TIMESTAMP, 10, *timestamps)
    else:
        if sack_perm:
            out += struct.pack("!BBBB", TCPOPT_NOP, TCPOPT_NOP, TCPOPT_SACK_PERM, 2)
        if timestamps is not None:
            out += struct.pack("!BBBBII", TCPOPT_NOP, TCPOPT_NOP, TCPOPT_TIMESTAMP, 10, *timestamps)
    if wscale is not None:
        out += struct.pack("!BBBB", TCPOPT_NOP, TCPOPT_WSCALE, 3, wscale)
    while len(out) % 4:
        out += bytes([TCPOPT_EOL])
    return out


IPV6_HOPOPTS, IPV6_DSTOPTS = 0, 60


def ipv6_padn_header(next_header: int) -> bytes:
    """An 8-byte Hop-by-Hop or Destination Options header holding one PadN option."""
    return struct.pack("!BBBB4x", next_header, 0, 1, 4)


def build_frame(*, src_mac: str, dst_mac: str, src: str, dst: str, sport: int, dport: int,
                seq: int, ack: int, flags: int, window: int = 64240, options: bytes = b"",
                ip_id: int = 0, ipv4_options: bytes = b"", ipv6_ext: tuple[int, ...] = ()) -> bytes:
    """One Ethernet frame carrying a TCP segment without payload, checksums filled in.
    ipv4_options (a multiple of 4 bytes) go into the IPv4 header; ipv6_ext lists extension
    header types (IPV6_HOPOPTS, IPV6_DSTOPTS) inserted, each with PadN, before TCP."""
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version != d.version:
        raise ValueError(f"mixed address families: {src} -> {dst}")
    offset_words = (20 + len(options)) // 4
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      offset_words << 4, flags, window, 0, 0) + options
    if s.version == 4:
        pseudo = s.packed + d.packed + struct.pack("!BBH", 0, IPPROTO_TCP, len(tcp))
    else:
        pseudo = s.packed + d.packed + struct.pack("!IxxxB", len(tcp), IPPROTO_TCP)
    csum = _checksum(pseudo + tcp)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    if s.version == 4:
        if len(ipv4_options) % 4:
            raise ValueError("IPv4 options must fill whole 32-bit words")
        hlen = 20 + len(ipv4_options)
        ip = struct.pack("!BBHHHBBH4s4s", 0x40 | hlen // 4, 0, hlen + len(tcp), ip_id & 0xFFFF, 0x4000,
                         64, IPPROTO_TCP, 0, s.packed, d.packed) + ipv4_options
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        ethertype = ETH_P_IP
    else:
        chain = list(ipv6_ext) + [IPPROTO_TCP]
        ext = b"".join(ipv6_padn_header(chain[i + 1]) for i in range(len(ipv6_ext)))
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(ext) + len(tcp), chain[0], 64, s.packed,
                         d.packed) + ext
        ethertype = ETH_P_IPV6
    return mac_bytes(dst_mac) + mac_bytes(src_mac) + struct.pack("!H", ethertype) + ip + tcp


def parse_frame(frame: bytes) -> Optional[Segment]:
    """The TCP segment in an untagged Ethernet frame, or None for anything else."""
    if len(frame) < 14:
        return None
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    off = 14
    if ethertype == ETH_P_IP:
        if len(frame) < off + 20:
            return None
        ver_ihl, proto = frame[off], frame[off + 9]
        ihl = (ver_ihl & 0x0F) * 4
        if ver_ihl >> 4 != 4 or proto != IPPROTO_TCP or ihl < 20:
            return None
        src = str(ipaddress.IPv4Address(frame[off + 12:off + 16]))
        dst = str(ipaddress.IPv4Address(frame[off + 16:off + 20]))
        family, off = 4, off + ihl
    elif ethertype == ETH_P_IPV6:
        if len(frame) < off + 40 or frame[off] >> 4 != 6 or frame[off + 6] != IPPROTO_TCP:
            return None
        src = str(ipaddress.IPv6Address(frame[off + 8:off + 24]))
        dst = str(ipaddress.IPv6Address(frame[off + 24:off + 40]))
        family, off = 6, off + 40
    else:
        return None
    if len(frame) < off + 20:
        return None
    sport, dport, seq, ack, data_off, flags, window = struct.unpack_from("!HHIIBBH", frame, off)
    seg = Segment(family, mac_text(frame[6:12]), mac_text(frame[0:6]), src, dst, sport, dport,
                  seq, ack, flags, window)
    opt_end = off + (data_off >> 4) * 4
    i = off + 20
    while i < min(opt_end, len(frame)):
        kind = frame[i]
        if kind == TCPOPT_EOL:
            break
        if kind == TCPOPT_NOP:
            i += 1
            continue
        if i + 1 >= len(frame):
            break
        length = frame[i + 1]
        if length < 2:
            break
        if kind == TCPOPT_TIMESTAMP and length == 10 and i + 10 <= len(frame):
            seg.tsval, seg.tsecr = struct.unpack_from("!II", frame, i + 2)
        elif kind == TCPOPT_MSS and length == 4 and i + 4 <= len(frame):
            (seg.mss,) = struct.unpack_from("!H", frame, i + 2)
        i += length
    return seg
