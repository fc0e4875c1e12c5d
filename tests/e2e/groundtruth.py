"""Ground truth for one handshake from a dumpcap capture on the probed interface, and the
comparison of a flowlatd JSON event against it.

dumpcap's AF_PACKET tap sits next to the TC hooks the probe uses (egress: just after
TC; ingress: just before TC), so SYN/SYN-ACK/ACK capture times are the same instants
the probe timestamps, to within microseconds. Everything here is measured, not assumed.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Optional

from netlab import Checker, Packet, conversation, log, parse_ts, FAMILY_NAME

RTT_TOLERANCE_NS = 250_000  # also the bound against the gap the raw-socket peer recorded
WIRE_PROMPT_NS = 150_000     # both veth crossings of a sample together, for it to count as prompt
TS_TOLERANCE_NS = 50_000_000  # the printed wall-clock time of the outcome


@dataclass
class Truth:
    direction: str
    family: int
    local: str
    local_port: int
    peer: str
    peer_port: int
    outcome: str                 # completed | refused | none (no answer seen)
    first_syn_ns: int
    timed_ns: list[int]          # transmissions of the timed packet (SYN out / SYN-ACK out)
    answer_ns: Optional[int]     # SYN-ACK/RST in (outbound), ACK in / RST out (inbound)
    answered_tsecr: Optional[int] = None
    timed_tsvals: list[Optional[int]] = field(default_factory=list)
    initiator_isn: Optional[int] = None  # sequence number of the initiator's SYN

    @property
    def retransmits(self) -> int:
        return max(0, len(self.timed_ns) - 1)

    @property
    def rtt_ns(self) -> Optional[int]:
        """Gap from the transmission that was answered to the answer. With a TSecr that
        matches one transmission's TSval that one is meant; otherwise the last one."""
        if self.answer_ns is None or not self.timed_ns:
            return None
        idx = len(self.timed_ns) - 1
        if self.answered_tsecr is not None and self.answered_tsecr in self.timed_tsvals:
            idx = self.timed_tsvals.index(self.answered_tsecr)
        return self.answer_ns - self.timed_ns[idx]

    @property
    def rtt_unambiguous(self) -> bool:
        """Karn's rule: one transmission, or a TSecr that names exactly one of them."""
        if len(self.timed_ns) <= 1:
            return True
        return self.answered_tsecr is not None and self.timed_tsvals.count(self.answered_tsecr) == 1

    @property
    def handshake_ns(self) -> Optional[int]:
        return None if self.answer_ns is None else self.answer_ns - self.first_syn_ns


def epochs(conv: list[Packet], initiator: str) -> list[list[Packet]]:
    """A 4-tuple used for several connections, split where the initiator's SYN carries a new ISN."""
    out: list[list[Packet]] = []
    isn = None
    for p in conv:
        if p.src == initiator and p.is_("SYN") and p.seq != isn:
            isn = p.seq
            out.append([])
        if out:
            out[-1].append(p)
    return out


