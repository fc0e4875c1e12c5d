#!/usr/bin/env python3
"""The Debian package under a real systemd as PID 1 (root only).

Builds flowlatd_<version>_<arch>.deb with packaging/build-deb.sh (or takes FLOWLAT_DEB), then
boots systemd on an overlay of / exactly as test_systemd_unit does (own PID, mount, network,
UTS, IPC and cgroup namespaces; fresh tmpfs on /tmp, /run, /var/tmp before systemd starts).
The host's /usr/sbin/policy-rc.d is removed inside the overlay only, so the package's
maintainer scripts behave as on an ordinary Debian host. The driver checks, in order:

- `apt-get install ./flowlatd_*.deb` works offline; the postinst enabled and started the
  service (Type=notify: active only after READY=1; StatusText is flowlatd's STATUS= line);
  the man page, the docs the unit's Documentation= names, and the conffile are installed;
- the hardened unit: not root, CapEff = CAP_BPF + CAP_NET_ADMIN (CAP_PERFMON dropped after
  the attach), CapBnd = the unit's three, no ambient or inheritable capability,
  NoNewPrivs, a seccomp filter, other processes invisible in /proc;
- with the shipped configuration (the default route's interfaces, :10435), handshakes
  through a veth to a server in another namespace are counted on /metrics; the kernel's
  ephemeral range (set to 8000-8999 in the namespace) is read despite the sandbox: port
  8080 becomes "other", port 9100 keeps its label;
- `systemctl reload`: metric 1 and timestamp advanced; a broken configuration keeps the
  service running with the previous one (reload metric 0); fixed, 1 again;
- `systemctl stop` leaves no flowlatd filter or TCX link; `kill -9` of the main process is
  followed by a restart with exactly one flowlatd program per hook, in TCX mode and in
  clsact mode (a drop-in sets FLOWLATD_ATTACH_MODE=clsact; the killed one's filters stay
  behind and are replaced);
- a listen port held by another process at start: exit 75, and systemd retries until the
  port is free (exit 1 and 2 would leave it dead);
- flowlatd.socket is shipped but not enabled or started; with the drop-in of
  docs/install.md (`--web.systemd-socket`) and the socket started, the first scrape
  starts flowlatd on systemd's socket, and a scrape across `systemctl restart` is answered;
- `journalctl -u flowlatd` shows the daemon's lines;
- `apt-get remove` stops it and leaves no filter, the conffile stays; `apt-get purge`
  removes the rest: the outer script then finds no path naming flowlat in the overlay's
  upper layer (everything the booted system wrote) but the test's own files.

Addresses: 198.18.7.0/24 only, inside the booted system's private network namespace.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import test_systemd_unit as T

SOURCE = os.path.abspath(T.SOURCE)
DEB_IN_ROOT = "/var/lib/flowlat-test/deb"

DRIVER = r"""#!/bin/bash
# Runs inside the booted systemd. Writes one "name ok|FAIL detail" line per check.
out=/var/lib/flowlat-test/results
: > "$out"
check() { if eval "$2"; then echo "$1 ok" >> "$out"; else echo "$1 FAIL $3" >> "$out"; fi; }
scrape() { curl -s --max-time 2 http://127.0.0.1:10435/metrics; }
metric() { scrape | awk -v m="$1" '$1==m {print $2}'; }
# flowlat_handshakes_total{...} for fsd0, outbound, completed, the given port label.
completed() { scrape | grep '^flowlat_handshakes_total{' | grep 'interface="fsd0"' | grep 'direction="outbound"' \
  | grep "port=\"$1\"" | grep 'outcome="completed"' | awk '{s+=$2} END {print s+0}'; }
# flowlatd programs on one hook of fsd0, TCX links and clsact filters alike.
on_hook() { /usr/local/bin/flowlat-test-hooks "$1"; }
no_probe() { [ "$(on_hook ingress)" = 0 ] && [ "$(on_hook egress)" = 0 ]; }
one_each() { [ "$(on_hook ingress)" = 1 ] && [ "$(on_hook egress)" = 1 ]; }
mainpid() { systemctl show -p MainPID --value flowlatd; }
wait_for() { for _ in $(seq 1 $1); do eval "$2" && return 0; sleep 0.5; done; return 1; }
journal() { journalctl -u flowlatd --no-pager -o cat 2>/dev/null; }

# Ordinary Debian: no policy-rc.d (the machine's forbids starting services; the overlay only).
rm -f /usr/sbin/policy-rc.d

# A client side with the default route, and a server in another namespace across the veth.
ip link set lo up
ip netns add peer
ip link add fsd0 type veth peer name fsd1
ip link set fsd1 netns peer
ip addr add 198.18.7.1/24 dev fsd0
ip link set fsd0 up
ip route add default via 198.18.7.2 dev fsd0
ip netns exec peer ip link set lo up
ip netns exec peer ip addr add 198.18.7.2/24 dev fsd1
ip netns exec peer ip link set fsd1 up
# Per namespace; flowlatd must read it from /proc/sys under ProtectProc= and friends.
sysctl -q -w net.ipv4.ip_local_port_range="8000 8999"
for port in 8080 9100; do
  ip netns exec peer python3 -m http.server $port --bind 198.18.7.2 --directory /var/lib/flowlat-test >/dev/null 2>&1 &
done

install_rc=0
apt-get install -y -q ./$(basename $(ls /var/lib/flowlat-test/deb/flowlatd_*.deb)) \
  > /var/lib/flowlat-test/apt-install.txt 2>&1 || install_rc=$?
cd /
check apt_install "[ $install_rc = 0 ]" "rc=$install_rc $(tail -5 /var/lib/flowlat-test/apt-install.txt | tr '\n' '|')"
check enabled "[ \"$(systemctl is-enabled flowlatd)\" = enabled ]" "$(systemctl is-enabled flowlatd)"
check active "systemctl is-active --quiet flowlatd" "$(systemctl is-active flowlatd) $(journal | tail -5 | tr '\n' '|')"
status=$(systemctl show -p StatusText --value flowlatd)
check ready_status "[[ \"$status\" == probing\ fsd0* ]]" "status='$status'"
check conffile "dpkg-query -W -f='\${Conffiles}' flowlatd | grep -q /etc/flowlatd/flowlatd.yaml && cmp -s /etc/flowlatd/flowlatd.yaml /var/lib/flowlat-test/flowlatd.yaml" "$(dpkg-query -W -f='\${Conffiles}' flowlatd)"
check man_page "man -w flowlatd | grep -q /usr/share/man/man8/flowlatd.8" "$(man -w flowlatd 2>&1)"
check documentation "for d in $(systemctl show -p Documentation --value flowlatd); do case \$d in file:*) [ -f \${d#file:} ] || exit 1;; man:*) ;; *) exit 1;; esac; done" "$(systemctl show -p Documentation --value flowlatd)"

pid=$(mainpid)
field() { awk -v k="$1:" '$1==k {print $2}' /proc/$pid/status; }
check not_root "[ \"$(field Uid)\" != 0 ] && [ \"$(ps -o user= -p $pid)\" != root ]" "Uid=$(field Uid)"
check cap_eff "[ \"$(field CapEff)\" = 0000008000001000 ]" "CapEff=$(field CapEff) want CAP_BPF+CAP_NET_ADMIN"
check cap_prm "[ \"$(field CapPrm)\" = 0000008000001000 ]" "CapPrm=$(field CapPrm)"
check cap_bnd "[ \"$(field CapBnd)\" = 000000c000001000 ]" "CapBnd=$(field CapBnd) want the unit's three"
check cap_amb_inh "[ \"$(field CapAmb)\" = 0000000000000000 ] && [ \"$(field CapInh)\" = 0000000000000000 ]" "CapAmb=$(field CapAmb) CapInh=$(field CapInh)"
check no_new_privs "[ \"$(field NoNewPrivs)\" = 1 ] && [ \"$(field Seccomp)\" = 2 ]" "NoNewPrivs=$(field NoNewPrivs) Seccomp=$(field Seccomp)"
check proc_hidden "! nsenter -t $pid -m -S $(field Uid) -G $(field Gid) -- test -e /proc/1/status && nsenter -t $pid -m -S $(field Uid) -G $(field Gid) -- test -r /proc/sys/net/ipv4/ip_local_port_range" "the service sees PID 1 in /proc"
check caps_logged "journal | grep -q 'capabilities kept: CAP_NET_ADMIN,CAP_BPF'" "$(journal | grep capabilities)"
check attached "[ \"$(metric 'flowlat_probe_attached{interface=\"fsd0\"}')\" = 1 ] && one_each" "ingress $(on_hook ingress) egress $(on_hook egress)"

curl -s -o /dev/null --max-time 3 http://198.18.7.2:9100/ ; curl -s -o /dev/null --max-time 3 http://198.18.7.2:8080/
check handshake_counted "wait_for 20 '[ \"\$(completed 9100)\" -ge 1 ]'" "$(scrape | grep '^flowlat_handshakes_total' | grep fsd0)"
check ephemeral_range_read "wait_for 10 '[ \"\$(completed other)\" -ge 1 ]' && [ \"\$(completed 8080)\" = 0 ]" "$(scrape | grep '^flowlat_handshakes_total' | grep completed)"

before=$(metric flowlat_config_last_reload_success_timestamp_seconds)
sleep 1.1
reload_rc=0; timeout 30 systemctl reload flowlatd || reload_rc=$?
after=$(metric flowlat_config_last_reload_success_timestamp_seconds)
check reload "[ $reload_rc = 0 ] && systemctl is-active --quiet flowlatd && [ \"$(metric flowlat_config_last_reload_successful)\" = 1 ] && awk -v a=$after -v b=$before 'BEGIN{exit !(a>b)}'" "rc=$reload_rc before=$before after=$after"
cp /etc/flowlatd/flowlatd.yaml /var/lib/flowlat-test/saved.yaml
printf 'max_series: -1\nno_such_key: 1\n' > /etc/flowlatd/flowlatd.yaml
bad_rc=0; timeout 30 systemctl reload flowlatd || bad_rc=$?
sleep 0.5
check bad_reload_keeps_running "systemctl is-active --quiet flowlatd && [ \"$(mainpid)\" = $pid ] && [ \"$(metric flowlat_config_last_reload_successful)\" = 0 ] && journal | grep -q 'reload failed'" "rc=$bad_rc $(systemctl is-active flowlatd) $(journal | tail -3 | tr '\n' '|')"
check still_measuring "curl -s -o /dev/null --max-time 3 http://198.18.7.2:9100/; wait_for 20 '[ \"\$(completed 9100)\" -ge 2 ]'" "$(completed 9100)"
cp /var/lib/flowlat-test/saved.yaml /etc/flowlatd/flowlatd.yaml
systemctl reload flowlatd
check fixed_reload "[ \"$(metric flowlat_config_last_reload_successful)\" = 1 ]" "$(metric flowlat_config_last_reload_successful)"

timeout 30 systemctl stop flowlatd
check stop "! systemctl is-active --quiet flowlatd && [ \"$(systemctl show -p Result --value flowlatd)\" = success ]" "$(systemctl show -p ActiveState,Result flowlatd | tr '\n' ' ')"
check stop_no_filter "no_probe && ! tc filter show dev fsd0 ingress | grep -q flowlat && ! tc filter show dev fsd0 egress | grep -q flowlat" "$(bpftool net show dev fsd0)"

# kill -9: TCX first (the default on this kernel), then clsact, whose filters outlive the process.
for mode in tcx clsact; do
  if [ $mode = clsact ]; then
    mkdir -p /run/systemd/system/flowlatd.service.d
    printf '[Service]\nEnvironment=FLOWLATD_ATTACH_MODE=clsact\n' > /run/systemd/system/flowlatd.service.d/clsact.conf
    systemctl daemon-reload
  fi
  systemctl start flowlatd
  restarts=$(systemctl show -p NRestarts --value flowlatd)
  old=$(mainpid)
  kill -9 $old
  wait_for 40 "[ \"\$(systemctl show -p NRestarts --value flowlatd)\" -gt $restarts ] && systemctl is-active --quiet flowlatd && [ \"\$(mainpid)\" != $old ]"
  check kill9_restart_$mode "systemctl is-active --quiet flowlatd && [ \"$(mainpid)\" != $old ]" "$(systemctl show -p ActiveState,NRestarts,MainPID flowlatd | tr '\n' ' ')"
  check kill9_one_filter_$mode "wait_for 10 one_each" "ingress $(on_hook ingress) egress $(on_hook egress)"
  if [ $mode = clsact ]; then
    check kill9_clsact_filters "[ \"$(tc filter show dev fsd0 ingress | grep -c 'flowlat_')\" = 1 ] && [ \"$(tc filter show dev fsd0 egress | grep -c 'flowlat_')\" = 1 ]" "$(tc filter show dev fsd0 ingress | tr '\n' '|')"
    systemctl stop flowlatd
    check clsact_stop_no_filter "no_probe" "$(bpftool net show dev fsd0 | tr '\n' '|')"
    rm -r /run/systemd/system/flowlatd.service.d; systemctl daemon-reload
  fi
done

# A port held at start: exit 75 (EX_TEMPFAIL) and retried, not left dead (RestartPreventExitStatus=1 2).
systemctl stop flowlatd
python3 -c 'import socket,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 10435)); s.listen()
time.sleep(5)' &
holder=$!
sleep 0.5
systemctl reset-failed flowlatd 2>/dev/null
restarts=$(systemctl show -p NRestarts --value flowlatd)
systemctl start flowlatd; start_rc=$?
# Read at once: the retry comes RestartSec=3s later. (systemd logs to the console here.)
exit_status=$(systemctl show -p ExecMainStatus --value flowlatd)
wait $holder
check port_busy_exit75 "[ $start_rc != 0 ] && [ \"$exit_status\" = 75 ] && journal | grep -q 'cannot listen on :10435'" "rc=$start_rc ExecMainStatus=$exit_status"
check port_busy_retried "wait_for 40 'systemctl is-active --quiet flowlatd' && [ \"\$(systemctl show -p NRestarts --value flowlatd)\" -gt $restarts ]" "$(systemctl show -p ActiveState,Result,NRestarts flowlatd | tr '\n' ' ')"

# The optional socket unit: shipped, but neither enabled nor started by the package.
check socket_unit_shipped_disabled "[ -f /lib/systemd/system/flowlatd.socket ] && [ \"$(systemctl is-enabled flowlatd.socket)\" = disabled ] && ! systemctl is-active --quiet flowlatd.socket" "$(systemctl is-enabled flowlatd.socket) $(systemctl is-active flowlatd.socket)"
# Socket activation as docs/install.md sets it up: the drop-in adds --web.systemd-socket,
# systemd holds :10435 and starts flowlatd at the first connection.
systemctl stop flowlatd
mkdir -p /run/systemd/system/flowlatd.service.d
printf '[Service]\nExecStart=\nExecStart=/usr/sbin/flowlatd --web.systemd-socket\n' > /run/systemd/system/flowlatd.service.d/socket.conf
systemctl daemon-reload
systemctl start flowlatd.socket
check socket_listening "systemctl is-active --quiet flowlatd.socket && ! systemctl is-active --quiet flowlatd" "$(systemctl is-active flowlatd.socket) $(systemctl is-active flowlatd)"
check socket_activated "wait_for 40 'scrape | grep -q ^flowlat_build_info' && systemctl is-active --quiet flowlatd && journal | grep -q 'fd 3 (web) listens on \\[::\\]:10435'" "$(systemctl is-active flowlatd) $(journal | tail -5 | tr '\n' '|')"
# A restart keeps systemd's socket: a scrape sent while flowlatd is down waits and is answered.
systemctl restart flowlatd
check socket_restart "curl -s --max-time 20 http://127.0.0.1:10435/metrics | grep -q ^flowlat_build_info && wait_for 40 'systemctl is-active --quiet flowlatd'" "$(systemctl is-active flowlatd)"
systemctl stop flowlatd.socket flowlatd
rm -r /run/systemd/system/flowlatd.service.d; systemctl daemon-reload
systemctl start flowlatd
check socket_off_again "wait_for 40 'systemctl is-active --quiet flowlatd' && scrape | grep -q ^flowlat_build_info" "$(systemctl is-active flowlatd)"

check journal "journal | grep -q 'ready: probing fsd0' && journal | grep -q 'serving /metrics'" "$(journal | head -5 | tr '\n' '|')"
journalctl -u flowlatd --no-pager > /var/lib/flowlat-test/journal.txt 2>&1

apt-get remove -y -q flowlatd > /var/lib/flowlat-test/apt-remove.txt 2>&1
check remove_stopped "! systemctl is-active --quiet flowlatd && [ -z \"\$(pgrep -x flowlatd)\" ]" "$(systemctl is-active flowlatd) $(pgrep -a flowlatd)"
check remove_no_filter "no_probe" "$(bpftool net show dev fsd0 | tr '\n' '|')"
check remove_keeps_conffile "[ -f /etc/flowlatd/flowlatd.yaml ] && dpkg-query -W -f='\${db:Status-Status}' flowlatd | grep -qx config-files" "$(dpkg-query -W -f='\${db:Status-Status}' flowlatd)"
apt-get purge -y -q flowlatd > /var/lib/flowlat-test/apt-purge.txt 2>&1
check purge "! dpkg-query -W flowlatd >/dev/null 2>&1 && [ ! -e /etc/flowlatd ] && [ ! -e /lib/systemd/system/flowlatd.service ] && ! systemctl cat flowlatd >/dev/null 2>&1" "$(ls -d /etc/flowlatd /lib/systemd/system/flowlatd.service 2>&1 | tr '\n' ' ')"
ip netns pids peer | xargs -r kill
echo done >> "$out"
"""

HOOKS = r"""#!/usr/bin/env python3
# flowlatd programs on one hook of fsd0: TCX links, asked of the kernel with BPF_PROG_QUERY
# (Debian 12's bpftool 7.1 cannot list them), plus clsact filters from `tc filter show`.
import socket, subprocess, sys
sys.path.insert(0, "@E2E@")
import netlab as N
hook = sys.argv[1]
progs, _ = N._tcx_query(socket.if_nametoindex("fsd0"), N.BPF_TCX_INGRESS if hook == "ingress" else N.BPF_TCX_EGRESS)
tcx = [p for p in progs if (N.prog_name(p) or "").startswith("flowlat")]
tc = subprocess.run(["tc", "filter", "show", "dev", "fsd0", hook], capture_output=True, text=True).stdout
print(len(tcx) + sum(1 for line in tc.splitlines() if "flowlat_" in line))
"""

# The test's own files in the upper layer; any other path naming flowlat after the purge is
# something the package left behind.
TEST_LIB = "/usr/local/lib/flowlat-test"
OWN = ("var/lib/flowlat-test", TEST_LIB.lstrip("/"), "usr/local/bin/flowlat-test-driver", "usr/local/bin/flowlat-test-hooks",
       "etc/systemd/system/flowlat-test-driver.service")


def build_deb(workdir: str) -> str:
    given = os.environ.get("FLOWLAT_DEB")
    if given:
        return given
    proc = subprocess.run(["bash", os.path.join(SOURCE, "packaging", "build-deb.sh"), workdir],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=1500)
    if proc.returncode != 0:
        raise RuntimeError(f"build-deb.sh failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


def leftovers(upper: str) -> list[str]:
    found = []
    for dirpath, dirs, files in os.walk(upper):
        rel = os.path.relpath(dirpath, upper)
        if rel.startswith(OWN):
            dirs[:] = []
            continue
        for name in dirs + files:
            path = os.path.normpath(os.path.join(rel, name))
            if "flowlat" in name and not path.startswith(OWN):
                found.append(path)
    return found


def main() -> int:
    if os.geteuid() != 0:
        print("test_deb_package: needs root", file=sys.stderr)
        return 1
    for tool in ("unshare", "curl", "bpftool", "dpkg-buildpackage", "dh", "apt-get"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            print(f"test_deb_package: {tool} is missing (bash packaging/build-deps.sh --test)", file=sys.stderr)
            return 1
    workdir = tempfile.mkdtemp(prefix="flowlat-deb-")
    try:
        deb = build_deb(workdir)
        print(f"package: {deb}")
        files = {
            f"{DEB_IN_ROOT}/{os.path.basename(deb)}": (None, deb, 0o644),
            "/var/lib/flowlat-test/flowlatd.yaml": (None, os.path.join(SOURCE, "config", "flowlatd.yaml"), 0o644),
            # A copy inside the booted root: the source tree may live under /tmp, which the
            # boot covers with a fresh tmpfs.
            f"{TEST_LIB}/netlab.py": (None, os.path.join(os.path.dirname(os.path.abspath(__file__)), "netlab.py"), 0o644),
            "/usr/local/bin/flowlat-test-hooks": (HOOKS.replace("@E2E@", TEST_LIB), None, 0o755),
        }
        # apt-get install ./file needs a relative or absolute path; the driver runs in the deb's folder.
        files["/usr/local/bin/flowlat-test-driver"] = (DRIVER.replace(
            "install_rc=0\n", f"install_rc=0\ncd {DEB_IN_ROOT}\n", 1), None, 0o755)

        def inspect(upper: str, output: str, elapsed: float) -> int:
            rc = T.report("test_deb_package", upper, output, elapsed)
            left = leftovers(upper)
            if left:
                print("test_deb_package: FAIL: after the purge, the booted system still has: " + ", ".join(left))
                return 1
            print("  purge_leaves_nothing ok (no path naming flowlat in the overlay's upper layer)")
            return rc

        return T.run_booted("deb-package", files, 600, inspect)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
