// flowlatd's configuration: defaults and validate(), the rules every Config obeys whether it
// came from a file (yaml_parser.cpp), from the embedded default or from command-line flags.
// Every check is O(n log n) or better in the size of the file: a reload of a large file
// must stay short (docs/configuration.md, "Limits").
#include "config/config.hpp"

#include "config/detail.hpp"
#include "config/duration.hpp"
#include "os/logging.hpp"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <tuple>
#include <map>
#include <unordered_map>
#include <utility>
#include <variant>

namespace flowlat::config {

namespace {

constexpr std::string_view kEmbeddedSource = "<embedded default>";
constexpr std::size_t kMaxBuckets = 64;
// Bucket bounds are kept in whole nanoseconds; a handshake cannot last longer than the
// longest handshake_timeout, so a bound past an hour could never be reached.
constexpr double kMinBucketSeconds = 1e-6;
constexpr double kMaxBucketSeconds = 3600;
constexpr std::chrono::hours kMaxSeriesTtl{24 * 366};
constexpr std::uint64_t kMinRingBufferSize = 4096; // raised to the page size when larger
constexpr std::chrono::milliseconds kMinHandshakeTimeout{100};
constexpr std::chrono::milliseconds kMaxHandshakeTimeout{10 * 60 * 1000};
constexpr std::size_t kMaxInterfaceName = 15; // IFNAMSIZ - 1

} // namespace

// ---------------------------------------------------------------------------------------
// Small text helpers, shared with the parser

namespace detail {

std::string quote(std::string_view text)
{
    std::string out = "\"";
    for (const char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            static constexpr char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[(c >> 4) & 0xf];
            out += hex[c & 0xf];
        } else {
            out += c;
        }
    }
    return out + "\"";
}

std::string join_path(const std::string& parent, std::string_view key)
{
    return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

std::string index_path(const std::string& parent, std::size_t index)
{
    return parent + "[" + std::to_string(index) + "]";
}

std::optional<long long> parse_integer(std::string_view text)
{
    long long value{};
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return value;
}

std::optional<double> parse_number(std::string_view text)
{
    double value{};
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    if (!std::isfinite(value)) return std::nullopt;
    return value;
}

std::optional<std::string> check_range(long long value, long long min, std::optional<long long> max)
{
    if (value >= min && (!max || value <= *max)) return std::nullopt;
    if (!max) return "must be at least " + std::to_string(min) + ", got " + std::to_string(value);
    return "must be between " + std::to_string(min) + " and " + std::to_string(*max) + ", got " +
           std::to_string(value);
}

} // namespace detail

namespace {

using namespace detail;

std::string format_size(std::uint64_t bytes)
{
    static constexpr std::pair<std::uint64_t, std::string_view> units[] = {
        {1ULL << 30, "GiB"}, {1ULL << 20, "MiB"}, {1ULL << 10, "KiB"}};
    for (const auto& [factor, suffix] : units)
        if (bytes != 0 && bytes % factor == 0) return std::to_string(bytes / factor) + std::string(suffix);
    return std::to_string(bytes);
}

std::uint64_t ring_buffer_minimum()
{
    const long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? std::max<std::uint64_t>(kMinRingBufferSize, static_cast<std::uint64_t>(page))
                    : kMinRingBufferSize;
}

// ---------------------------------------------------------------------------------------
// Addresses

} // namespace

std::variant<Cidr, std::string> detail::parse_cidr_keeping_host_bits(std::string_view text)
{
    const auto slash = text.find('/');
    if (slash == std::string_view::npos) {
        return "missing prefix length in " + quote(text) + " (write " + std::string(text) +
               (text.find(':') == std::string_view::npos ? "/32" : "/128") +
               " for a single address)";
    }
    const std::string address(text.substr(0, slash));
    const std::string_view length_text = text.substr(slash + 1);

    Cidr cidr;
    cidr.family = address.find(':') == std::string::npos ? Family::ipv4 : Family::ipv6;
    const int af = cidr.family == Family::ipv4 ? AF_INET : AF_INET6;
    if (inet_pton(af, address.c_str(), cidr.address.data()) != 1)
        return quote(address) + " is not an IPv4 or IPv6 address";

    const auto length = parse_integer(length_text);
    const bool digits_only = std::all_of(length_text.begin(), length_text.end(),
                                         [](char c) { return c >= '0' && c <= '9'; });
    if (!length || !digits_only || length_text.size() > 3 || *length > family_bits(cidr.family)) {
        return "prefix length " + quote(length_text) + " is not in 0-" +
               std::to_string(family_bits(cidr.family)) + " for " +
               std::string(cidr.family == Family::ipv4 ? "IPv4" : "IPv6");
    }
    cidr.length = static_cast<std::uint8_t>(*length);
    return cidr;
}

namespace {

std::optional<std::string> check_hostname(std::string_view host)
{
    if (host.size() > 253) return "host name is longer than 253 characters";
    std::size_t start = 0;
    while (start <= host.size()) {
        const auto dot = std::min(host.find('.', start), host.size());
        const std::string_view label = host.substr(start, dot - start);
        const bool ok = !label.empty() && label.size() <= 63 && label.front() != '-' &&
                        label.back() != '-' &&
                        std::all_of(label.begin(), label.end(), [](char c) {
                            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                   (c >= '0' && c <= '9') || c == '-';
                        });
        if (!ok) return quote(host) + " is not a valid host name";
        start = dot + 1;
    }
    return std::nullopt;
}

std::optional<std::uint16_t> parse_port(std::string_view port)
{
    const auto value = parse_integer(port);
    const bool digits_only = !port.empty() && std::all_of(port.begin(), port.end(), [](char c) {
        return c >= '0' && c <= '9';
    });
    if (!value || !digits_only || *value > 65535) return std::nullopt;
    return static_cast<std::uint16_t>(*value);
}

std::string bad_port(std::string_view port)
{
    return "port " + quote(port) + " is not in 0-65535";
}

std::optional<std::string> check_listen_address(std::string_view text)
{
    auto parsed = parse_listen_address(text);
    if (auto* problem = std::get_if<std::string>(&parsed)) return std::move(*problem);
    return std::nullopt;
}

// ---------------------------------------------------------------------------------------
// Checks on single values

std::optional<std::string> check_interface(std::string_view name)
{
    if (name.empty()) return "interface name must not be empty";
    if (name == "." || name == "..") return quote(name) + " is not a valid interface name";
    for (const char c : name) {
        if (c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c)))
            return quote(name) + " contains '/', ':' or white space, which interface names cannot";
    }
    const bool pattern = name.find_first_of("*?[") != std::string_view::npos;
    if (!pattern && name.size() > kMaxInterfaceName)
        return quote(name) + " is longer than 15 characters, the kernel's limit for interface names";
    return std::nullopt;
}

