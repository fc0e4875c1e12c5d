#!/usr/bin/env python3
"""flowlatd under a real systemd 252 as PID 1 (root only).

Boots systemd inside its own PID, mount, network, UTS and IPC namespaces, on an overlay
of / with fresh tmpfs on /tmp, /run and /var/tmp mounted BEFORE systemd starts (without
them systemd's tmpfiles would clean the machine's /tmp). A oneshot driver unit installs
flowlatd's real unit file (systemd/flowlatd.service), then checks what systemd sees:

- Type=notify: `systemctl start` returns only after READY=1, the unit is active and its
  StatusText is flowlatd's STATUS= line;
- /metrics answers, and the probe is attached to the namespace's veth;
- `systemctl reload` (SIGHUP): still active, reload metric 1, timestamp advanced;
- WatchdogSec=2s: after 6 s the service has not been killed by the watchdog;
- `systemctl stop`: inactive, Result=success, and no flowlatd program left on the veth.

Only 198.18.0.0/15 addresses are used, inside the private network namespace.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

FLOWLATD = os.environ.get("FLOWLATD")
SOURCE = os.environ.get("FLOWLAT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


def cgroup2_mount() -> str:
    """Where the machine mounts the unified (cgroup2) hierarchy: /sys/fs/cgroup, or
    /sys/fs/cgroup/unified on a hybrid layout."""
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                return fields[1]
    raise RuntimeError("no cgroup2 hierarchy is mounted; the test needs one to give systemd its own cgroups")


CGROUP2 = cgroup2_mount()

DRIVER = r"""#!/bin/bash
# Runs inside the booted systemd. Writes one "name ok|FAIL detail" line per check.
out=/var/lib/flowlat-test/results
mkdir -p /var/lib/flowlat-test
: > "$out"
check() { if eval "$2"; then echo "$1 ok" >> "$out"; else echo "$1 FAIL $3" >> "$out"; fi; }
metric() { curl -s --max-time 2 http://127.0.0.1:10435/metrics | awk -v m="$1" '$1==m {print $2}'; }

ip link set lo up
ip link add fsd0 type veth peer name fsd1
ip addr add 198.18.7.1/24 dev fsd0
ip link set fsd0 up; ip link set fsd1 up

systemctl daemon-reload
start_rc=0; timeout 30 systemctl start flowlatd.service || start_rc=$?
check start "[ $start_rc -eq 0 ]" "rc=$start_rc $(journalctl -u flowlatd --no-pager | tail -5 | tr '\n' '|')"
check active "systemctl is-active --quiet flowlatd" "$(systemctl is-active flowlatd)"
status=$(systemctl show -p StatusText --value flowlatd)
check status_text "[[ \"$status\" == probing\ fsd0* ]]" "status='$status'"
check metrics_attached "[ \"$(metric 'flowlat_probe_attached{interface=\"fsd0\"}')\" = 1 ]" "$(curl -s 127.0.0.1:10435/metrics | grep attached)"
before=$(metric flowlat_config_last_reload_success_timestamp_seconds)
sleep 1.1
reload_rc=0; timeout 30 systemctl reload flowlatd.service || reload_rc=$?
sleep 0.5
after=$(metric flowlat_config_last_reload_success_timestamp_seconds)
check reload "[ $reload_rc -eq 0 ] && systemctl is-active --quiet flowlatd" "rc=$reload_rc"
check reload_metric "[ \"$(metric flowlat_config_last_reload_successful)\" = 1 ] && awk -v a=$after -v b=$before 'BEGIN{exit !(a>b)}'" "before=$before after=$after"
sleep 6
check watchdog "systemctl is-active --quiet flowlatd && [ \"$(systemctl show -p NRestarts --value flowlatd)\" = 0 ]" "$(systemctl show -p NRestarts,ActiveState,Result flowlatd | tr '\n' ' ')"
check healthz "[ \"$(curl -s -o /dev/null -w '%{http_code}' 127.0.0.1:10435/healthz)\" = 200 ]" "healthz"
timeout 30 systemctl stop flowlatd.service
check stopped "! systemctl is-active --quiet flowlatd" "$(systemctl is-active flowlatd)"
check stop_result "[ \"$(systemctl show -p Result --value flowlatd)\" = success ]" "$(systemctl show -p Result,ExecMainStatus flowlatd | tr '\n' ' ')"
check detached "! bpftool link show 2>/dev/null | grep -q flowlat_ && ! tc filter show dev fsd0 ingress | grep -q flowlat" "$(bpftool link show | grep flowlat)"
journalctl -u flowlatd --no-pager > /var/lib/flowlat-test/journal.txt 2>&1
echo done >> "$out"
"""

DRIVER_UNIT = """[Unit]
Description=flowlatd systemd test driver
After=basic.target

[Service]
Type=oneshot
ExecStart=/usr/local/bin/flowlat-test-driver
ExecStartPost=/bin/systemctl --no-block poweroff --force --force
StandardOutput=journal+console
"""

CONFIG = """interfaces: [fsd0]
web:
  listen_addresses: ["127.0.0.1:10435"]
"""

BOOT = r"""#!/bin/bash
# Runs as PID 1's parent inside fresh namespaces; prepares the overlay root and execs systemd.
set -e
root=$1
mount --make-rprivate /
mount -t overlay overlay -o lowerdir=/,upperdir=$root/upper,workdir=$root/work $root/merged
m=$root/merged
mount --rbind /sys $m/sys
# Its own cgroup tree: a cgroup2 mount made inside our cgroup namespace shows only the
# cgroup this test created, so systemd creates, moves and trims cgroups there and never in
# the machine's hierarchies (the rbind above brought those along).
mount -t cgroup2 cgroup2 $m/sys/fs/cgroup
mount --rbind /dev $m/dev
mount -t proc proc $m/proc
# Fresh tmpfs before systemd starts: its tmpfiles must never see the machine's /tmp.
mount -t tmpfs tmpfs $m/tmp
mount -t tmpfs tmpfs $m/run
mount -t tmpfs tmpfs $m/var/tmp
mkdir -p $m/run/systemd $m/oldroot
cd $m
pivot_root . oldroot
umount -l /oldroot
exec /lib/systemd/systemd --system --unit=flowlat-test-driver.service --log-target=console --show-status=no
"""


def enter_cgroup(path: str) -> None:
    """In the child before exec: join the test's cgroup, so that unshare --cgroup roots the
    new cgroup namespace there."""
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))


def remove_cgroup(path: str) -> None:
    """Remove the test's cgroup and whatever systemd created below it, deepest first. Its
    processes are gone once unshare returned (the PID namespace died with systemd)."""
    if not os.path.isdir(path):
        return
    # After a timeout systemd may still run: end every process of the test's cgroup (and only
    # those), then wait for the tree to empty.
    try:
        with open(os.path.join(path, "cgroup.kill"), "w") as f:
            f.write("1")
    except OSError:
        pass
    for _ in range(50):
        for dirpath, _dirs, _files in sorted(os.walk(path), key=lambda w: -w[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass
        if not os.path.isdir(path):
            return
        time.sleep(0.1)
    print(f"test_systemd_unit: warning: could not remove {path}", file=sys.stderr)


def run_booted(name: str, files: dict, timeout: float, inspect) -> int:
    """Boots systemd on a fresh overlay of / and returns inspect(upper, output, elapsed), called
    while the overlay's upper layer (everything the booted system wrote) still exists.

    files maps a path in the booted system to (text, source, mode): the text, or the file to
    copy, placed in the upper layer before the boot. The driver unit
    (flowlat-test-driver.service, running /usr/local/bin/flowlat-test-driver) is added here."""
    root = tempfile.mkdtemp(prefix=f"flowlat-{name}-")
    cgroup = os.path.join(CGROUP2, f"flowlat-{name}-{os.getpid()}")
    try:
        upper = os.path.join(root, "upper")
        for d in ("upper", "work", "merged"):
            os.makedirs(os.path.join(root, d))
        files = dict(files)
        files["/etc/systemd/system/flowlat-test-driver.service"] = (DRIVER_UNIT, None, 0o644)
        # Files placed in the upper layer appear in the booted system; nothing else is written.
        for path, (text, source, mode) in files.items():
            target = os.path.join(upper, path.lstrip("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if source:
                shutil.copyfile(source, target)
            else:
                with open(target, "w") as f:
                    f.write(text)
            os.chmod(target, mode)
        boot = os.path.join(root, "boot.sh")
        with open(boot, "w") as f:
            f.write(BOOT)

        os.makedirs(cgroup)
        started = time.monotonic()
        proc = subprocess.run(
            ["unshare", "--fork", "--kill-child", "--pid", "--mount", "--net", "--uts", "--ipc", "--cgroup",
             "bash", boot, root],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
            preexec_fn=lambda: enter_cgroup(cgroup))
        return inspect(upper, proc.stdout.decode(errors="replace"), time.monotonic() - started)
    except subprocess.TimeoutExpired as timeout_error:
        output = (timeout_error.output or b"").decode(errors="replace")
        print(f"{name}: the booted system did not power off within {timeout:.0f} s")
        return inspect(upper, output, timeout)
    finally:
        subprocess.run(["umount", "-l", os.path.join(root, "merged")], stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)
        remove_cgroup(cgroup)


def report(name: str, upper: str, output: str, elapsed: float) -> int:
    """Prints the driver's "check ok|FAIL" lines and the service's journal on failure."""
    results_path = os.path.join(upper, "var/lib/flowlat-test/results")
    if not os.path.exists(results_path):
        print(output[-4000:])
        print(f"{name}: FAIL: the driver wrote no results")
        return 1
    lines = open(results_path).read().split("\n")
    print(f"systemd boot and checks took {elapsed:.1f} s")
    for line in lines:
        if line:
            print("  " + line)
    journal = os.path.join(upper, "var/lib/flowlat-test/journal.txt")
    failed = [l for l in lines if " FAIL" in l]
    if failed or "done" not in lines:
        if os.path.exists(journal):
            print("flowlatd journal:\n" + open(journal).read()[-6000:])
        print(f"{name}: FAIL")
        return 1
    print(f"{name}: PASS")
    return 0


def main() -> int:
    if os.geteuid() != 0:
        print("test_systemd_unit: needs root", file=sys.stderr)
        return 1
    if not FLOWLATD or not os.path.exists(FLOWLATD):
        print("test_systemd_unit: set FLOWLATD to the built binary", file=sys.stderr)
        return 1
    for tool in ("unshare", "curl", "bpftool"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            print(f"test_systemd_unit: {tool} is missing", file=sys.stderr)
            return 1

    unit = open(os.path.join(SOURCE, "systemd", "flowlatd.service")).read()
    # A short watchdog so the test sees pings being required and given.
    unit = unit.replace("WatchdogSec=30s", "WatchdogSec=2s")
    files = {
        "/usr/sbin/flowlatd": (None, FLOWLATD, 0o755),
        "/etc/systemd/system/flowlatd.service": (unit, None, 0o644),
        "/etc/flowlatd/flowlatd.yaml": (CONFIG, None, 0o644),
        "/usr/local/bin/flowlat-test-driver": (DRIVER, None, 0o755),
    }
    return run_booted("systemd-unit", files, 180,
                      lambda upper, output, elapsed: report("test_systemd_unit", upper, output, elapsed))


if __name__ == "__main__":
    sys.exit(main())
