#!/usr/bin/env python3
"""packaging/kubernetes/ against the daemon it deploys (no root, no cluster).

  * every manifest parses, and the kustomization lists each of them and the config file;
  * the DaemonSet: hostNetwork, not privileged, no privilege escalation, every capability
    dropped and exactly systemd/flowlatd.service's set added back, no host PID/IPC and no
    hostPath volume;
  * ports: the container port is the one the configuration listens on, and the Service and
    the PodMonitor name it; the scrape path is the daemon's telemetry path;
  * probe paths are paths daemon/export/http_server.cpp serves, on the metrics port;
  * the configuration: --config.file points into the mounted ConfigMap, whose generator
    holds that file, and `flowlatd --config.check` accepts it (the daemon's own parser:
    unknown or misspelt keys are errors); every flag in args is in `flowlatd --help`;
  * memory request and limit exist and the limit covers the measured peak.

Usage: check_kubernetes.py SOURCE_DIR FLOWLATD
"""
import os
import re
import subprocess
import sys

import yaml

MEASURED_PEAK_MIB = 39.9 + 14.0  # docs/performance.md: VmHWM at 10,000 series + BPF map memory
UNITS = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}


def mebibytes(quantity: str) -> float:
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", quantity)
    if not m:
        raise ValueError(f"memory quantity {quantity!r}: use Ki, Mi or Gi")
    return int(m.group(1)) * UNITS[m.group(2)]


class Checks:
    def __init__(self) -> None:
        self.failed: list[str] = []
        self.passed = 0

    def __call__(self, ok: bool, what: str) -> None:
        if ok:
            self.passed += 1
        else:
            self.failed.append(what)


