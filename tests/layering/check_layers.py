#!/usr/bin/env python3
"""Checks that daemon/'s folders keep the layer rules their CMakeLists.txt state.

Each folder under daemon/ is one library, flowlat_<folder>, declared with
flowlat_layer(<folder> LAYERS ... LIBS ...). A static library's link line alone proves
nothing (the executable links everything), so this reads the same declarations and
fails when:
  - a layer names a layer that daemon/CMakeLists.txt adds after it (an arrow up),
  - a file includes "<other>/..." from a folder that is not one of its own LAYERS,
  - a file includes a third-party header whose library is not in the LIBS of the
    layer or of a layer below it (so the aggregator can never include libbpf or civetweb).
Run: check_layers.py <source dir>
"""
import pathlib
import re
import sys

# Third-party headers, by the CMake target that provides them.
THIRD_PARTY = [
    (re.compile(r"<bpf/"), "PkgConfig::LIBBPF"),
    (re.compile(r'"flowlat_probe\.skel\.h"'), "flowlat_probe_skel"),
    (re.compile(r"<(CivetServer|civetweb)\.h>"), "flowlat::civetweb"),
    (re.compile(r"<yaml-cpp/"), "yaml-cpp"),
    (re.compile(r"<prometheus/"), "prometheus-cpp::core"),
    (re.compile(r"<zlib\.h>"), "ZLIB::ZLIB"),
    (re.compile(r"<systemd/"), "PkgConfig::LIBSYSTEMD"),
    (re.compile(r"<spdlog/"), "spdlog::spdlog"),
    (re.compile(r"<fmt/"), "fmt::fmt"),
    (re.compile(r"<openssl/"), "OpenSSL::SSL"),
    (re.compile(r"<crypt\.h>"), "PkgConfig::LIBCRYPT"),
    (re.compile(r'[<"]io/prometheus/client/metrics\.pb\.h[>"]'), "flowlat_metrics_proto"),
    (re.compile(r"<google/protobuf/"), "protobuf::libprotobuf"),
]
INCLUDE = re.compile(r'^\s*#\s*include\s+([<"][^>"]+[>"])', re.M)
LAYER_CALL = re.compile(r"flowlat_layer\(\s*(\w+)([^)]*)\)", re.S)


def parse_layer(cmake_text):
    match = LAYER_CALL.search(cmake_text)
    if not match:
        return None
    name, rest = match.group(1), match.group(2).split()
    lists = {"LAYERS": [], "LIBS": []}
    current = None
    for word in rest:
        if word in lists:
            current = word
        elif current:
            lists[current].append(word)
    return name, lists["LAYERS"], lists["LIBS"]


def main(source_dir):
    daemon = pathlib.Path(source_dir) / "daemon"
    order = re.findall(r"^add_subdirectory\((\w+)\)", (daemon / "CMakeLists.txt").read_text(), re.M)
    layers = {}
    problems = []
    for folder in order:
        parsed = parse_layer((daemon / folder / "CMakeLists.txt").read_text())
        if not parsed or parsed[0] != folder:
            problems.append(f"daemon/{folder}/CMakeLists.txt: no flowlat_layer({folder} ...)")
            continue
        layers[folder] = (parsed[1], parsed[2])
    for folder, (below, _) in layers.items():
        for lower in below:
            if lower not in order or order.index(lower) >= order.index(folder):
                problems.append(f"layer {folder} links {lower}, which is not below it")

    def libs_reachable(folder, seen=None):
        seen = seen if seen is not None else set()
        if folder in seen:
            return set()
        seen.add(folder)
        below, libs = layers.get(folder, ([], []))
        reachable = set(libs)
        for lower in below:
            reachable |= libs_reachable(lower, seen)
        return reachable

    folders_on_disk = {p.name for p in daemon.iterdir() if p.is_dir()}
    for stray in sorted(folders_on_disk - set(order)):
        problems.append(f"daemon/{stray}/ is not a layer in daemon/CMakeLists.txt")
    for stray in sorted(p.name for p in daemon.glob("*.[ch]pp") if p.name != "main.cpp"):
        problems.append(f"daemon/{stray} belongs in a layer's folder")

    for folder in layers:
        below, _ = layers[folder]
        reachable = libs_reachable(folder)
        for source in sorted((daemon / folder).glob("*.[ch]pp")):
            for include in INCLUDE.findall(source.read_text()):
                where = f"{source.relative_to(source_dir)}: #include {include}"
                layer_match = re.match(r'"(\w+)/', include)
                if layer_match:
                    other = layer_match.group(1)
                    if other != folder and other not in below:
                        problems.append(f"{where}: {folder} does not link layer {other}")
                    continue
                for pattern, target in THIRD_PARTY:
                    if pattern.match(include) and target not in reachable:
                        problems.append(f"{where}: {folder} does not link {target}")
    for problem in problems:
        print(problem)
    print(f"{len(layers)} layers ({' -> '.join(order)}), {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
