#!/usr/bin/env bash
# The README's run command: install the build dependencies, build, and run flowlatd in the
# foreground with its embedded default configuration (the default route's interfaces, :10435).
# Extra arguments are passed to flowlatd, e.g. --print=json or --config.file=config/flowlatd.yaml.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash packaging/build-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)" --target flowlatd
if [ "$(id -u)" -eq 0 ]; then exec build/flowlatd "$@"; else exec sudo build/flowlatd "$@"; fi
