#!/usr/bin/env python3
"""flowlatd --print: startup errors exit 2 with one stderr line naming the thing at fault.

Every run happens inside the test's client namespace, so nothing outside is touched:
  * --interface nosuchif0                       -> names nosuchif0
  * --interface flc0 --interface nosuchif0      -> names nosuchif0, flc0 left untouched
  * capabilities dropped from the bounding set (setpriv; root keeps its uid):
      all of CAP_BPF/CAP_NET_ADMIN/CAP_PERFMON  -> names each of them
      only one of them                          -> names that one
    (CAP_SYS_ADMIN is dropped as well, because it would stand in for CAP_BPF/CAP_PERFMON.)
  * --print=xml, --handshake-timeout=abc, --handshake-timeout=0s -> name the option
  * a real BPF load failure: flowlatd in a new user namespace (unshare -Ur) holds every
    capability there, so it gets past the capability check, but the kernel refuses bpf()
    outside the initial namespace (EPERM) -> exit 2, ONE unindented line that says loading
    the BPF program failed and why, then libbpf's tail, indented; none of libbpf's lines as
    log records of their own. (A verifier rejection cannot be provoked without changing the
    program; tests/unit/probe_log_test.cpp checks the verifier-log tail with synthetic logs.)
After each run no flowlat program may be attached to flc0.
"""
import time

import netlab as N

CAPS = ("CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON")


def setpriv(*drop: str) -> list[str]:
    caps = ",".join(f"-{c[4:].lower()}" for c in (*drop, "CAP_SYS_ADMIN"))
    return ["setpriv", "--bounding-set", caps, "--inh-caps", "-all", "--"]


def body() -> None:
    chk = N.Checker("test_print_errors")
    lab = N.Lab("err")
    flc0 = lab.client_if
    cases = [
        ("unknown interface", [], ["--interface", "nosuchif0", "--print=json"], ["nosuchif0"]),
        ("unknown second interface", [], ["--interface", flc0, "--interface", "nosuchif0", "--print=json"],
         ["nosuchif0"]),
        ("no capabilities", setpriv(*CAPS), ["--interface", flc0, "--print=json"], list(CAPS)),
        ("no CAP_BPF", setpriv("CAP_BPF"), ["--interface", flc0, "--print=json"], ["CAP_BPF"]),
        ("no CAP_NET_ADMIN", setpriv("CAP_NET_ADMIN"), ["--interface", flc0, "--print=json"], ["CAP_NET_ADMIN"]),
        ("no CAP_PERFMON", setpriv("CAP_PERFMON"), ["--interface", flc0, "--print=json"], ["CAP_PERFMON"]),
        ("bad --print value", [], ["--interface", flc0, "--print=xml"], ["print"]),
        ("bad --handshake-timeout", [], ["--interface", flc0, "--print=json", "--handshake-timeout=abc"],
         ["handshake-timeout"]),
        ("zero --handshake-timeout", [], ["--interface", flc0, "--print=json", "--handshake-timeout=0s"],
         ["handshake-timeout"]),
    ]
    single_cap_messages = {}
    for name, prefix, args, needles in cases:
        cmd = lab.exec_cmd(lab.client_ns, [*prefix, N.flowlatd_path(), *args])
        t0 = time.monotonic()
        try:
            proc = N.run(cmd, check=False, timeout=15)
        except Exception as exc:  # a hang is a failure, not a crash of the test
            chk.check(False, f"{name}: did not exit within 15 s ({exc})")
            continue
        took = time.monotonic() - t0
        lines = [l for l in proc.stderr.splitlines() if l.strip()]
        N.log(f"{name}: rc={proc.returncode} in {took:.2f}s, stderr={lines}")
        chk.check(proc.returncode == 2, f"{name}: exit code {proc.returncode}, want 2 (stderr: {lines})")
        chk.check(len(lines) == 1, f"{name}: want exactly one stderr line, got {len(lines)}: {lines}")
        missing = [n for n in needles if not any(n in l for l in lines)]
        chk.check(not missing, f"{name}: stderr does not name {missing}: {lines}")
        chk.check(proc.stdout.strip() == "", f"{name}: unexpected stdout {proc.stdout!r}")
        if name.startswith("no CAP_"):
            single_cap_messages[name] = "\n".join(lines)
        left = N.attachments(lab.client_ns, flc0).flowlat()
        chk.check(not left, f"{name}: flowlat left attached to {flc0}: {left}")
    # A message may list every needed capability as a hint, so "names CAP_X" alone proves
    # little; the three single-capability messages must at least differ from each other.
    chk.check(len(set(single_cap_messages.values())) == len(single_cap_messages),
              f"the missing-capability messages do not say which one is missing: {single_cap_messages}")
    check_load_failure(chk, lab)
    chk.finish()


def check_load_failure(chk: N.Checker, lab: N.Lab) -> None:
    flc0 = lab.client_if
    cmd = lab.exec_cmd(lab.client_ns, ["unshare", "--user", "--map-root-user", "--",
                                       N.flowlatd_path(), "--interface", flc0, "--print=json"])
    try:
        proc = N.run(cmd, check=False, timeout=15)
    except Exception as exc:
        chk.check(False, f"BPF load failure: did not exit within 15 s ({exc})")
        return
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    N.log(f"BPF load failure: rc={proc.returncode}, stderr={lines}")
    chk.check(proc.returncode == 2, f"BPF load failure: exit code {proc.returncode}, want 2 (stderr: {lines})")
    heads = [l for l in lines if not l[0].isspace()]
    if chk.check(len(heads) == 1, f"BPF load failure: want one unindented stderr line (then the indented "
                                  f"log tail), got {len(heads)}: {lines}"):
        head = heads[0]
        chk.check(lines[0] == head and head.startswith("flowlatd: loading the BPF program")
                  and "failed: Operation not permitted" in head,
                  f"BPF load failure: the first line must say loading the BPF program failed and why: {head!r}")
        chk.check(head.endswith(":") and len(lines) > 1,
                  f"BPF load failure: the line must announce libbpf's tail, and the tail follow: {lines}")
    chk.check(not any("libbpf:" in l for l in lines),
              f"BPF load failure: libbpf's lines were logged on their own as well: {lines}")
    chk.check(proc.stdout.strip() == "", f"BPF load failure: unexpected stdout {proc.stdout!r}")
    left = N.attachments(lab.client_ns, flc0).flowlat()
    chk.check(not left, f"BPF load failure: flowlat left attached to {flc0}: {left}")


if __name__ == "__main__":
    N.main_guard(body)
