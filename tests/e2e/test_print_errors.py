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
After each run no flowlat program may be attached to flc0. A BPF load failure is not
provoked here: the only knob that could (a memory cgroup) belongs to the machine.
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
    chk.finish()


if __name__ == "__main__":
    N.main_guard(body)
