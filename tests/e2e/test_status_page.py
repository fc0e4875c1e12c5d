#!/usr/bin/env python3
"""The status page at GET / (issue 12), in headless Chromium during a real run.

flowlatd probes flc0 and a second veth named `<script>` (a legal Linux interface name, so
a hostile label value reaches the page through the kernel), and is configured with a
missing interface `<i>&'x`. Driven: outbound handshakes to 198.18.0.2:5001 (SYN-ACK
after 10 ms), to 198.18.0.3:5002 (peer group db, after 60 ms), refused ones to port 5004
(RST), and handshakes through `<script>` to its responder (port 5003, after 30 ms); in two
rounds, so the per-series history (sampled every 5 s) has recent intervals.
--web.telemetry-path is /prom so that the page's links are checked to follow it.

Checked:
  * the HTML from the server: each driven series' row holds the completed and refused
    counts and the p50/p90/p99 that histogram_quantile() gives for the same buckets on
    /prom (computed here from the scrape); every inline SVG parses as XML; the hostile
    names appear only escaped; HEAD / is 200 without a body;
  * `chromium --headless --dump-dom` of /?sort=p99: the DOM holds the same numbers, the
    rows come slowest first, and it has no <script> or <i> element (escaping held);
  * `chromium --headless --screenshot` of the page: a PNG, kept at the path printed as
    `ARTIFACT:` (build/artifacts/status_page.png; CI keeps build/artifacts/).
"""
import html.parser
import math
import os
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import daemon_harness as H
import netlab as N
import responder as R

BUCKETS = [0.002, 0.005, 0.02, 0.04, 0.1, 0.5]
FAST, SLOW, CLOSED, MIDDLE = 5001, 5002, 5004, 5003
HOSTILE_IF, MISSING_IF = "<script>", "<i>&'x"
TELEMETRY = "/prom"

CONFIG = f"""# test_status_page
interfaces: ["flc0", "{HOSTILE_IF}", "{MISSING_IF}"]
buckets: {BUCKETS}
peer_groups:
  db: ["{H.GROUP_V4}/32", "{H.GROUP_V6}/128"]
handshake_timeout: 1s
"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    N.fail_hard("chromium not found (bash packaging/build-deps.sh --test installs it)")
    return ""


def artifacts_dir() -> Path:
    root = Path(os.environ.get("FLOWLAT_ARTIFACTS", Path(N.flowlatd_path()).resolve().parent / "artifacts"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def run_chromium(lab: N.Lab, args: list[str]) -> subprocess.CompletedProcess:
    profile = os.path.join(lab.tmpdir, "chromium-profile")
    cmd = lab.exec_cmd(lab.client_ns, [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                                       "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                                       *args])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": lab.tmpdir})


class Table(html.parser.HTMLParser):
    """The series table: header names and each row's cells (text, data-v), and every element name."""

    def __init__(self):
        super().__init__()
        self.headers: list[str] = []
        self.rows: list[list[tuple[str, str]]] = []
        self.elements: list[str] = []
        self._in_table = self._in_th = self._in_td = False
        self._svg_depth = 0
        self._text = ""
        self._value = ""

    def handle_starttag(self, tag, attrs):
        self.elements.append(tag)
        a = dict(attrs)
        if tag == "table" and a.get("id") == "series-table":
            self._in_table = True
        if not self._in_table:
            return
        if tag == "svg":
            self._svg_depth += 1
        if tag == "th":
            self._in_th, self._text = True, ""
        elif tag == "tr":
            self._row: list[tuple[str, str]] = []
        elif tag == "td":
            self._in_td, self._text, self._value = True, "", a.get("data-v", "")

    def handle_endtag(self, tag):
        if not self._in_table:
            return
        if tag == "svg":
            self._svg_depth -= 1
        elif tag == "th" and self._in_th:
            self.headers.append(self._text.replace("\u25b2", "").replace("\u25bc", "").strip())
            self._in_th = False
        elif tag == "td" and self._in_td:
            self._row.append((self._text.strip(), self._value))
            self._in_td = False
        elif tag == "tr" and getattr(self, "_row", None):
            self.rows.append(self._row)
            self._row = []
        elif tag == "table":
            self._in_table = False

    def handle_data(self, data):
        if (self._in_th or self._in_td) and self._svg_depth == 0:
            self._text += data


