#!/usr/bin/env python3
"""--web.config.file: TLS, client certificates, basic auth and headers, checked with curl,
openssl s_client and a real Prometheus (issue 9).

Certificates are made at test time with openssl in the test's temp dir (a CA, a server
certificate for 127.0.0.1, ::1 and localhost, a client certificate from the CA and one
self-signed); the bcrypt hash is made with libcrypt. flowlatd listens on :PORT (dual stack)
in the client namespace with RequireAndVerifyClientCert, min_version TLS12, one user and an
X-Frame-Options header. Checked:
  * the right client certificate and password: 200 with the header, over 127.0.0.1 and [::1];
  * a wrong password and no credentials: 401 with WWW-Authenticate: Basic;
  * no client certificate, or an untrusted one: the TLS handshake is refused;
  * plain HTTP to the TLS port gets no HTTP answer;
  * TLS 1.1 is refused (openssl s_client at security level 0, so the refusal is the server's);
  * POST is 405; /-/healthy and /-/ready are 200; the status page (/) is 401 without the
    password and 200 with it;
  * Prometheus scrapes over TLS with basic auth, by 127.0.0.1 and by [::1]: both targets up;
  * SIGHUP with a broken web config keeps the old one (TLS still served) and sets
    flowlat_config_last_reload_successful to 0; a good one sets it back to 1;
  * --config.check rejects the broken web config with file:line.
"""
import ctypes
import os
import secrets
import signal
import subprocess
import time

import daemon_harness as H
import netlab as N

PORT = 10436
USER, PASSWORD = "prom", "s3cret-Pass"

CONFIG = """# test_web_tls_auth
interfaces: [flc0]
log: {level: info}
"""


def bcrypt(password: str, cost: int = 10) -> str:
    alphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    salt = "".join(secrets.choice(alphabet) for _ in range(21)) + "u"
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt.restype = ctypes.c_char_p
    return lib.crypt(password.encode(), f"$2b${cost:02d}${salt}".encode()).decode()


def make_certs(d: str) -> None:
    def ossl(*args: str) -> None:
        N.run(["openssl", *args], timeout=60)
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
         "-subj", "/CN=flowlat test CA", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt")
    with open(f"{d}/server.ext", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    with open(f"{d}/client.ext", "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={name}",
             "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr")
        ossl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.crt", "-CAkey", f"{d}/ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", f"{d}/{name}.ext", "-out", f"{d}/{name}.crt")
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
         "-subj", "/CN=stranger", "-keyout", f"{d}/stranger.key", "-out", f"{d}/stranger.crt")


def curl(lab: N.Lab, url: str, *args: str) -> subprocess.CompletedProcess:
    cmd = lab.exec_cmd(lab.client_ns, ["curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-D", "-",
                                       "-w", "%{http_code}", *args, url])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20)


