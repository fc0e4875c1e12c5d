// Strict YAML parsing and validation of flowlatd's configuration.
//
// Two passes. The parser walks the YAML tree and turns each value into its field's type,
// reporting unknown and duplicate keys, wrong types and values that do not fit; it records
// the position of every key path it sees. validate() then checks the meaning of the whole
// Config (ranges, order, overlaps, address syntax) and the parser maps each of its
// diagnostics back to a position. A Config built from flags goes through the same
// validate(), so the rules live in one place.
#include "config/config.hpp"

#include "config/duration.hpp"

#include <yaml-cpp/yaml.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <map>
#include <utility>
#include <variant>

namespace flowlat::config {

namespace {

constexpr std::string_view kEmbeddedSource = "<embedded default>";
constexpr std::size_t kMaxFileBytes = 1u << 20;
constexpr std::size_t kMaxBuckets = 64;
// Bucket bounds are kept in whole nanoseconds; a handshake cannot last longer than the
// longest handshake_timeout, so a bound past an hour could never be reached.
constexpr double kMinBucketSeconds = 1e-6;
constexpr double kMaxBucketSeconds = 3600;
// Each series holds two histograms; a million of them is already gigabytes of exposition.
constexpr long long kMaxSeries = 1'000'000;
constexpr std::chrono::hours kMaxSeriesTtl{24 * 366};
constexpr long long kMaxFlowTableSize = 1LL << 24;
constexpr std::uint64_t kMinRingBufferSize = 4096; // raised to the page size when larger
constexpr std::uint64_t kMaxRingBufferSize = 1ULL << 30;
constexpr std::chrono::milliseconds kMinHandshakeTimeout{100};
constexpr std::chrono::milliseconds kMaxHandshakeTimeout{10 * 60 * 1000};
constexpr std::size_t kMaxInterfaceName = 15; // IFNAMSIZ - 1
constexpr std::array<std::string_view, 7> kLogLevels{"trace", "debug",    "info", "warn",
                                                     "error", "critical", "off"};

// ---------------------------------------------------------------------------------------
// Small text helpers

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

// "must be between 1 and 10, got 0", or "must be at least 1, got 0" when max is empty.
std::optional<std::string> check_range(long long value, long long min, std::optional<long long> max)
{
    if (value >= min && (!max || value <= *max)) return std::nullopt;
    if (!max) return "must be at least " + std::to_string(min) + ", got " + std::to_string(value);
    return "must be between " + std::to_string(min) + " and " + std::to_string(*max) + ", got " +
           std::to_string(value);
}

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

std::uint8_t family_bits(Family family)
{
    return family == Family::ipv4 ? 32 : 128;
}

Cidr masked(Cidr cidr)
{
    for (std::size_t i = 0; i < cidr.address.size(); ++i) {
        const int keep = std::clamp(static_cast<int>(cidr.length) - static_cast<int>(i) * 8, 0, 8);
        cidr.address[i] = static_cast<std::uint8_t>(cidr.address[i] & (0xff00u >> keep));
    }
    return cidr;
}

bool overlaps(const Cidr& a, const Cidr& b)
{
    return a.contains(b.family, b.address) || b.contains(a.family, a.address);
}

// Like parse_cidr() but keeps host bits (so validate() can point at them) and says why
// the text is not a prefix.
std::variant<Cidr, std::string> parse_cidr_keeping_host_bits(std::string_view text)
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

std::optional<std::string> check_port_text(std::string_view port)
{
    const auto value = parse_integer(port);
    const bool digits_only = !port.empty() && std::all_of(port.begin(), port.end(), [](char c) {
        return c >= '0' && c <= '9';
    });
    if (!value || !digits_only || *value > 65535) return "port " + quote(port) + " is not in 0-65535";
    return std::nullopt;
}

// HOST:PORT where HOST is empty (every address), an IPv4 literal, [IPv6] or a host name.
std::optional<std::string> check_listen_address(std::string_view text)
{
    const std::string hint = " (expected HOST:PORT such as :10435 or 127.0.0.1:10435)";
    if (text.empty()) return "must not be empty" + hint;
    if (text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos) return "missing \"]\" in " + quote(text) + hint;
        const std::string host(text.substr(1, close - 1));
        std::array<std::uint8_t, 16> buffer{};
        if (inet_pton(AF_INET6, host.c_str(), buffer.data()) != 1)
            return quote(host) + " is not an IPv6 address" + hint;
        if (close + 1 >= text.size() || text[close + 1] != ':') return "missing port in " + quote(text) + hint;
        return check_port_text(text.substr(close + 2));
    }
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return "missing port in " + quote(text) + hint;
    const std::string host(text.substr(0, colon));
    if (host.find(':') != std::string::npos)
        return "an IPv6 address needs brackets, e.g. [" + host + "]:" + std::string(text.substr(colon + 1));
    if (!host.empty()) {
        const bool numeric = std::all_of(host.begin(), host.end(), [](char c) {
            return (c >= '0' && c <= '9') || c == '.';
        });
        if (numeric) {
            std::array<std::uint8_t, 4> buffer{};
            if (inet_pton(AF_INET, host.c_str(), buffer.data()) != 1)
                return quote(host) + " is not an IPv4 address";
        } else if (auto problem = check_hostname(host)) {
            return problem;
        }
    }
    return check_port_text(text.substr(colon + 1));
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
    if (std::find(kLogLevels.begin(), kLogLevels.end(), level) != kLogLevels.end()) return std::nullopt;
    return "unknown log level " + quote(level) +
           " (expected trace, debug, info, warn, error, critical or off)";
}

std::optional<std::string> check_ring_buffer_size(std::uint64_t bytes)
{
    const std::uint64_t minimum = ring_buffer_minimum();
    if (bytes < minimum)
        return "must be at least the page size (" + std::to_string(minimum) + " bytes), got " +
               format_size(bytes);
    if (bytes > kMaxRingBufferSize) return "must be at most 1GiB, got " + format_size(bytes);
    if ((bytes & (bytes - 1)) != 0) return "must be a power of two, got " + format_size(bytes);
    return std::nullopt;
}

// ---------------------------------------------------------------------------------------
// The YAML walker

struct Item {
    std::string path;    // "peer_groups.db[1]"
    YAML::Node node;     // the value
    YAML::Mark mark;     // where to point: the value, or its key when the value is empty
    YAML::Mark key_mark; // the key (or the value itself for list items)
};

std::string describe(const YAML::Node& node)
{
    switch (node.Type()) {
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Scalar:
        if (node.Tag() == "!") return "the quoted string " + quote(node.Scalar());
        if (node.Tag() != "?") return "a value tagged " + node.Tag();
        return quote(node.Scalar());
    default: return "nothing";
    }
}

class Parser {
public:
    explicit Parser(std::string file) : file_(std::move(file)) {}