std::optional<std::string> check_group_name(std::string_view name)
{
    const bool valid_chars = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.' || c == '-';
    });
    if (!valid_chars)
        return "peer group name " + quote(name) + " may only contain A-Z, a-z, 0-9, '_', '.' and '-'";
    if (name == "other") return "peer group name \"other\" is reserved for unlabelled peers";
    std::array<std::uint8_t, 16> buffer{};
    const std::string copy(name);
    if (inet_pton(AF_INET, copy.c_str(), buffer.data()) == 1)
        return "peer group name " + quote(name) +
               " is an IP address, which would read like the folded address of an ungrouped peer";
    return std::nullopt;
}

std::optional<std::string> check_log_level(std::string_view level)
{
    if (logging::is_level(level)) return std::nullopt;
    std::string expected;
    for (std::size_t i = 0; i < logging::level_names.size(); ++i) {
        if (i > 0) expected += i + 1 == logging::level_names.size() ? " or " : ", ";
        expected += logging::level_names[i];
    }
    return "unknown log level " + quote(level) + " (expected " + expected + ")";
}

std::optional<std::string> check_workload_pattern(const std::string& pattern)
{
    if (pattern.empty()) return std::string("pattern must not be empty");
    if (pattern.size() > 256) return "pattern is longer than 256 characters";
    for (const char c : pattern)
        if (static_cast<unsigned char>(c) < 0x20) return quote(pattern) + " contains a control character";
    return std::nullopt;
}

std::optional<std::string> check_log_format(std::string_view format)
{
    if (logging::parse_format(format)) return std::nullopt;
    return "unknown log format " + quote(format) + " (expected logfmt or json)";
}

} // namespace

