#include "probe.hpp"

#include "flowlat_probe.skel.h"
#include "flowlat_abi.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <deque>
#include <mutex>
#include <vector>

namespace flowlat::probe {

namespace {

// libbpf reports the verifier log line by line through its print callback; keep the tail.
std::mutex log_mutex;
std::deque<std::string>* capture = nullptr;
constexpr std::size_t verifier_tail_lines = 25;
thread_local int quiet_depth = 0;

int libbpf_print(enum libbpf_print_level level, const char* format, va_list args)
{
    char buffer[1024];
    const int n = std::vsnprintf(buffer, sizeof(buffer), format, args);
    if (n <= 0) return 0;
    std::string line(buffer, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof(buffer) - 1));
    while (!line.empty() && line.back() == '\n') line.pop_back();
    {
        std::lock_guard lock(log_mutex);
        if (capture != nullptr) {
            capture->push_back(line);
            if (capture->size() > 400) capture->pop_front();
        }
    }
    switch (level) {
    case LIBBPF_WARN:
        if (quiet_depth > 0)
            spdlog::debug("libbpf: {}", line);
        else
            spdlog::warn("libbpf: {}", line);
        break;
    case LIBBPF_INFO: spdlog::debug("libbpf: {}", line); break;
    case LIBBPF_DEBUG: spdlog::trace("libbpf: {}", line); break;
    }
    return n;
}

class LogCapture {
public:
    LogCapture()
    {
        std::lock_guard lock(log_mutex);
        capture = &lines_;
    }
    ~LogCapture()
    {
        std::lock_guard lock(log_mutex);
        capture = nullptr;
    }
    LogCapture(const LogCapture&) = delete;
    LogCapture& operator=(const LogCapture&) = delete;

    std::string tail() const
    {
        std::lock_guard lock(log_mutex);
        // The verifier's own lines sit between libbpf's BEGIN/END markers; fall back to everything.
        std::vector<std::string> relevant;
        bool inside = false;
        for (const auto& line : lines_) {
            if (line.find("BEGIN PROG LOAD LOG") != std::string::npos) {
                inside = true;
                relevant.clear();
                continue;
            }
            if (line.find("END PROG LOAD LOG") != std::string::npos) inside = false;
            if (inside) relevant.push_back(line);
        }
        if (relevant.empty()) relevant.assign(lines_.begin(), lines_.end());
        std::string text;
        const std::size_t first = relevant.size() > verifier_tail_lines ? relevant.size() - verifier_tail_lines : 0;
        for (std::size_t i = first; i < relevant.size(); ++i) text += relevant[i] + "\n";
        return text;
    }

private:
    std::deque<std::string> lines_;
};

} // namespace

QuietLibbpf::QuietLibbpf()
{
    ++quiet_depth;
}

QuietLibbpf::~QuietLibbpf()
{
    --quiet_depth;
}

void route_libbpf_logging()
{
    libbpf_set_print(libbpf_print);
}

std::string libbpf_version()
{
    return std::to_string(libbpf_major_version()) + "." + std::to_string(libbpf_minor_version());
}

std::string missing_capabilities()
{
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (syscall(SYS_capget, &header, data) != 0) return "";
    auto has = [&](int cap) { return (data[cap / 32].effective >> (cap % 32)) & 1u; };
    const bool sys_admin = has(CAP_SYS_ADMIN);
    std::string missing;
    auto need = [&](bool present, const char* name) {
        if (present) return;
        if (!missing.empty()) missing += ", ";
        missing += name;
    };
    need(has(CAP_BPF) || sys_admin, "CAP_BPF");
    need(has(CAP_NET_ADMIN), "CAP_NET_ADMIN");
    need(has(CAP_PERFMON) || sys_admin, "CAP_PERFMON");
    return missing;
}

