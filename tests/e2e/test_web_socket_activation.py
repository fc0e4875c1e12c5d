#!/usr/bin/env python3
"""--web.systemd-socket: flowlatd serves on the listening sockets systemd passes in (issue 9).

systemd-socket-activate (systemd 252) stands in for systemd's socket unit: run inside the
client namespace, it binds the sockets, sets LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES and execs
flowlatd (same pid). Checked:
  * two sockets, 127.0.0.1:PORT and [::1]:PORT: /metrics and /healthz answer 200 through
    each (curl -4 and -6), and flowlatd logs each fd with its LISTEN_FDNAMES name;
  * one dual-stack socket ([::]:PORT) with --web.config.file (TLS and basic auth): https
    with the password is 200 by 127.0.0.1 and [::1], without it 401; after SIGHUP (a
    reload restarts the server with the web config) the same socket still serves;
  * --web.systemd-socket with --web.listen-address: exit 2 and a message naming both;
  * --web.systemd-socket without a passed socket: exit 2 and a message saying so.
"""
import os
import signal
import socket
import subprocess
import time

import daemon_harness as H
import netlab as N
import test_web_tls_auth as T

PORT_PAIR, PORT_DUAL = 10437, 10438
CONFIG = """# test_web_socket_activation
interfaces: [flc0]
log: {level: info}
"""


def socket_activate() -> str:
    for path in ("/usr/bin/systemd-socket-activate", "/lib/systemd/systemd-socket-activate"):
        if os.access(path, os.X_OK):
            return path
    N.fail_hard("systemd-socket-activate not found (package systemd)")
    return ""


class Activated(H.Daemon):
    """flowlatd exec'd by systemd-socket-activate in the client namespace."""

    def __init__(self, lab: N.Lab, listens: list[str], names: list[str], args: tuple):
        self.lab, self.ns, self.port = lab, lab.client_ns, 0
        cmd = [socket_activate()]
        for address in listens:
            cmd.append(f"--listen={address}")
        cmd.append("--fdname=" + ":".join(names))
        cmd += [N.flowlatd_path(), *args]
        N.Proc.__init__(self, lab.exec_cmd(lab.client_ns, cmd), "flowlatd")
        # systemd-socket-activate execs its command at the first connection, as systemd
        # starts a service at the first connection to its socket unit: make one. flowlatd
        # accepts it later from the socket's queue.
        if not self.wait_for(lambda: sum("Listening on" in l for _, l in self.stderr) >= len(listens)
                             or self.proc.poll() is not None, 10):
            raise AssertionError(f"systemd-socket-activate did not listen:\n{self.stderr_text()}")
        first = listens[0]
        host, port = (first.rsplit(":", 1) if ":" in first else ("127.0.0.1", first))
        host = host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with N.socket_in(lab.client_ns, family, socket.SOCK_STREAM) as trigger:
            trigger.settimeout(5)
            trigger.connect((host, int(port)))


def curl(lab: N.Lab, url: str, *args: str) -> subprocess.CompletedProcess:
    cmd = lab.exec_cmd(lab.client_ns, ["curl", "-sS", "--max-time", "5", "-w", "\n%{http_code}", *args, url])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20)


def status(r: subprocess.CompletedProcess) -> str:
    return r.stdout.rsplit("\n", 1)[-1]


