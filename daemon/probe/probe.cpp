#include "probe/probe.hpp"

#include "flowlat_probe.skel.h"
#include "flow/flowlat_abi.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <deque>
#include <string_view>
#include <vector>

namespace flowlat::probe {

namespace {

// The capture of the load running on this thread, if any. libbpf calls its print callback on
// the thread that made the libbpf call, so a load never captures another thread's messages.
thread_local LogCapture* active_capture = nullptr;
thread_local int quiet_depth = 0;

constexpr std::string_view begin_marker = "-- BEGIN PROG LOAD LOG --";
constexpr std::string_view end_marker = "-- END PROG LOAD LOG --";

// Calls fn for each non-empty line of text, without the "libbpf: " prefix libbpf puts on its own.
template <typename Fn>
void for_each_line(std::string_view text, Fn&& fn)
{
    while (!text.empty()) {
        const std::size_t newline = text.find('\n');
        std::string_view line = text.substr(0, newline);
        text = newline == std::string_view::npos ? std::string_view{} : text.substr(newline + 1);
        if (line.starts_with("libbpf: ")) line.remove_prefix(8);
        if (!line.empty()) fn(line);
    }
}

// Keeps the last kept_lines of a log and counts all of them.
void keep(std::deque<std::string>& lines, std::size_t& count, std::string_view line)
{
    lines.emplace_back(line);
    if (lines.size() > LogCapture::kept_lines) lines.pop_front();
    ++count;
}

int libbpf_print(enum libbpf_print_level level, const char* format, va_list args)
{
    // One message may be the whole verifier log (megabytes): size the buffer to fit.
    va_list sizing;
    va_copy(sizing, args);
    const int n = std::vsnprintf(nullptr, 0, format, sizing);
    va_end(sizing);
    if (n <= 0) return 0;
    std::vector<char> buffer(static_cast<std::size_t>(n) + 1);
    std::vsnprintf(buffer.data(), buffer.size(), format, args);
    const std::string_view message(buffer.data(), static_cast<std::size_t>(n));

    if (level == LIBBPF_WARN && active_capture != nullptr) {
        active_capture->add(true, message);
        for_each_line(message, [](std::string_view line) { spdlog::debug("libbpf: {}", line); });
        return n;
    }
    for_each_line(message, [level](std::string_view line) {
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
    });
    return n;
}

} // namespace

LogCapture::LogCapture() : previous_(active_capture)
{
    active_capture = this;
}

LogCapture::~LogCapture()
{
    active_capture = previous_;
}

void LogCapture::add(bool warning, std::string_view message)
{
    for_each_line(message, [&](std::string_view line) {
        if (const std::size_t at = line.find(begin_marker); at != std::string_view::npos) {
            // "prog 'flowlat_ingress': -- BEGIN PROG LOAD LOG --"; libbpf stops at the first
            // rejected program, but if it did not, the last log is the one to show.
            verifier_seen_ = true;
            inside_verifier_log_ = true;
            verifier_.clear();
            verifier_count_ = 0;
            program_.clear();
            if (const std::size_t open = line.find("prog '"); open < at) {
                const std::size_t name = open + 6;
                const std::size_t close = line.find('\'', name);
                if (close != std::string_view::npos && close < at) program_ = line.substr(name, close - name);
            }
            return;
        }
        if (const std::size_t at = line.find(end_marker); at != std::string_view::npos) {
            // A log without a final newline puts its last line in front of the marker.
            if (inside_verifier_log_ && at > 0) keep(verifier_, verifier_count_, line.substr(0, at));
            inside_verifier_log_ = false;
            return;
        }
        if (inside_verifier_log_)
            keep(verifier_, verifier_count_, line);
        else if (warning)
            keep(warnings_, warning_count_, line);
    });
}

LogTail LogCapture::tail(std::size_t max_lines) const
{
    const std::deque<std::string>& source = verifier_seen_ ? verifier_ : warnings_;
    LogTail tail;
    tail.verifier_log = verifier_seen_;
    tail.program = verifier_seen_ ? program_ : std::string{};
    tail.total_lines = verifier_seen_ ? verifier_count_ : warning_count_;
    const std::size_t first = source.size() > max_lines ? source.size() - max_lines : 0;
    tail.lines.assign(source.begin() + static_cast<std::ptrdiff_t>(first), source.end());
    return tail;
}

void LogCapture::replay_warnings() const
{
    for (const auto& line : warnings_) spdlog::warn("libbpf: {}", line);
}

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

Error load_failure(std::string what, int errno_value, const LogTail& log)
{
    Error error{std::move(what), errno_value};
    if (log.lines.empty()) return error;
    error.detail_title = log.verifier_log ? "verifier log (last " : "libbpf said (last ";
    error.detail_title += std::to_string(log.lines.size());
    if (log.total_lines > log.lines.size()) error.detail_title += " of " + std::to_string(log.total_lines);
    error.detail_title += log.lines.size() == 1 ? " line)" : " lines)";
    error.detail = log.lines;
    return error;
}

Result<std::unique_ptr<Probe>> Probe::load(const ProbeOptions& options)
{
    // libbpf's warnings are kept, not printed: a failure is reported once, by the caller, with
    // the log's tail (a rejected program's verifier log alone can be thousands of lines).
    LogCapture log;
    // doing: the step, as the start of the one line ("loading the BPF program failed: ...").
    auto fail = [&](const std::string& doing, int err) { return load_failure(doing + " failed", err, log.tail()); };

    ::flowlat_probe* skeleton = flowlat_probe__open();
    if (skeleton == nullptr) return fail("opening the embedded BPF object", errno);
    std::unique_ptr<::flowlat_probe, void (*)(::flowlat_probe*)> guard(skeleton, flowlat_probe__destroy);

    skeleton->rodata->ring_wakeup_bytes = options.ring_wakeup_bytes;
    if (int err = bpf_map__set_max_entries(skeleton->maps.flows, options.flow_table_size))
        return fail("setting the flow table size to " + std::to_string(options.flow_table_size), -err);
    if (int err = bpf_map__set_max_entries(skeleton->maps.events, options.ring_buffer_size))
        return fail("setting the ring buffer size to " + std::to_string(options.ring_buffer_size), -err);

    if (int err = flowlat_probe__load(skeleton)) {
        const std::string program = log.tail().program;
        return fail(program.empty() ? "loading the BPF program" : "loading the BPF program " + program, -err);
    }

    log.replay_warnings();
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
        .answers_rejected = sum(FLOWLAT_COUNTER_ANSWERS_REJECTED),
        .flow_inserts = sum(FLOWLAT_COUNTER_FLOW_INSERTS),
        .flow_deletes = sum(FLOWLAT_COUNTER_FLOW_DELETES),
    };
}