Result<std::unique_ptr<Probe>> Probe::load(const ProbeOptions& options, LoadError* load_error)
{
    auto fail = [&](std::string message, int err, std::string log_tail = {}) -> Error {
        if (load_error != nullptr) *load_error = LoadError{message, std::move(log_tail)};
        return os_error(std::move(message), err);
    };

    LogCapture log;
    ::flowlat_probe* skeleton = flowlat_probe__open();
    if (skeleton == nullptr) return fail("open the embedded BPF object", errno);
    std::unique_ptr<::flowlat_probe, void (*)(::flowlat_probe*)> guard(skeleton, flowlat_probe__destroy);

    skeleton->rodata->handshake_timeout_ns = options.handshake_timeout_ns;
    skeleton->rodata->ring_wakeup_bytes = options.ring_wakeup_bytes;
    if (int err = bpf_map__set_max_entries(skeleton->maps.flows, options.flow_table_size))
        return fail("set flow table size to " + std::to_string(options.flow_table_size), -err);
    if (int err = bpf_map__set_max_entries(skeleton->maps.events, options.ring_buffer_size))
        return fail("set ring buffer size to " + std::to_string(options.ring_buffer_size), -err);

    if (int err = flowlat_probe__load(skeleton))
        return fail("load the BPF probe into the kernel", -err, log.tail());

    guard.release();
    return std::unique_ptr<Probe>(new Probe(skeleton, options));
}

Probe::Probe(::flowlat_probe* skeleton, ProbeOptions options) : skeleton_(skeleton), options_(options) {}

Probe::~Probe()
{
    flowlat_probe__destroy(skeleton_);
}

int Probe::ingress_program_fd(LinkLayer link) const
{
    return bpf_program__fd(link == LinkLayer::ethernet ? skeleton_->progs.flowlat_ingress
                                                       : skeleton_->progs.flowlat_ingr_ip);
}

int Probe::egress_program_fd(LinkLayer link) const
{
    return bpf_program__fd(link == LinkLayer::ethernet ? skeleton_->progs.flowlat_egress
                                                       : skeleton_->progs.flowlat_egr_ip);
}

int Probe::flow_table_fd() const
{
    return bpf_map__fd(skeleton_->maps.flows);
}

int Probe::ring_buffer_fd() const
{
    return bpf_map__fd(skeleton_->maps.events);
}

ProbeCounters Probe::read_counters() const
{
    static const int cpus = libbpf_num_possible_cpus();
    std::vector<__u64> per_cpu(static_cast<std::size_t>(cpus > 0 ? cpus : 1));
    auto sum = [&](__u32 index) -> std::uint64_t {
        if (bpf_map_lookup_elem(bpf_map__fd(skeleton_->maps.counters), &index, per_cpu.data()) != 0)
            return 0;
        std::uint64_t total = 0;
        for (auto value : per_cpu) total += value;
        return total;
    };
    return ProbeCounters{
        .events_lost = sum(FLOWLAT_COUNTER_EVENTS_LOST),
        .flow_table_full = sum(FLOWLAT_COUNTER_FLOW_TABLE_FULL),
        .packets_malformed = sum(FLOWLAT_COUNTER_PACKETS_MALFORMED),
        .handshakes_abandoned = sum(FLOWLAT_COUNTER_ABANDONED),
        .handshakes_aborted = sum(FLOWLAT_COUNTER_ABORTED),
    };
}

void Probe::release_ack_filter_bucket(std::uint32_t bucket)
{
    // .bss is mmap'ed and shared with the kernel, which updates it with atomics too.
    __atomic_fetch_sub(&skeleton_->bss->ack_filter[bucket & (FLOWLAT_ACK_FILTER_BUCKETS - 1)], 1u,
                       __ATOMIC_RELAXED);
}

std::uint32_t Probe::ack_filter_bucket_value(std::uint32_t bucket) const
{
    return __atomic_load_n(&skeleton_->bss->ack_filter[bucket & (FLOWLAT_ACK_FILTER_BUCKETS - 1)],
                           __ATOMIC_RELAXED);
}

} // namespace flowlat::probe