    void parse(const YAML::Node& root, Config& config);
    void add_validation(const std::vector<Diagnostic>& problems);
    std::vector<Diagnostic> take_diagnostics();

private:
    void error(const YAML::Mark& mark, const std::string& path, std::string message);
    void error(const Item& item, std::string message) { error(item.mark, item.path, std::move(message)); }

    std::vector<Item> entries(const Item& map, std::initializer_list<std::string_view> known);
    std::optional<std::vector<Item>> list(const Item& item, bool scalar_is_list);
    bool scalar(const Item& item, std::string_view expected);
    bool plain_scalar(const Item& item, std::string_view expected);
    std::optional<std::string> string(const Item& item);
    std::optional<long long> integer(const Item& item, long long min, std::optional<long long> max);
    std::optional<double> number(const Item& item);
    std::optional<bool> boolean(const Item& item);
    std::optional<std::chrono::milliseconds> duration(const Item& item);
    std::optional<std::uint64_t> size(const Item& item);

    void parse_strings(const Item& item, std::vector<std::string>& out);
    void parse_web(const Item& item, Config& config);
    void parse_log(const Item& item, Config& config);
    void parse_buckets(const Item& item, Config& config);
    void parse_peer_groups(const Item& item, Config& config);
    void parse_peer_prefix(const Item& item, Config& config);
    void parse_ports(const Item& item, Config& config);

