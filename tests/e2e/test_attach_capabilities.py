#!/usr/bin/env python3
"""Attachment under the systemd unit's capabilities (root only): CAP_BPF, CAP_NET_ADMIN and
CAP_PERFMON, no CAP_SYS_ADMIN (setpriv --bounding-set, --no-new-privs, as root like the unit).
Without CAP_SYS_ADMIN, BPF_PROG_GET_FD_BY_ID fails, so flowlatd must recognise its own filters
and a live second instance without it.

1. clsact (Debian 12's kernel has no TCX; FLOWLATD_ATTACH_MODE=clsact forces it): a SIGKILLed
   instance leaves its filters; the next start replaces them (log line, exactly one flowlat
   filter per hook, the orphaned programs are gone) and really measures a handshake; SIGTERM
   removes them. A foreign filter on each hook and the clsact qdisc stay throughout.
2. A live daemon (clsact) on flc0: a second daemon (clsact or TCX) exits 2 with one line,
   "another flowlatd daemon runs in this network namespace". `--print` in clsact mode and in TCX mode, as full root (`sudo
   flowlatd --print` beside the service) and under the unit's capabilities, runs beside it in
   its own slot (clsact handle 0xf10b, or its own TCX links), prints a handshake, and exits 0
   leaving the daemon's filters unchanged; the daemon reports probe_attached 1 and counted
   every handshake, those --print saw included.
3. A live `--print` (TCX) first: a second `--print`, TCX or clsact (root or unit caps), exits 2;
   exactly one flowlat TCX program per hook and no clsact filter remain, and the first still
   measures.
4. Foreign programs in --print's own slot (handle 0xf10b, priority 1): one that replaced our
   filter while we ran is left in place at SIGTERM (only our prog_id is deleted); one that
   sits there at start makes flowlatd exit 2 ("held by another program") and is untouched.
"""
import itertools
import os
import re
import signal
import subprocess
import time
from typing import Optional

import daemon_harness as H
import netlab as N
import responder as R

PORT = 5001
UNIT_CAPS = ["setpriv", "--bounding-set=-all,+bpf,+net_admin,+perfmon", "--inh-caps=-all", "--no-new-privs"]
CLSACT = {"FLOWLATD_ATTACH_MODE": "clsact"}
PRINT_HANDLE = "0xf10b"  # --print's clsact slot (the daemon's is 0xf10a)
CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 12, 21, 38, 39
FILTER_RE = re.compile(r"handle (0x[0-9a-f]+) (\S+):\[(\w+)\]")


class UnitDaemon(H.Daemon):
    """flowlatd in daemon mode under the unit's capabilities (setpriv execs it: same pid)."""

    def __init__(self, lab: N.Lab, config: str, env: dict):
        self.lab, self.ns, self.port = lab, lab.client_ns, H.METRICS_PORT
        cmd = [*UNIT_CAPS, N.flowlatd_path(), f"--config.file={config}",
               f"--web.listen-address=127.0.0.1:{self.port}"]
        N.Proc.__init__(self, lab.exec_cmd(self.ns, cmd), "flowlatd", env)


def start_print(lab: N.Lab, env: dict, caps: tuple = tuple(UNIT_CAPS)) -> N.Proc:
    p = N.Proc(lab.exec_cmd(lab.client_ns, [*caps, N.flowlatd_path(), "--interface", lab.client_if,
                                            "--print=json"]), "flowlatd", env)
    if not p.wait_stderr("ready", 15):
        rc = p.proc.poll()
        p.close()
        raise AssertionError(f"flowlatd --print did not get ready (exit={rc}):\n{p.stderr_text()}")
    return p


def run_refused(lab: N.Lab, args: list[str], env: dict) -> tuple[Optional[int], str]:
    """A flowlatd that should refuse at once: (exit code or None if it ran on, stderr)."""
    p = subprocess.Popen(lab.exec_cmd(lab.client_ns, args),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, **env})
    try:
        _, err = p.communicate(timeout=10)
        return p.returncode, err
    except subprocess.TimeoutExpired:  # it attached beside the first: stop it the normal way
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=10)
        return None, err


def run_second(lab: N.Lab, env: dict, caps: tuple = tuple(UNIT_CAPS)) -> tuple[Optional[int], str]:
    """A second --print instance that should refuse at once."""
    return run_refused(lab, [*caps, N.flowlatd_path(), "--interface", lab.client_if, "--print=json"], env)


def cap_eff(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith("CapEff:")).split()[1], 16)


def filters(lab: N.Lab, hook: str) -> list[tuple[str, str, str]]:
    """(handle, name, prog id) of every bpf filter on the clsact hook, from TCA_BPF_NAME."""
    out = N.run(lab.exec_cmd(lab.client_ns, ["tc", "filter", "show", "dev", lab.client_if, hook]), check=False)
    return FILTER_RE.findall(out.stdout)


