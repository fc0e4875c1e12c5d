#include "aggregate/label_policy.hpp"

#include "os/utf8.hpp"

#include <algorithm>
#include <cstring>

namespace flowlat::labels {

std::size_t SeriesKeyHash::operator()(const SeriesKey& key) const noexcept
{
    // Five 64-bit words, each mixed in with a multiply-xorshift step (from splitmix64).
    std::uint64_t words[5];
    std::memcpy(words, &key, sizeof(words));
    std::uint64_t h = 0x9e3779b97f4a7c15ull;
    for (std::uint64_t w : words) {
        h ^= w + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
        h ^= h >> 31;
        h *= 0xbf58476d1ce4e5b9ull;
    }
    h ^= h >> 29;
    return static_cast<std::size_t>(h);
}

std::vector<InterfaceNames::Move> InterfaceNames::set(std::uint32_t ifindex, std::string name)
{
    std::lock_guard lock(mutex_);
    std::vector<Move> moves;
    if (const auto held = names_.find(ifindex); held != names_.end()) {
        if (held->second == name) return moves;
        const std::uint32_t retired = next_retired_key_++;
        names_[retired] = std::move(held->second);
        moves.push_back({ifindex, retired, false});
    }
    for (auto it = names_.begin(); it != names_.end();) {
        if (it->first == ifindex || it->second != name) {
            ++it;
            continue;
        }
        moves.push_back({it->first, ifindex, true});
        // A retired key gets no events; a vanished ifindex keeps its name for stragglers.
        if (it->first >= kFirstRetiredKey) {
            it = names_.erase(it);
        } else {
            ++it;
        }
    }
    names_[ifindex] = std::move(name);
    return moves;
}

std::string InterfaceNames::name(std::uint32_t ifindex) const
{
    std::lock_guard lock(mutex_);
    const auto it = names_.find(ifindex);
    return it != names_.end() ? it->second : std::to_string(ifindex);
}

std::unordered_map<std::uint32_t, std::string> InterfaceNames::copy() const
{
    std::lock_guard lock(mutex_);
    return names_;
}

std::string peer_label(const SeriesKey& key, const std::vector<std::string>& group_names)
{
    switch (key.peer_kind) {
    case PeerKind::group:
        return key.group < group_names.size() ? group_names[key.group] : "group" + std::to_string(key.group);
    case PeerKind::prefix: {
        std::string text = format_address(key.family, key.address);
        if (key.prefix_length == family_bits(key.family)) return text;
        return text + '/' + std::to_string(key.prefix_length);
    }
    case PeerKind::other: break;
    }
    return "other";
}

LabelValues render_labels(const SeriesKey& key, const std::vector<std::string>& group_names,
                          const std::unordered_map<std::uint32_t, std::string>& interfaces,
                          const std::vector<std::string>& workload_names)
{
    LabelValues values;
    const auto it = interfaces.find(key.ifindex);
    // Linux allows any byte but '/', ':' and whitespace in an interface name; Prometheus
    // rejects a scrape with one label value that is not UTF-8.
    values.interface = it != interfaces.end() ? utf8::valid(it->second) : std::to_string(key.ifindex);
    values.direction = to_string(key.direction);
    values.family = to_string(key.family);
    values.peer = peer_label(key, group_names);
    values.port = key.port_other ? "other" : std::to_string(key.port);
    if (key.workload != 0)
        values.workload = key.workload < workload_names.size() ? workload_names[key.workload]
                                                                : "workload" + std::to_string(key.workload);
    return values;
}

LabelPolicy::LabelPolicy(const config::Config& config)
    : folding_(config.peer_folding), workload_(config.workload, config.workload_include)
{
    for (const auto& group : config.peer_groups) {
        const auto id = static_cast<std::uint16_t>(group_names_.size());
        group_names_.push_back(group.name);
        for (const auto& cidr : group.cidrs) {
            const auto length = std::min(cidr.length, family_bits(cidr.family));
            group_prefixes_.push_back(GroupPrefix{Prefix{cidr.family, cidr.address, length}.masked(), id});
        }
    }
    for (std::size_t port = 0; port < labelled_ports_.size(); ++port)
        labelled_ports_[port] = config.ports.labelled(static_cast<std::uint16_t>(port));
}

SeriesKey LabelPolicy::classify(const HandshakeEvent& event) const
{
    SeriesKey key;
    key.ifindex = event.ifindex;
    key.direction = event.direction;
    key.family = event.family;

    const auto port = event.server_port();
    if (labelled_ports_[port]) {
        key.port = port;
    } else {
        key.port_other = 1;
    }

    for (const auto& prefix : group_prefixes_) {
        if (prefix.prefix.contains(event.family, event.peer)) {
            key.peer_kind = PeerKind::group;
            key.group = prefix.group;
            return key;
        }
    }

    const bool v4 = event.family == Family::ipv4;
    const std::uint8_t length = event.direction == Direction::outbound
                                    ? (v4 ? folding_.outbound_ipv4 : folding_.outbound_ipv6)
                                    : (v4 ? folding_.inbound_ipv4 : folding_.inbound_ipv6);
    key.peer_kind = PeerKind::prefix;
    key.prefix_length = std::min(length, family_bits(event.family));
    key.address = mask_address(event.family, event.peer, key.prefix_length);
    return key;
}

} // namespace flowlat::labels
