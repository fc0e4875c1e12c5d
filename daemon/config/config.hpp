// flowlatd's configuration as plain structs, plus validation. The structs are the contract
// for every other module; the YAML file is read by config/yaml_parser.hpp.
#pragma once

#include "flowlat.h" // the probe's default bounds
#include "flow/handshake_event.hpp"
#include "flow/prefix.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace flowlat::config {

// Bounds that keep reading and checking any file short (docs/configuration.md, "Limits"):
// a reload is parsed off the event loop, but a huge or endless input must still end.
// Only regular files up to this size are read.
inline constexpr std::size_t kMaxConfigFileBytes = 4u << 20;
// The CIDRs of all peer groups together, counted after YAML alias expansion: 1,000 groups
// that each alias one 1,000-CIDR list are a million CIDRs in a 27 KB file.
inline constexpr std::size_t kMaxPeerCidrs = 100'000;

// An address prefix such as 10.0.0.0/8 or fd00::/8. `address` is masked to `length` bits
// (validate() reports a CIDR whose host bits are set).
using Cidr = Prefix;

// Parses "10.1.2.3/24" or "fd00::/8" (host bits are cleared); nullopt on error.
// The prefix length is required. An IPv4 prefix never contains an IPv6 address, not even
// an IPv4-mapped one: contains() compares the family first.
std::optional<Cidr> parse_cidr(std::string_view text);

// A listen address, HOST:PORT: an empty host (every address), an IPv4 literal, a host name,
// or [IPv6].
struct ListenAddress {
    std::string host; // without the brackets of an IPv6 literal
    std::uint16_t port{0};
    bool ipv6{false};
};

// The address, or why `text` is not one ("missing port in ...").
std::variant<ListenAddress, std::string> parse_listen_address(std::string_view text);

struct PeerGroup {
    std::string name;
    std::vector<Cidr> cidrs;
};

// Prefix lengths that peers outside every group are folded to.
struct PeerFolding {
    std::uint8_t outbound_ipv4{32};
    std::uint8_t outbound_ipv6{128};
    std::uint8_t inbound_ipv4{24};
    std::uint8_t inbound_ipv6{48};
};

// Which server ports keep their own label; every other port becomes "other".
struct PortSelection {
    std::vector<std::uint16_t> include;           // always labelled
    bool all_outside_ephemeral{true};             // and every port outside the ephemeral range
    std::uint16_t ephemeral_low{32768};           // default from /proc/sys/net/ipv4/ip_local_port_range
    std::uint16_t ephemeral_high{60999};

    // True for an included port, or (when all_outside_ephemeral) a port outside
    // [ephemeral_low, ephemeral_high]. Port 0 is never a server port: always false.
    bool labelled(std::uint16_t port) const;
};

struct PortRange {
    std::uint16_t low{32768};
    std::uint16_t high{60999};
};

// The kernel's ephemeral port range as read from `path`; 32768-60999 when the file is
// missing or does not hold two ports LOW <= HIGH.
PortRange system_ephemeral_range(
    const std::string& path = "/proc/sys/net/ipv4/ip_local_port_range");

// What the `workload` label holds (docs/configuration.md, "workload"): nothing (no label),
// the cgroup path of the local socket, or the unit, container or pod that path folds to.
enum class WorkloadMode : std::uint8_t { none, cgroup, unit };
std::string_view to_string(WorkloadMode mode);
std::optional<WorkloadMode> parse_workload_mode(std::string_view text);

// Patterns in workload_include, counted together: each is tried on every new workload.
inline constexpr std::size_t kMaxWorkloadPatterns = 1000;

struct Config {
    std::string source; // file path, or "<embedded default>"
    std::vector<std::string> interfaces; // names or globs; empty: the default route's interfaces
    std::vector<std::string> listen_addresses{":10435"};
    std::vector<double> buckets;         // seconds, strictly increasing; see default_buckets()
    std::vector<PeerGroup> peer_groups;
    PeerFolding peer_folding;
    PortSelection ports;
    std::size_t max_series{2000};
    std::chrono::seconds series_ttl{3600}; // 0: never expire
    WorkloadMode workload{WorkloadMode::none};
    std::vector<std::string> workload_include; // fnmatch(3) patterns; empty: every workload
    std::chrono::milliseconds handshake_timeout{10000};
    std::uint32_t flow_table_size{FLOWLAT_DEFAULT_FLOW_TABLE_SIZE};
    std::uint32_t ring_buffer_size{FLOWLAT_DEFAULT_RING_BUFFER_SIZE};
    std::string log_level{"info"};
    std::string log_format{"logfmt"}; // or "json"; stderr only, the journal keeps its fields
};

// Roughly exponential from 50 µs to 10 s (1, 2.5, 5 in each decade: 17 bounds), written as
// exact decimals, so every bound prints as the number an operator would type.
std::vector<double> default_buckets();

// The configuration used when no file exists and none was named.
Config embedded_default();

struct Diagnostic {
    std::string file;
    int line{0};   // 1-based; 0 when unknown
    int column{0}; // 1-based; 0 when unknown
    std::string key; // dotted path, e.g. "peer_groups.db[1]"
    std::string message;

    // "file:line:column: key: message"; ":line:column" is left out when line is 0 and
    // "key: " when key is empty (e.g. "/etc/flowlatd.yaml: cannot read: No such file...").
    std::string to_string() const;
};

struct ParseResult {
    std::optional<Config> config; // set only when diagnostics is empty
    std::vector<Diagnostic> diagnostics;
};

// Checks a Config that did not come from a file, or was changed after parsing (command-line
// flags override file keys): call it after applying overrides. Diagnostics carry
// config.source and the key, with line 0. The parser runs the same checks, with positions.
std::vector<Diagnostic> validate(const Config& config);

// A byte count: digits with an optional KiB, MiB or GiB suffix ("4096", "4MiB").
std::optional<std::uint64_t> parse_size(std::string_view text);

} // namespace flowlat::config
