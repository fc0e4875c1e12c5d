#!/usr/bin/env bash
# (e) memory and (f) attached-for-real, with the real flowlatd on a veth between two
# network namespaces (198.18.0.0/15 only). Prints ROW/NOTE lines for run.sh.
#   bash bench/netns.sh FLOWLATD [--smoke]
set -euo pipefail
flowlatd=$1
smoke=${2:-}
C=flb-client S=flb-server
work=$(mktemp -d /tmp/flowlat-bench.XXXXXX)
daemon_pid=""

cleanup() {
    [[ -n $daemon_pid ]] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
    ip netns pids $S 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del $C 2>/dev/null || true
    ip netns del $S 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cleanup_pre() { ip netns del $C 2>/dev/null || true; ip netns del $S 2>/dev/null || true; }
cleanup_pre

ip netns add $C
ip netns add $S
ip link add flb0 netns $C type veth peer name flb1 netns $S
ip -n $C addr add 198.18.0.1/24 dev flb0
ip -n $S addr add 198.18.0.2/24 dev flb1
ip -n $C link set flb0 up; ip -n $C link set lo up
ip -n $S link set flb1 up; ip -n $S link set lo up
# The server answers for all of 198.19.0.0/16 (AnyIP), so every peer address is a real handshake.
ip -n $S route add local 198.19.0.0/16 dev lo
ip -n $C route add 198.19.0.0/16 via 198.18.0.2

cat > "$work/flowlatd.yaml" <<YAML
interfaces: [flb0]
web:
  listen_addresses: ["127.0.0.1:10435"]
log:
  level: warn
max_series: 20000
YAML

start_daemon() {
    ip netns exec $C "$flowlatd" --config.file "$work/flowlatd.yaml" >"$work/daemon.log" 2>&1 &
    daemon_pid=$!
    for _ in $(seq 100); do
        ip netns exec $C curl -sf http://127.0.0.1:10435/healthz >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "flowlatd did not become healthy:" >&2; cat "$work/daemon.log" >&2; return 1
}
stop_daemon() { kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=""; }
rss_kib() { awk '/^VmRSS/ {print $2}' /proc/"$daemon_pid"/status; }
hwm_kib() { awk '/^VmHWM/ {print $2}' /proc/"$daemon_pid"/status; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
met_le() { awk -v a="$1" -v b="$2" 'BEGIN { print (a <= b) ? "yes" : "NO" }'; }

# A listener that accepts and closes, in the server namespace.
ip netns exec $S python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80)); s.listen(4096)
while True:
    c, _ = s.accept(); c.close()
' &

handshakes() { # $1 first peer index, $2 count: one completed handshake per distinct peer
    ip netns exec $C python3 -c '
import socket, sys
first, n = int(sys.argv[1]), int(sys.argv[2])
for i in range(first, first + n):
    s = socket.create_connection(("198.19.%d.%d" % (i >> 8 & 255, i & 255), 80), timeout=2); s.close()
' "$1" "$2"
}
scrape() { # prints the series count
    ip netns exec $C curl -sf http://127.0.0.1:10435/metrics | awk '/^flowlat_series / {print $2}'
}
curl_time() { # $1: extra curl args; prints seconds
    ip netns exec $C curl -s -o /dev/null -w '%{time_total}' $1 http://127.0.0.1:10435/metrics
}

