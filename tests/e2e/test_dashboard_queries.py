#!/usr/bin/env python3
"""Every PromQL expression of docs/grafana/flowlatd.json against a real Prometheus.

flowlatd probes the client veth (handshake_timeout 1s) and a real Prometheus scrapes it
every second (daemon_harness.Prometheus). A driver thread keeps making handshakes, over
IPv4 and IPv6, to three responder ports: 5002 answers after 5 ms, 5003 refuses, 5004 never
answers, so completed, refused and timeout series all exist. While it runs, no Grafana:
the test does what Grafana would do with the dashboard.

  * The dashboard has the panels and variables the operators' kit asks for, and every
    target uses the $datasource variable.
  * Every variable query (Grafana's label_values(SELECTOR, LABEL)) goes through
    /api/v1/series and lists the driven values (instance, flc0, outbound, both peers,
    the three ports).
  * Every panel expression, with its variables substituted twice (all at their "All"
    value .*, then one concrete value each, regex-escaped as Grafana does) and Grafana's
    $__rate_interval / $__range / $__interval replaced by durations, runs through
    /api/v1/query without error and returns at least one sample that is a number (not NaN).
"""
import itertools
import json
import math
import os
import re
import threading
import time

import daemon_harness as H
import netlab as N
import responder as R

DASHBOARD = os.path.join(os.environ.get("FLOWLAT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..")),
                         "docs", "grafana", "flowlatd.json")
PLANS = {5002: R.PortPlan(delay=0.005), 5003: R.PortPlan(action="rst"), 5004: R.PortPlan(action="silent")}
WARMUP_SECONDS = 20
# Grafana's built-in interval variables, as it would set them for a short range at 1s scrapes.
BUILTINS = {"__rate_interval": "15s", "__range": "60s", "__interval": "2s"}
WANTED_VARIABLES = {"datasource", "instance", "interface", "direction", "peer", "port", "workload"}
WANTED_METRICS = {  # what the operators' kit lists, by the metric each panel must read
    "RTT heatmap": "flowlat_handshake_rtt_seconds_bucket",
    "outcome rates": "flowlat_handshakes_total",
    "SYN retransmits": "flowlat_syn_retransmits_total",
    "events lost": "flowlat_events_lost_total",
    "flow-table use": "flowlat_flow_table_entries",
    "series overflow": "flowlat_series_overflow_total",
    "probe attached": "flowlat_probe_attached",
    "scrape duration": "scrape_duration_seconds",
    "accept-queue overflows": "flowlat_handshake_accept_overflows_total",
    "flow-table evictions": "flowlat_flow_table_evictions_total",
}
# workload: unit, so that the workload variable and label have values to check.
CONFIG = "interfaces: [flc0]\nhandshake_timeout: 1s\nworkload: unit\nlog: {level: info}\n"
LABEL_VALUES = re.compile(r"^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$", re.S)


