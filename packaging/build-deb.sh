#!/usr/bin/env bash
# Builds the Debian package, flowlatd_<version>_<arch>.deb, and prints its path.
#
#   bash packaging/build-deb.sh [OUTPUT_DIR]      (default: build-deb/ in the source tree)
#
# The source tree (tracked and untracked files, not ignored ones such as build/) is copied
# into a temporary directory with packaging/debian as its debian/, and built there by
# dpkg-buildpackage: debhelper's `dh --buildsystem=cmake` with Debian's own compiler flags
# (dpkg-buildflags, all hardening on). Nothing is written into the source tree but the
# .deb and its .buildinfo/.changes in OUTPUT_DIR. Build dependencies:
# `bash packaging/build-deps.sh --deb` (dpkg-checkbuilddeps names any that are missing).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$top/build-deb}" && cd "${1:-$top/build-deb}" && pwd)

work=$(mktemp -d /tmp/flowlatd-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
src=$work/flowlatd
mkdir -p "$src"

if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$top" && git ls-files -z --cached --others --exclude-standard) |
    (cd "$top" && xargs -0 cp --parents -t "$src" 2>/dev/null || true)
  # flowlat_build_info's revision: CMake asks git, which finds the source tree's repository
  # through GIT_DIR (the copy has no .git).
  GIT_DIR=$(cd "$top" && git rev-parse --absolute-git-dir)
  export GIT_DIR
else
  tar -C "$top" --exclude='./build*' --exclude=.git -cf - . | tar -C "$src" -xf -
fi
# civetweb's source (build-deps/, ignored by git) is compiled into flowlatd: bring it along.
if [ -d "$top/build-deps/civetweb" ]; then
  mkdir -p "$src/build-deps" && cp -r "$top/build-deps/civetweb" "$src/build-deps/"
fi
rm -rf "$src/debian"
cp -r "$top/packaging/debian" "$src/debian"

version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
arch=$(dpkg-architecture -q DEB_HOST_ARCH)
deb=flowlatd_${version}_${arch}.deb

# -b: binary only; -us -uc: unsigned; -rfakeroot is not needed (Rules-Requires-Root: no).
(cd "$src" && dpkg-buildpackage -b -us -uc -j"$(nproc)") > "$work/build.log" 2>&1 || {
  tail -40 "$work/build.log" >&2
  echo "build-deb.sh: dpkg-buildpackage failed (missing build dependencies? bash packaging/build-deps.sh --deb)" >&2
  exit 1
}
for f in "$work/$deb" "$work"/flowlatd_"${version}"_"${arch}".buildinfo "$work"/flowlatd_"${version}"_"${arch}".changes; do
  [ -e "$f" ] && cp "$f" "$out/"
done
# Debug symbols (flowlatd-dbgsym_*.ddeb) are left out: they are not part of the install.
echo "$out/$deb"