def flowlat_filters(lab: N.Lab, hook: str) -> list[tuple[str, str, str]]:
    return [f for f in filters(lab, hook) if f[1].startswith("flowlat_")]


def tcx_flowlat(lab: N.Lab) -> dict[str, list[int]]:
    a = N.attachments(lab.client_ns, lab.client_if)
    return {hook: [p for p, _, name in entries if name and name.startswith("flowlat")]
            for hook, entries in a.tcx.items()}


def gone(prog_id: int, timeout: float = 3) -> bool:
    """The kernel frees a program after an RCU grace period, not at once when its filter goes."""
    deadline = time.monotonic() + timeout
    while N.prog_name(prog_id) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def handshake(lab: N.Lab) -> N.Connect:
    c = lab.connect(4, PORT, timeout=3)
    if c.result != "connected":
        N.fail_hard(f"harness: connect to {N.PEER_V4}:{PORT} gave {c.result}")
    return c


def printed(p: N.Proc, c: N.Connect, timeout: float = 5) -> bool:
    """Whether the --print instance reported this connection as completed."""
    def seen() -> bool:
        for _, line in p.stdout:
            if f'"local_port":{c.local_port},' in line.replace(" ", "") and '"completed"' in line:
                return True
        return False
    return p.wait_for(seen, timeout) and seen()


def completed_total(m: H.Metrics) -> float:
    return sum(s.value for s in m.find("flowlat_handshakes_total", outcome="completed", interface=N.CLIENT_IF))


def check_premise(chk: N.Checker, pid: int, what: str, daemon: bool = False) -> None:
    """--print keeps the unit's three; the daemon drops CAP_PERFMON once attached (os/capabilities)."""
    eff = cap_eff(pid)
    want = (1 << CAP_NET_ADMIN) | (0 if daemon else 1 << CAP_PERFMON) | (1 << CAP_BPF)
    names = "CAP_BPF CAP_NET_ADMIN" + ("" if daemon else " CAP_PERFMON")
    chk.check(eff == want, f"{what}: CapEff {eff:#x}, want exactly {names} ({want:#x})")


def stale_filter_is_replaced(chk: N.Checker, lab: N.Lab) -> None:
    first = start_print(lab, CLSACT)
    check_premise(chk, first.proc.pid, "clsact instance")
    before = {h: flowlat_filters(lab, h) for h in ("ingress", "egress")}
    for hook, found in before.items():
        chk.check(len(found) == 1 and found[0][0] == PRINT_HANDLE, f"one flowlat {hook} filter at {PRINT_HANDLE}: {found}")
    chk.check(printed(first, handshake(lab)), f"the first instance measures:\n{first.stderr_text()}")
    first.stop(signal.SIGKILL)
    for hook in ("ingress", "egress"):
        chk.check(flowlat_filters(lab, hook) == before[hook],
                  f"a SIGKILLed instance leaves its {hook} filter: {flowlat_filters(lab, hook)}")

    second = start_print(lab, CLSACT)
    chk.check(any("replaced 2 clsact filter(s) left by an earlier flowlatd" in l for _, l in second.stderr),
              f"the restart says it replaced the stale filters:\n{second.stderr_text()}")
    for hook in ("ingress", "egress"):
        found = flowlat_filters(lab, hook)
        chk.check(len(found) == 1 and found[0][0] == PRINT_HANDLE and found[0][2] != before[hook][0][2],
                  f"exactly one flowlat {hook} filter after the restart, with a new program: {found}"
                  f" (before: {before[hook]})")
        old_id = int(before[hook][0][2])
        chk.check(gone(old_id), f"the orphaned {hook} program {old_id} is freed")
    chk.check(printed(second, handshake(lab)), f"the restarted instance measures:\n{second.stderr_text()}")
    rc = second.stop()
    chk.check(rc == 0, f"SIGTERM exits 0, got {rc}:\n{second.stderr_text()}")
    for hook in ("ingress", "egress"):
        chk.check(flowlat_filters(lab, hook) == [], f"no flowlat {hook} filter after SIGTERM: {filters(lab, hook)}")


def run_second_daemon(lab: N.Lab, cfg: str, env: dict) -> tuple[Optional[int], str]:
    """A second daemon on the same interface, under the unit's capabilities: it must refuse."""
    return run_refused(lab, [*UNIT_CAPS, N.flowlatd_path(), f"--config.file={cfg}",
                             f"--web.listen-address=127.0.0.1:{H.METRICS_PORT + 7}"], env)


