#!/usr/bin/env bash
# Installs everything flowlatd needs to build and to run its whole test suite, from Debian 12's
# own archive. Nothing is vendored or downloaded during the build.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

build_packages=(
  build-essential cmake pkg-config git
  clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev
  prometheus-cpp-dev libcivetweb-dev libspdlog-dev libfmt-dev libyaml-cpp-dev libsystemd-dev
)
test_packages=(
  catch2 iproute2 python3 python3-scapy tshark prometheus curl iperf3 hyperfine procps
)

sudo_if_needed apt-get update -q
sudo_if_needed apt-get install -y -q --no-install-recommends "${build_packages[@]}" "${test_packages[@]}"