std::optional<std::string> detail::check_ring_buffer_size(std::uint64_t bytes)
{
    const std::uint64_t minimum = ring_buffer_minimum();
    if (bytes < minimum)
        return "must be at least the page size (" + std::to_string(minimum) + " bytes), got " +
               format_size(bytes);
    if (bytes > kMaxRingBufferSize) return "must be at most 1GiB, got " + format_size(bytes);
    if ((bytes & (bytes - 1)) != 0) return "must be a power of two, got " + format_size(bytes);
    return std::nullopt;
}

namespace {

// Each value's own problem, else "duplicate of" its first earlier copy.
template <typename T, typename Check>
void check_list(std::vector<Diagnostic>& out, const std::string& source, const std::string& path,
                const std::vector<T>& values, Check check)
{
    std::map<T, std::size_t> first; // value -> index of its first copy
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (auto problem = check(values[i])) {
            out.push_back(Diagnostic{source, 0, 0, index_path(path, i), *problem});
            continue;
        }
        const auto [copy, inserted] = first.emplace(values[i], i);
        if (!inserted)
            out.push_back(Diagnostic{source, 0, 0, index_path(path, i), "duplicate of " + index_path(path, copy->second)});
    }
}

// Every peer-group CIDR, sorted, so that each one finds the first CIDR of an earlier group
// that overlaps it in O(log n) per prefix length in use, not by a scan of every earlier group.
// Sorted by (family, address, length), the CIDRs inside a prefix P directly follow P's
// address, up to P's last address; the CIDRs that contain P are P masked to each shorter
// length. A segment tree gives the first in configuration order within such a range.
class OverlapIndex {
public:
    struct Position {
        std::size_t group;
        std::size_t item;
    };

    explicit OverlapIndex(const std::vector<PeerGroup>& groups)
    {
        for (std::size_t g = 0; g < groups.size(); ++g) {
            for (std::size_t i = 0; i < groups[g].cidrs.size(); ++i) {
                const Cidr& cidr = groups[g].cidrs[i];
                if (cidr.length > family_bits(cidr.family)) continue; // reported, contains nothing
                sorted_.push_back(Entry{cidr.masked(), order_of(g, i)});
                lengths_[family_slot(cidr.family)].push_back(cidr.length);
            }
        }
        std::sort(sorted_.begin(), sorted_.end(),
                  [](const Entry& a, const Entry& b) { return std::tie(a.prefix, a.order) < std::tie(b.prefix, b.order); });
        for (auto& lengths : lengths_) {
            std::sort(lengths.begin(), lengths.end());
            lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
        }
        tree_.assign(2 * sorted_.size(), kNone);
        for (std::size_t i = 0; i < sorted_.size(); ++i) tree_[sorted_.size() + i] = sorted_[i].order;
        for (std::size_t i = sorted_.size(); i-- > 1;) tree_[i] = std::min(tree_[2 * i], tree_[2 * i + 1]);
    }

    // The first CIDR in configuration order, of a group before `group`, that overlaps
    // `cidr` (which has no host bits set).
    std::optional<Position> first_earlier_overlap(const Cidr& cidr, std::size_t group) const
    {
        const std::uint8_t bits = family_bits(cidr.family);
        // Inside: from cidr's first address to its last (every host bit set).
        Cidr last = cidr;
        for (std::uint8_t bit = cidr.length; bit < bits; ++bit)
            last.address[bit / 8u] = static_cast<std::uint8_t>(last.address[bit / 8u] | (0x80u >> (bit % 8u)));
        last.length = 255;
        const auto begin = std::lower_bound(sorted_.begin(), sorted_.end(), Cidr{cidr.family, cidr.address, 0}, before);
        const auto end = std::upper_bound(begin, sorted_.end(), last, after);
        std::uint64_t best = first_in(begin, end);
        // Containing: cidr masked to each shorter length that some CIDR has.
        for (const std::uint8_t length : lengths_[family_slot(cidr.family)]) {
            if (length >= cidr.length) break;
            const Cidr outer = Cidr{cidr.family, cidr.address, length}.masked();
            const auto from = std::lower_bound(sorted_.begin(), sorted_.end(), outer, before);
            const auto to = std::upper_bound(from, sorted_.end(), outer, after);
            best = std::min(best, first_in(from, to));
        }
        if (best == kNone || (best >> 32) >= group) return std::nullopt;
        return Position{static_cast<std::size_t>(best >> 32), static_cast<std::size_t>(best & 0xffffffffu)};
    }

private:
    struct Entry {
        Cidr prefix; // masked
        std::uint64_t order; // group << 32 | item: configuration order
    };
    static constexpr std::uint64_t kNone = std::numeric_limits<std::uint64_t>::max();