def truth(pkts: list[Packet], direction: str, family: int, local: str, lport: int, peer: str,
          pport: int, epoch: int = 0) -> Truth:
    """epoch picks the connection when the 4-tuple was reused (0: the first)."""
    conv = conversation(pkts, local, lport, peer, pport)
    parts = epochs(conv, local if direction == "outbound" else peer)
    conv = parts[epoch] if epoch < len(parts) else []
    if not conv:
        raise AssertionError(f"capture holds no packet of {direction} {local}:{lport} <-> {peer}:{pport}"
                             f" (connection #{epoch})")
    if direction == "outbound":
        syns = [p for p in conv if p.src == local and p.is_("SYN")]
        # Only an answer that acknowledges our SYN counts (a SYN-ACK with a wrong ack is noise).
        good_ack = (syns[0].seq + 1) & 0xFFFFFFFF if syns else None
        answer = next((p for p in conv if p.src == peer and (p.is_("SYN", "ACK") or p.flags & 0x04)
                       and p.ack == good_ack), None)
        before = [p for p in syns if answer is None or p.t_ns <= answer.t_ns]
        t = Truth(direction, family, local, lport, peer, pport,
                  "none" if answer is None else ("refused" if answer.flags & 0x04 else "completed"),
                  syns[0].t_ns, [p.t_ns for p in before], answer.t_ns if answer else None,
                  answer.tsecr if answer else None, [p.tsval for p in before], syns[0].seq)
        return t
    syns = [p for p in conv if p.src == peer and p.is_("SYN")]
    synacks = [p for p in conv if p.src == local and p.is_("SYN", "ACK")]
    rst_out = next((p for p in conv if p.src == local and p.flags & 0x04), None)
    ack = None
    if synacks:
        ack = next((p for p in conv if p.src == peer and p.is_("ACK")
                    and p.ack == (synacks[0].seq + 1) & 0xFFFFFFFF), None)
    if ack is not None:
        before = [p for p in synacks if p.t_ns <= ack.t_ns]
        return Truth(direction, family, local, lport, peer, pport, "completed", syns[0].t_ns,
                     [p.t_ns for p in before], ack.t_ns, ack.tsecr, [p.tsval for p in before])
    if rst_out is not None and not synacks:
        return Truth(direction, family, local, lport, peer, pport, "refused", syns[0].t_ns,
                     [], rst_out.t_ns)
    return Truth(direction, family, local, lport, peer, pport, "none", syns[0].t_ns,
                 [p.t_ns for p in synacks], None, None, [p.tsval for p in synacks])


class Errors:
    """Largest deviations seen, for the summary line."""

    def __init__(self):
        self.rtt: list[int] = []
        self.handshake: list[int] = []
        self.ts: list[int] = []
        self.responder: list[int] = []   # rtt_ns - the peer's recorded gap, every kind
        self.responder_prompt: list[int] = []   # the same, samples the veth carried at once
        self.responder_delayed: list[int] = []  # wire time of the samples it held up
        self.responder_fallback = 0      # of those, gaps on the Python clock (no TX stamp)

    @staticmethod
    def _fmt(xs: list[int], unit: float = 1000.0, name: str = "µs") -> str:
        if not xs:
            return "n/a"
        return f"max {max(abs(x) for x in xs) / unit:.1f} {name} over {len(xs)}"

    def summary(self) -> list[str]:
        return [f"|rtt_ns - dumpcap truth|: {self._fmt(self.rtt)}",
                f"|handshake_ns - dumpcap truth|: {self._fmt(self.handshake)}",
                f"|ts - dumpcap time of the answer|: {self._fmt(self.ts)}",
                f"|rtt_ns - responder's recorded gap|: {self._fmt(self.responder)}"
                + (f" ({self.responder_fallback} on the Python-clock fallback, no kernel TX stamp)"
                   if self.responder else ""),
                f"|rtt_ns - responder's recorded gap|, prompt veth: {self._fmt(self.responder_prompt)}",
                f"samples the veth delayed: {len(self.responder_delayed)}"
                + (f", up to {max(self.responder_delayed) / 1000:.1f} µs" if self.responder_delayed else "")]