def all_panels(panels: list[dict]):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def substitute(expr: str, values: dict[str, str]) -> str:
    """Grafana's interpolation of $name and ${name}; longest names first ($peer vs $peers)."""
    merged = {**BUILTINS, **values}
    for name in sorted(merged, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", merged[name]).replace("$" + name, merged[name])
    return expr


def grafana_regex(value: str) -> str:
    """One selected value as Grafana puts it in a =~ matcher: regex-escaped, then escaped again
    for the PromQL string literal it lands in."""
    return re.sub(r"([\\.^$*+?()\[\]{}|])", r"\\\\\1", value)


class Driver:
    """Connects from the client namespace round-robin over (family, port) until stopped."""

    def __init__(self, lab: N.Lab):
        self.lab = lab
        self.results: dict[tuple[str, int, str], int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="dashboard-driver")

    def _run(self) -> None:
        for family, port in itertools.cycle([(f, p) for p in PLANS for f in (4, 6)]):
            if self._stop.is_set():
                return
            c = H.connect(self.lab, N.ADDRS[family][0], H.PEER[family], port, timeout=0.3)
            key = (c.peer, port, c.result)
            self.results[key] = self.results.get(key, 0) + 1

    def __enter__(self) -> "Driver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


def check_shape(chk: N.Checker, dash: dict) -> list[tuple[str, str]]:
    """Checks what the dashboard must hold; returns (where, expression) for every target."""
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    chk.check(WANTED_VARIABLES <= set(variables), f"variables {sorted(variables)} lack {WANTED_VARIABLES - set(variables)}")
    exprs = []
    for p in all_panels(dash["panels"]):
        for t in p.get("targets", []):
            exprs.append((f"panel {p['title']!r} {t['refId']}", t["expr"]))
            chk.check(t.get("datasource", {}).get("uid") == "${datasource}",
                      f"panel {p['title']!r} {t['refId']}: datasource {t.get('datasource')} is not ${{datasource}}")
    types = {p["type"] for p in all_panels(dash["panels"])}
    chk.check({"heatmap", "table", "timeseries"} <= types, f"panel types {sorted(types)}")
    quantiles = " ".join(e for _, e in exprs if "histogram_quantile" in e)
    for phi in ("0.5", "0.9", "0.99"):
        chk.check(f"histogram_quantile({phi}," in quantiles, f"no p{phi} panel")
    for what, metric in WANTED_METRICS.items():
        chk.check(any(metric in e for _, e in exprs), f"no panel for {what} ({metric})")
    chk.check(any("topk(" in e for _, e in exprs), "no top slow peers panel")
    return exprs


def check_variables(chk: N.Checker, prom: H.Prometheus, dash: dict, expected: dict[str, set[str]]) -> None:
    for v in dash["templating"]["list"]:
        if v["type"] != "query":
            continue
        m = LABEL_VALUES.match(v["query"]["query"])
        if not chk.check(m is not None, f"variable {v['name']}: not label_values(...): {v['query']}"):
            continue
        selector = substitute(m.group(1), {k: ".*" for k in WANTED_VARIABLES})
        series = prom.api("/api/v1/series", **{"match[]": selector})
        got = {s[m.group(2)] for s in series if m.group(2) in s}
        chk.note(f"variable {v['name']}: {sorted(got)}")
        chk.check(len(got) > 0, f"variable {v['name']}: no values")
        chk.check(expected[v["name"]] <= got, f"variable {v['name']}: {sorted(got)} lacks {expected[v['name']] - got}")


def check_queries(chk: N.Checker, prom: H.Prometheus, exprs: list[tuple[str, str]], scenario: str,
                  values: dict[str, str]) -> None:
    for where, expr in exprs:
        promql = substitute(expr, values)
        chk.check("$" not in promql, f"{scenario}: {where}: unsubstituted variable in {promql}")
        try:
            result = prom.query(promql)
        except AssertionError as exc:
            chk.check(False, f"{scenario}: {where}: {exc}")
            continue
        finite = [r for r in result if math.isfinite(float(r["value"][1]))]
        chk.check(len(finite) > 0, f"{scenario}: {where}: no data (or only NaN) for {promql}: {result[:3]}")
        chk.note(f"{scenario}: {where}: {len(result)} series, {len(finite)} finite")


def body() -> None:
    chk = N.Checker("test_dashboard_queries")
    with open(DASHBOARD) as f:
        dash = json.load(f)
    exprs = check_shape(chk, dash)

    lab = N.Lab("dash")
    H.start_responder(lab, PLANS)
    fl = H.Daemon(lab, H.write_file(lab, "flowlatd.yaml", CONFIG))
    fl.wait_ready()
    prom = H.Prometheus(lab, [f"127.0.0.1:{H.METRICS_PORT}"])
    prom.wait_ready()
    instance = f"127.0.0.1:{H.METRICS_PORT}"

    with Driver(lab) as driver:
        deadline = time.monotonic() + WARMUP_SECONDS
        while time.monotonic() < deadline and fl.proc.poll() is None and prom.proc.poll() is None:
            time.sleep(1)
        N.log(f"driven so far: {sorted(driver.results.items())}")
        for port, want in ((5002, "connected"), (5003, "refused"), (5004, "timeout")):
            chk.check(any(k[1] == port and k[2] == want and n > 0 for k, n in driver.results.items()),
                      f"harness: no {want} connect to port {port}: {driver.results}")
        chk.check(fl.proc.poll() is None, f"flowlatd exited:\n{fl.stderr_text()[-2000:]}")
        up = prom.query(f'up{{job="flowlatd", instance="{instance}"}} == 1')
        chk.check(len(up) == 1, f"target not up: {prom.targets()}")

        check_variables(chk, prom, dash, {
            "instance": {instance}, "interface": {lab.client_if}, "direction": {"outbound"},
            "peer": {N.PEER_V4, N.PEER_V6}, "port": {str(p) for p in PLANS}, "workload": set()})
        # The driver's own cgroup names the workload; which one depends on how the test runs.
        workloads = prom.api("/api/v1/label/workload/values")
        chk.check(len(workloads) > 0, "no workload label values")
        check_queries(chk, prom, exprs, "all", {k: ".*" for k in WANTED_VARIABLES})
        check_queries(chk, prom, exprs, "one of each", {
            "instance": grafana_regex(instance), "interface": grafana_regex(lab.client_if),
            "direction": "outbound", "peer": grafana_regex(N.PEER_V6), "port": "5002", "datasource": "unused",
            "workload": grafana_regex(workloads[0] if workloads else "none")})

    prom.close()
    fl.check_clean_exit(chk)
    chk.finish()


if __name__ == "__main__":
    N.main_guard(body)