    static std::uint64_t order_of(std::size_t group, std::size_t item) { return std::uint64_t{group} << 32 | item; }
    static std::size_t family_slot(Family family) { return family == Family::ipv4 ? 0 : 1; }
    static bool before(const Entry& entry, const Cidr& prefix) { return entry.prefix < prefix; }
    static bool after(const Cidr& prefix, const Entry& entry) { return prefix < entry.prefix; }

    // The smallest order in [begin, end).
    std::uint64_t first_in(std::vector<Entry>::const_iterator begin, std::vector<Entry>::const_iterator end) const
    {
        std::uint64_t best = kNone;
        std::size_t low = static_cast<std::size_t>(begin - sorted_.begin()) + sorted_.size();
        std::size_t high = static_cast<std::size_t>(end - sorted_.begin()) + sorted_.size();
        for (; low < high; low /= 2, high /= 2) {
            if (low & 1u) best = std::min(best, tree_[low++]);
            if (high & 1u) best = std::min(best, tree_[--high]);
        }
        return best;
    }

    std::vector<Entry> sorted_;
    std::vector<std::uint64_t> tree_; // tree_[n + i] = sorted_[i].order; tree_[i] = min of its two children
    std::array<std::vector<std::uint8_t>, 2> lengths_; // the lengths in use, per family, ascending
};

void check_peer_groups(const Config& config, const std::function<void(std::string, std::string)>& add)
{
    std::size_t total = 0;
    for (const auto& group : config.peer_groups) total += group.cidrs.size();
    if (total > kMaxPeerCidrs) {
        // Checked before anything else, so that no check ever runs on more.
        add("peer_groups", "list " + std::to_string(total) + " CIDRs in total, at most " +
                               std::to_string(kMaxPeerCidrs) + " are allowed");
        return;
    }
    const OverlapIndex index(config.peer_groups);
    std::unordered_map<std::string_view, std::size_t> names; // name -> groups with it so far
    for (std::size_t g = 0; g < config.peer_groups.size(); ++g) {
        const PeerGroup& group = config.peer_groups[g];
        const std::string path = join_path("peer_groups", group.name);
        if (auto problem = check_group_name(group.name)) add(path, *problem);
        // Once per earlier group of the same name.
        for (std::size_t copies = names[group.name]++; copies > 0; --copies) add(path, "duplicate peer group name");
        if (group.cidrs.empty()) add(path, "must list at least one CIDR");
        std::map<Cidr, std::size_t> first; // CIDR -> index of its first copy in this group
        for (std::size_t i = 0; i < group.cidrs.size(); ++i) {
            const Cidr& cidr = group.cidrs[i];
            const std::string item = index_path(path, i);
            if (cidr.length > family_bits(cidr.family)) {
                add(item, "prefix length " + std::to_string(cidr.length) + " is too long");
                continue;
            }
            if (cidr.masked() != cidr) {
                add(item, cidr.to_string() + " has host bits set (did you mean " + cidr.masked().to_string() + "?)");
                continue;
            }
            if (const auto [copy, inserted] = first.emplace(cidr, i); !inserted) {
                add(item, "duplicate of " + index_path(path, copy->second));
                continue;
            }
            if (const auto earlier = index.first_earlier_overlap(cidr, g)) {
                const PeerGroup& other = config.peer_groups[earlier->group];
                add(item, cidr.to_string() + " overlaps " + other.cidrs[earlier->item].to_string() + " (" +
                              index_path(join_path("peer_groups", other.name), earlier->item) +
                              "); a peer can belong to only one group");
            }
        }
    }
}

} // namespace

// ---------------------------------------------------------------------------------------
// Public functions