# ---- (e) memory ----------------------------------------------------------------------------
start_daemon
sleep 0.5
scrape >/dev/null
idle=$(rss_kib)
# The daemon's maps: ids from its fds' fdinfo, sizes as bpftool reports them (bytes_memlock).
ids=$(for f in /proc/"$daemon_pid"/fdinfo/*; do awk '/^map_id:/ {print $2}' "$f" 2>/dev/null; done | sort -un | tr '\n' ' ')
memlock=$(bpftool -j map show | python3 -c '
import json, sys
ids = set(int(i) for i in sys.argv[1].split()); total = 0; maps = []
for m in json.load(sys.stdin):
    if m["id"] in ids:
        total += int(m.get("bytes_memlock", 0)); maps.append("%s %s %d KiB" % (m.get("type"), m.get("name"), int(m.get("bytes_memlock", 0)) // 1024))
print(total, "; ".join(maps))
' "$ids")
ring_rss() { awk '/^[0-9a-f]+-/ {m = ($6 == "anon_inode:bpf-map")} /^Rss:/ && m {s += $2} END {print s + 0}' /proc/"$daemon_pid"/smaps; }
echo -e "ROW\tmemory\tflowlatd RSS at idle (attached, 0 series)\t$(mib "$idle")\t-\t-\t-"
echo -e "ROW\tmemory\tBPF map memory (bpftool map show, memlock)\t$(mib $(( ${memlock%% *} / 1024 )))\t-\t-\t-"
echo -e "NOTE\tmemory\tmaps: ${memlock#* }"
echo -e "NOTE\tmemory\tof the idle RSS, $(mib "$(ring_rss)") are BPF map pages mmap'ed into the process (the ring buffer, mapped twice by libbpf; kernel memory, also in the map memory above)"

n1=1000 n2=10000
[[ $smoke == --smoke ]] && n1=50 n2=200
handshakes 0 $n1
sleep 0.3
s1=$(scrape); scrape >/dev/null
r1=$(rss_kib)
echo -e "ROW\tmemory\tflowlatd RSS at $s1 series (after 2 scrapes)\t$(mib "$r1")\t$(mib "$idle") (idle)\t<= 16 MiB (1,000)\t$(met_le "$r1" 16384)"
handshakes $n1 $((n2 - n1))
sleep 0.3
s2=$(scrape); scrape >/dev/null
r2=$(rss_kib); h2=$(hwm_kib)
plain=$(curl_time ""); gz=$(curl_time "-H Accept-Encoding:gzip")
r3=$(rss_kib); h3=$(hwm_kib)
echo -e "ROW\tmemory\tflowlatd RSS at $s2 series (after 2 scrapes)\t$(mib "$r2")\t$(mib "$idle") (idle)\t<= 64 MiB (10,000)\t$(met_le "$r2" 65536)"
echo -e "ROW\tmemory\tflowlatd peak RSS (VmHWM) at $s2 series, during scrapes\t$(mib "$h3")\t-\t<= 64 MiB (10,000)\t$(met_le "$h3" 65536)"
echo -e "ROW\tscrape\treal flowlatd, curl /metrics at $s2 series, identity\t$(awk -v t="$plain" 'BEGIN{printf "%.1f ms", t*1000}')\t-\t<= 100 ms (10,000)\t$(met_le "$plain" 0.1)"
echo -e "ROW\tscrape\treal flowlatd, curl /metrics at $s2 series, gzip\t$(awk -v t="$gz" 'BEGIN{printf "%.1f ms", t*1000}')\t-\t-\t-"
echo -e "NOTE\tmemory\tat $s2 series: RSS without the mmap'ed BPF map pages $(mib $((r2 - $(ring_rss))))"
echo -e "NOTE\tmemory\tRSS after the curl scrapes: $(mib "$r3"); VmHWM before them $(mib "$h2")"
stop_daemon

# ---- (f) iperf3 across the veth, with and without flowlatd, alternating ----------------------
ip netns exec $S iperf3 -s -D -1 >/dev/null 2>&1 || true
secs=5 pairs=3
[[ $smoke == --smoke ]] && secs=1 pairs=1
run_iperf() { # prints: Gbit/s host_cpu% remote_cpu%
    ip netns exec $S iperf3 -s -1 -D >/dev/null 2>&1 || true
    sleep 0.2
    ip netns exec $C iperf3 -c 198.18.0.2 -t "$secs" -J | python3 -c '
import json, sys
r = json.load(sys.stdin)["end"]
print("%.2f %.1f %.1f" % (r["sum_received"]["bits_per_second"] / 1e9, r["cpu_utilization_percent"]["host_total"],
                          r["cpu_utilization_percent"]["remote_total"]))'
}
proc_cpu_s() { awk '{print ($14 + $15) / 100}' /proc/"$1"/stat; }
off=() on=() daemon_cpu=()
for _ in $(seq $pairs); do
    off+=("$(run_iperf)")
    start_daemon
    c0=$(proc_cpu_s "$daemon_pid")
    on+=("$(run_iperf)")
    daemon_cpu+=("$(awk -v a="$c0" -v b="$(proc_cpu_s "$daemon_pid")" -v t="$secs" 'BEGIN{printf "%.2f", (b-a)/t*100}')")
    stop_daemon
done
med() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
col() { local i=$1; shift; for x in "$@"; do echo "$x" | awk -v i="$i" '{print $i}'; done; }
off_g=$(med $(col 1 "${off[@]}")) on_g=$(med $(col 1 "${on[@]}"))
off_h=$(med $(col 2 "${off[@]}")) on_h=$(med $(col 2 "${on[@]}"))
off_r=$(med $(col 3 "${off[@]}")) on_r=$(med $(col 3 "${on[@]}"))
dcpu=$(med "${daemon_cpu[@]}")
delta=$(awk -v a="$off_g" -v b="$on_g" 'BEGIN{printf "%+.1f%%", (b-a)/a*100}')
echo -e "ROW\tattached\tiperf3 over veth, Gbit/s (median of $pairs x ${secs}s, alternating)\t$on_g with flowlatd ($delta)\t$off_g without\treport\t-"
echo -e "ROW\tattached\tiperf3 sender / receiver CPU %\t$on_h / $on_r with\t$off_h / $off_r without\treport\t-"
echo -e "ROW\tattached\tflowlatd process CPU % during iperf3\t$dcpu%\t-\treport\t-"
echo -e "NOTE\tattached\twithout: ${off[*]} | with: ${on[*]} (Gbit/s sender% receiver% per run)"