def check_peer_gap(chk: Checker, errs: Errors, what: str, rtt_ns: int, gap_ns: Optional[int],
                   kernel: bool, rx_ns: Optional[int] = None, t: Optional[Truth] = None) -> None:
    """flowlatd's rtt_ns against the gap the raw-socket peer (Responder or RawClient)
    recorded between the packet it answered and its answer: its kernel receive stamp to
    its kernel software TX stamp at the responder veth (kernel=True), or, when the TX
    stamp was missing, to Python's clock just before send() (counted in the summary).

    The peer's gap equals the RTT only while the veth delivers at once. On a loaded host
    the softirq that carries a packet across the pair can wait milliseconds; the peer's
    receive stamp and dumpcap's stamps on the probed veth (rx_ns, t) show that wire time
    directly. A sample whose wire time exceeds WIRE_PROMPT_NS is "delayed": it must then
    be no shorter than the peer's gap and exceed it by the measured wire time (within the
    tolerance). check_peer_coverage() requires most samples to be prompt."""
    if not chk.check(gap_ns is not None, f"{what}: the peer recorded no gap for this handshake"):
        return
    err = rtt_ns - gap_ns
    errs.responder.append(err)
    if not kernel:
        errs.responder_fallback += 1
    source = "kernel rx -> tx stamps" if kernel else "kernel rx stamp -> Python clock before send(), TX stamp missing"
    wire_ns = None
    where = ""
    if rx_ns is not None and t is not None and t.rtt_ns is not None and t.answer_ns is not None:
        timed = t.answer_ns - t.rtt_ns
        wire_out, wire_back = rx_ns - timed, t.answer_ns - (rx_ns + gap_ns)
        wire_ns = wire_out + wire_back
        where = (f"; vs dumpcap: peer received {wire_out / 1000:+.1f} µs after the timed packet"
                 f" left, peer's answer left {wire_back / 1000:.1f} µs before it arrived")
        # One clock (CLOCK_REALTIME) on both sides of the pair: a negative wire time beyond
        # the tolerance means the stamps are not what this test thinks they are.
        chk.check(min(wire_out, wire_back) >= -RTT_TOLERANCE_NS,
                  f"harness: {what}: peer stamps inconsistent with the capture{where}")
    if os.environ.get("E2E_VERBOSE"):
        log(f"{what}: rtt_ns - peer gap {err / 1000:+.1f} µs ({'kernel' if kernel else 'fallback'}){where}")
    if wire_ns is None or wire_ns <= WIRE_PROMPT_NS:
        errs.responder_prompt.append(err)
        chk.check(abs(err) <= RTT_TOLERANCE_NS,
                  f"{what}: rtt_ns {rtt_ns} vs the peer's recorded gap {gap_ns} ({source}): "
                  f"error {err / 1000:.1f} µs{where}")
        return
    errs.responder_delayed.append(wire_ns)
    chk.check(err >= -RTT_TOLERANCE_NS and abs(err - wire_ns) <= RTT_TOLERANCE_NS,
              f"{what}: rtt_ns {rtt_ns} vs the peer's recorded gap {gap_ns} ({source}) plus the"
              f" {wire_ns / 1000:.1f} µs the veth took: error {(err - wire_ns) / 1000:.1f} µs{where}")


def check_peer_coverage(chk: Checker, errs: Errors) -> None:
    """The strict comparison with the peer's gap must have covered most samples: a run in
    which the veth was slow for half of them or more witnesses too little."""
    prompt, delayed = len(errs.responder_prompt), len(errs.responder_delayed)
    chk.check(prompt > delayed,
              f"only {prompt} of {prompt + delayed} samples crossed the veth within"
              f" {WIRE_PROMPT_NS / 1000:.0f} µs; the host is too loaded to compare with the peer's gap")