def second_instance_beside_daemon(chk: N.Checker, lab: N.Lab) -> None:
    cfg = H.write_file(lab, "flowlatd.yaml", f'interfaces: ["{lab.client_if}"]\nhandshake_timeout: 1s\n')
    daemon = UnitDaemon(lab, cfg, CLSACT)
    daemon.wait_ready()
    check_premise(chk, daemon.pid, "daemon", daemon=True)
    before = {h: flowlat_filters(lab, h) for h in ("ingress", "egress")}
    for mode, env in (("clsact", CLSACT), ("tcx", {})):
        rc, err = run_second_daemon(lab, cfg, env)
        chk.check(rc == 2, f"a second daemon ({mode}) beside a live clsact daemon exits 2, got {rc}:\n{err}")
        errors = [l for l in err.splitlines() if l.startswith("flowlatd:")]
        chk.check(len(errors) == 1 and "another flowlatd daemon runs in this network namespace" in errors[0],
                  f"with one line saying another flowlatd daemon runs here:\n{err}")
    base = completed_total(daemon.scrape())
    made = 0
    # `sudo flowlatd --print` beside the service, and the same under the unit's capabilities: it
    # runs in its own slot (its lock, clsact handle 0xf10b), prints, and leaves the daemon alone.
    for (mode, env), (who, caps) in itertools.product((("clsact", CLSACT), ("tcx", {})),
                                                      (("root", ()), ("unit caps", tuple(UNIT_CAPS)))):
        what = f"--print ({mode}, {who}) beside a live clsact daemon"
        p = start_print(lab, env, caps)
        if mode == "clsact":
            for hook in ("ingress", "egress"):
                mine = [f for f in flowlat_filters(lab, hook) if f[0] == "0xf10b"]
                chk.check(len(mine) == 1, f"{what}: one flowlat {hook} filter at 0xf10b: {filters(lab, hook)}")
        else:
            chk.check(all(len(v) == 1 for v in tcx_flowlat(lab).values()),
                      f"{what}: one flowlat TCX program per hook: {tcx_flowlat(lab)}")
        c = handshake(lab)
        made += 1
        chk.check(printed(p, c), f"{what}: the handshake is printed:\n{p.stderr_text()}")
        rc = p.stop()
        chk.check(rc == 0, f"{what}: SIGTERM exits 0, got {rc}:\n{p.stderr_text()}")
        for hook in ("ingress", "egress"):
            chk.check(flowlat_filters(lab, hook) == before[hook] and len(before[hook]) == 1,
                      f"{what}: afterwards only the daemon's {hook} filter, unchanged: {flowlat_filters(lab, hook)}"
                      f" (before: {before[hook]})")
        chk.check(tcx_flowlat(lab) == {"ingress": [], "egress": []}, f"{what}: no TCX program left: {tcx_flowlat(lab)}")
    m = daemon.scrape()
    chk.check(m.value("flowlat_probe_attached", default=None, interface=lab.client_if) == 1,
              f"probe_attached stays 1: {m.find('flowlat_probe_attached')}")
    for _ in range(3):
        handshake(lab)
    made += 3
    m = daemon.wait_metrics(lambda m: completed_total(m) >= base + made, 5, "after the other instances")
    chk.check(completed_total(m) == base + made,
              f"the daemon counted every handshake, also those --print saw: {completed_total(m)} completed,"
              f" want {base + made}")
    rc, _ = daemon.terminate_timed()
    chk.check(rc == 0, f"daemon SIGTERM exits 0, got {rc}")
    for hook in ("ingress", "egress"):
        chk.check(flowlat_filters(lab, hook) == [], f"no flowlat {hook} filter after the daemon stopped")


def second_instance_beside_tcx(chk: N.Checker, lab: N.Lab) -> None:
    first = start_print(lab, {})
    before = tcx_flowlat(lab)
    chk.check(all(len(v) == 1 for v in before.values()), f"one flowlat TCX program per hook: {before}")
    for (mode, env), (who, caps) in itertools.product((("tcx", {}), ("clsact", CLSACT)),
                                                      (("root", ()), ("unit caps", tuple(UNIT_CAPS)))):
        rc, err = run_second(lab, env, caps)
        chk.check(rc == 2, f"a second instance ({mode}, {who}) beside a live TCX one exits 2, got {rc}:\n{err}")
        chk.check("another flowlatd" in err and lab.client_if in err, f"and says so, naming {lab.client_if}:\n{err}")
    chk.check(tcx_flowlat(lab) == before, f"still exactly the first one's TCX programs: {tcx_flowlat(lab)}")
    for hook in ("ingress", "egress"):
        chk.check(flowlat_filters(lab, hook) == [], f"no flowlat clsact {hook} filter: {filters(lab, hook)}")
    chk.check(printed(first, handshake(lab)), f"the first instance still measures:\n{first.stderr_text()}")

    # A TCX link goes first in the hook's chain (BPF_F_BEFORE): a daemon started now runs
    # ahead of the --print already attached, so a program that ends the chain cannot blind it.
    cfg = H.write_file(lab, "tcx-first.yaml", f'interfaces: ["{lab.client_if}"]\n')
    daemon = UnitDaemon(lab, cfg, {})
    daemon.wait_ready()
    chain = tcx_flowlat(lab)
    for hook in ("ingress", "egress"):
        chk.check(len(chain[hook]) == 2 and chain[hook][0] not in before[hook] and chain[hook][1:] == before[hook],
                  f"tcx: the daemon's {hook} program runs first, ahead of --print's {before[hook]}: {chain[hook]}")
    rc, _ = daemon.terminate_timed()
    chk.check(rc == 0, f"tcx daemon: SIGTERM exits 0, got {rc}")
    rc = first.stop()
    chk.check(rc == 0, f"SIGTERM exits 0, got {rc}")
    chk.check(tcx_flowlat(lab) == {"ingress": [], "egress": []}, f"no flowlat TCX program left: {tcx_flowlat(lab)}")