def parse_table(text: str) -> Table:
    t = Table()
    t.feed(text)
    return t


def quantile(q: float, hist: H.Histogram) -> float:
    """histogram_quantile() on cumulative (le, count) pairs, as Prometheus computes it."""
    total = hist.buckets[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in hist.buckets:
        if c >= rank:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return prev_le


def body() -> None:
    chk = N.Checker("test_status_page")
    lab = N.Lab("status")
    H.add_group_peers(lab)
    H.start_responder(lab, {FAST: R.PortPlan(delay=0.010), SLOW: R.PortPlan(delay=0.060),
                            CLOSED: R.PortPlan(action="rst", delay=0.001)})
    hostile = H.Veth(lab, HOSTILE_IF, "flr7", 7, {MIDDLE: R.PortPlan(delay=0.030)})
    cfg = H.write_file(lab, "flowlatd.yaml", CONFIG)
    fl = H.Daemon(lab, cfg, args=(f"--web.telemetry-path={TELEMETRY}",))
    fl.wait_ready()

    want = {  # (interface, peer, port) -> (completed, refused) after both rounds
        ("flc0", N.PEER_V4, str(FAST)): (12, 0),
        ("flc0", "db", str(SLOW)): (6, 0),
        ("flc0", N.PEER_V4, str(CLOSED)): (0, 6),
        (HOSTILE_IF, hostile.peer[4], str(MIDDLE)): (6, 0),
    }

    def drive(rounds: int) -> None:
        for _ in range(rounds):
            for peer, port in ((N.PEER_V4, FAST), (N.PEER_V4, FAST), (H.GROUP_V4, SLOW), (N.PEER_V4, CLOSED)):
                c = H.connect(lab, N.ADDRS[4][0], peer, port, timeout=3)
                if c.result != ("refused" if port == CLOSED else "connected"):
                    N.fail_hard(f"harness: connect to {peer}:{port} gave {c.result}")
            c = H.connect(lab, hostile.local[4], hostile.peer[4], MIDDLE, timeout=3)
            if c.result != "connected":
                N.fail_hard(f"harness: connect through {HOSTILE_IF} gave {c.result}")

    drive(3)
    time.sleep(6)  # a history sample between the rounds
    drive(3)
    time.sleep(6)  # and one after

    metrics = fl.get(TELEMETRY)
    chk.check(metrics.status == 200, f"{TELEMETRY}: {metrics.status}")
    m = H.parse_metrics(metrics.text)
    page = fl.get("/")
    chk.check(page.status == 200 and page.headers.get("content-type", "").startswith("text/html"),
              f"GET /: {page.status} {page.headers}")
    text = page.text

    # ---- the server's HTML
    for name in (HOSTILE_IF, MISSING_IF):
        chk.check(name not in text, f"{name!r} appears unescaped in the page")
    chk.check("&lt;script&gt;" in text and "&lt;i&gt;&amp;&#39;x" in text, "the hostile names are not shown escaped")
    chk.check(f'href="{TELEMETRY}"' in text, f"the page does not link to {TELEMETRY}")
    svgs = []
    at = text.find("<svg")
    while at != -1:
        end = text.find("</svg>", at) + len("</svg>")
        svgs.append(text[at:end])
        at = text.find("<svg", end)
    bad = []
    for svg in svgs:
        try:
            ET.fromstring(svg)
        except ET.ParseError as exc:
            bad.append(f"{exc}: {svg[:200]}")
    chk.check(len(svgs) >= 2 * len(want) and not bad, f"{len(svgs)} SVGs, not well-formed: {bad[:3]}")

    def check_rows(table: Table, where: str) -> None:
        col = {h: i for i, h in enumerate(table.headers)}
        for needed in ("interface", "peer", "port", "completed", "refused", "p50", "p90", "p99", "recent p50"):
            if needed not in col:
                chk.check(False, f"{where}: no column {needed!r} in {table.headers}")
                return
        rows = {(r[col["interface"]][0], r[col["peer"]][0], r[col["port"]][0]): r for r in table.rows}
        for key, (completed, refused) in want.items():
            row = rows.get(key)
            if row is None:
                chk.check(False, f"{where}: no row for {key}; rows: {sorted(rows)}")
                continue
            chk.check(row[col["completed"]][0] == str(completed) and row[col["refused"]][0] == str(refused),
                      f"{where}: {key}: completed/refused {row[col['completed']][0]}/{row[col['refused']][0]}, "
                      f"want {completed}/{refused}")
            rate = float(row[col["rate /s"]][1] or "nan") if "rate /s" in col else math.nan
            chk.check(rate > 0, f"{where}: {key}: rate {rate}, want > 0 (every outcome counts)")
            hist = m.histogram("flowlat_handshake_rtt_seconds", interface=key[0], direction="outbound",
                               family="ipv4", peer=key[1], port=key[2])
            for q, name in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99")):
                expected = quantile(q, hist) if hist else math.nan
                shown = float(row[col[name]][1]) if row[col[name]][1] else math.nan
                same = (math.isnan(expected) and math.isnan(shown)) or abs(shown - expected) <= 1e-6 * max(1, expected)
                chk.check(same, f"{where}: {key} {name}: page {shown}, histogram_quantile of {TELEMETRY} {expected}")

    table = parse_table(text)
    check_rows(table, "server HTML")
    # Each series with completed handshakes has a recent-p50 mark (a line or dots) in both
    # rounds' intervals: the rounds were 6 s apart and intervals are 5 s.
    marks = [svg.count("<circle") + 2 * svg.count("<polyline") for svg in svgs if 'class="spark"' in svg]
    chk.check(sum(1 for n in marks if n >= 2) >= 3, f"recent p50 sparklines lack the driven intervals: {marks}")

    head = H.http_get(lab.client_ns, fl.port, "/")  # GET again; HEAD below with http.client
    chk.check(head.status == 200, "second GET /")
    import http.client
    with N.netns(lab.client_ns):
        conn = http.client.HTTPConnection("127.0.0.1", fl.port, timeout=5)
        conn.connect()
    conn.request("HEAD", "/")
    r = conn.getresponse()
    chk.check(r.status == 200 and r.read() == b"", f"HEAD /: {r.status}")
    conn.close()

    # ---- headless Chromium: the DOM and a screenshot
    url = f"http://127.0.0.1:{fl.port}/?sort=p99"
    dom = run_chromium(lab, ["--dump-dom", url])
    chk.check(dom.returncode == 0 and "series-table" in dom.stdout,
              f"chromium --dump-dom failed: rc={dom.returncode} {dom.stderr[-1000:]}")
    dtable = parse_table(dom.stdout)
    check_rows(dtable, "Chromium DOM")
    chk.check("script" not in dtable.elements and "i" not in dtable.elements,
              f"the DOM has a script or i element: escaping failed")
    col = {h: i for i, h in enumerate(dtable.headers)}
    if "p99" in col:
        p99s = [float(r[col["p99"]][1]) for r in dtable.rows if r[col["p99"]][1] not in ("", "NaN")]
        chk.check(p99s == sorted(p99s, reverse=True) and len(p99s) >= 3, f"?sort=p99 is not slowest first: {p99s}")
    shot = artifacts_dir() / "status_page.png"
    if shot.exists():
        shot.unlink()
    r = run_chromium(lab, [f"--screenshot={shot}", "--window-size=1600,1000", "--hide-scrollbars", url])
    ok = shot.exists() and shot.stat().st_size > 10000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    chk.check(ok, f"no screenshot at {shot}: rc={r.returncode} {r.stderr[-1000:]}")
    print(f"ARTIFACT: {shot}", flush=True)

    fl.check_clean_exit(chk)
    chk.finish()


if __name__ == "__main__":
    N.main_guard(body)
