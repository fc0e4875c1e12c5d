#!/usr/bin/env python3
"""Attachment hygiene (root only): flowlatd leaves exactly one filter per hook after any
start, removes only what it created, and fails start-up with exit 2 and one clear line.

- clsact (forced with FLOWLATD_ATTACH_MODE=clsact): one filter per hook while running;
  a second live instance (clsact or TCX) refuses to attach (exit 2) and the first one keeps
  the same filters; a SIGKILLed instance leaves its filters; the next start replaces them
  (exactly one per hook again); SIGTERM removes them; a foreign filter and the clsact qdisc stay.
- TCX: a second live instance (TCX or clsact) refuses to attach (exit 2) and leaves no clsact
  filter; after SIGTERM no flowlat link.
The same under the systemd unit's capabilities (no CAP_SYS_ADMIN), with traffic, is
test_attach_capabilities.py.
- Missing capabilities, an unknown interface and a bad flag each exit 2 with one line.

Uses one private network namespace with a veth pair and no traffic.
"""
import os
import re
import signal
import subprocess
import sys
import time

FLOWLATD = os.environ.get("FLOWLATD", "build/flowlatd")
NS = f"flattach-{os.getpid()}"
IF = "fla0"
failures = []


def sh(*args, check=True):
    return subprocess.run(["ip", "netns", "exec", NS, *args], capture_output=True, text=True, check=check)


def expect(name, condition, detail=""):
    print(f"  {'ok  ' if condition else 'FAIL'} {name}" + ("" if condition else f": {detail}"))
    if not condition:
        failures.append(name)