std::variant<ListenAddress, std::string> parse_listen_address(std::string_view text)
{
    const std::string hint = " (expected HOST:PORT such as :10435 or 127.0.0.1:10435)";
    if (text.empty()) return "must not be empty" + hint;
    ListenAddress out;
    if (text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos) return "missing \"]\" in " + quote(text) + hint;
        out.host = std::string(text.substr(1, close - 1));
        out.ipv6 = true;
        std::array<std::uint8_t, 16> buffer{};
        if (inet_pton(AF_INET6, out.host.c_str(), buffer.data()) != 1)
            return quote(out.host) + " is not an IPv6 address" + hint;
        if (close + 1 >= text.size() || text[close + 1] != ':') return "missing port in " + quote(text) + hint;
        const auto port = parse_port(text.substr(close + 2));
        if (!port) return bad_port(text.substr(close + 2));
        out.port = *port;
        return out;
    }
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return "missing port in " + quote(text) + hint;
    out.host = std::string(text.substr(0, colon));
    if (out.host.find(':') != std::string::npos)
        return "an IPv6 address needs brackets, e.g. [" + out.host + "]:" + std::string(text.substr(colon + 1));
    if (!out.host.empty()) {
        const bool numeric = std::all_of(out.host.begin(), out.host.end(), [](char c) {
            return (c >= '0' && c <= '9') || c == '.';
        });
        if (numeric) {
            std::array<std::uint8_t, 4> buffer{};
            if (inet_pton(AF_INET, out.host.c_str(), buffer.data()) != 1)
                return quote(out.host) + " is not an IPv4 address";
        } else if (auto problem = check_hostname(out.host)) {
            return std::move(*problem);
        }
    }
    const auto port = parse_port(text.substr(colon + 1));
    if (!port) return bad_port(text.substr(colon + 1));
    out.port = *port;
    return out;
}

std::optional<Cidr> parse_cidr(std::string_view text)
{
    auto parsed = parse_cidr_keeping_host_bits(text);
    if (auto* cidr = std::get_if<Cidr>(&parsed)) return cidr->masked();
    return std::nullopt;
}

bool PortSelection::labelled(std::uint16_t port) const
{
    if (port == 0) return false;
    if (std::find(include.begin(), include.end(), port) != include.end()) return true;
    return all_outside_ephemeral && (port < ephemeral_low || port > ephemeral_high);
}

PortRange system_ephemeral_range(const std::string& path)
{
    std::ifstream in(path);
    long long low = 0;
    long long high = 0;
    if (in >> low >> high && low >= 1 && low <= high && high <= 65535)
        return PortRange{static_cast<std::uint16_t>(low), static_cast<std::uint16_t>(high)};
    return PortRange{};
}

std::vector<double> default_buckets()
{
    // 1-2.5-5 steps: 19 boundaries from a handshake inside a datacenter (10 µs) up to a
    // SYN retransmitted several times (seconds). bench/bucket_fidelity.py has the quantile
    // errors that chose them (docs/metrics.md, "Buckets").
    return {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
            0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
}

Config embedded_default()
{
    Config config;
    config.source = std::string(kEmbeddedSource);
    config.buckets = default_buckets();
    const PortRange range = system_ephemeral_range();
    config.ports.ephemeral_low = range.low;
    config.ports.ephemeral_high = range.high;
    return config;
}

std::string Diagnostic::to_string() const
{
    std::string out = file;
    if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
    out += ": ";
    if (!key.empty()) out += key + ": ";
    return out + message;
}

std::optional<std::uint64_t> parse_size(std::string_view text)
{
    static constexpr std::pair<std::string_view, std::uint64_t> suffixes[] = {
        {"KiB", 1ULL << 10}, {"MiB", 1ULL << 20}, {"GiB", 1ULL << 30}};
    std::uint64_t factor = 1;
    for (const auto& [suffix, value] : suffixes) {
        if (text.ends_with(suffix)) {
            text.remove_suffix(suffix.size());
            factor = value;
            break;
        }
    }
    const bool digits_only = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
        return c >= '0' && c <= '9';
    });
    if (!digits_only) return std::nullopt;
    std::uint64_t number{};
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (ec != std::errc{} || number > std::numeric_limits<std::uint64_t>::max() / factor) return std::nullopt;
    return number * factor;
}

std::string_view to_string(WorkloadMode mode)
{
    switch (mode) {
    case WorkloadMode::none: return "none";
    case WorkloadMode::cgroup: return "cgroup";
    case WorkloadMode::unit: return "unit";
    }
    return "none";
}

std::optional<WorkloadMode> parse_workload_mode(std::string_view text)
{
    for (const auto mode : {WorkloadMode::none, WorkloadMode::cgroup, WorkloadMode::unit})
        if (text == to_string(mode)) return mode;
    return std::nullopt;
}