void Probe::release_ack_filter_bucket(std::uint32_t bucket, std::uint32_t epoch)
{
    // .bss is mmap'ed and shared with the kernel, which updates it with atomics too.
    __atomic_fetch_sub(&skeleton_->bss->ack_filter[bucket & (FLOWLAT_ACK_FILTER_BUCKETS - 1)].count[epoch & 1], 1u,
                       __ATOMIC_RELAXED);
}

std::uint32_t Probe::ack_filter_count(std::uint32_t bucket, std::uint32_t epoch) const
{
    return __atomic_load_n(&skeleton_->bss->ack_filter[bucket & (FLOWLAT_ACK_FILTER_BUCKETS - 1)].count[epoch & 1],
                           __ATOMIC_RELAXED);
}

std::uint32_t Probe::ack_filter_bucket_value(std::uint32_t bucket) const
{
    return ack_filter_count(bucket, 0) + ack_filter_count(bucket, 1);
}

std::uint32_t Probe::ack_epoch() const
{
    return __atomic_load_n(&skeleton_->bss->ack_epoch, __ATOMIC_RELAXED) & 1;
}

void Probe::renew_ack_epoch()
{
    const std::uint32_t next = ack_epoch() ^ 1;
    // Zero first, then switch: a flow armed after the switch must not have its count wiped.
    for (auto& bucket : skeleton_->bss->ack_filter) __atomic_store_n(&bucket.count[next], 0u, __ATOMIC_RELAXED);
    __atomic_store_n(&skeleton_->bss->ack_epoch, next, __ATOMIC_RELEASE);
}

} // namespace flowlat::probe
