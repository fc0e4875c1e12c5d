#!/usr/bin/env bash
# The whole test suite: install dependencies, build with warnings as errors, run every tier
# (unit, BPF table tests through BPF_PROG_TEST_RUN, end-to-end in network namespaces).
# Needs root for the last two tiers. Ends with ctest's summary line.
# Warnings are errors here only (-DFLOWLAT_WERROR=ON): a user's or a distribution's build
# with a newer compiler must not fail on a warning that compiler adds.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash packaging/build-deps.sh --test
# The tested build, and a Release build that is only compiled: -O3 raises warnings that
# -O2 does not, and a distribution builds with its own optimisation flags.
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLOWLAT_WERROR=ON
cmake --build build -j"$(nproc)"
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DFLOWLAT_WERROR=ON
cmake --build build-release -j"$(nproc)"
cd build
ctest --output-on-failure --timeout 900