std::vector<Diagnostic> validate(const Config& config)
{
    std::vector<Diagnostic> out;
    const std::string& source = config.source;
    auto add = [&](std::string key, std::string message) {
        out.push_back(Diagnostic{source, 0, 0, std::move(key), std::move(message)});
    };

    check_list(out, source, "interfaces", config.interfaces,
               [](const std::string& name) { return check_interface(name); });

    if (config.listen_addresses.empty()) add("web.listen_addresses", "must list at least one address");
    check_list(out, source, "web.listen_addresses", config.listen_addresses,
               [](const std::string& address) { return check_listen_address(address); });

    if (auto problem = check_log_level(config.log_level)) add("log.level", *problem);
    if (auto problem = check_log_format(config.log_format)) add("log.format", *problem);

    if (config.buckets.empty())
        add("buckets", "must list at least one boundary (leave the key out for the defaults)");
    if (config.buckets.size() > kMaxBuckets)
        add("buckets", "must list at most " + std::to_string(kMaxBuckets) + " boundaries, got " +
                           std::to_string(config.buckets.size()));
    for (std::size_t i = 0; i < config.buckets.size(); ++i) {
        const double bound = config.buckets[i];
        if (!std::isfinite(bound) || bound < kMinBucketSeconds || bound > kMaxBucketSeconds) {
            char text[32];
            std::snprintf(text, sizeof(text), "%g", bound);
            add(index_path("buckets", i), std::string("must be between 0.000001 and 3600 seconds, got ") + text);
        } else if (i > 0 && std::isfinite(config.buckets[i - 1]) &&
                   std::llround(bound * 1e9) <= std::llround(config.buckets[i - 1] * 1e9)) {
            add(index_path("buckets", i), "must be greater than the boundary before it (at nanosecond resolution)");
        }
    }

    check_peer_groups(config, add);

    const PeerFolding& folding = config.peer_folding;
    const std::pair<const char*, std::pair<std::uint8_t, int>> prefixes[] = {
        {"peer_prefix.outbound.ipv4", {folding.outbound_ipv4, 32}},
        {"peer_prefix.outbound.ipv6", {folding.outbound_ipv6, 128}},
        {"peer_prefix.inbound.ipv4", {folding.inbound_ipv4, 32}},
        {"peer_prefix.inbound.ipv6", {folding.inbound_ipv6, 128}},
    };
    for (const auto& [key, value] : prefixes)
        if (auto problem = check_range(value.first, 0, value.second)) add(key, *problem);

    check_list(out, source, "ports.include", config.ports.include,
               [](std::uint16_t port) { return check_range(port, 1, 65535); });
    if (auto problem = check_range(config.ports.ephemeral_low, 1, 65535))
        add("ports.ephemeral_range[0]", *problem);
    if (config.ports.ephemeral_low > config.ports.ephemeral_high)
        add("ports.ephemeral_range", "low end " + std::to_string(config.ports.ephemeral_low) +
                                         " is above high end " + std::to_string(config.ports.ephemeral_high));

    if (config.max_series < 1 || config.max_series > static_cast<std::size_t>(kMaxSeries))
        add("max_series", "must be between 1 and " + std::to_string(kMaxSeries) + ", got " +
                              std::to_string(config.max_series));
    if (config.series_ttl.count() < 0) add("series_ttl", "must not be negative (0 means never)");
    if (config.series_ttl > kMaxSeriesTtl)
        add("series_ttl", "must be at most 366d (0 means never), got " + format_duration(config.series_ttl));
    if (config.workload_include.size() > kMaxWorkloadPatterns)
        add("workload_include", "must list at most " + std::to_string(kMaxWorkloadPatterns) + " patterns, got " +
                                    std::to_string(config.workload_include.size()));
    else
        check_list(out, source, "workload_include", config.workload_include, check_workload_pattern);
    if (config.handshake_timeout < kMinHandshakeTimeout || config.handshake_timeout > kMaxHandshakeTimeout)
        add("handshake_timeout", "must be between " + format_duration(kMinHandshakeTimeout) + " and " +
                                     format_duration(kMaxHandshakeTimeout) + ", got " +
                                     format_duration(config.handshake_timeout));
    if (auto problem = check_range(config.flow_table_size, 1, kMaxFlowTableSize)) add("flow_table_size", *problem);
    if (auto problem = check_ring_buffer_size(config.ring_buffer_size)) add("ring_buffer_size", *problem);
    return out;
}


} // namespace flowlat::config