def start(env_extra=None, args=("--print=json",)):
    env = dict(os.environ, **(env_extra or {}))
    proc = subprocess.Popen(["ip", "netns", "exec", NS, FLOWLATD, "--interface", IF, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 10
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if "ready" in line:
            return proc, lines
    proc.kill()
    raise RuntimeError("flowlatd did not get ready: " + "".join(lines))


def flowlat_filters(direction):
    out = sh("tc", "filter", "show", "dev", IF, direction, check=False).stdout
    return len(re.findall(r"name flowlat_(ingress|egress)", out)), out


def flowlat_filter_ids(direction):
    """The prog ids of the flowlat filters on a hook, from the name tc was given (TCA_BPF_NAME)."""
    out = sh("tc", "filter", "show", "dev", IF, direction, check=False).stdout
    return re.findall(r"flowlat_\w+:\[(\d+)\]", out)


def second_instance(env_extra=None):
    """A second --print instance, which must refuse: (exit code or None if it attached and ran on, stderr)."""
    proc = subprocess.Popen(["ip", "netns", "exec", NS, FLOWLATD, "--interface", IF, "--print"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **(env_extra or {})))
    try:
        return proc.wait(timeout=10), proc.stderr.read()
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait(timeout=10)
        return None, proc.stderr.read()


def stop(proc, sig=signal.SIGTERM):
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        return None


def main():
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        sh("ip", "link", "add", IF, "type", "veth", "peer", "name", "fla1")
        sh("ip", "link", "set", IF, "up")
        sh("ip", "link", "set", "fla1", "up")

        print("clsact:")
        sh("tc", "qdisc", "add", "dev", IF, "clsact")
        # Someone else's filter on the same hook (this kernel has only the bpf classifier).
        foreign = f"/tmp/flattach-{os.getpid()}.bpf.o"
        subprocess.run(["clang", "-O2", "-target", "bpf", "-c", "-x", "c", "-", "-o", foreign], check=True,
                       input='__attribute__((section("tc"), used)) int foreign_pass(void *skb) { return -1; }\n'
                             'char LICENSE[] __attribute__((section("license"), used)) = "GPL";\n', text=True)
        sh("tc", "filter", "add", "dev", IF, "ingress", "prio", "1", "bpf", "obj", foreign, "sec", "tc", "da")
        os.unlink(foreign)
        proc, _ = start({"FLOWLATD_ATTACH_MODE": "clsact"})
        for d in ("ingress", "egress"):
            n, out = flowlat_filters(d)
            expect(f"one flowlat {d} filter while running", n == 1, out)
        ids = {d: flowlat_filter_ids(d) for d in ("ingress", "egress")}
        for mode, env in (("clsact", {"FLOWLATD_ATTACH_MODE": "clsact"}), ("tcx", {})):
            code, err = second_instance(env)
            expect(f"a second {mode} instance beside a live clsact one exits 2", code == 2, f"exit {code} {err}")
            expect("and says another flowlatd is attached", "another flowlatd" in err and IF in err, err)
            for d in ("ingress", "egress"):
                expect(f"the first instance keeps its {d} filter", flowlat_filter_ids(d) == ids[d],
                       f"{flowlat_filter_ids(d)} != {ids[d]}")
        stop(proc, signal.SIGKILL)
        n, out = flowlat_filters("ingress")
        expect("a SIGKILLed instance leaves its filter behind", n == 1, out)
        proc, lines = start({"FLOWLATD_ATTACH_MODE": "clsact"})
        expect("restart reports the stale filters it replaced", any("replaced 2 clsact filter" in l for l in lines),
               "".join(lines))
        for d in ("ingress", "egress"):
            n, out = flowlat_filters(d)
            expect(f"exactly one flowlat {d} filter after restart", n == 1, out)
        code = stop(proc)
        expect("SIGTERM exits 0", code == 0, f"exit {code}")
        for d in ("ingress", "egress"):
            n, out = flowlat_filters(d)
            expect(f"no flowlat {d} filter after SIGTERM", n == 0, out)
        out = sh("tc", "filter", "show", "dev", IF, "ingress").stdout
        expect("the foreign filter is untouched", "foreign_pass" in out, out)
        out = sh("tc", "qdisc", "show", "dev", IF).stdout
        expect("the clsact qdisc is untouched", "clsact" in out, out)

        print("tcx:")
        first, _ = start()
        for mode, env in (("tcx", {}), ("clsact", {"FLOWLATD_ATTACH_MODE": "clsact"})):
            code, err = second_instance(env)
            expect(f"a second {mode} instance beside a live TCX one exits 2", code == 2, f"exit {code} {err}")
            expect("and says another flowlatd is attached", "another flowlatd" in err and IF in err, err)
        for d in ("ingress", "egress"):
            n, out = flowlat_filters(d)
            expect(f"TCX leaves no clsact {d} filter", n == 0, out)
        code = stop(first)
        expect("SIGTERM exits 0", code == 0, f"exit {code}")
        third, _ = start()
        expect("a new instance attaches after the first stopped", third.poll() is None)
        stop(third)

        print("start-up errors:")
        r = subprocess.run(["ip", "netns", "exec", NS, "setpriv", "--inh-caps=-all",
                            "--bounding-set=-bpf,-sys_admin,-perfmon,-net_admin", FLOWLATD, "--interface", IF,
                            "--print"], capture_output=True, text=True, timeout=20)
        expect("missing capabilities exit 2", r.returncode == 2, f"exit {r.returncode} {r.stderr}")
        expect("and name them", "CAP_BPF" in r.stderr and "CAP_NET_ADMIN" in r.stderr, r.stderr)
        r = subprocess.run(["ip", "netns", "exec", NS, FLOWLATD, "--interface", "nosuchif0", "--print"],
                           capture_output=True, text=True, timeout=20)
        expect("an unknown interface exits 2 naming it", r.returncode == 2 and "nosuchif0" in r.stderr,
               f"exit {r.returncode} {r.stderr}")
        expect("with one line", len(r.stderr.strip().splitlines()) == 1, r.stderr)
        r = subprocess.run([FLOWLATD, "--no-such-flag"], capture_output=True, text=True, timeout=20)
        expect("a bad flag exits 2 naming it", r.returncode == 2 and "--no-such-flag" in r.stderr, r.stderr)
    finally:
        subprocess.run(["ip", "netns", "del", NS], stderr=subprocess.DEVNULL)
    if failures:
        print(f"test_attach_modes: FAIL ({len(failures)}): {', '.join(failures)}")
        return 1
    print("test_attach_modes: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