def body() -> None:
    chk = N.Checker("test_web_socket_activation")
    lab = N.Lab("sockact")
    cfg = H.write_file(lab, "flowlatd.yaml", CONFIG)

    # Two sockets, one per family, each with its own name.
    fl = Activated(lab, [f"127.0.0.1:{PORT_PAIR}", f"[::1]:{PORT_PAIR}"], ["web4", "web6"],
                   (f"--config.file={cfg}", "--web.systemd-socket"))
    fl.wait_ready()
    for family, host in (("-4", "127.0.0.1"), ("-6", "[::1]")):
        r = curl(lab, f"http://{host}:{PORT_PAIR}/metrics", family)
        chk.check(status(r) == "200" and "flowlat_build_info" in r.stdout,
                  f"/metrics through the inherited {host} socket: {r.stdout[-300:]!r} {r.stderr!r}")
        r = curl(lab, f"http://{host}:{PORT_PAIR}/healthz", family)
        chk.check(status(r) == "200", f"/healthz through the inherited {host} socket: {r.stdout!r} {r.stderr!r}")
    log = fl.stderr_text()
    chk.check("(web4) listens on 127.0.0.1:" + str(PORT_PAIR) in log and "(web6) listens on [::1]:" + str(PORT_PAIR) in log,
              f"the log does not name both inherited sockets:\n{log[-2000:]}")
    chk.check("systemd socket fd" in log, f"the server does not say it serves systemd sockets:\n{log[-2000:]}")
    fl.check_clean_exit(chk)

    # One dual-stack socket, TLS and basic auth from the web config, and a reload.
    d = lab.tmpdir
    T.make_certs(d)
    web = H.write_file(lab, "web.yml", f"tls_server_config:\n  cert_file: {d}/server.crt\n  key_file: {d}/server.key\n"
                                       f"basic_auth_users:\n  {T.USER}: {T.bcrypt(T.PASSWORD)}\n")
    fl = Activated(lab, [str(PORT_DUAL)], ["web"], (f"--config.file={cfg}", "--web.systemd-socket",
                                                    f"--web.config.file={web}"))
    fl.wait_ready()

    def check_tls(when: str) -> None:
        for host in ("127.0.0.1", "[::1]"):
            url = f"https://{host}:{PORT_DUAL}/metrics"
            r = curl(lab, url, "--cacert", f"{d}/ca.crt", "-u", f"{T.USER}:{T.PASSWORD}")
            chk.check(status(r) == "200" and "flowlat_build_info" in r.stdout,
                      f"{when}: TLS + password through the inherited dual-stack socket by {host}: "
                      f"{r.stdout[-300:]!r} {r.stderr!r}")
            r = curl(lab, url, "--cacert", f"{d}/ca.crt")
            chk.check(status(r) == "401", f"{when}: no password by {host}: {status(r)!r} {r.stderr!r}")
        r = curl(lab, f"http://127.0.0.1:{PORT_DUAL}/metrics")
        chk.check(status(r) != "200", f"{when}: plain HTTP to the inherited TLS socket was served")

    check_tls("at start")
    since = fl.log_count()
    fl.kill(signal.SIGHUP)
    chk.check(fl.wait_log("configuration reloaded", since, 10) is not None, "SIGHUP: no reload logged")
    time.sleep(0.2)
    check_tls("after SIGHUP")
    fl.check_clean_exit(chk)

    # Both flags: a usage error, before anything is attached.
    r = subprocess.run(lab.exec_cmd(lab.client_ns, [N.flowlatd_path(), f"--config.file={cfg}", "--web.systemd-socket",
                                                    "--web.listen-address=127.0.0.1:10439"]),
                       capture_output=True, text=True, timeout=20)
    chk.check(r.returncode == 2, f"--web.systemd-socket with --web.listen-address: exit {r.returncode}, want 2")
    chk.check("--web.systemd-socket and --web.listen-address cannot be combined" in r.stderr,
              f"no clear message for both flags: {r.stderr!r}")

    # No socket passed (started by hand, not by systemd).
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    r = subprocess.run(lab.exec_cmd(lab.client_ns, [N.flowlatd_path(), f"--config.file={cfg}", "--web.systemd-socket"]),
                       capture_output=True, text=True, timeout=20, env=env)
    chk.check(r.returncode == 2, f"--web.systemd-socket without a socket: exit {r.returncode}, want 2")
    chk.check("systemd passed no socket" in r.stderr, f"no clear message without a socket: {r.stderr!r}")
    chk.finish()


if __name__ == "__main__":
    N.main_guard(body)