    std::string file_;
    std::vector<Diagnostic> diagnostics_;
    std::map<std::string, YAML::Mark> marks_; // key path -> where validate() problems point
    bool ephemeral_range_set_{false};          // else it comes from the kernel
};

void Parser::error(const YAML::Mark& mark, const std::string& path, std::string message)
{
    Diagnostic d;
    d.file = file_;
    if (!mark.is_null()) {
        d.line = mark.line + 1;
        d.column = mark.column + 1;
    }
    d.key = path;
    d.message = std::move(message);
    diagnostics_.push_back(std::move(d));
}

// Levenshtein distance, for "did you mean".
std::size_t edit_distance(std::string_view a, std::string_view b)
{
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

std::string unknown_key_message(std::string_view key, std::initializer_list<std::string_view> known)
{
    for (const auto candidate : known)
        if (edit_distance(key, candidate) <= std::max<std::size_t>(1, candidate.size() / 3)) return "unknown key (did you mean " + quote(candidate) + "?)";
    std::string list;
    for (const auto candidate : known) list += (list.empty() ? "" : ", ") + std::string(candidate);
    return "unknown key (expected one of: " + list + ")";
}

// The entries of a mapping whose keys are in `known` (every key when `known` is empty), in
// file order. Reports a value that is not a mapping, unknown keys and duplicate keys.
std::vector<Item> Parser::entries(const Item& map, std::initializer_list<std::string_view> known)
{
    std::vector<Item> out;
    if (map.node.IsNull()) return out; // "section:" with everything commented out
    if (!map.node.IsMap()) {
        error(map, "expected a mapping, got " + describe(map.node));
        return out;
    }
    std::map<std::string, YAML::Mark> seen;
    for (const auto& pair : map.node) {
        const YAML::Node key = pair.first;
        const YAML::Mark key_mark = key.Mark();
        if (!key.IsScalar()) {
            error(key_mark, map.path, "keys must be strings, got " + describe(key));
            continue;
        }
        const std::string name = key.Scalar();
        const std::string path = join_path(map.path, name);
        if (known.size() != 0 && std::find(known.begin(), known.end(), name) == known.end()) {
            error(key_mark, path, unknown_key_message(name, known));
            continue;
        }
        if (const auto first = seen.find(name); first != seen.end()) {
            error(key_mark, path, "duplicate key (first set at line " + std::to_string(first->second.line + 1) + ")");
            continue;
        }
        seen.emplace(name, key_mark);
        const YAML::Node value = pair.second;
        const YAML::Mark mark = value.IsNull() ? key_mark : value.Mark(); // a null's mark is the next token
        marks_[path] = mark;
        out.push_back(Item{path, value, mark, key_mark});
    }
    return out;
}

// The items of a list; nullopt when the value is empty (keep the default) or not a list.
std::optional<std::vector<Item>> Parser::list(const Item& item, bool scalar_is_list)
{
    if (item.node.IsNull()) return std::nullopt;
    std::vector<Item> out;
    if (item.node.IsScalar() && scalar_is_list) {
        const std::string path = index_path(item.path, 0);
        marks_[path] = item.mark;
        out.push_back(Item{path, item.node, item.mark, item.mark});
        return out;
    }
    if (!item.node.IsSequence()) {
        error(item, "expected a list, got " + describe(item.node));
        return std::nullopt;
    }
    std::size_t index = 0;
    for (const auto& element : item.node) {
        const std::string path = index_path(item.path, index++);
        const YAML::Mark mark = element.IsNull() ? item.mark : element.Mark();
        marks_[path] = mark;
        out.push_back(Item{path, element, mark, mark});
    }
    return out;
}

bool Parser::scalar(const Item& item, std::string_view expected)
{
    if (item.node.IsScalar()) return true;
    if (item.node.IsNull())
        error(item, "missing value (leave the key out to use the default)");
    else
        error(item, "expected " + std::string(expected) + ", got " + describe(item.node));
    return false;
}

// Numbers and booleans must be plain: a quoted "2000" is a string in YAML.
bool Parser::plain_scalar(const Item& item, std::string_view expected)
{
    if (!scalar(item, expected)) return false;
    if (item.node.Tag() == "?") return true;
    error(item, "expected " + std::string(expected) + ", got " + describe(item.node));
    return false;
}

std::optional<std::string> Parser::string(const Item& item)
{
    if (!scalar(item, "a string")) return std::nullopt;
    return item.node.Scalar();
}

std::optional<long long> Parser::integer(const Item& item, long long min, std::optional<long long> max)
{
    if (!plain_scalar(item, "an integer")) return std::nullopt;
    const auto value = parse_integer(item.node.Scalar());
    if (!value) {
        error(item, "expected an integer, got " + describe(item.node));
        return std::nullopt;
    }
    if (auto problem = check_range(*value, min, max)) {
        error(item, *problem);
        return std::nullopt;
    }
    return value;
}

std::optional<double> Parser::number(const Item& item)
{
    if (!plain_scalar(item, "a number")) return std::nullopt;
    const auto value = parse_number(item.node.Scalar());
    if (!value) error(item, "expected a number, got " + describe(item.node));
    return value;
}

std::optional<bool> Parser::boolean(const Item& item)
{
    if (!plain_scalar(item, "true or false")) return std::nullopt;
    const std::string& text = item.node.Scalar();
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
    error(item, "expected true or false, got " + describe(item.node));
    return std::nullopt;
}

std::optional<std::chrono::milliseconds> Parser::duration(const Item& item)
{
    const std::string_view expected = "a duration such as 500ms, 10s or 1h30m";
    if (!scalar(item, expected)) return std::nullopt;
    const auto value = parse_duration(item.node.Scalar());
    if (!value) error(item, "expected " + std::string(expected) + ", got " + describe(item.node));
    return value;
}

std::optional<std::uint64_t> Parser::size(const Item& item)
{
    const std::string_view expected = "a size in bytes such as 4096 or 4MiB";
    if (!scalar(item, expected)) return std::nullopt;
    const auto value = parse_size(item.node.Scalar());
    if (!value) error(item, "expected " + std::string(expected) + ", got " + describe(item.node));
    return value;
}

// A list of strings, or a single string. Stored only when every item is a string, so that
// validate()'s indices match the file.
void Parser::parse_strings(const Item& item, std::vector<std::string>& out)
{
    const auto items = list(item, true);
    if (!items) return;
    std::vector<std::string> values;
    bool ok = true;
    for (const auto& element : *items) {
        if (auto text = string(element))
            values.push_back(std::move(*text));
        else
            ok = false;
    }
    if (ok) out = std::move(values);
}

void Parser::parse_web(const Item& item, Config& config)
{
    for (const auto& entry : entries(item, {"listen_addresses"}))
        parse_strings(entry, config.listen_addresses);
}

void Parser::parse_log(const Item& item, Config& config)
{
    for (const auto& entry : entries(item, {"level"}))
        if (auto level = string(entry)) config.log_level = std::move(*level);
}

void Parser::parse_buckets(const Item& item, Config& config)
{
    const auto items = list(item, false);
    if (!items) return;
    std::vector<double> values;
    bool ok = true;
    for (const auto& element : *items) {
        if (auto value = number(element))
            values.push_back(*value);
        else
            ok = false;
    }
    if (ok) config.buckets = std::move(values);
}

void Parser::parse_peer_groups(const Item& item, Config& config)
{
    for (const auto& entry : entries(item, {})) {
        marks_[entry.path] = entry.key_mark; // problems with the group point at its name
        PeerGroup group;
        group.name = entry.path.substr(item.path.size() + 1);
        bool ok = true;
        if (entry.node.IsNull()) {
            // No CIDRs at all: validate() says so.
        } else if (const auto items = list(entry, false)) {
            for (const auto& element : *items) {
                const auto text = string(element);
                if (!text) {
                    ok = false;
                    continue;
                }
                auto parsed = parse_cidr_keeping_host_bits(*text);
                if (auto* message = std::get_if<std::string>(&parsed)) {
                    error(element, *message);
                    ok = false;
                } else {
                    group.cidrs.push_back(std::get<Cidr>(parsed));
                }
            }
        } else {
            ok = false;
        }
        if (ok) config.peer_groups.push_back(std::move(group));
    }
}

void Parser::parse_peer_prefix(const Item& item, Config& config)
{
    for (const auto& direction : entries(item, {"outbound", "inbound"})) {
        const bool outbound = direction.path.ends_with(".outbound");
        for (const auto& family : entries(direction, {"ipv4", "ipv6"})) {
            const bool ipv4 = family.path.ends_with(".ipv4");
            const auto length = integer(family, 0, ipv4 ? 32 : 128);
            if (!length) continue;
            const auto value = static_cast<std::uint8_t>(*length);
            auto& field = outbound ? (ipv4 ? config.peer_folding.outbound_ipv4 : config.peer_folding.outbound_ipv6)
                                   : (ipv4 ? config.peer_folding.inbound_ipv4 : config.peer_folding.inbound_ipv6);
            field = value;
        }
    }
}

void Parser::parse_ports(const Item& item, Config& config)
{
    for (const auto& entry : entries(item, {"include", "outside_ephemeral", "ephemeral_range"})) {
        if (entry.path.ends_with(".include")) {
            const auto items = list(entry, false);
            if (!items) continue;
            std::vector<std::uint16_t> ports;
            bool ok = true;
            for (const auto& element : *items) {
                if (const auto port = integer(element, 1, 65535))
                    ports.push_back(static_cast<std::uint16_t>(*port));
                else
                    ok = false;
            }
            if (ok) config.ports.include = std::move(ports);
        } else if (entry.path.ends_with(".outside_ephemeral")) {
            if (const auto value = boolean(entry)) config.ports.all_outside_ephemeral = *value;
        } else {
            const auto items = list(entry, false);
            if (!items) continue;
            if (items->size() != 2) {
                error(entry, "expected [LOW, HIGH], got " + std::to_string(items->size()) + " items");
                continue;
            }
            const auto low = integer((*items)[0], 1, 65535);
            const auto high = integer((*items)[1], 1, 65535);
            if (!low || !high) continue;
            config.ports.ephemeral_low = static_cast<std::uint16_t>(*low);
            config.ports.ephemeral_high = static_cast<std::uint16_t>(*high);
            ephemeral_range_set_ = true;
        }
    }
}

void Parser::parse(const YAML::Node& root, Config& config)
{
    const Item top{"", root, root.Mark(), root.Mark()};
    if (!root.IsNull() && !root.IsMap()) {
        error(top, "expected a mapping of configuration keys, got " + describe(root));
        return;
    }
    for (const auto& entry : entries(top, {"interfaces", "web", "log", "buckets", "peer_groups",
                                           "peer_prefix", "ports", "max_series", "series_ttl",
                                           "handshake_timeout", "flow_table_size", "ring_buffer_size"})) {
        const std::string& key = entry.path;
        if (key == "interfaces") {
            parse_strings(entry, config.interfaces);
        } else if (key == "web") {
            parse_web(entry, config);
        } else if (key == "log") {
            parse_log(entry, config);
        } else if (key == "buckets") {
            parse_buckets(entry, config);
        } else if (key == "peer_groups") {
            parse_peer_groups(entry, config);
        } else if (key == "peer_prefix") {
            parse_peer_prefix(entry, config);
        } else if (key == "ports") {
            parse_ports(entry, config);
        } else if (key == "max_series") {
            if (const auto value = integer(entry, 1, kMaxSeries))
                config.max_series = static_cast<std::size_t>(*value);
        } else if (key == "series_ttl") {
            if (const auto value = duration(entry)) {
                if (value->count() % 1000 != 0)
                    error(entry, "must be a whole number of seconds, got " + format_duration(*value));
                else
                    config.series_ttl = std::chrono::duration_cast<std::chrono::seconds>(*value);
            }
        } else if (key == "handshake_timeout") {
            if (const auto value = duration(entry)) config.handshake_timeout = *value;
        } else if (key == "flow_table_size") {
            if (const auto value = integer(entry, 1, kMaxFlowTableSize))
                config.flow_table_size = static_cast<std::uint32_t>(*value);
        } else if (key == "ring_buffer_size") {
            if (const auto value = size(entry)) {
                // Too large for the field: validate() cannot see it, so say so here.
                if (*value > kMaxRingBufferSize)
                    error(entry, *check_ring_buffer_size(*value));
                else
                    config.ring_buffer_size = static_cast<std::uint32_t>(*value);
            }
        }
    }
    if (!ephemeral_range_set_) {
        const PortRange range = system_ephemeral_range();
        config.ports.ephemeral_low = range.low;
        config.ports.ephemeral_high = range.high;
    }
}

// Gives each validate() problem the position of its key path, or of the nearest parent
// path that the file contains.
void Parser::add_validation(const std::vector<Diagnostic>& problems)
{
    for (const auto& problem : problems) {
        std::string path = problem.key;
        auto found = marks_.find(path);
        while (found == marks_.end() && !path.empty()) {
            const auto cut = path.find_last_of(".[");
            path = cut == std::string::npos ? std::string() : path.substr(0, cut);
            found = marks_.find(path);
        }
        error(found == marks_.end() ? YAML::Mark::null_mark() : found->second, problem.key, problem.message);
    }
}

std::vector<Diagnostic> Parser::take_diagnostics()
{
    std::stable_sort(diagnostics_.begin(), diagnostics_.end(), [](const Diagnostic& a, const Diagnostic& b) {
        return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });
    return std::move(diagnostics_);
}

template <typename T, typename Check>
void check_list(std::vector<Diagnostic>& out, const std::string& source, const std::string& path,
                const std::vector<T>& values, Check check)
{
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (auto problem = check(values[i])) {
            out.push_back(Diagnostic{source, 0, 0, index_path(path, i), *problem});
            continue;
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (values[j] == values[i]) {
                out.push_back(Diagnostic{source, 0, 0, index_path(path, i),
                                         "duplicate of " + index_path(path, j)});
                break;
            }
        }
    }
}

} // namespace

