#!/usr/bin/env bash
# flowlatd's benchmark suite: builds (unless --no-build), runs every benchmark, prints one
# table: section, path, figure, floor, target, met?  Needs root (BPF, namespaces).
#   sudo bash bench/run.sh                 # full run, a few minutes
#   sudo bash bench/run.sh --smoke         # tiny counts, seconds (what ctest "bench: smoke" runs)
#   ... --no-build --build-dir DIR         # use binaries already built in DIR
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
smoke="" build=1 dir="$top/build-bench"
while [[ $# -gt 0 ]]; do
    case $1 in
        --smoke) smoke=--smoke ;;
        --no-build) build=0 ;;
        --build-dir) dir=$2; shift ;;
        *) echo "usage: $0 [--smoke] [--no-build] [--build-dir DIR]" >&2; exit 2 ;;
    esac
    shift
done
if [[ $build == 1 ]]; then
    cmake -S "$top" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$dir" -j"$(nproc)" --target flowlatd bench_kernel bench_pipeline bench_scrape >/dev/null
fi
out=$(mktemp /tmp/flowlat-bench-out.XXXXXX)
trap 'rm -f "$out"' EXIT

echo "flowlatd benchmarks on $(uname -r), $(nproc) CPUs, $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}')," \
     "load average $(cut -d' ' -f1-3 /proc/loadavg) ${smoke:+(SMOKE: tiny counts, figures meaningless)}"
for step in "$dir/bench/bench_kernel $smoke" "$dir/bench/bench_pipeline $smoke" "$dir/bench/bench_scrape $smoke" \
            "bash $top/bench/netns.sh $dir/flowlatd $smoke"; do
    echo "running: $step" >&2
    $step >>"$out"
done
# Allocator experiment for the scrape: glibc keeps the 10,000-series body in the heap instead
# of a fresh mmap (and its page faults) per scrape. Not the daemon's configuration.
GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824 \
    "$dir/bench/bench_scrape" $smoke --series=10000 | sed 's/\tscrape\t/\tscrape (malloc tunables)\t/' >>"$out"

for section in kernel pipeline baseline loss scrape memory attached; do
    grep -q "^ROW	$section	" "$out" || { echo "bench: section '$section' printed no rows" >&2; exit 1; }
done
echo
{ printf 'section\tpath\tfigure\tfloor\ttarget\tmet?\n'; grep '^ROW' "$out" | cut -f2-; } | column -t -s $'\t'
echo
grep '^NOTE' "$out" | cut -f2- | sed 's/\t/: /'
