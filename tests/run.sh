#!/usr/bin/env bash
# The whole test suite: install dependencies, build with warnings as errors, run every tier
# (unit, BPF table tests through BPF_PROG_TEST_RUN, end-to-end in network namespaces).
# Needs root for the last two tiers. Ends with ctest's summary line.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash packaging/build-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLOWLAT_WERROR=ON
cmake --build build -j"$(nproc)"
cd build
ctest --output-on-failure --timeout 900