// ---------------------------------------------------------------------------------------
// Public functions

bool Cidr::contains(Family f, const IpAddress& a) const
{
    if (f != family || length > family_bits(family)) return false;
    Cidr probe{family, a, length};
    return masked(probe).address == masked(*this).address;
}

std::string Cidr::to_string() const
{
    return format_address(family, address) + "/" + std::to_string(length);
}

std::optional<Cidr> parse_cidr(std::string_view text)
{
    auto parsed = parse_cidr_keeping_host_bits(text);
    if (auto* cidr = std::get_if<Cidr>(&parsed)) return masked(*cidr);
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
    // 1-2.5-5 steps: 17 boundaries that cover a LAN handshake (tens of µs) up to a
    // SYN retransmitted several times (seconds).
    return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
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

    for (std::size_t g = 0; g < config.peer_groups.size(); ++g) {
        const PeerGroup& group = config.peer_groups[g];
        const std::string path = join_path("peer_groups", group.name);
        if (auto problem = check_group_name(group.name)) add(path, *problem);
        for (std::size_t e = 0; e < g; ++e)
            if (config.peer_groups[e].name == group.name) add(path, "duplicate peer group name");
        if (group.cidrs.empty()) add(path, "must list at least one CIDR");
        for (std::size_t i = 0; i < group.cidrs.size(); ++i) {
            const Cidr& cidr = group.cidrs[i];
            const std::string item = index_path(path, i);
            if (cidr.length > family_bits(cidr.family)) {
                add(item, "prefix length " + std::to_string(cidr.length) + " is too long");
                continue;
            }
            if (masked(cidr) != cidr) {
                add(item, cidr.to_string() + " has host bits set (did you mean " + masked(cidr).to_string() + "?)");
                continue;
            }
            bool reported = false;
            for (std::size_t j = 0; j < i && !reported; ++j) {
                if (group.cidrs[j] == cidr) {
                    add(item, "duplicate of " + index_path(path, j));
                    reported = true;
                }
            }
            for (std::size_t other = 0; other < g && !reported; ++other) {
                const PeerGroup& earlier = config.peer_groups[other];
                for (std::size_t j = 0; j < earlier.cidrs.size() && !reported; ++j) {
                    if (overlaps(cidr, earlier.cidrs[j])) {
                        add(item, cidr.to_string() + " overlaps " + earlier.cidrs[j].to_string() + " (" +
                                      index_path(join_path("peer_groups", earlier.name), j) +
                                      "); a peer can belong to only one group");
                        reported = true;
                    }
                }
            }
        }
    }

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
    if (config.handshake_timeout < kMinHandshakeTimeout || config.handshake_timeout > kMaxHandshakeTimeout)
        add("handshake_timeout", "must be between " + format_duration(kMinHandshakeTimeout) + " and " +
                                     format_duration(kMaxHandshakeTimeout) + ", got " +
                                     format_duration(config.handshake_timeout));
    if (auto problem = check_range(config.flow_table_size, 1, kMaxFlowTableSize)) add("flow_table_size", *problem);
    if (auto problem = check_ring_buffer_size(config.ring_buffer_size)) add("ring_buffer_size", *problem);
    return out;
}

