// Label policy: turns a handshake event into a compact, hashable series key, and a
// series key back into label values. The per-event path (classify) does no string work.
#pragma once

#include "aggregate/workload.hpp"
#include "config/config.hpp"
#include "flow/handshake_event.hpp"
#include "flow/prefix.hpp"

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace flowlat::labels {

enum class PeerKind : std::uint8_t {
    group,  // SeriesKey::group names a peer group
    prefix, // SeriesKey::address/prefix_length is a folded prefix
    other,  // the overflow series (max_series reached)
};

// One label set of the RTT metrics. 40 bytes, no implicit padding, so the defaulted
// equality and the hash agree byte for byte. Unused fields are zero.
struct SeriesKey {
    std::uint32_t ifindex{0};
    std::uint16_t port{0};  // server port; 0 together with port_other
    std::uint16_t group{0}; // peer group id when peer_kind == group
    Direction direction{Direction::outbound};
    Family family{Family::ipv4};
    PeerKind peer_kind{PeerKind::other};
    std::uint8_t prefix_length{0}; // when peer_kind == prefix
    std::uint8_t port_other{0};    // 1: port label is "other"
    std::uint8_t reserved[3]{};
    IpAddress address{}; // masked to prefix_length when peer_kind == prefix
    // The aggregator's interned workload name; 0: no workload label (workload: none).
    std::uint32_t workload{0};
    std::uint8_t reserved_workload[4]{};

    friend bool operator==(const SeriesKey&, const SeriesKey&) = default;
};
static_assert(sizeof(SeriesKey) == 40);

struct SeriesKeyHash {
    std::size_t operator()(const SeriesKey& key) const noexcept;
};

// Label values of one series, in the order of kLabelNames.
struct LabelValues {
    std::string interface;
    std::string direction;
    std::string family;
    std::string peer;
    std::string port;
    std::string workload; // empty: no workload label

    friend auto operator<=>(const LabelValues&, const LabelValues&) = default;
};
inline constexpr const char* kLabelNames[] = {"interface", "direction", "family", "peer", "port", "workload"};

// ifindex -> interface name. The daemon sets names on attach; a name stays known after
// the interface vanishes, so series created before keep their label. Thread safe.
class InterfaceNames {
public:
    // Series keyed by `from` must be moved to `to`, so one label set is one series; with
    // `redirect`, later events of `from` (timeouts of handshakes pending on a vanished
    // interface) are counted under `to` as well.
    struct Move {
        std::uint32_t from;
        std::uint32_t to;
        bool redirect;
        friend bool operator==(const Move&, const Move&) = default;
    };

    // Records the name of an attached interface and returns the series moves that keep
    // every rendered label set backed by exactly one key, so expiry of one part can never
    // make an exported counter go down:
    //  - an interface re-created under a known name (new ifindex): the old ifindex's
    //    series move to the new one and continue;
    //  - an ifindex reused under another name: its old series move to a retired key
    //    (outside the kernel's ifindex range) that keeps the old name.
    std::vector<Move> set(std::uint32_t ifindex, std::string name);

    InterfaceNames() = default;
    // A frozen copy, e.g. taken together with an aggregator snapshot for one scrape.
    explicit InterfaceNames(std::unordered_map<std::uint32_t, std::string> names) : names_(std::move(names)) {}
    std::string name(std::uint32_t ifindex) const; // unknown: the ifindex in decimal
    std::unordered_map<std::uint32_t, std::string> copy() const;

    static constexpr std::uint32_t kFirstRetiredKey = 0x80000000u; // ifindex is a positive int

private:
    mutable std::mutex mutex_;
    std::unordered_map<std::uint32_t, std::string> names_;
    std::uint32_t next_retired_key_{kFirstRetiredKey};
};

// Peer label text: group name, "a.b.c.d" for /32, full IPv6 for /128, else "net/len",
// "other" for the overflow series. `group_names` is indexed by SeriesKey::group.
std::string peer_label(const SeriesKey& key, const std::vector<std::string>& group_names);

// `workload_names` is indexed by SeriesKey::workload (the aggregator's snapshot).
LabelValues render_labels(const SeriesKey& key, const std::vector<std::string>& group_names,
                          const std::unordered_map<std::uint32_t, std::string>& interfaces,
                          const std::vector<std::string>& workload_names = {});

// Built once per configuration (startup or reload); classify() is const and cheap.
class LabelPolicy {
public:
    explicit LabelPolicy(const config::Config& config);

    // Group ids in the returned key index group_names().
    SeriesKey classify(const HandshakeEvent& event) const;

    const std::vector<std::string>& group_names() const { return group_names_; }

    // The workload label's mode and include patterns; classify() leaves SeriesKey::workload
    // 0, the aggregator interns the name (it caches per cgroup id).
    const workload::Naming& workload_naming() const { return workload_; }

private:
    struct GroupPrefix {
        Prefix prefix; // masked
        std::uint16_t group;
    };

    std::vector<GroupPrefix> group_prefixes_; // configuration order: first match wins
    std::vector<std::string> group_names_;
    config::PeerFolding folding_;
    std::bitset<65536> labelled_ports_; // PortSelection::labelled(), precomputed
    workload::Naming workload_;
};

} // namespace flowlat::labels