def check_event(chk: Checker, errs: Errors, ev: dict, t: Truth, interface: str,
                expect_outcome: str, expect_rtt: Optional[bool] = None) -> None:
    """Compare one event with its truth. expect_rtt: True/False forces rtt_ns set/null;
    None derives it from Karn's rule and the capture."""
    what = f"{t.direction} {FAMILY_NAME[t.family]} {t.local}:{t.local_port} -> {t.peer}:{t.peer_port}"
    if not chk.json_shape(ev):
        return
    chk.check(ev["interface"] == interface, f"{what}: interface {ev['interface']!r} != {interface!r}")
    chk.check(ev["direction"] == t.direction, f"{what}: direction {ev['direction']}")
    chk.check(ev["family"] == FAMILY_NAME[t.family], f"{what}: family {ev['family']}")
    chk.check(ev["local"] == str(ipaddress.ip_address(t.local)), f"{what}: local {ev['local']!r}")
    chk.check(ev["peer"] == str(ipaddress.ip_address(t.peer)), f"{what}: peer {ev['peer']!r}")
    chk.check(t.outcome == expect_outcome or (expect_outcome == "timeout" and t.outcome == "none"),
              f"{what}: test setup produced {t.outcome}, wanted {expect_outcome} (harness problem)")
    if not chk.check(ev["outcome"] == expect_outcome, f"{what}: outcome {ev['outcome']} != {expect_outcome}: {ev}"):
        return
    if expect_outcome == "timeout":
        return  # caller checks the timeout-specific fields
    chk.check(ev["retransmits"] == t.retransmits,
              f"{what}: retransmits {ev['retransmits']} != {t.retransmits} seen in the capture")
    hs_err = ev["handshake_ns"] - t.handshake_ns
    errs.handshake.append(hs_err)
    chk.check(abs(hs_err) <= RTT_TOLERANCE_NS,
              f"{what}: handshake_ns {ev['handshake_ns']} vs truth {t.handshake_ns} (error {hs_err / 1000:.1f} µs)")
    ts_err = parse_ts(ev["ts"]) - t.answer_ns
    errs.ts.append(ts_err)
    chk.check(abs(ts_err) <= TS_TOLERANCE_NS,
              f"{what}: ts {ev['ts']} is {ts_err / 1e6:.3f} ms from the answer's capture time")
    want_rtt = t.rtt_unambiguous if expect_rtt is None else expect_rtt
    if expect_outcome == "refused":
        # The brief fixes no rule for a refusal's RTT; if one is printed it must be right.
        if ev["rtt_ns"] is not None and t.direction == "outbound":
            err = ev["rtt_ns"] - t.rtt_ns
            errs.rtt.append(err)
            chk.check(abs(err) <= RTT_TOLERANCE_NS,
                      f"{what}: refused rtt_ns {ev['rtt_ns']} vs truth {t.rtt_ns} (error {err / 1000:.1f} µs)")
        return
    if not want_rtt:
        chk.check(ev["rtt_ns"] is None, f"{what}: rtt_ns should be null (ambiguous, Karn's rule): {ev}")
        return
    if not chk.check(ev["rtt_ns"] is not None, f"{what}: rtt_ns is null but the sample is unambiguous: {ev}"):
        return
    err = ev["rtt_ns"] - t.rtt_ns
    errs.rtt.append(err)
    chk.check(abs(err) <= RTT_TOLERANCE_NS,
              f"{what}: rtt_ns {ev['rtt_ns']} vs truth {t.rtt_ns} (error {err / 1000:.1f} µs)")


def match_events(chk: Checker, events: list[dict], expected: list[tuple]) -> dict[tuple, dict]:
    """Each expected (direction, family, local_port, peer_port) must occur exactly once and
    nothing else may be printed. Returns the matched events by key."""
    seen: dict[tuple, list[dict]] = {}
    for ev in events:
        key = (ev.get("direction"), ev.get("family"), ev.get("local_port"), ev.get("peer_port"))
        seen.setdefault(key, []).append(ev)
    out = {}
    for key in expected:
        got = seen.pop(key, [])
        if chk.check(len(got) == 1, f"handshake {key} reported {len(got)} times (want exactly once): {got}"):
            out[key] = got[0]
    for key, evs in seen.items():
        for ev in evs:
            chk.check(False, f"unexpected line for a handshake the test did not make: {ev}")
    return out


def match_events_in_order(chk: Checker, events: list[dict], expected: list[tuple]) -> dict[tuple, list[dict]]:
    """Like match_events, but a key may be expected several times (a reused 4-tuple): it
    must then be printed exactly that often. Events per key keep their printed order."""
    want: dict[tuple, int] = {}
    for key in expected:
        want[key] = want.get(key, 0) + 1
    seen: dict[tuple, list[dict]] = {}
    for ev in events:
        key = (ev.get("direction"), ev.get("family"), ev.get("local_port"), ev.get("peer_port"))
        seen.setdefault(key, []).append(ev)
    out = {}
    for key, n in want.items():
        got = seen.pop(key, [])
        if chk.check(len(got) == n, f"handshake {key} reported {len(got)} times (want {n}): {got}"):
            out[key] = got
    for key, evs in seen.items():
        for ev in evs:
            chk.check(False, f"unexpected line for a handshake the test did not make: {ev}")
    return out
