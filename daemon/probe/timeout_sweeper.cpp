#include "probe/timeout_sweeper.hpp"

#include "flow/flowlat_abi.hpp"
#include "probe/probe.hpp"

#include <bpf/bpf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <optional>

namespace flowlat::probe {

namespace {

constexpr __u32 batch_size = 1024;

// How long a handshake reported as a timeout stays recorded after its timeout: Linux
// retransmits an unanswered SYN for about 127 s (tcp_syn_retries = 6: 1+2+4+8+16+32+64 s).
constexpr std::uint64_t reported_kept_ns = 130'000'000'000ull;

HandshakeEvent timeout_event(const flowlat_flow_key& key, const flowlat_flow& flow, std::uint64_t now_ns)
{
    flowlat_event raw{};
    raw.header.ts_ns = now_ns;
    raw.header.type = FLOWLAT_EVENT_HANDSHAKE;
    raw.header.ifindex = key.ifindex;
    raw.handshake_ns = now_ns - flow.first_syn_ns;
    std::memcpy(raw.local_addr, key.local_addr, sizeof(raw.local_addr));
    std::memcpy(raw.peer_addr, key.peer_addr, sizeof(raw.peer_addr));
    raw.local_port_be = key.local_port_be;
    raw.peer_port_be = key.peer_port_be;
    raw.retransmits = static_cast<__u16>(flow.transmissions > 1 ? flow.transmissions - 1 : 0);
    raw.family = key.family;
    raw.direction = flow.direction;
    raw.outcome = FLOWLAT_OUTCOME_TIMEOUT;
    raw.cgroup_id = flow.cgroup_id;
    // decode_event validates what the kernel wrote; the same check guards the sweep's records.
    return decode_event(&raw, sizeof(raw)).value_or(HandshakeEvent{});
}

} // namespace

TimeoutSweeper::TimeoutSweeper(Probe& probe) : probe_(probe) {}

std::chrono::milliseconds TimeoutSweeper::interval(std::uint64_t timeout_ns)
{
    const auto tenth = std::chrono::milliseconds(timeout_ns / 10 / 1'000'000);
    return std::clamp(tenth, std::chrono::milliseconds(50), std::chrono::milliseconds(1000));
}

std::uint64_t TimeoutSweeper::ack_epoch_period_ns(std::uint64_t timeout_ns)
{
    return timeout_ns + 2 * static_cast<std::uint64_t>(interval(timeout_ns).count()) * 1'000'000ull;
}

std::vector<HandshakeEvent> TimeoutSweeper::sweep(std::uint64_t now_ns)
{
    if (epoch_started_ns_ == 0) epoch_started_ns_ = now_ns;
    if (now_ns - epoch_started_ns_ >= ack_epoch_period_ns(probe_.options().handshake_timeout_ns)) {
        probe_.renew_ack_epoch();
        epoch_started_ns_ = now_ns;
    }
    const std::uint64_t inserts_before_walk = probe_.read_counters().flow_inserts;

    const int fd = probe_.flow_table_fd();
    const std::uint64_t timeout_ns = probe_.options().handshake_timeout_ns;
    std::vector<flowlat_flow_key> keys(batch_size);
    std::vector<flowlat_flow> values(batch_size);
    std::vector<flowlat_flow_key> expired;
    std::vector<flowlat_flow_key> reported; // every reported entry, with its age
    std::vector<bool> reported_old;
    std::uint64_t entries = 0;

    // Collect first, delete after: deleting while walking would restart the walk.
    flowlat_flow_key cursor{};
    bool first = true;
    for (;;) {
        __u32 count = batch_size;
        const int err = bpf_map_lookup_batch(fd, first ? nullptr : &cursor, &cursor, keys.data(),
                                             values.data(), &count, nullptr);
        first = false;
        const int saved_errno = errno;
        for (__u32 i = 0; i < count; ++i) {
            ++entries;
            const std::uint64_t age = now_ns > values[i].first_syn_ns ? now_ns - values[i].first_syn_ns : 0;
            if (values[i].stage == FLOWLAT_STAGE_REPORTED || values[i].stage == FLOWLAT_STAGE_ACKED) {
                // ACKED: an inbound handshake reported completed, kept only to see its SYN-ACK
                // sent again (accept queue overflow); it never times out.
                reported.push_back(keys[i]);
                reported_old.push_back(values[i].stage == FLOWLAT_STAGE_ACKED ? age >= FLOWLAT_ACKED_KEPT_NS
                                                                               : age >= timeout_ns + reported_kept_ns);
            } else if (age >= timeout_ns) {
                expired.push_back(keys[i]);
            }
        }
        if (err != 0) {
            if (saved_errno != ENOENT) spdlog::warn("sweep the flow table: {}", std::strerror(saved_errno));
            break;
        }
    }
    {
        const std::uint64_t deletes_after_walk = probe_.read_counters().flow_deletes;
        const std::uint64_t in = inserts_before_walk + own_inserts_;
        const std::uint64_t out = deletes_after_walk + own_deletes_ + entries;
        if (in > out && in - out > evictions_total_.load(std::memory_order_relaxed))
            evictions_total_.store(in - out, std::memory_order_relaxed);
    }

    // Deletes the entry if it is still what the walk saw. Atomic with the kernel: whoever
    // deletes an entry reports its outcome. The entry is read again first and left alone when
    // it is no longer wanted (a new SYN put another handshake in its place since the walk), so
    // a live handshake is deleted and put back only if it changes in the microseconds between
    // that read and the delete; before, every entry replaced since the walk (milliseconds) was,
    // and a packet completing it in between found nothing.
    auto take_if = [fd, this](const flowlat_flow_key& key, auto still_wanted) -> std::optional<flowlat_flow> {
        flowlat_flow flow{};
        if (bpf_map_lookup_elem(fd, &key, &flow) != 0 || !still_wanted(flow)) return std::nullopt;
        if (bpf_map_lookup_and_delete_elem(fd, &key, &flow) != 0) return std::nullopt;
        ++own_deletes_;
        if (still_wanted(flow)) return flow;
        if (bpf_map_update_elem(fd, &key, &flow, BPF_NOEXIST) == 0) ++own_inserts_;
        return std::nullopt;
    };

    // Records of reported handshakes are forgotten once the initiator has given up on its
    // retransmissions, or at once when the table is half full: pending handshakes come first.
    const bool pressure = entries > probe_.options().flow_table_size / 2;
    for (std::size_t i = 0; i < reported.size(); ++i) {
        if (!pressure && !reported_old[i]) continue;
        const auto is_record = [](const flowlat_flow& flow) {
            return flow.stage == FLOWLAT_STAGE_REPORTED || flow.stage == FLOWLAT_STAGE_ACKED;
        };
        if (take_if(reported[i], is_record) && entries > 0) --entries;
    }

    std::vector<HandshakeEvent> timeouts;
    for (const auto& key : expired) {
        auto taken = take_if(key, [&](const flowlat_flow& flow) {
            return flow.stage != FLOWLAT_STAGE_REPORTED && flow.stage != FLOWLAT_STAGE_ACKED && now_ns > flow.first_syn_ns &&
                   now_ns - flow.first_syn_ns >= timeout_ns;
        });
        if (!taken) continue;
        flowlat_flow& flow = *taken;
        if (flow.stage == FLOWLAT_STAGE_SYNACK_SENT)
            probe_.release_ack_filter_bucket(flow.ack_filter_bucket, flow.ack_filter_epoch);
        timeouts.push_back(timeout_event(key, flow, now_ns));
        // Kept as reported (unless under pressure, or a new SYN took the tuple meanwhile), so the
        // initiator's further retransmissions of this SYN do not count as new handshakes.
        if (pressure) {
            if (entries > 0) --entries;
        } else {
            flow.stage = FLOWLAT_STAGE_REPORTED;
            if (bpf_map_update_elem(fd, &key, &flow, BPF_NOEXIST) == 0)
                ++own_inserts_;
            else if (entries > 0)
                --entries;
        }
    }
    last_entry_count_ = entries;
    return timeouts;
}

} // namespace flowlat::probe
