#!/usr/bin/env python3
"""Attachments heal (root only): the daemon checks every 5 s that its hooks are still in place and
re-attaches what someone else removed, without resetting a counter (the probe stays loaded).

clsact mode (FLOWLATD_ATTACH_MODE=clsact), daemon on the lab's veth, one handshake counted:
1. `tc filter del ... ingress pref 1 handle 0xf10a bpf`: within ~10 s the log names the interface and
   the ingress hook, exactly one flowlat filter is back on each hook, probe_attached is 1, /healthz 200,
   and the next handshake makes the completed counter 2 (not 1).
2. `tc qdisc del dev X clsact` (every filter goes): the same, counter 3.
3. A foreign program replaces our ingress filter in our slot (handle 0xf10a, priority 1): it is never
   deleted; probe_attached goes to 0 and /healthz to 503 naming "held by another program". Once its
   owner removes it, the periodic retry attaches again: probe_attached 1, counter 4.
TCX mode, a new daemon: `bpftool link detach` of our ingress link heals the same way.
--print (clsact mode): `tc qdisc del dev X clsact` heals the same way, and the next handshake is printed.

Uses one private lab (198.18.0.0/15, fd00::/8) and a raw-socket responder.
"""
import os
import re
import subprocess
import time

import daemon_harness as H
import netlab as N
import responder as R

PORT = 5001
FILTER_RE = re.compile(r"handle (0x[0-9a-f]+) (\S+):\[(\w+)\]")


def filters(lab: N.Lab, hook: str) -> list[tuple[str, str, str]]:
    """(handle, name, prog id) of every bpf filter on the clsact hook, from TCA_BPF_NAME."""
    out = N.run(lab.exec_cmd(lab.client_ns, ["tc", "filter", "show", "dev", lab.client_if, hook]), check=False)
    return FILTER_RE.findall(out.stdout)


def flowlat_filters(lab: N.Lab, hook: str) -> list[tuple[str, str, str]]:
    return [f for f in filters(lab, hook) if f[1].startswith("flowlat_")]


def tc(lab: N.Lab, *args: str) -> None:
    N.run(lab.exec_cmd(lab.client_ns, ["tc", *args]))


def completed(m: H.Metrics) -> float:
    return sum(s.value for s in m.find("flowlat_handshakes_total", outcome="completed", interface=N.CLIENT_IF))


def attached(m: H.Metrics) -> float:
    return m.value("flowlat_probe_attached", default=-1, interface=N.CLIENT_IF)


def handshake_counted(chk: N.Checker, lab: N.Lab, fl: H.Daemon, want: int, what: str) -> None:
    c = lab.connect(4, PORT, timeout=3)
    if c.result != "connected":
        N.fail_hard(f"harness: connect to {N.PEER_V4}:{PORT} gave {c.result}")
    m = fl.wait_metrics(lambda m: completed(m) >= want, 5, what)
    chk.check(completed(m) == want, f"{what}: completed handshakes {completed(m)}, want {want} (no reset)")


