#!/usr/bin/env bash
# Installs everything flowlatd needs to build and to run its whole test suite, from Debian 12's
# own archive. Nothing is vendored or downloaded during the build.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

build_packages=(
  build-essential cmake pkg-config git
  clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev
  prometheus-cpp-dev libspdlog-dev libfmt-dev libyaml-cpp-dev libsystemd-dev
  libssl-dev libcrypt-dev dpkg-dev
)
test_packages=(
  catch2 iproute2 python3 python3-scapy python3-yaml tshark prometheus curl iperf3 hyperfine procps wrk
)

sudo_if_needed apt-get update -q
sudo_if_needed apt-get install -y -q --no-install-recommends "${build_packages[@]}" "${test_packages[@]}"

# --- civetweb from Debian's source package (issue 9) -----------------------------------------
# Debian's libcivetweb is built without IPv6 and its TLS crashes on OpenSSL 3, so flowlatd
# builds civetweb itself (cmake/Civetweb.cmake: static, IPv6, OpenSSL 3 API, no dynamic SSL
# loading) from Debian's own source package. The sources are unpacked under build-deps/
# (ignored by git, like build/), never committed, and fetched again only when absent.
civetweb_dir="$(cd "$(dirname "$0")/.." && pwd)/build-deps/civetweb"
if ! ls -d "$civetweb_dir"/civetweb-*/src >/dev/null 2>&1; then
  if ! grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    printf '%s\n' 'Types: deb-src' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm' \
      'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' |
      sudo_if_needed tee /etc/apt/sources.list.d/flowlatd-deb-src.sources >/dev/null
    sudo_if_needed apt-get update -q
  fi
  mkdir -p "$civetweb_dir"
  (cd "$civetweb_dir" && apt-get source -q civetweb)
fi
# --- end civetweb -----------------------------------------------------------------------------
