#!/usr/bin/env python3
"""What `promtool test rules` cannot see about docs/prometheus/ (no root, no network).

  * every alert has a test where it fires and one where it does not (rules_test.yml);
  * every alert has summary, description and a runbook_url whose anchor is a section of
    docs/runbook.md;
  * every flowlat_* metric a rule reads is documented in docs/metrics.md.

Usage: check_rules_coverage.py SOURCE_DIR
"""
import os
import re
import sys

import yaml

RULE_FILES = ("docs/prometheus/flowlatd-rules.yml", "docs/prometheus/flowlatd-thresholds.yml")
TESTS = "tests/prometheus/rules_test.yml"


def anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def main() -> int:
    src = sys.argv[1]
    problems: list[str] = []
    alerts: dict[str, dict] = {}
    exprs: list[str] = []
    for path in RULE_FILES:
        with open(os.path.join(src, path)) as f:
            for group in yaml.safe_load(f)["groups"]:
                for rule in group["rules"]:
                    exprs.append(rule["expr"])
                    if "alert" in rule:
                        alerts[rule["alert"]] = rule

    with open(os.path.join(src, TESTS)) as f:
        tests = yaml.safe_load(f)["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in tests:
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])

    with open(os.path.join(src, "docs/runbook.md")) as f:
        runbook = f.read()
    sections = {anchor(h) for h in re.findall(r"^#+ (.+)$", runbook, re.M)}
    with open(os.path.join(src, "docs/metrics.md")) as f:
        documented = set(re.findall(r"`(flowlat_[a-z_]+)`", f.read()))

    for name, rule in sorted(alerts.items()):
        if name not in firing:
            problems.append(f"{name}: no test in {TESTS} where it fires")
        if name not in quiet:
            problems.append(f"{name}: no test in {TESTS} where it does not fire")
        ann = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            if not ann.get(key):
                problems.append(f"{name}: no {key} annotation")
        url = ann.get("runbook_url", "")
        if not url.startswith("docs/runbook.md#") or url.split("#", 1)[1] not in sections:
            problems.append(f"{name}: runbook_url {url!r} is not a section of docs/runbook.md")
    for unknown in sorted((firing | quiet) - set(alerts)):
        problems.append(f"{TESTS} tests {unknown}, which no rule file defines")

    used = set()
    for expr in exprs:
        # Raw series only (recorded ones have colons); histogram suffixes name their family.
        for metric in re.findall(r"(?<![:\w])(flowlat_[a-z_]+)", expr):
            used.add(re.sub(r"_(bucket|sum|count)$", "", metric))
    for metric in sorted(used - documented):
        problems.append(f"rules read {metric}, which docs/metrics.md does not document")

    summary = f"{len(alerts)} alerts, {len(used)} metrics read, {len(problems)} problems"
    sys.stdout.write("".join(f"{line}\n" for line in [*problems, summary]))
    return min(len(problems), 1)


if __name__ == "__main__":
    sys.exit(main())
