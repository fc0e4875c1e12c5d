#!/usr/bin/env bash
# Installs what flowlatd needs from Debian 12's own archive. Nothing is vendored or
# downloaded during the build. Works as root (no sudo needed) or through sudo.
#
#   bash packaging/build-deps.sh          build and run flowlatd (the README's run command)
#   bash packaging/build-deps.sh --deb    also build the Debian package (packaging/build-deb.sh)
#   bash packaging/build-deps.sh --test   also run every test tier (tests/run.sh, CI)
#
# --test installs tools that ship services (Debian's prometheus enables and starts
# prometheus.service on :9090). While it installs, a policy-rc.d forbids starting any
# service, and every service unit of a package this run newly installed is disabled
# afterwards: the host keeps no service running or enabled that it did not have before.
# A policy-rc.d the host already had is put back.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

build_packages=(
  build-essential cmake pkg-config git
  clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev
  prometheus-cpp-dev libspdlog-dev libfmt-dev libyaml-cpp-dev libsystemd-dev
  libssl-dev libcrypt-dev dpkg-dev
  # the protobuf exposition: protoc generates C++ from client_model's metrics.proto
  libprotobuf-dev protobuf-compiler golang-github-prometheus-client-model-dev
)
deb_packages=(debhelper dpkg-dev lintian)
test_packages=(
  catch2 iproute2 python3 python3-scapy python3-yaml tshark prometheus curl iperf3 hyperfine procps wrk
  # the OpenMetrics reference parser of the exposition tests
  python3-prometheus-client
  # the Debian package's test: build, lint, man page rendering, a systemd to boot
  "${deb_packages[@]}" man-db groff-base systemd util-linux
  # the status page's test renders it in headless Chromium (DOM dump and screenshot)
  chromium
)

# Debian's libcivetweb is built without IPv6 and its TLS crashes on OpenSSL 3, so flowlatd
# builds civetweb itself (cmake/Civetweb.cmake: static, IPv6, OpenSSL 3 API, no dynamic SSL
# loading) from Debian's own source package. The sources are unpacked under build-deps/
# (ignored by git, like build/), never committed, and fetched again only when absent.
fetch_civetweb_source() {
  local civetweb_dir
  civetweb_dir="$(cd "$(dirname "$0")/.." && pwd)/build-deps/civetweb"
  if ls -d "$civetweb_dir"/civetweb-*/src >/dev/null 2>&1; then return 0; fi
  if ! grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    printf '%s\n' 'Types: deb-src' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm' \
      'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' |
      as_root tee /etc/apt/sources.list.d/flowlatd-deb-src.sources >/dev/null
    as_root apt-get update -q
  fi
  mkdir -p "$civetweb_dir"
  (cd "$civetweb_dir" && apt-get source -q civetweb)
}

mode=${1:-run}
case "$mode" in
  run) packages=("${build_packages[@]}") ;;
  --deb) packages=("${build_packages[@]}" "${deb_packages[@]}") ;;
  --test) packages=("${build_packages[@]}" "${test_packages[@]}") ;;
  *) echo "usage: $0 [--deb|--test]" >&2; exit 2 ;;
esac

as_root apt-get update -q
if [ "$mode" != --test ]; then
  # Build tools and libraries only: none of them ships a service.
  as_root apt-get install -y -q --no-install-recommends "${packages[@]}"
  fetch_civetweb_source
  exit 0
fi

policy=/usr/sbin/policy-rc.d
saved=$(mktemp)
had_policy=no
if [ -e "$policy" ]; then had_policy=yes; as_root cp -p "$policy" "$saved"; fi
restore_policy() {
  if [ "$had_policy" = yes ]; then as_root cp -p "$saved" "$policy"; else as_root rm -f "$policy"; fi
  rm -f "$saved"
}
trap restore_policy EXIT
# 101: "action forbidden by policy" (invoke-rc.d(8)); deb-systemd-invoke honours it too.
printf '#!/bin/sh\n# packaging/build-deps.sh --test: no service starts during this install\nexit 101\n' |
  as_root tee "$policy" >/dev/null
as_root chmod 755 "$policy"

installed_before=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' 2>/dev/null | awk '$2=="installed"{print $1}' | sort)
as_root apt-get install -y -q --no-install-recommends "${packages[@]}"
installed_after=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' | awk '$2=="installed"{print $1}' | sort)

# Packages this run installed (dependencies too): their services stay disabled.
for package in $(comm -13 <(echo "$installed_before") <(echo "$installed_after")); do
  for unit in $(dpkg -L "$package" 2>/dev/null | grep -E '^/(usr/)?lib/systemd/system/[^/]+\.(service|socket|timer)$' || true); do
    name=$(basename "$unit")
    # Template units (foo@.service) are enabled only as instances; skip them.
    [[ "$name" == *@.* ]] && continue
    # systemctl works on the unit files whether or not systemd runs; a package upgrade
    # then keeps the unit disabled (its postinst re-enables only what was enabled).
    if [ "$(systemctl is-enabled "$name" 2>/dev/null)" = enabled ]; then
      echo "build-deps.sh: disabling $name (installed by $package for the tests only)"
      as_root systemctl disable --quiet "$name" || true
    fi
  done
done

fetch_civetweb_source
