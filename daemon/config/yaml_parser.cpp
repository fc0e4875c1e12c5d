// flowlatd's configuration file: strict YAML into a Config, every problem with its position.
//
// Two passes. The parser walks the YAML tree and turns each value into its field's type,
// reporting unknown and duplicate keys, wrong types and values that do not fit; it records
// the position of every key path it sees. validate() (config.cpp) then checks the meaning
// of the whole Config and the parser maps each of its diagnostics back to a position.
#include "config/yaml_parser.hpp"

#include "config/detail.hpp"
#include "config/duration.hpp"
#include "os/unique_fd.hpp"

#include <yaml-cpp/yaml.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <map>
#include <utility>
#include <variant>

namespace flowlat::config {

namespace {

using namespace detail;

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
    // The file holds more than a limit allows and was not read to its end: validating what
    // was read would bury that one error under consequences of the same mistake.
    bool stopped_early() const { return peer_cidrs_ > kMaxPeerCidrs; }
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
    std::size_t peer_cidrs_{0};                // CIDRs of the peer groups so far, aliases expanded
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
    for (const auto& entry : entries(item, {"level", "format"})) {
        auto value = string(entry);
        if (!value) continue;
        if (entry.path.ends_with(".level"))
            config.log_level = std::move(*value);
        else
            config.log_format = std::move(*value);
    }
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
        // Counted before the walk: an alias repeats a list without repeating its text, so the
        // file's size alone does not bound the work.
        if (entry.node.IsSequence()) peer_cidrs_ += entry.node.size();
        if (peer_cidrs_ > kMaxPeerCidrs) {
            error(entry.key_mark, entry.path,
                  "the peer groups up to here list " + std::to_string(peer_cidrs_) +
                      " CIDRs (counting each alias expansion), more than the " + std::to_string(kMaxPeerCidrs) +
                      " allowed; the remaining groups are not read");
            return;
        }
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
                                           "workload", "workload_include", "handshake_timeout", "flow_table_size", "ring_buffer_size"})) {
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
        } else if (key == "workload") {
            if (const auto value = string(entry)) {
                if (const auto mode = parse_workload_mode(*value))
                    config.workload = *mode;
                else
                    error(entry, "expected none, cgroup or unit, got " + quote(*value));
            }
        } else if (key == "workload_include") {
            parse_strings(entry, config.workload_include);
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


std::string file_type(mode_t mode)
{
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    return "not a regular file";
}

} // namespace

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
    if (!parser.stopped_early()) parser.add_validation(validate(config));
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
    // O_NONBLOCK: opening a FIFO for reading waits for a writer; the type is checked before
    // any read, so a FIFO or a device is refused without waiting on it.
    const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (!fd.valid()) return failure(std::string("cannot read: ") + std::strerror(errno));
    struct stat info{};
    if (::fstat(fd.get(), &info) != 0) return failure(std::string("cannot read: ") + std::strerror(errno));
    if (S_ISDIR(info.st_mode)) return failure(std::string("cannot read: ") + std::strerror(EISDIR));
    if (!S_ISREG(info.st_mode))
        return failure("cannot read: not a regular file (it is " + file_type(info.st_mode) +
                       "); the configuration must be a regular file");
    const std::string too_large = "cannot read: larger than " + std::to_string(kMaxConfigFileBytes >> 20) + "MiB";
    if (static_cast<std::uint64_t>(info.st_size) > kMaxConfigFileBytes) return failure(too_large);
    std::string text;
    char buffer[8192];
    // Bounded even if the file grows while it is read.
    while (text.size() <= kMaxConfigFileBytes) {
        const ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return failure(std::string("cannot read: ") + std::strerror(errno));
        if (n == 0) break;
        text.append(buffer, static_cast<std::size_t>(n));
    }
    if (text.size() > kMaxConfigFileBytes) return failure(too_large);
    return parse_config_text(text, path);
}

} // namespace flowlat::config