ParseResult parse_config_text(const std::string& text, const std::string& file_name)
{
    Config config;
    config.source = file_name;
    config.buckets = default_buckets();
    Parser parser(file_name);
    try {
        const std::vector<YAML::Node> documents = YAML::LoadAll(text);
        if (!documents.empty()) parser.parse(documents.front(), config);
        if (documents.size() > 1) {
            Diagnostic d{file_name, documents[1].Mark().line + 1, documents[1].Mark().column + 1, "",
                         "only one YAML document is allowed"};
            if (documents[1].Mark().is_null()) d.line = d.column = 0;
            ParseResult result;
            result.diagnostics = parser.take_diagnostics();
            result.diagnostics.push_back(std::move(d));
            return result;
        }
    } catch (const YAML::Exception& e) {
        ParseResult result;
        Diagnostic d{file_name, 0, 0, "", "invalid YAML: " + e.msg};
        if (!e.mark.is_null()) {
            d.line = e.mark.line + 1;
            d.column = e.mark.column + 1;
        }
        result.diagnostics.push_back(std::move(d));
        return result;
    }
    parser.add_validation(validate(config));
    ParseResult result;
    result.diagnostics = parser.take_diagnostics();
    if (result.diagnostics.empty()) result.config = std::move(config);
    return result;
}

ParseResult load_config_file(const std::string& path)
{
    auto failure = [&](std::string message) {
        ParseResult result;
        result.diagnostics.push_back(Diagnostic{path, 0, 0, "", std::move(message)});
        return result;
    };
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return failure(std::string("cannot read: ") + std::strerror(errno));
    std::string text;
    char buffer[8192];
    int read_errno = 0;
    while (text.size() <= kMaxFileBytes) {
        const ssize_t n = ::read(fd, buffer, sizeof(buffer));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) read_errno = errno;
        if (n <= 0) break;
        text.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    if (read_errno != 0) return failure(std::string("cannot read: ") + std::strerror(read_errno));
    if (text.size() > kMaxFileBytes) return failure("cannot read: larger than 1MiB");
    return parse_config_text(text, path);
}

} // namespace flowlat::config
