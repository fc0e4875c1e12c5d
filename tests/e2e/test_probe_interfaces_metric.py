#!/usr/bin/env python3
"""flowlat_probe_interfaces_wanted / _attached from a real daemon, with nothing selected.

flowlatd starts with `interfaces: ["nomatch*"]`, a pattern that matches no interface of
the client namespace. /metrics then has no flowlat_probe_attached series at all (the
reason the operators' kit needs these gauges), but both totals, at 0: the series that
FlowlatdNoInterfaceProbed alerts on. After a SIGHUP with `interfaces: [flc0]` both are 1
and flowlat_probe_attached{interface="flc0"} is 1.
"""
import signal

import daemon_harness as H
import netlab as N


def totals(m: H.Metrics) -> tuple:
    return m.value("flowlat_probe_interfaces_wanted"), m.value("flowlat_probe_interfaces_attached")


def body() -> None:
    chk = N.Checker("test_probe_interfaces_metric")
    lab = N.Lab("pifm")
    cfg = H.write_file(lab, "flowlatd.yaml", 'interfaces: ["nomatch*"]\n')
    fl = H.Daemon(lab, cfg)
    fl.wait_ready()

    m = fl.scrape()
    chk.check(not m.find("flowlat_probe_attached"), f"flowlat_probe_attached with nothing selected: "
                                                    f"{[s.labels for s in m.find('flowlat_probe_attached')]}")
    chk.check(totals(m) == (0, 0), f"wanted, attached with nothing selected: {totals(m)}, want (0, 0)")
    chk.check(m.types.get("flowlat_probe_interfaces_wanted") == "gauge"
              and m.types.get("flowlat_probe_interfaces_attached") == "gauge", f"types: {m.types}")
    check = H.promtool_check_metrics(m.text)
    chk.check(check.returncode == 0, f"promtool check metrics: {check.stdout}{check.stderr}")

    H.write_file(lab, "flowlatd.yaml", f"interfaces: [{lab.client_if}]\n")
    fl.kill(signal.SIGHUP)
    m = fl.wait_metrics(lambda x: totals(x) == (1, 1), 15, "the probe attached after the reload")
    chk.check(totals(m) == (1, 1), f"wanted, attached after selecting {lab.client_if}: {totals(m)}, want (1, 1)")
    chk.check(m.value("flowlat_probe_attached", interface=lab.client_if) == 1,
              f"flowlat_probe_attached{{interface={lab.client_if}}} = "
              f"{m.value('flowlat_probe_attached', interface=lab.client_if)}")

    fl.check_clean_exit(chk)
    chk.finish()


if __name__ == "__main__":
    N.main_guard(body)