def foreign_program_in_our_slot(chk: N.Checker, lab: N.Lab, foreign: str) -> None:
    take_slot = ["tc", "filter", "replace", "dev", lab.client_if, "ingress", "prio", "1", "handle", PRINT_HANDLE,
                 "bpf", "obj", foreign, "sec", "tc", "da"]
    p = start_print(lab, CLSACT)
    N.run(lab.exec_cmd(lab.client_ns, take_slot))
    rc = p.stop()
    chk.check(rc == 0, f"SIGTERM exits 0, got {rc}")
    slot = [f for f in filters(lab, "ingress") if f[0] == PRINT_HANDLE]
    chk.check(len(slot) == 1 and not slot[0][1].startswith("flowlat_"),
              f"a foreign program that took our ingress slot stays after SIGTERM: {filters(lab, 'ingress')}")
    chk.check(flowlat_filters(lab, "egress") == [], f"our egress filter is removed: {filters(lab, 'egress')}")

    rc, err = run_second(lab, CLSACT)
    chk.check(rc == 2 and "held by another program" in err,
              f"a foreign program in our slot at start: exit 2 and 'held by another program', got {rc}:\n{err}")
    chk.check([f for f in filters(lab, "ingress") if f[0] == PRINT_HANDLE] == slot,
              f"and it is untouched: {filters(lab, 'ingress')}")
    chk.check(flowlat_filters(lab, "egress") == [], f"nothing of ours is left behind: {filters(lab, 'egress')}")
    N.run(lab.exec_cmd(lab.client_ns, ["tc", "filter", "del", "dev", lab.client_if, "ingress", "prio", "1",
                                       "handle", PRINT_HANDLE, "bpf"]))


def body() -> None:
    os.environ.pop("FLOWLATD_ATTACH_MODE", None)
    chk = N.Checker("test_attach_capabilities")
    lab = N.Lab("caps")
    H.start_responder(lab, {PORT: R.PortPlan(delay=0.002)})

    # Someone else's clsact qdisc and filters (a pass-through program) on both hooks.
    foreign = os.path.join(lab.tmpdir, "foreign.bpf.o")
    subprocess.run(["clang", "-O2", "-target", "bpf", "-c", "-x", "c", "-", "-o", foreign], check=True, text=True,
                   input='__attribute__((section("tc"), used)) int foreign_pass(void *skb) { return -1; }\n'
                         'char LICENSE[] __attribute__((section("license"), used)) = "GPL";\n')
    N.run(lab.exec_cmd(lab.client_ns, ["tc", "qdisc", "add", "dev", lab.client_if, "clsact"]))
    for hook in ("ingress", "egress"):
        N.run(lab.exec_cmd(lab.client_ns, ["tc", "filter", "add", "dev", lab.client_if, hook, "prio", "2", "bpf",
                                           "obj", foreign, "sec", "tc", "da"]))
    foreign_before = {h: [f for f in filters(lab, h) if not f[1].startswith("flowlat_")]
                      for h in ("ingress", "egress")}

    for step in (stale_filter_is_replaced, second_instance_beside_daemon, second_instance_beside_tcx):
        N.log(f"--- {step.__name__}")
        step(chk, lab)
    N.log("--- foreign_program_in_our_slot")
    foreign_program_in_our_slot(chk, lab, foreign)

    for hook in ("ingress", "egress"):
        now = [f for f in filters(lab, hook) if not f[1].startswith("flowlat_")]
        chk.check(now == foreign_before[hook] and len(now) == 1,
                  f"the foreign {hook} filter is untouched: {now} (before: {foreign_before[hook]})")
    qdisc = N.run(lab.exec_cmd(lab.client_ns, ["tc", "qdisc", "show", "dev", lab.client_if])).stdout
    chk.check("clsact" in qdisc, f"the clsact qdisc is untouched: {qdisc}")
    chk.finish()


if __name__ == "__main__":
    N.main_guard(body)