def body() -> None:
    chk = N.Checker("test_web_tls_auth")
    lab = N.Lab("webtls")
    d = lab.tmpdir
    make_certs(d)
    good_web = (f"tls_server_config:\n  cert_file: server.crt\n  key_file: {d}/server.key\n"
                f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS12\n"
                f"basic_auth_users:\n  {USER}: {bcrypt(PASSWORD)}\n"
                f"http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    web = H.write_file(lab, "web.yml", good_web)
    cfg = H.write_file(lab, "flowlatd.yaml", CONFIG)
    fl = H.Daemon(lab, cfg, args=(f"--web.listen-address=:{PORT}", f"--web.config.file={web}"), listen=False)
    fl.wait_ready()

    tls = ["--cacert", f"{d}/ca.crt", "--cert", f"{d}/client.crt", "--key", f"{d}/client.key"]
    for host in ("127.0.0.1", "[::1]"):
        url = f"https://{host}:{PORT}/metrics"
        r = curl(lab, url, *tls, "-u", f"{USER}:{PASSWORD}")
        chk.check(r.stdout.endswith("200"), f"{host}: right certificate and password: {r.stdout!r} {r.stderr!r}")
        chk.check("X-Frame-Options: deny" in r.stdout, f"{host}: configured header missing: {r.stdout!r}")
    url = f"https://127.0.0.1:{PORT}/metrics"
    r = curl(lab, url, *tls, "-u", f"{USER}:wrong")
    chk.check(r.stdout.endswith("401"), f"wrong password: {r.stdout!r}")
    chk.check("WWW-Authenticate: Basic" in r.stdout, f"401 without WWW-Authenticate: Basic: {r.stdout!r}")
    r = curl(lab, url, *tls)
    chk.check(r.stdout.endswith("401"), f"no credentials: {r.stdout!r}")
    r = curl(lab, url, *tls, "-u", f"nobody:{PASSWORD}")
    chk.check(r.stdout.endswith("401"), f"unknown user: {r.stdout!r}")
    # The status page is behind the same TLS and basic auth as the metrics.
    r = curl(lab, f"https://127.0.0.1:{PORT}/", *tls)
    chk.check(r.stdout.endswith("401"), f"status page without credentials: {r.stdout!r}")
    r = curl(lab, f"https://127.0.0.1:{PORT}/", *tls, "-u", f"{USER}:{PASSWORD}")
    chk.check(r.stdout.endswith("200") and "X-Frame-Options: deny" in r.stdout,
              f"status page with the password: {r.stdout!r}")
    r = curl(lab, url, "--cacert", f"{d}/ca.crt", "-u", f"{USER}:{PASSWORD}")
    chk.check(r.returncode != 0 and not r.stdout.endswith("200"),
              f"no client certificate was not refused: rc={r.returncode} {r.stdout!r}")
    r = curl(lab, url, "--cacert", f"{d}/ca.crt", "--cert", f"{d}/stranger.crt", "--key", f"{d}/stranger.key",
             "-u", f"{USER}:{PASSWORD}")
    chk.check(r.returncode != 0 and not r.stdout.endswith("200"),
              f"an untrusted client certificate was not refused: rc={r.returncode} {r.stdout!r}")
    r = curl(lab, f"http://127.0.0.1:{PORT}/metrics", "-u", f"{USER}:{PASSWORD}")
    chk.check(r.returncode != 0 and "HTTP/" not in r.stdout, f"plain HTTP to the TLS port was answered: {r.stdout!r}")
    s = subprocess.run(lab.exec_cmd(lab.client_ns, [
        "openssl", "s_client", "-connect", f"127.0.0.1:{PORT}", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0",
        "-cert", f"{d}/client.crt", "-key", f"{d}/client.key", "-CAfile", f"{d}/ca.crt"]),
        input="", capture_output=True, text=True, timeout=20)
    out = s.stdout + s.stderr
    chk.check(s.returncode != 0 and "protocol version" in out,
              f"TLS 1.1 was not refused by the server: rc={s.returncode} {out[-600:]!r}")
    r = curl(lab, url, *tls, "-u", f"{USER}:{PASSWORD}", "-X", "POST")
    chk.check(r.stdout.endswith("405") and "Allow: GET, HEAD" in r.stdout, f"POST: {r.stdout!r}")
    for path in ("/-/healthy", "/-/ready"):
        r = curl(lab, f"https://127.0.0.1:{PORT}{path}", *tls, "-u", f"{USER}:{PASSWORD}")
        chk.check(r.stdout.endswith("200"), f"{path}: {r.stdout!r}")

    # A real Prometheus, over TLS with basic auth, by IPv4 and by IPv6.
    job = (f"    scheme: https\n    basic_auth: {{username: {USER}, password: {PASSWORD}}}\n"
           f"    tls_config: {{ca_file: {d}/ca.crt, cert_file: {d}/client.crt, key_file: {d}/client.key}}\n")
    prom = H.Prometheus(lab, [f"127.0.0.1:{PORT}", f"[::1]:{PORT}"], job_extra=job, port=19090)
    prom.wait_ready()
    deadline = time.monotonic() + 20
    targets = []
    while time.monotonic() < deadline:
        targets = prom.targets()
        if len(targets) == 2 and all(t.get("health") == "up" for t in targets):
            break
        time.sleep(0.5)
    for t in targets:
        chk.note(f"prometheus target {t.get('scrapeUrl')}: {t.get('health')} {t.get('lastError')!r}")
    chk.check(len(targets) == 2 and all(t.get("health") == "up" for t in targets),
              f"Prometheus targets not both up: {[(t.get('scrapeUrl'), t.get('health'), t.get('lastError')) for t in targets]}")
    up = prom.query("up")
    chk.check(len(up) == 2 and all(float(x["value"][1]) == 1 for x in up), f"up: {up}")
    prom.close()

    def reload_gauge() -> float:
        r = subprocess.run(lab.exec_cmd(lab.client_ns, ["curl", "-sS", "--max-time", "5", *tls, "-u",
                                                        f"{USER}:{PASSWORD}", url]),
                           capture_output=True, text=True, timeout=20)
        return H.parse_metrics(r.stdout).value("flowlat_config_last_reload_successful", default=-1)

    # SIGHUP with a broken file: the old one stays, the gauge says 0.
    with open(web, "w") as f:
        f.write(good_web + "unknown_key: 1\n")
    since = fl.log_count()
    fl.kill(signal.SIGHUP)
    chk.check(fl.wait_log("reload failed", since, 10) is not None, "no 'reload failed' after SIGHUP with a bad web config")
    line = fl.wait_log("unknown_key", since, 2)
    chk.check(line is not None and f"{web}:" in (line or ""), f"the error does not name the file and line: {line!r}")
    chk.check(reload_gauge() == 0, "flowlat_config_last_reload_successful is not 0 after a bad web config")
    cc = subprocess.run([N.flowlatd_path(), "--config.check", f"--config.file={cfg}", f"--web.config.file={web}"],
                        capture_output=True, text=True, timeout=20)
    chk.check(cc.returncode == 1 and f"{web}:" in cc.stderr and "unknown key" in cc.stderr,
              f"--config.check with a bad web config: rc={cc.returncode} {cc.stderr!r}")
    with open(web, "w") as f:
        f.write(good_web)
    since = fl.log_count()
    fl.kill(signal.SIGHUP)
    chk.check(fl.wait_log("configuration reloaded", since, 10) is not None, "no reload after the web config was fixed")
    time.sleep(0.5)
    chk.check(reload_gauge() == 1, "flowlat_config_last_reload_successful is not 1 after a good web config")
    cc = subprocess.run([N.flowlatd_path(), "--config.check", f"--config.file={cfg}", f"--web.config.file={web}"],
                        capture_output=True, text=True, timeout=20)
    chk.check(cc.returncode == 0, f"--config.check with the good web config: rc={cc.returncode} {cc.stderr!r}")

    rc, _ = fl.terminate_timed()
    chk.check(rc == 0, f"flowlatd exit code after SIGTERM: {rc}\n{fl.stderr_text()[-2000:]}")
    chk.finish()


if __name__ == "__main__":
    N.main_guard(body)
