#!/usr/bin/env python3
"""flowlatd on a raw-IP device (root only): a tun interface has no link header at TC, so the
probe's raw-IP programs are attached there (chosen from the device's ARPHRD type).

Inside a private network namespace: tun device fltun0 (198.18.9.1/24, fd00:9::1/64). This
script is the peer: it reads IP packets from the tun file descriptor and answers SYNs to port
7001 with a SYN-ACK after 10 ms, and SYNs to port 7002 with an RST-ACK. Real clients connect()
over IPv4 and IPv6; `flowlatd --print=json` must report each handshake once with the right
outcome and an rtt within 250 µs of the truth: the SYN-to-SYN-ACK gap seen by a packet tap
(AF_PACKET, kernel timestamps) on the tun, which sits next to the TC hooks. The peer's own
read-to-write gap is printed for information only: it is read by Python, in the process whose
threads also run the clients, so scheduling moves it by milliseconds on a busy machine.
"""
import fcntl
import json
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time

FLOWLATD = os.environ.get("FLOWLATD", "build/flowlatd")
NS = f"flrawip-{os.getpid()}"
TUN = "fltun0"
DELAY = 0.010


def inside() -> int:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import packets as P  # the e2e tests' own frame builder and parser
    import responder as R  # socket option numbers and the timespec decoder

    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, 0x400454CA, struct.pack("16sH", TUN.encode(), 0x0001 | 0x1000))  # TUNSETIFF, TUN|NO_PI
    for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", "198.18.9.1/24", "dev", TUN],
                ["ip", "-6", "addr", "add", "fd00:9::1/64", "dev", TUN, "nodad"], ["ip", "link", "set", TUN, "up"]):
        subprocess.run(cmd, check=True)

    gaps = {}  # client port -> seconds between reading the SYN and writing the answer
    stop = threading.Event()

    # Ground truth: a cooked packet tap on the tun sees our SYN leave and the SYN-ACK arrive,
    # each with the kernel's receive timestamp of the tap.
    tap = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0003))  # ETH_P_ALL
    tap.setsockopt(socket.SOL_SOCKET, R.SO_TIMESTAMPNS, 1)
    tap.bind((TUN, 0x0003))
    tapped = []  # (kernel ns, outgoing, segment)

    def tap_reader():
        while not stop.is_set():
            if not select.select([tap], [], [], 0.1)[0]:
                continue
            data, anc, _flags, addr = tap.recvmsg(65535, R.ANC_SPACE)
            stamp = next((R._timespec_ns(c) for level, typ, c in anc
                          if level == socket.SOL_SOCKET and typ == R.SO_TIMESTAMPNS and len(c) >= 16), None)
            if stamp is None or not data or data[0] >> 4 not in (4, 6):
                continue
            ethertype = P.ETH_P_IP if data[0] >> 4 == 4 else P.ETH_P_IPV6
            seg = P.parse_frame(b"\x00" * 12 + struct.pack("!H", ethertype) + data)
            if seg is not None:
                tapped.append((stamp, addr[2] == R.PACKET_OUTGOING, seg))

    tap_thread = threading.Thread(target=tap_reader, daemon=True)
    tap_thread.start()

    def peer():
        while not stop.is_set():
            if not select.select([tun], [], [], 0.1)[0]:
                continue
            raw = os.read(tun, 65535)
            got = time.monotonic()
            version = raw[0] >> 4
            if version not in (4, 6):
                continue
            # The e2e helpers speak Ethernet frames: wrap the raw IP packet in a dummy header.
            ethertype = P.ETH_P_IP if version == 4 else P.ETH_P_IPV6
            seg = P.parse_frame(b"\x00" * 12 + struct.pack("!H", ethertype) + raw)
            if seg is None or seg.handshake_flags != P.SYN:
                continue
            if seg.dport == 7001:
                time.sleep(DELAY)
                flags, seq = P.SYN | P.ACK, 1000
            elif seg.dport == 7002:
                flags, seq = P.RST | P.ACK, 0
            else:
                continue
            frame = P.build_frame(src_mac="02:00:00:00:00:01", dst_mac="02:00:00:00:00:02", src=seg.dst,
                                  dst=seg.src, sport=seg.dport, dport=seg.sport, seq=seq, ack=seg.seq + 1,
                                  flags=flags)
            os.write(tun, frame[14:])
            gaps[seg.sport] = time.monotonic() - got

    thread = threading.Thread(target=peer, daemon=True)
    thread.start()
    flowlatd = subprocess.Popen([FLOWLATD, "--interface", TUN, "--print=json"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    log = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        line = flowlatd.stderr.readline()
        log.append(line)
        if "ready" in line or not line:
            break
    failures = []
    if not any("raw IP" in l for l in log):
        failures.append("attach log does not say the raw-IP programs were used: " + "".join(log))

    expected = {}  # client port -> (family, outcome)
    for family, address in ((socket.AF_INET, "198.18.9.2"), (socket.AF_INET6, "fd00:9::2")):
        for port, outcome in ((7001, "completed"), (7001, "completed"), (7002, "refused")):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.settimeout(3)
            try:
                s.connect((address, port))
            except ConnectionRefusedError:
                pass
            expected[s.getsockname()[1]] = ("ipv4" if family == socket.AF_INET else "ipv6", outcome)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, no FIN dance
            s.close()
    time.sleep(0.5)
    flowlatd.terminate()
    out, err = flowlatd.communicate(timeout=10)
    stop.set()
    if flowlatd.returncode != 0:
        failures.append(f"flowlatd exited {flowlatd.returncode}: {err}")
    lines = [json.loads(l) for l in out.splitlines() if l.strip()]
    seen = {}
    for line in lines:
        seen.setdefault(line["local_port"], []).append(line)
    for port, (family, outcome) in expected.items():
        got = seen.get(port, [])
        if len(got) != 1:
            failures.append(f"port {port}: expected one line, got {got}")
            continue
        line = got[0]
        if (line["family"], line["outcome"], line["direction"], line["interface"]) != (family, outcome, "outbound", TUN):
            failures.append(f"port {port}: expected {family} {outcome} outbound on {TUN}, got {line}")
        if outcome == "completed":
            gap_ns = gaps.get(port, 0) * 1e9
            syn = next((t for t, out, seg in tapped if out and seg.sport == port and seg.handshake_flags == P.SYN), None)
            answer = next((t for t, out, seg in tapped
                           if not out and seg.dport == port and seg.handshake_flags == P.SYN | P.ACK), None)
            if syn is None or answer is None or line["rtt_ns"] is None:
                failures.append(f"port {port}: no tapped SYN/SYN-ACK pair or no rtt: {line}")
                continue
            truth_ns = answer - syn
            error_us = abs(line["rtt_ns"] - truth_ns) / 1000
            print(f"  {family} port {port}: rtt {line['rtt_ns'] / 1e6:.3f} ms, tap {truth_ns / 1e6:.3f} ms "
                  f"(|error| {error_us:.1f} µs), peer's own gap {gap_ns / 1e6:.3f} ms (informational)")
            if error_us > 250:
                failures.append(f"port {port}: rtt {line['rtt_ns']} ns vs tapped gap {truth_ns} ns")
            if line["rtt_ns"] < DELAY * 1e9:
                failures.append(f"port {port}: rtt {line['rtt_ns']} ns is below the peer's {DELAY * 1e3:.0f} ms delay")
    extra = set(seen) - set(expected)
    if extra:
        failures.append(f"lines for unexpected ports: {[seen[p] for p in extra]}")
    if failures:
        print("test_raw_ip_device: FAIL\n  " + "\n  ".join(failures))
        return 1
    print(f"test_raw_ip_device: PASS ({len(lines)} handshakes on a tun device)")
    return 0


def main() -> int:
    if "--inside" in sys.argv:
        return inside()
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        env = dict(os.environ, FLOWLATD=os.path.abspath(FLOWLATD))
        return subprocess.run(["ip", "netns", "exec", NS, sys.executable, os.path.abspath(__file__), "--inside"],
                              env=env, timeout=120).returncode
    finally:
        subprocess.run(["ip", "netns", "del", NS], stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    sys.exit(main())