def load(kdir: str) -> tuple[dict, dict[str, dict]]:
    """The kustomization, and every other manifest by kind."""
    by_kind: dict[str, dict] = {}
    with open(os.path.join(kdir, "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    for name in kustomization["resources"]:
        with open(os.path.join(kdir, name)) as f:
            for doc in yaml.safe_load_all(f):
                by_kind[doc["kind"]] = doc
    return kustomization, by_kind


def served_paths(src: str) -> set[str]:
    with open(os.path.join(src, "daemon/export/http_server.cpp")) as f:
        paths = set(re.findall(r'uri == "(/[^"]*)"', f.read()))
    with open(os.path.join(src, "daemon/export/http_server.hpp")) as f:
        paths |= set(re.findall(r'telemetry_path\{"(/[^"]*)"\}', f.read()))
    return paths


def unit_capabilities(src: str) -> set[str]:
    with open(os.path.join(src, "systemd/flowlatd.service")) as f:
        line = re.search(r"^CapabilityBoundingSet=(.*)$", f.read(), re.M).group(1)
    return {c.removeprefix("CAP_") for c in line.split()}


def main(src: str, flowlatd: str) -> int:
    kdir = os.path.join(src, "packaging/kubernetes")
    check = Checks()
    kustomization, kinds = load(kdir)
    listed = set(kustomization["resources"])
    generated = {f for g in kustomization.get("configMapGenerator", []) for f in g["files"]}
    on_disk = {n for n in os.listdir(kdir) if n.endswith(".yaml") and n != "kustomization.yaml"}
    check(on_disk == listed | generated, f"files {sorted(on_disk)} != resources + generated {sorted(listed | generated)}")
    check({"Namespace", "DaemonSet", "Service", "PodMonitor"} <= set(kinds), f"kinds: {sorted(kinds)}")

    pod = kinds["DaemonSet"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    sc = container.get("securityContext", {})
    check(pod.get("hostNetwork") is True, "DaemonSet: hostNetwork is not true")
    check(not pod.get("hostPID") and not pod.get("hostIPC"), "DaemonSet: hostPID or hostIPC")
    check(not any("hostPath" in v for v in pod.get("volumes", [])), "DaemonSet: a hostPath volume")
    check(sc.get("privileged") is False, f"privileged: {sc.get('privileged')!r}, want false")
    check(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation is not false")
    caps = sc.get("capabilities", {})
    check(caps.get("drop") == ["ALL"], f"capabilities.drop: {caps.get('drop')}, want [ALL]")
    want_caps = unit_capabilities(src)
    check(set(caps.get("add", [])) == want_caps == {"BPF", "NET_ADMIN", "PERFMON"},
          f"capabilities.add {caps.get('add')}, systemd unit {sorted(want_caps)}")

    with open(os.path.join(kdir, "flowlatd.yaml")) as f:
        config = yaml.safe_load(f)
    listen_ports = {int(a.rsplit(":", 1)[1]) for a in config["web"]["listen_addresses"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    check(set(ports.values()) == listen_ports, f"container ports {ports} != listen_addresses {listen_ports}")
    svc_ports = kinds["Service"]["spec"]["ports"]
    check(all(p["targetPort"] in ports and p["port"] == ports[p["targetPort"]] for p in svc_ports),
          f"Service ports {svc_ports} do not name container ports {ports}")
    check(kinds["Service"]["spec"]["selector"].items() <= kinds["DaemonSet"]["spec"]["template"]["metadata"]["labels"].items(),
          "Service selector does not select the DaemonSet's pods")
    paths = served_paths(src)
    for ep in kinds["PodMonitor"]["spec"]["podMetricsEndpoints"]:
        check(ep["port"] in ports, f"PodMonitor port {ep['port']} is not a container port {sorted(ports)}")
        check(ep.get("path", "/metrics") in paths, f"PodMonitor path {ep.get('path')} not served: {sorted(paths)}")
    for kind in ("livenessProbe", "readinessProbe"):
        probe = container.get(kind, {}).get("httpGet", {})
        check(probe.get("path") in paths, f"{kind} path {probe.get('path')!r} not served by the daemon: {sorted(paths)}")
        check(probe.get("port") in ports, f"{kind} port {probe.get('port')!r} is not a container port")
    check(container.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/healthz",
          "readinessProbe is not /healthz")

    flags = dict(a.split("=", 1) for a in container["args"])
    config_file = flags.get("--config.file", "")
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    config_volume = next((n for n, v in volumes.items() if "configMap" in v), None)
    check(config_volume is not None and os.path.dirname(config_file) == mounts.get(config_volume),
          f"--config.file={config_file} is not in the ConfigMap's mount {mounts}")
    generators = {g["name"]: g["files"] for g in kustomization.get("configMapGenerator", [])}
    cm_name = volumes.get(config_volume, {}).get("configMap", {}).get("name")
    check(os.path.basename(config_file) in generators.get(cm_name, []),
          f"ConfigMap {cm_name} ({generators}) holds no {os.path.basename(config_file)}")
    help_text = subprocess.run([flowlatd, "--help"], capture_output=True, text=True).stdout
    for flag in flags:
        check(re.search(rf"^\s*{re.escape(flag)}[=\s]", help_text, re.M) is not None, f"{flag} is not a flowlatd flag")
    result = subprocess.run([flowlatd, "--config.check", f"--config.file={os.path.join(kdir, 'flowlatd.yaml')}"],
                            capture_output=True, text=True)
    check(result.returncode == 0, f"flowlatd --config.check: {result.returncode}\n{result.stdout}{result.stderr}")

    res = container.get("resources", {})
    try:
        request, limit = mebibytes(res["requests"]["memory"]), mebibytes(res["limits"]["memory"])
        check(request <= limit, f"memory request {request} MiB above the limit {limit} MiB")
        check(limit >= MEASURED_PEAK_MIB, f"memory limit {limit} MiB below the measured {MEASURED_PEAK_MIB} MiB")
    except (KeyError, ValueError) as exc:
        check(False, f"memory requests and limits: {exc}")

    report = [f"FAIL: {f}" for f in check.failed]
    report.append(f"packaging/kubernetes: {check.passed} checks passed, {len(check.failed)} failed")
    sys.stdout.write("\n".join(report) + "\n")
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