def wait_until(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def healed_clsact(chk: N.Checker, lab: N.Lab, fl: H.Daemon, since: int, hooks: tuple, what: str) -> None:
    for hook in hooks:
        line = fl.wait_log(f"{lab.client_if}: the probe's {hook} filter was removed by someone else; re-attaching",
                           since, 12)
        chk.check(line is not None, f"{what}: the log names {lab.client_if} and the {hook} hook:\n{fl.stderr_text()}")
    ok = wait_until(lambda: all(len(flowlat_filters(lab, h)) == 1 for h in ("ingress", "egress")), 5)
    chk.check(ok, f"{what}: exactly one flowlat filter per hook again: "
                  f"{filters(lab, 'ingress')} / {filters(lab, 'egress')}")
    m = fl.wait_metrics(lambda m: attached(m) == 1, 5, what)
    chk.check(attached(m) == 1, f"{what}: probe_attached {attached(m)}, want 1")
    r = fl.get("/healthz")
    chk.check(r.status == 200, f"{what}: /healthz {r.status} {r.text}")


def body() -> None:
    chk = N.Checker("test_attach_healing")
    lab = N.Lab("heal")
    H.start_responder(lab, {PORT: R.PortPlan(delay=0.002)})
    config = H.write_file(lab, "flowlatd.yaml", f"interfaces: [{lab.client_if}]\n")
    foreign = os.path.join(lab.tmpdir, "foreign.bpf.o")
    subprocess.run(["clang", "-O2", "-target", "bpf", "-c", "-x", "c", "-", "-o", foreign], check=True, text=True,
                   input='__attribute__((section("tc"), used)) int foreign_pass(void *skb) { return -1; }\n'
                         'char LICENSE[] __attribute__((section("license"), used)) = "GPL";\n')

    N.log("--- clsact")
    os.environ["FLOWLATD_ATTACH_MODE"] = "clsact"
    fl = H.Daemon(lab, config)
    fl.wait_ready()
    handshake_counted(chk, lab, fl, 1, "first handshake")

    N.log("--- tc filter del (ingress)")
    since = fl.log_count()
    tc(lab, "filter", "del", "dev", lab.client_if, "ingress", "pref", "1", "handle", "0xf10a", "bpf")
    chk.check(flowlat_filters(lab, "ingress") == [], "premise: our ingress filter is gone")
    healed_clsact(chk, lab, fl, since, ("ingress",), "after tc filter del")
    handshake_counted(chk, lab, fl, 2, "after tc filter del")

    N.log("--- tc qdisc del clsact")
    since = fl.log_count()
    tc(lab, "qdisc", "del", "dev", lab.client_if, "clsact")
    healed_clsact(chk, lab, fl, since, ("ingress", "egress"), "after tc qdisc del clsact")
    handshake_counted(chk, lab, fl, 3, "after tc qdisc del clsact")

    N.log("--- a foreign program in our slot")
    since = fl.log_count()
    tc(lab, "filter", "replace", "dev", lab.client_if, "ingress", "prio", "1", "handle", "0xf10a",
       "bpf", "obj", foreign, "sec", "tc", "da")
    line = fl.wait_log("the probe's ingress filter was removed by someone else", since, 12)
    chk.check(line is not None, f"a foreign program in our slot is noticed:\n{fl.stderr_text()}")
    m = fl.wait_metrics(lambda m: attached(m) == 0, 5, "foreign program")
    chk.check(attached(m) == 0, f"with a foreign program in our slot probe_attached is {attached(m)}, want 0")
    r = fl.get("/healthz")
    chk.check(r.status == 503 and "held by another program" in r.text and lab.client_if in r.text,
              f"/healthz says 503 and names the conflict: {r.status} {r.text}")
    time.sleep(6)  # at least one more periodic retry, which must leave the foreign program alone
    slot = [f for f in filters(lab, "ingress") if f[0] == "0xf10a"]
    chk.check(len(slot) == 1 and not slot[0][1].startswith("flowlat_"),
              f"the foreign program in our slot is never deleted: {filters(lab, 'ingress')}")
    chk.check(flowlat_filters(lab, "egress") == [], f"our egress filter is detached meanwhile: {filters(lab, 'egress')}")
    errors = [l for _, l in fl.stderr[since:] if "held by another program" in l]
    chk.check(len(errors) == 1, f"the conflict is logged once, not at every retry: {errors}")
    since = fl.log_count()
    tc(lab, "filter", "del", "dev", lab.client_if, "ingress", "pref", "1", "handle", "0xf10a", "bpf")
    chk.check(fl.wait_log("probe attached again", since, 12) is not None,
              f"attached again once the foreign program is gone:\n{fl.stderr_text()}")
    healed_clsact(chk, lab, fl, since, (), "after the foreign program left")
    handshake_counted(chk, lab, fl, 4, "after the foreign program left")
    rc, _ = fl.terminate_timed()
    chk.check(rc == 0, f"SIGTERM exits 0, got {rc}")
    for hook in ("ingress", "egress"):
        chk.check(flowlat_filters(lab, hook) == [], f"no flowlat {hook} filter after SIGTERM: {filters(lab, hook)}")

    N.log("--- tcx: bpftool link detach")
    os.environ.pop("FLOWLATD_ATTACH_MODE", None)
    fl = H.Daemon(lab, config)
    fl.wait_ready()
    handshake_counted(chk, lab, fl, 1, "tcx: first handshake")
    links = [l for p, l, name in N.attachments(lab.client_ns, lab.client_if).tcx["ingress"]
             if name and name.startswith("flowlat")]
    chk.check(len(links) == 1, f"tcx: one flowlat ingress link: {links}")
    since = fl.log_count()
    N.run(["bpftool", "link", "detach", "id", str(links[0])])
    line = fl.wait_log(f"{lab.client_if}: the probe's ingress TCX link was detached by someone else; re-attaching",
                       since, 12)
    chk.check(line is not None, f"tcx: the log names the detached link:\n{fl.stderr_text()}")

    def one_link_per_hook() -> bool:
        tcx = N.attachments(lab.client_ns, lab.client_if).tcx
        return all(len([1 for _, _, n in tcx[h] if n and n.startswith("flowlat")]) == 1 for h in tcx)
    chk.check(wait_until(one_link_per_hook, 5),
              f"tcx: one flowlat link per hook again: {N.attachments(lab.client_ns, lab.client_if).flowlat()}")
    m = fl.wait_metrics(lambda m: attached(m) == 1, 5, "tcx")
    chk.check(attached(m) == 1, f"tcx: probe_attached {attached(m)}, want 1")
    handshake_counted(chk, lab, fl, 2, "tcx: after bpftool link detach")
    rc, _ = fl.terminate_timed()
    chk.check(rc == 0, f"tcx: SIGTERM exits 0, got {rc}")

    print_mode_heals(chk, lab)
    chk.finish()


def print_mode_heals(chk: N.Checker, lab: N.Lab) -> None:
    """--print heals too (clsact mode, where a removed filter is easy to see): the qdisc is
    deleted, the log says so, the filters come back, and the next handshake is printed."""
    N.log("--- --print: tc qdisc del clsact")
    fl = N.Flowlatd(lab, ["--interface", lab.client_if, "--print=json"], env={"FLOWLATD_ATTACH_MODE": "clsact"})
    fl.wait_ready()
    tc(lab, "qdisc", "del", "dev", lab.client_if, "clsact")
    healed = fl.wait_for(lambda: any("probe attached again" in l for _, l in fl.stderr), 12)
    chk.check(healed, f"--print: 'probe attached again' within 12 s of the qdisc's removal:\n{fl.stderr_text()}")
    chk.check(any(f"{lab.client_if}: the probe's egress filter was removed by someone else" in l for _, l in fl.stderr),
              f"--print: the log names the interface and the hook:\n{fl.stderr_text()}")
    chk.check(wait_until(lambda: all(len(flowlat_filters(lab, h)) == 1 for h in ("ingress", "egress")), 5),
              f"--print: one flowlat filter per hook again: {filters(lab, 'ingress')} / {filters(lab, 'egress')}")
    c = lab.connect(4, PORT, timeout=3)
    if c.result != "connected":
        N.fail_hard(f"harness: connect to {N.PEER_V4}:{PORT} gave {c.result}")
    chk.check(fl.wait_for(lambda: len(fl.stdout) >= 1, 5), "--print: the handshake after healing was not printed")
    events = fl.json_lines()
    chk.check(len(events) == 1 and events[0].get("outcome") == "completed" and events[0].get("peer_port") == PORT,
              f"--print: want one completed line to port {PORT}, got {events}")
    rc = fl.stop()
    chk.check(rc == 0, f"--print: SIGTERM exits 0, got {rc}")
    for hook in ("ingress", "egress"):
        chk.check(flowlat_filters(lab, hook) == [], f"--print: no flowlat {hook} filter after exit: {filters(lab, hook)}")


if __name__ == "__main__":
    N.main_guard(body)
