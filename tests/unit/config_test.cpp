// Unit tests for the config module: parsing, validation, positions and messages.
#include "config/yaml_parser.hpp"
#include "temp_file.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using namespace flowlat;
using namespace flowlat::config;
using namespace std::chrono_literals;

namespace {

constexpr const char* kFile = "t.yaml";

std::vector<std::string> errors_of(const std::string& yaml)
{
    const ParseResult result = parse_config_text(yaml, kFile);
    std::vector<std::string> out;
    for (const auto& d : result.diagnostics) out.push_back(d.to_string());
    CHECK(result.config.has_value() == out.empty());
    return out;
}

Config parse_ok(const std::string& yaml)
{
    ParseResult result = parse_config_text(yaml, kFile);
    for (const auto& d : result.diagnostics) UNSCOPED_INFO(d.to_string());
    REQUIRE(result.diagnostics.empty());
    REQUIRE(result.config.has_value());
    return std::move(*result.config);
}

// Every field except `source`.
void require_same(const Config& a, const Config& b)
{
    CHECK(a.interfaces == b.interfaces);
    CHECK(a.listen_addresses == b.listen_addresses);
    CHECK(a.buckets == b.buckets);
    REQUIRE(a.peer_groups.size() == b.peer_groups.size());
    for (std::size_t i = 0; i < a.peer_groups.size(); ++i) {
        CHECK(a.peer_groups[i].name == b.peer_groups[i].name);
        CHECK(a.peer_groups[i].cidrs == b.peer_groups[i].cidrs);
    }
    CHECK(a.peer_folding.outbound_ipv4 == b.peer_folding.outbound_ipv4);
    CHECK(a.peer_folding.outbound_ipv6 == b.peer_folding.outbound_ipv6);
    CHECK(a.peer_folding.inbound_ipv4 == b.peer_folding.inbound_ipv4);
    CHECK(a.peer_folding.inbound_ipv6 == b.peer_folding.inbound_ipv6);
    CHECK(a.ports.include == b.ports.include);
    CHECK(a.ports.all_outside_ephemeral == b.ports.all_outside_ephemeral);
    CHECK(a.ports.ephemeral_low == b.ports.ephemeral_low);
    CHECK(a.ports.ephemeral_high == b.ports.ephemeral_high);
    CHECK(a.max_series == b.max_series);
    CHECK(a.series_ttl == b.series_ttl);
    CHECK(a.handshake_timeout == b.handshake_timeout);
    CHECK(a.flow_table_size == b.flow_table_size);
    CHECK(a.ring_buffer_size == b.ring_buffer_size);
    CHECK(a.log_level == b.log_level);
    CHECK(a.log_format == b.log_format);
    CHECK(a.workload == b.workload);
    CHECK(a.workload_include == b.workload_include);
}

Cidr cidr(const char* text)
{
    const auto parsed = parse_cidr(text);
    REQUIRE(parsed.has_value());
    return *parsed;
}

IpAddress address(const char* text)
{
    const auto parsed = parse_cidr(std::string(text) + (std::string(text).find(':') == std::string::npos ? "/32" : "/128"));
    REQUIRE(parsed.has_value());
    return parsed->address;
}

using flowlat::testing::TempFile;

// config/flowlatd.yaml: from $FLOWLAT_SOURCE_DIR, else the first parent of the working
// directory or of the test binary that has it.
std::optional<std::filesystem::path> find_example_config()
{
    const std::filesystem::path relative = "config/flowlatd.yaml";
    if (const char* source = std::getenv("FLOWLAT_SOURCE_DIR")) {
        if (std::filesystem::exists(std::filesystem::path(source) / relative))
            return std::filesystem::path(source) / relative;
    }
    std::error_code ec;
    for (auto start : {std::filesystem::current_path(ec), std::filesystem::read_symlink("/proc/self/exe", ec)}) {
        for (auto dir = start; !dir.empty(); dir = dir.parent_path()) {
            if (std::filesystem::exists(dir / relative)) return dir / relative;
            if (dir == dir.parent_path()) break;
        }
    }
    return std::nullopt;
}

} // namespace

// ---------------------------------------------------------------------------------------
// Defaults

TEST_CASE("default_buckets: 1-2.5-5 steps from 10 µs to 10 s", "[config]")
{
    const auto buckets = default_buckets();
    CHECK(buckets.size() >= 16);
    CHECK(buckets.size() <= 20);
    CHECK(buckets.front() == 0.00001);
    CHECK(buckets.back() == 10.0);
    for (std::size_t i = 1; i < buckets.size(); ++i) {
        INFO("boundary " << i);
        CHECK(buckets[i] > buckets[i - 1]);
        const double ratio = buckets[i] / buckets[i - 1];
        CHECK((std::abs(ratio - 2.0) < 1e-9 || std::abs(ratio - 2.5) < 1e-9));
    }
}

TEST_CASE("embedded_default: documented values and valid", "[config]")
{
    const Config config = embedded_default();
    const PortRange range = system_ephemeral_range();
    CHECK(config.source == "<embedded default>");
    CHECK(config.interfaces.empty());
    CHECK(config.listen_addresses == std::vector<std::string>{":10435"});
    CHECK(config.buckets == default_buckets());
    CHECK(config.peer_groups.empty());
    CHECK(config.ports.include.empty());
    CHECK(config.ports.all_outside_ephemeral);
    CHECK(config.ports.ephemeral_low == range.low);
    CHECK(config.ports.ephemeral_high == range.high);
    CHECK(config.max_series == 2000);
    CHECK(config.series_ttl == 1h);
    CHECK(config.handshake_timeout == 10s);
    CHECK(config.flow_table_size == 65536);
    CHECK(config.ring_buffer_size == 1024u * 1024u);
    CHECK(config.log_level == "info");
    CHECK(config.log_format == "logfmt");
    CHECK(config.workload == WorkloadMode::none);
    CHECK(config.workload_include.empty());
    CHECK(validate(config).empty());
}

TEST_CASE("system_ephemeral_range: reads the kernel's file, falls back on anything odd", "[config]")
{
    SECTION("tab-separated as in /proc")
    {
        TempFile file("1024\t5000\n");
        const PortRange range = system_ephemeral_range(file.path.string());
        CHECK(range.low == 1024);
        CHECK(range.high == 5000);
    }
    SECTION("fallbacks")
    {
        for (const char* content : {"", "garbage", "5000 1024", "0 100", "1024 70000", "1024"}) {
            INFO(content);
            TempFile file(content);
            const PortRange range = system_ephemeral_range(file.path.string());
            CHECK(range.low == 32768);
            CHECK(range.high == 60999);
        }
        const PortRange missing = system_ephemeral_range("/nonexistent/ip_local_port_range");
        CHECK(missing.low == 32768);
        CHECK(missing.high == 60999);
    }
}

// ---------------------------------------------------------------------------------------
// Cidr, parse_cidr, PortSelection, parse_size, Diagnostic

TEST_CASE("parse_cidr: IPv4 and IPv6, host bits cleared", "[config]")
{
    CHECK(cidr("10.1.2.3/24").to_string() == "10.1.2.0/24");
    CHECK(cidr("10.1.2.3/24").family == Family::ipv4);
    CHECK(cidr("10.1.2.3/24").length == 24);
    CHECK(cidr("10.1.2.3/32").to_string() == "10.1.2.3/32");
    CHECK(cidr("255.255.255.255/0").to_string() == "0.0.0.0/0");
    CHECK(cidr("10.255.255.255/9").to_string() == "10.128.0.0/9");
    CHECK(cidr("fd00:db::1/64").to_string() == "fd00:db::/64");
    CHECK(cidr("fd00:db::1/64").family == Family::ipv6);
    CHECK(cidr("2001:db8:ffff::/33").to_string() == "2001:db8:8000::/33");
    CHECK(cidr("::/0").to_string() == "::/0");
    CHECK(cidr("::1/128").to_string() == "::1/128");
    CHECK(cidr("::ffff:10.0.0.1/104").to_string() == "::ffff:10.0.0.0/104");
}

TEST_CASE("parse_cidr: invalid inputs", "[config]")
{
    for (const char* text : {"", "/", "10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/+8",
                             "10.0.0.0/8/8", "10.0.0.0/ 8", "10.0.0.0/0008", "10.0.0/8", "010.0.0.0/8",
                             "10.0.0.256/8", " 10.0.0.0/8", "fd00::/129", "fd00:::/8", "fe80::1%eth0/64",
                             "db/8", "10.0.0.0/8 "}) {
        INFO(text);
        CHECK_FALSE(parse_cidr(text).has_value());
    }
}

TEST_CASE("Cidr::contains", "[config]")
{
    const Cidr ten = cidr("10.0.0.0/8");
    CHECK(ten.contains(Family::ipv4, address("10.0.0.0")));
    CHECK(ten.contains(Family::ipv4, address("10.255.255.255")));
    CHECK_FALSE(ten.contains(Family::ipv4, address("11.0.0.0")));
    CHECK_FALSE(ten.contains(Family::ipv4, address("9.255.255.255")));
    // Family is compared first, even for an IPv4-mapped address.
    CHECK_FALSE(ten.contains(Family::ipv6, address("::ffff:10.0.0.1")));

    const Cidr odd = cidr("192.168.0.0/23");
    CHECK(odd.contains(Family::ipv4, address("192.168.1.255")));
    CHECK_FALSE(odd.contains(Family::ipv4, address("192.168.2.0")));

    CHECK(cidr("0.0.0.0/0").contains(Family::ipv4, address("203.0.113.7")));
    CHECK_FALSE(cidr("0.0.0.0/0").contains(Family::ipv6, address("::1")));
    CHECK(cidr("::/0").contains(Family::ipv6, address("2001:db8::1")));

    const Cidr host = cidr("203.0.113.7/32");
    CHECK(host.contains(Family::ipv4, address("203.0.113.7")));
    CHECK_FALSE(host.contains(Family::ipv4, address("203.0.113.6")));

    const Cidr db = cidr("fd00:db::/64");
    CHECK(db.contains(Family::ipv6, address("fd00:db::42")));
    CHECK(db.contains(Family::ipv6, address("fd00:db:0:0:ffff:ffff:ffff:ffff")));
    CHECK_FALSE(db.contains(Family::ipv6, address("fd00:db:0:1::")));
    CHECK_FALSE(db.contains(Family::ipv4, address("10.0.0.1")));

    const Cidr thirty_three = cidr("2001:db8:8000::/33");
    CHECK(thirty_three.contains(Family::ipv6, address("2001:db8:ffff::1")));
    CHECK_FALSE(thirty_three.contains(Family::ipv6, address("2001:db8:7fff::1")));
}

TEST_CASE("PortSelection::labelled edge cases", "[config]")
{
    PortSelection ports;
    ports.ephemeral_low = 32768;
    ports.ephemeral_high = 60999;
    ports.include = {443, 40000};

    CHECK_FALSE(ports.labelled(0));
    CHECK(ports.labelled(1));
    CHECK(ports.labelled(443));
    CHECK(ports.labelled(32767));
    CHECK_FALSE(ports.labelled(32768));
    CHECK_FALSE(ports.labelled(45000));
    CHECK(ports.labelled(40000)); // included, though ephemeral
    CHECK_FALSE(ports.labelled(60999));
    CHECK(ports.labelled(61000));
    CHECK(ports.labelled(65535));

    ports.all_outside_ephemeral = false;
    CHECK(ports.labelled(443));
    CHECK(ports.labelled(40000));
    CHECK_FALSE(ports.labelled(80));
    CHECK_FALSE(ports.labelled(65535));

    PortSelection single;
    single.ephemeral_low = single.ephemeral_high = 50000;
    CHECK_FALSE(single.labelled(50000));
    CHECK(single.labelled(49999));
    CHECK(single.labelled(50001));

    PortSelection whole_range;
    whole_range.ephemeral_low = 1;
    whole_range.ephemeral_high = 65535;
    CHECK_FALSE(whole_range.labelled(1));
    CHECK_FALSE(whole_range.labelled(65535));
}

TEST_CASE("parse_size", "[config]")
{
    CHECK(parse_size("0") == 0u);
    CHECK(parse_size("4096") == 4096u);
    CHECK(parse_size("4KiB") == 4096u);
    CHECK(parse_size("4MiB") == 4194304u);
    CHECK(parse_size("1GiB") == 1073741824u);
    for (const char* text : {"", "KiB", "4 MiB", "4MB", "4mib", "-1", "1.5MiB", "0x1000", "4MiBs",
                             "99999999999999999999", "17179869184GiB"}) {
        INFO(text);
        CHECK_FALSE(parse_size(text).has_value());
    }
}

TEST_CASE("Diagnostic::to_string", "[config]")
{
    CHECK(Diagnostic{"f.yaml", 3, 7, "web.listen_addresses[0]", "bad"}.to_string() ==
          "f.yaml:3:7: web.listen_addresses[0]: bad");
    CHECK(Diagnostic{"f.yaml", 0, 0, "", "cannot read: x"}.to_string() == "f.yaml: cannot read: x");
    CHECK(Diagnostic{"f.yaml", 2, 1, "", "invalid YAML: x"}.to_string() == "f.yaml:2:1: invalid YAML: x");
    CHECK(Diagnostic{"<embedded default>", 0, 0, "max_series", "m"}.to_string() ==
          "<embedded default>: max_series: m");
}

// ---------------------------------------------------------------------------------------
// Valid files

TEST_CASE("an empty file, a comment-only file and empty sections give the defaults", "[config]")
{
    const Config defaults = embedded_default();
    for (const char* text : {"", "\n", "# nothing here\n", "---\n", "~\n", "{}\n",
                             "web:\nlog:\npeer_groups:\npeer_prefix:\nports:\ninterfaces:\nbuckets:\n",
                             "web: {}\nlog: {}\npeer_groups: {}\npeer_prefix: {outbound: {}, inbound: {}}\n"
                             "ports: {include: [], ephemeral_range: }\ninterfaces: []\n"}) {
        INFO(text);
        const Config config = parse_ok(text);
        CHECK(config.source == kFile);
        require_same(config, defaults);
    }
}

TEST_CASE("a full file", "[config]")
{
    const Config config = parse_ok(R"(# every key
interfaces: [eth0, "ens*"]
web:
  listen_addresses: [":9000", "127.0.0.1:10435", "0.0.0.0:0", "metrics.example.com:80", "[::1]:0", "[::]:9"]
log:
  level: debug
buckets: [0.001, 0.01, 0.1, 1]
peer_groups:
  database: ["198.18.10.0/24", "fd00:db::/64"]
  cache-1.eu_west: [10.0.0.0/8]
peer_prefix:
  outbound: {ipv4: 24, ipv6: 64}
  inbound:
    ipv4: 16
    ipv6: 32
ports:
  include: [443, 5432]
  outside_ephemeral: false
  ephemeral_range: [1024, 65535]
max_series: 500
series_ttl: 1h30m
handshake_timeout: 2500ms
flow_table_size: 1024
ring_buffer_size: 256KiB
)");
    CHECK(config.interfaces == std::vector<std::string>{"eth0", "ens*"});
    CHECK(config.listen_addresses ==
          std::vector<std::string>{":9000", "127.0.0.1:10435", "0.0.0.0:0", "metrics.example.com:80",
                                   "[::1]:0", "[::]:9"});
    CHECK(config.log_level == "debug");
    CHECK(config.buckets == std::vector<double>{0.001, 0.01, 0.1, 1});
    REQUIRE(config.peer_groups.size() == 2);
    CHECK(config.peer_groups[0].name == "database");
    CHECK(config.peer_groups[0].cidrs == std::vector<Cidr>{cidr("198.18.10.0/24"), cidr("fd00:db::/64")});
    CHECK(config.peer_groups[1].name == "cache-1.eu_west");
    CHECK(config.peer_groups[1].cidrs == std::vector<Cidr>{cidr("10.0.0.0/8")});
    CHECK(config.peer_folding.outbound_ipv4 == 24);
    CHECK(config.peer_folding.outbound_ipv6 == 64);
    CHECK(config.peer_folding.inbound_ipv4 == 16);
    CHECK(config.peer_folding.inbound_ipv6 == 32);
    CHECK(config.ports.include == std::vector<std::uint16_t>{443, 5432});
    CHECK_FALSE(config.ports.all_outside_ephemeral);
    CHECK(config.ports.ephemeral_low == 1024);
    CHECK(config.ports.ephemeral_high == 65535);
    CHECK(config.max_series == 500);
    CHECK(config.series_ttl == 90min);
    CHECK(config.handshake_timeout == 2500ms);
    CHECK(config.flow_table_size == 1024);
    CHECK(config.ring_buffer_size == 256u * 1024u);
}

TEST_CASE("each key on its own", "[config]")
{
    SECTION("interfaces, as a list or a single name")
    {
        CHECK(parse_ok("interfaces: [eth0, wlan*, \"veth?\", \"br[0-9]\"]").interfaces ==
              std::vector<std::string>{"eth0", "wlan*", "veth?", "br[0-9]"});
        CHECK(parse_ok("interfaces: eth0").interfaces == std::vector<std::string>{"eth0"});
        CHECK(parse_ok("interfaces:\n  - eth0\n  - eth1\n").interfaces == std::vector<std::string>{"eth0", "eth1"});
        CHECK(parse_ok("interfaces: [abcdefghijklmno]").interfaces.size() == 1); // 15 characters
        CHECK(parse_ok("interfaces: [\"enp0s20f0u1u2c2*\"]").interfaces.size() == 1); // patterns may be longer
    }
    SECTION("web.listen_addresses, as a list or a single address")
    {
        CHECK(parse_ok("web: {listen_addresses: \"127.0.0.1:1\"}").listen_addresses ==
              std::vector<std::string>{"127.0.0.1:1"});
        CHECK(parse_ok("web:\n  listen_addresses: [\"localhost:65535\", \"198.18.0.1:10435\"]").listen_addresses ==
              std::vector<std::string>{"localhost:65535", "198.18.0.1:10435"});
    }
    SECTION("log.level")
    {
        for (const char* level : {"trace", "debug", "info", "warn", "error", "critical", "off"})
            CHECK(parse_ok(std::string("log: {level: ") + level + "}").log_level == level);
    }
    SECTION("log.format")
    {
        for (const char* format : {"logfmt", "json"})
            CHECK(parse_ok(std::string("log: {format: ") + format + "}").log_format == format);
        CHECK(parse_ok("log: {level: debug, format: json}").log_level == "debug");
    }
    SECTION("buckets")
    {
        CHECK(parse_ok("buckets: [1]").buckets == std::vector<double>{1});
        CHECK(parse_ok("buckets: [1e-4, .5, 2, 3.5]").buckets == std::vector<double>{0.0001, 0.5, 2, 3.5});
        std::string sixty_four = "buckets: [";
        for (int i = 1; i <= 64; ++i) sixty_four += std::to_string(i) + (i < 64 ? ", " : "]");
        CHECK(parse_ok(sixty_four).buckets.size() == 64);
    }
    SECTION("peer_groups")
    {
        const Config config = parse_ok("peer_groups:\n  web: [203.0.113.0/24]\n  v6only: [\"2001:db8::/32\"]\n");
        REQUIRE(config.peer_groups.size() == 2);
        CHECK(config.peer_groups[1].cidrs.front().to_string() == "2001:db8::/32");
        // Overlap inside one group is redundant, not ambiguous.
        CHECK(parse_ok("peer_groups: {a: [10.0.0.0/8, 10.1.0.0/16]}").peer_groups[0].cidrs.size() == 2);
        // v4 and v6 never overlap.
        CHECK(parse_ok("peer_groups: {a: [0.0.0.0/0], b: [\"::/0\"]}").peer_groups.size() == 2);
    }
    SECTION("peer_prefix, partially")
    {
        const Config config = parse_ok("peer_prefix:\n  inbound: {ipv6: 0}\n  outbound: {ipv4: 0}\n");
        CHECK(config.peer_folding.outbound_ipv4 == 0);
        CHECK(config.peer_folding.outbound_ipv6 == 128);
        CHECK(config.peer_folding.inbound_ipv4 == 24);
        CHECK(config.peer_folding.inbound_ipv6 == 0);
        CHECK(parse_ok("peer_prefix: {outbound: {ipv4: 32, ipv6: 128}}").peer_folding.outbound_ipv6 == 128);
    }
    SECTION("ports")
    {
        CHECK(parse_ok("ports: {include: [1, 65535]}").ports.include == std::vector<std::uint16_t>{1, 65535});
        CHECK_FALSE(parse_ok("ports: {outside_ephemeral: false}").ports.all_outside_ephemeral);
        CHECK(parse_ok("ports: {outside_ephemeral: True}").ports.all_outside_ephemeral);
        const Config fixed = parse_ok("ports: {ephemeral_range: [40000, 40000]}");
        CHECK(fixed.ports.ephemeral_low == 40000);
        CHECK(fixed.ports.ephemeral_high == 40000);
        const Config from_kernel = parse_ok("ports: {include: [22]}");
        CHECK(from_kernel.ports.ephemeral_low == system_ephemeral_range().low);
        CHECK(from_kernel.ports.ephemeral_high == system_ephemeral_range().high);
    }
    SECTION("max_series")
    {
        CHECK(parse_ok("max_series: 1").max_series == 1);
        CHECK(parse_ok("max_series: 1000000").max_series == 1000000);
    }
    SECTION("series_ttl")
    {
        CHECK(parse_ok("series_ttl: 0").series_ttl == 0s);
        CHECK(parse_ok("series_ttl: 0s").series_ttl == 0s);
        CHECK(parse_ok("series_ttl: 90s").series_ttl == 90s);
        CHECK(parse_ok("series_ttl: 1d12h").series_ttl == 36h);
        CHECK(parse_ok("series_ttl: 2000ms").series_ttl == 2s);
        CHECK(parse_ok("series_ttl: \"5m\"").series_ttl == 5min);
    }
    SECTION("handshake_timeout, inclusive limits")
    {
        CHECK(parse_ok("handshake_timeout: 100ms").handshake_timeout == 100ms);
        CHECK(parse_ok("handshake_timeout: 10m").handshake_timeout == 10min);
        CHECK(parse_ok("handshake_timeout: 1m30s").handshake_timeout == 90s);
    }
    SECTION("flow_table_size, inclusive limits")
    {
        CHECK(parse_ok("flow_table_size: 1").flow_table_size == 1);
        CHECK(parse_ok("flow_table_size: 16777216").flow_table_size == 16777216);
    }
    SECTION("ring_buffer_size")
    {
        const auto page = static_cast<std::uint32_t>(std::max(4096L, sysconf(_SC_PAGESIZE)));
        CHECK(parse_ok("ring_buffer_size: " + std::to_string(page)).ring_buffer_size == page);
        CHECK(parse_ok("ring_buffer_size: 64KiB").ring_buffer_size == 65536);
        CHECK(parse_ok("ring_buffer_size: 16MiB").ring_buffer_size == 16u << 20);
        CHECK(parse_ok("ring_buffer_size: 1GiB").ring_buffer_size == 1u << 30);
    }
}

TEST_CASE("YAML features that do not change meaning", "[config]")
{
    // Anchors, block and flow style, CRLF line ends.
    const Config config = parse_ok("ports:\r\n  include: &p [443]\r\npeer_groups: {a: [10.0.0.0/8]}\r\n");
    CHECK(config.ports.include == std::vector<std::uint16_t>{443});
}

TEST_CASE("load_config_file reads a file", "[config]")
{
    TempFile file("max_series: 7\n");
    const ParseResult result = load_config_file(file.path.string());
    REQUIRE(result.diagnostics.empty());
    REQUIRE(result.config.has_value());
    CHECK(result.config->max_series == 7);
    CHECK(result.config->source == file.path.string());
}

TEST_CASE("the example config/flowlatd.yaml loads cleanly and holds the defaults", "[config]")
{
    const auto path = find_example_config();
    INFO("looked in $FLOWLAT_SOURCE_DIR and the parents of the working directory and of the test binary");
    REQUIRE(path.has_value());
    const ParseResult result = load_config_file(path->string());
    for (const auto& d : result.diagnostics) UNSCOPED_INFO(d.to_string());
    REQUIRE(result.diagnostics.empty());
    REQUIRE(result.config.has_value());
    require_same(*result.config, embedded_default());
}

// ---------------------------------------------------------------------------------------
// Errors: exact text, line and column

struct ErrorCase {
    const char* description;
    std::string yaml;
    std::vector<std::string> expected;
};

TEST_CASE("every error, with its position and message", "[config]")
{
    const std::vector<ErrorCase> cases = {
        // Document shape
        {"top level is a list", "- a\n- b\n",
         {"t.yaml:1:1: expected a mapping of configuration keys, got a list"}},
        {"top level is a scalar", "hello\n",
         {"t.yaml:1:1: expected a mapping of configuration keys, got \"hello\""}},
        {"malformed YAML", "max_series: 5\nbuckets: [1\n",
         {"t.yaml:3:1: invalid YAML: end of sequence flow not found"}},
        {"bad indentation", "web:\n  listen_addresses: [\":1\"]\n    x: 1\n",
         {"t.yaml:3:5: invalid YAML: end of map not found"}},
        {"two documents", "max_series: 5\n---\nmax_series: 6\n",
         {"t.yaml:3:1: only one YAML document is allowed"}},
        {"unknown top-level key, close to a known one", "intrefaces: [eth0]\n",
         {"t.yaml:1:1: intrefaces: unknown key (did you mean \"interfaces\"?)"}},
        {"unknown top-level key", "colour: blue\n",
         {"t.yaml:1:1: colour: unknown key (expected one of: interfaces, web, log, buckets, peer_groups, "
          "peer_prefix, ports, max_series, series_ttl, workload, workload_include, handshake_timeout, flow_table_size, ring_buffer_size)"}},
        {"unknown nested key", "web:\n  listen_address: [\":1\"]\n",
         {"t.yaml:2:3: web.listen_address: unknown key (did you mean \"listen_addresses\"?)"}},
        {"duplicate key", "max_series: 5\nlog: {level: info}\nmax_series: 6\n",
         {"t.yaml:3:1: max_series: duplicate key (first set at line 1)"}},
        {"duplicate nested key", "log:\n  level: info\n  level: debug\n",
         {"t.yaml:3:3: log.level: duplicate key (first set at line 2)"}},
        {"non-scalar key", "[a, b]: 1\n", {"t.yaml:1:1: keys must be strings, got a list"}},

        // interfaces
        {"interfaces is a mapping", "interfaces: {eth0: 1}\n",
         {"t.yaml:1:13: interfaces: expected a list, got a mapping"}},
        {"interface is a list", "interfaces: [[eth0]]\n",
         {"t.yaml:1:14: interfaces[0]: expected a string, got a list"}},
        {"interface is empty", "interfaces: [eth0, \"\"]\n",
         {"t.yaml:1:20: interfaces[1]: interface name must not be empty"}},
        {"interface is null", "interfaces:\n  - eth0\n  -\n",
         {"t.yaml:2:3: interfaces[1]: missing value (leave the key out to use the default)"}},
        {"interface name too long", "interfaces: [abcdefghijklmnop]\n",
         {"t.yaml:1:14: interfaces[0]: \"abcdefghijklmnop\" is longer than 15 characters, the kernel's limit "
          "for interface names"}},
        {"interface name with a space", "interfaces: [\"eth 0\"]\n",
         {"t.yaml:1:14: interfaces[0]: \"eth 0\" contains '/', ':' or white space, which interface names cannot"}},
        {"interface name with a slash", "interfaces: [a/b]\n",
         {"t.yaml:1:14: interfaces[0]: \"a/b\" contains '/', ':' or white space, which interface names cannot"}},
        {"interface name dot", "interfaces: [.]\n",
         {"t.yaml:1:14: interfaces[0]: \".\" is not a valid interface name"}},
        {"duplicate interface", "interfaces: [eth0, eth1, eth0]\n",
         {"t.yaml:1:26: interfaces[2]: duplicate of interfaces[0]"}},

        // web
        {"web is a list", "web: [\":1\"]\n", {"t.yaml:1:6: web: expected a mapping, got a list"}},
        {"listen_addresses is empty", "web:\n  listen_addresses: []\n",
         {"t.yaml:2:21: web.listen_addresses: must list at least one address"}},
        {"listen address without port", "web: {listen_addresses: [\"10435\"]}\n",
         {"t.yaml:1:26: web.listen_addresses[0]: missing port in \"10435\" (expected HOST:PORT such as :10435 "
          "or 127.0.0.1:10435)"}},
        {"listen address: IPv6 without brackets", "web: {listen_addresses: [\"::1:10435\"]}\n",
         {"t.yaml:1:26: web.listen_addresses[0]: an IPv6 address needs brackets, e.g. [::1]:10435"}},
        {"listen address: missing ]", "web: {listen_addresses: [\"[::1:10435\"]}\n",
         {"t.yaml:1:26: web.listen_addresses[0]: missing \"]\" in \"[::1:10435\" (expected HOST:PORT such as "
          ":10435 or 127.0.0.1:10435)"}},
        {"listen address: nothing after ]", "web: {listen_addresses: [\"[::1]\"]}\n",
         {"t.yaml:1:26: web.listen_addresses[0]: missing port in \"[::1]\" (expected HOST:PORT such as :10435 "
          "or 127.0.0.1:10435)"}},
        {"listen address: bad IPv6", "web: {listen_addresses: [\"[fe80::zz]:1\"]}\n",
         {"t.yaml:1:26: web.listen_addresses[0]: \"fe80::zz\" is not an IPv6 address (expected HOST:PORT such "
          "as :10435 or 127.0.0.1:10435)"}},
        {"listen address: bad IPv4", "web: {listen_addresses: [\"1.2.3:80\"]}\n",
         {"t.yaml:1:26: web.listen_addresses[0]: \"1.2.3\" is not an IPv4 address"}},
        {"listen address: bad host name", "web: {listen_addresses: [\"my_host:80\"]}\n",
         {"t.yaml:1:26: web.listen_addresses[0]: \"my_host\" is not a valid host name"}},
        {"listen address: port too large", "web: {listen_addresses: [\":65536\"]}\n",
         {"t.yaml:1:26: web.listen_addresses[0]: port \"65536\" is not in 0-65535"}},
        {"listen address: port not a number", "web: {listen_addresses: [\"localhost:http\"]}\n",
         {"t.yaml:1:26: web.listen_addresses[0]: port \"http\" is not in 0-65535"}},
        {"listen address: empty", "web: {listen_addresses: [\"\"]}\n",
         {"t.yaml:1:26: web.listen_addresses[0]: must not be empty (expected HOST:PORT such as :10435 "
          "or 127.0.0.1:10435)"}},
        {"duplicate listen address", "web: {listen_addresses: [\":1\", \":1\"]}\n",
         {"t.yaml:1:32: web.listen_addresses[1]: duplicate of web.listen_addresses[0]"}},

        // log
        {"unknown log level", "log:\n  level: verbose\n",
         {"t.yaml:2:10: log.level: unknown log level \"verbose\" (expected trace, debug, info, warn, error, "
          "critical or off)"}},
        {"log level is a list", "log: {level: [info]}\n",
         {"t.yaml:1:14: log.level: expected a string, got a list"}},
        {"unknown log format", "log:\n  format: text\n",
         {"t.yaml:2:11: log.format: unknown log format \"text\" (expected logfmt or json)"}},
        {"log format is a list", "log: {format: [json]}\n",
         {"t.yaml:1:15: log.format: expected a string, got a list"}},
        {"log level missing", "log:\n  level:\n",
         {"t.yaml:2:3: log.level: missing value (leave the key out to use the default)"}},

        // buckets
        {"buckets is a scalar", "buckets: 0.1\n", {"t.yaml:1:10: buckets: expected a list, got \"0.1\""}},
        {"buckets is empty", "buckets: []\n",
         {"t.yaml:1:10: buckets: must list at least one boundary (leave the key out for the defaults)"}},
        {"bucket is not a number", "buckets: [0.1, fast, 1]\n",
         {"t.yaml:1:16: buckets[1]: expected a number, got \"fast\""}},
        {"bucket is quoted", "buckets: [\"0.1\"]\n",
         {"t.yaml:1:11: buckets[0]: expected a number, got the quoted string \"0.1\""}},
        {"bucket is infinite", "buckets: [1, .inf]\n",
         {"t.yaml:1:14: buckets[1]: expected a number, got \".inf\""}},
        {"bucket is not finite", "buckets: [nan]\n", {"t.yaml:1:11: buckets[0]: expected a number, got \"nan\""}},
        {"bucket is zero", "buckets: [0, 1]\n",
         {"t.yaml:1:11: buckets[0]: must be between 0.000001 and 3600 seconds, got 0"}},
        {"bucket is negative", "buckets: [-1]\n",
         {"t.yaml:1:11: buckets[0]: must be between 0.000001 and 3600 seconds, got -1"}},
        {"bucket below a microsecond", "buckets: [0.0000000001, 1]\n",
         {"t.yaml:1:11: buckets[0]: must be between 0.000001 and 3600 seconds, got 1e-10"}},
        {"bucket above an hour", "buckets: [1, 2000000000]\n",
         {"t.yaml:1:14: buckets[1]: must be between 0.000001 and 3600 seconds, got 2e+09"}},
        {"buckets repeat", "buckets: [0.1, 0.1]\n",
         {"t.yaml:1:16: buckets[1]: must be greater than the boundary before it (at nanosecond resolution)"}},
        {"buckets equal at nanosecond resolution", "buckets: [0.0010000001, 0.0010000002]\n",
         {"t.yaml:1:25: buckets[1]: must be greater than the boundary before it (at nanosecond resolution)"}},
        {"buckets decrease", "buckets:\n  - 1\n  - 2\n  - 1.5\n",
         {"t.yaml:4:5: buckets[2]: must be greater than the boundary before it (at nanosecond resolution)"}},
        {"too many buckets", "buckets: [" + [] {
             std::string list;
             for (int i = 1; i <= 65; ++i) list += std::to_string(i) + (i < 65 ? "," : "");
             return list;
         }() + "]\n",
         {"t.yaml:1:10: buckets: must list at most 64 boundaries, got 65"}},

        // peer_groups
        {"peer_groups is a list", "peer_groups: [a]\n",
         {"t.yaml:1:14: peer_groups: expected a mapping, got a list"}},
        {"group named other", "peer_groups:\n  other: [10.0.0.0/8]\n",
         {"t.yaml:2:3: peer_groups.other: peer group name \"other\" is reserved for unlabelled peers"}},
        {"group name with a space", "peer_groups:\n  \"my db\": [10.0.0.0/8]\n",
         {"t.yaml:2:3: peer_groups.my db: peer group name \"my db\" may only contain A-Z, a-z, 0-9, '_', '.' "
          "and '-'"}},
        {"group name empty", "peer_groups:\n  \"\": [10.0.0.0/8]\n",
         {"t.yaml:2:3: peer_groups.: peer group name \"\" may only contain A-Z, a-z, 0-9, '_', '.' and '-'"}},
        {"group named like an address", "peer_groups:\n  10.0.0.1: [10.0.0.0/8]\n",
         {"t.yaml:2:3: peer_groups.10.0.0.1: peer group name \"10.0.0.1\" is an IP address, which would read "
          "like the folded address of an ungrouped peer"}},
        {"duplicate group", "peer_groups:\n  db: [10.0.0.0/8]\n  web: [11.0.0.0/8]\n  db: [12.0.0.0/8]\n",
         {"t.yaml:4:3: peer_groups.db: duplicate key (first set at line 2)"}},
        {"group without CIDRs", "peer_groups:\n  db:\n  web: []\n",
         {"t.yaml:2:3: peer_groups.db: must list at least one CIDR",
          "t.yaml:3:3: peer_groups.web: must list at least one CIDR"}},
        {"group is a mapping", "peer_groups:\n  db: {a: 1}\n",
         {"t.yaml:2:7: peer_groups.db: expected a list, got a mapping"}},
        {"CIDR without length", "peer_groups:\n  db: [10.0.0.1]\n",
         {"t.yaml:2:8: peer_groups.db[0]: missing prefix length in \"10.0.0.1\" (write 10.0.0.1/32 for a "
          "single address)"}},
        {"IPv6 CIDR without length", "peer_groups:\n  db: [\"fd00::1\"]\n",
         {"t.yaml:2:8: peer_groups.db[0]: missing prefix length in \"fd00::1\" (write fd00::1/128 for a "
          "single address)"}},
        {"CIDR with a bad address", "peer_groups:\n  db: [10.0.0.300/8]\n",
         {"t.yaml:2:8: peer_groups.db[0]: \"10.0.0.300\" is not an IPv4 or IPv6 address"}},
        {"CIDR with a long IPv4 prefix", "peer_groups:\n  db: [10.0.0.0/33]\n",
         {"t.yaml:2:8: peer_groups.db[0]: prefix length \"33\" is not in 0-32 for IPv4"}},
        {"CIDR with a long IPv6 prefix", "peer_groups:\n  db: [\"fd00::/129\"]\n",
         {"t.yaml:2:8: peer_groups.db[0]: prefix length \"129\" is not in 0-128 for IPv6"}},
        {"CIDR with host bits", "peer_groups:\n  db: [10.1.2.3/24]\n",
         {"t.yaml:2:8: peer_groups.db[0]: 10.1.2.3/24 has host bits set (did you mean 10.1.2.0/24?)"}},
        {"CIDR is a number", "peer_groups:\n  db: [[1]]\n",
         {"t.yaml:2:8: peer_groups.db[0]: expected a string, got a list"}},
        {"duplicate CIDR in a group", "peer_groups:\n  db: [10.0.0.0/8, 10.0.0.0/8]\n",
         {"t.yaml:2:20: peer_groups.db[1]: duplicate of peer_groups.db[0]"}},
        {"CIDRs overlap across groups",
         "peer_groups:\n  internal: [10.0.0.0/8]\n  db: [\"fd00::/8\", 10.1.0.0/16]\n",
         {"t.yaml:3:20: peer_groups.db[1]: 10.1.0.0/16 overlaps 10.0.0.0/8 (peer_groups.internal[0]); a peer can "
          "belong to only one group"}},
        {"wider CIDR after a narrower one", "peer_groups:\n  a: [\"fd00:db::/64\"]\n  b: [\"fd00::/8\"]\n",
         {"t.yaml:3:7: peer_groups.b[0]: fd00::/8 overlaps fd00:db::/64 (peer_groups.a[0]); a peer can belong to "
          "only one group"}},

        // peer_prefix
        {"peer_prefix is a scalar", "peer_prefix: 24\n",
         {"t.yaml:1:14: peer_prefix: expected a mapping, got \"24\""}},
        {"unknown direction", "peer_prefix:\n  outgoing: {ipv4: 24}\n",
         {"t.yaml:2:3: peer_prefix.outgoing: unknown key (expected one of: outbound, inbound)"}},
        {"unknown family", "peer_prefix:\n  outbound: {ipv5: 24}\n",
         {"t.yaml:2:14: peer_prefix.outbound.ipv5: unknown key (did you mean \"ipv4\"?)"}},
        {"IPv4 prefix too long", "peer_prefix:\n  outbound: {ipv4: 33}\n",
         {"t.yaml:2:20: peer_prefix.outbound.ipv4: must be between 0 and 32, got 33"}},
        {"IPv6 prefix too long", "peer_prefix:\n  inbound:\n    ipv6: 129\n",
         {"t.yaml:3:11: peer_prefix.inbound.ipv6: must be between 0 and 128, got 129"}},
        {"negative prefix", "peer_prefix:\n  inbound: {ipv4: -1}\n",
         {"t.yaml:2:19: peer_prefix.inbound.ipv4: must be between 0 and 32, got -1"}},
        {"prefix is a word", "peer_prefix:\n  inbound: {ipv4: all}\n",
         {"t.yaml:2:19: peer_prefix.inbound.ipv4: expected an integer, got \"all\""}},

        // ports
        {"port zero", "ports:\n  include: [0]\n",
         {"t.yaml:2:13: ports.include[0]: must be between 1 and 65535, got 0"}},
        {"port too large", "ports:\n  include: [443, 65536]\n",
         {"t.yaml:2:18: ports.include[1]: must be between 1 and 65535, got 65536"}},
        {"port quoted", "ports:\n  include: [\"443\"]\n",
         {"t.yaml:2:13: ports.include[0]: expected an integer, got the quoted string \"443\""}},
        {"port as a scalar", "ports:\n  include: 443\n",
         {"t.yaml:2:12: ports.include: expected a list, got \"443\""}},
        {"duplicate port", "ports:\n  include: [443, 80, 443]\n",
         {"t.yaml:2:22: ports.include[2]: duplicate of ports.include[0]"}},
        {"outside_ephemeral is yes", "ports:\n  outside_ephemeral: yes\n",
         {"t.yaml:2:22: ports.outside_ephemeral: expected true or false, got \"yes\""}},
        {"outside_ephemeral is quoted", "ports:\n  outside_ephemeral: \"true\"\n",
         {"t.yaml:2:22: ports.outside_ephemeral: expected true or false, got the quoted string \"true\""}},
        {"ephemeral range with one port", "ports:\n  ephemeral_range: [32768]\n",
         {"t.yaml:2:20: ports.ephemeral_range: expected [LOW, HIGH], got 1 items"}},
        {"ephemeral range reversed", "ports:\n  ephemeral_range: [60999, 32768]\n",
         {"t.yaml:2:20: ports.ephemeral_range: low end 60999 is above high end 32768"}},
        {"ephemeral range from zero", "ports:\n  ephemeral_range: [0, 100]\n",
         {"t.yaml:2:21: ports.ephemeral_range[0]: must be between 1 and 65535, got 0"}},
        {"ephemeral range as a string", "ports:\n  ephemeral_range: 32768-60999\n",
         {"t.yaml:2:20: ports.ephemeral_range: expected a list, got \"32768-60999\""}},

        // max_series
        {"max_series is a word", "max_series: lots\n",
         {"t.yaml:1:13: max_series: expected an integer, got \"lots\""}},
        {"max_series is zero", "max_series: 0\n", {"t.yaml:1:13: max_series: must be between 1 and 1000000, got 0"}},
        {"max_series is negative", "max_series: -5\n", {"t.yaml:1:13: max_series: must be between 1 and 1000000, got -5"}},
        {"max_series is a fraction", "max_series: 2.5\n",
         {"t.yaml:1:13: max_series: expected an integer, got \"2.5\""}},
        {"max_series is quoted", "max_series: \"2000\"\n",
         {"t.yaml:1:13: max_series: expected an integer, got the quoted string \"2000\""}},
        {"max_series is tagged", "max_series: !!str 2000\n",
         {"t.yaml:1:13: max_series: expected an integer, got a value tagged tag:yaml.org,2002:str"}},
        {"max_series is empty", "max_series:\n",
         {"t.yaml:1:1: max_series: missing value (leave the key out to use the default)"}},
        {"max_series is null", "max_series: ~\n",
         {"t.yaml:1:1: max_series: missing value (leave the key out to use the default)"}},
        {"max_series above a million", "max_series: 100000000000000\n",
         {"t.yaml:1:13: max_series: must be between 1 and 1000000, got 100000000000000"}},
        {"max_series is a list", "max_series: [1]\n", {"t.yaml:1:13: max_series: expected an integer, got a list"}},

        // series_ttl
        {"series_ttl without unit", "series_ttl: 3600\n",
         {"t.yaml:1:13: series_ttl: expected a duration such as 500ms, 10s or 1h30m, got \"3600\""}},
        {"series_ttl with a bad unit", "series_ttl: 1hour\n",
         {"t.yaml:1:13: series_ttl: expected a duration such as 500ms, 10s or 1h30m, got \"1hour\""}},
        {"series_ttl negative", "series_ttl: -1s\n",
         {"t.yaml:1:13: series_ttl: expected a duration such as 500ms, 10s or 1h30m, got \"-1s\""}},
        {"series_ttl below a second", "series_ttl: 1500ms\n",
         {"t.yaml:1:13: series_ttl: must be a whole number of seconds, got 1s500ms"}},
        {"series_ttl above a year", "series_ttl: 18446744074s\n",
         {"t.yaml:1:13: series_ttl: must be at most 366d (0 means never), got 213503d23h34m34s"}},

        // handshake_timeout
        {"handshake_timeout too short", "handshake_timeout: 50ms\n",
         {"t.yaml:1:20: handshake_timeout: must be between 100ms and 10m, got 50ms"}},
        {"handshake_timeout too long", "handshake_timeout: 10m1s\n",
         {"t.yaml:1:20: handshake_timeout: must be between 100ms and 10m, got 10m1s"}},
        {"handshake_timeout zero", "handshake_timeout: 0\n",
         {"t.yaml:1:20: handshake_timeout: must be between 100ms and 10m, got 0s"}},
        {"handshake_timeout a mapping", "handshake_timeout: {s: 1}\n",
         {"t.yaml:1:20: handshake_timeout: expected a duration such as 500ms, 10s or 1h30m, got a mapping"}},

        // flow_table_size
        {"flow_table_size zero", "flow_table_size: 0\n",
         {"t.yaml:1:18: flow_table_size: must be between 1 and 16777216, got 0"}},
        {"flow_table_size too large", "flow_table_size: 16777217\n",
         {"t.yaml:1:18: flow_table_size: must be between 1 and 16777216, got 16777217"}},
        {"flow_table_size too large for any integer", "flow_table_size: 99999999999999999999\n",
         {"t.yaml:1:18: flow_table_size: expected an integer, got \"99999999999999999999\""}},

        // ring_buffer_size
        {"ring buffer not a power of two", "ring_buffer_size: 3MiB\n",
         {"t.yaml:1:19: ring_buffer_size: must be a power of two, got 3MiB"}},
        {"ring buffer not a power of two, bytes", "ring_buffer_size: 5000\n",
         {"t.yaml:1:19: ring_buffer_size: must be a power of two, got 5000"}},
        {"ring buffer too large", "ring_buffer_size: 2GiB\n",
         {"t.yaml:1:19: ring_buffer_size: must be at most 1GiB, got 2GiB"}},
        {"ring buffer too large for 64 bits", "ring_buffer_size: 17179869184GiB\n",
         {"t.yaml:1:19: ring_buffer_size: expected a size in bytes such as 4096 or 4MiB, got \"17179869184GiB\""}},
        {"ring buffer in MB", "ring_buffer_size: 4MB\n",
         {"t.yaml:1:19: ring_buffer_size: expected a size in bytes such as 4096 or 4MiB, got \"4MB\""}},
        {"ring buffer with a space", "ring_buffer_size: 4 MiB\n",
         {"t.yaml:1:19: ring_buffer_size: expected a size in bytes such as 4096 or 4MiB, got \"4 MiB\""}},
    };
    for (const auto& c : cases) {
        INFO(c.description << "\n" << c.yaml);
        CHECK(errors_of(c.yaml) == c.expected);
    }
}

TEST_CASE("ring buffer below the page size", "[config]")
{
    const long page = std::max(4096L, sysconf(_SC_PAGESIZE));
    CHECK(errors_of("ring_buffer_size: 2KiB\n") ==
          std::vector<std::string>{"t.yaml:1:19: ring_buffer_size: must be at least the page size (" +
                                   std::to_string(page) + " bytes), got 2KiB"});
}

TEST_CASE("all errors are collected, in file order", "[config]")
{
    const std::string yaml = R"(max_series: lots
peer_groups:
  b: [10.0.0.0/8]
  a: [10.1.0.0/16]
web:
  listen: [":1"]
ports:
  include: [0, 70000]
handshake_timeout: 1ms
max_series: 5
)";
    CHECK(errors_of(yaml) ==
          std::vector<std::string>{
              "t.yaml:1:13: max_series: expected an integer, got \"lots\"",
              "t.yaml:4:7: peer_groups.a[0]: 10.1.0.0/16 overlaps 10.0.0.0/8 (peer_groups.b[0]); a peer can "
              "belong to only one group",
              "t.yaml:6:3: web.listen: unknown key (expected one of: listen_addresses)",
              "t.yaml:8:13: ports.include[0]: must be between 1 and 65535, got 0",
              "t.yaml:8:16: ports.include[1]: must be between 1 and 65535, got 70000",
              "t.yaml:9:20: handshake_timeout: must be between 100ms and 10m, got 1ms",
              "t.yaml:10:1: max_series: duplicate key (first set at line 1)",
          });
}

TEST_CASE("load_config_file: unreadable files", "[config]")
{
    SECTION("missing")
    {
        const ParseResult result = load_config_file("/nonexistent/flowlatd.yaml");
        CHECK_FALSE(result.config.has_value());
        REQUIRE(result.diagnostics.size() == 1);
        CHECK(result.diagnostics[0].to_string() == "/nonexistent/flowlatd.yaml: cannot read: No such file or directory");
    }
    SECTION("a directory")
    {
        const ParseResult result = load_config_file("/tmp");
        REQUIRE(result.diagnostics.size() == 1);
        CHECK(result.diagnostics[0].to_string() == "/tmp: cannot read: Is a directory");
    }
    SECTION("too large")
    {
        TempFile file(std::string(kMaxConfigFileBytes + 1, '#'));
        const ParseResult result = load_config_file(file.path.string());
        REQUIRE(result.diagnostics.size() == 1);
        CHECK(result.diagnostics[0].to_string() == file.path.string() + ": cannot read: larger than 4MiB");
    }
    SECTION("malformed, positions are the file's")
    {
        TempFile file("web:\n  listen_addresses: [\":1\"\n");
        const ParseResult result = load_config_file(file.path.string());
        REQUIRE(result.diagnostics.size() == 1);
        CHECK(result.diagnostics[0].file == file.path.string());
        CHECK(result.diagnostics[0].line == 3);
        CHECK(result.diagnostics[0].message.rfind("invalid YAML: ", 0) == 0);
    }
}

TEST_CASE("validate: a Config changed after parsing, e.g. by flags", "[config]")
{
    Config config = embedded_default();
    config.listen_addresses = {"localhost"};
    config.log_level = "loud";
    config.max_series = 0;
    config.handshake_timeout = 0ms;
    config.ring_buffer_size = 4097;
    config.peer_folding.inbound_ipv4 = 33;
    config.ports.include = {0};
    config.ports.ephemeral_low = 0;
    config.interfaces = {"eth0", "eth0"};
    config.peer_groups = {PeerGroup{"a", {cidr("10.0.0.0/8")}}, PeerGroup{"a", {cidr("11.0.0.0/8")}}};
    std::vector<std::string> messages;
    for (const auto& d : validate(config)) messages.push_back(d.to_string());
    CHECK(messages ==
          std::vector<std::string>{
              "<embedded default>: interfaces[1]: duplicate of interfaces[0]",
              "<embedded default>: web.listen_addresses[0]: missing port in \"localhost\" (expected HOST:PORT "
              "such as :10435 or 127.0.0.1:10435)",
              "<embedded default>: log.level: unknown log level \"loud\" (expected trace, debug, info, warn, error, "
              "critical or off)",
              "<embedded default>: peer_groups.a: duplicate peer group name",
              "<embedded default>: peer_prefix.inbound.ipv4: must be between 0 and 32, got 33",
              "<embedded default>: ports.include[0]: must be between 1 and 65535, got 0",
              "<embedded default>: ports.ephemeral_range[0]: must be between 1 and 65535, got 0",
              "<embedded default>: max_series: must be between 1 and 1000000, got 0",
              "<embedded default>: handshake_timeout: must be between 100ms and 10m, got 0s",
              "<embedded default>: ring_buffer_size: must be a power of two, got 4097",
          });

    Config fine = embedded_default();
    fine.listen_addresses = {"127.0.0.1:0"};
    fine.peer_groups = {PeerGroup{"b", {Cidr{Family::ipv4, address("10.1.2.3"), 24}}}};
    REQUIRE(validate(fine).size() == 1);
    CHECK(validate(fine)[0].to_string() ==
          "<embedded default>: peer_groups.b[0]: 10.1.2.3/24 has host bits set (did you mean 10.1.2.0/24?)");
}

TEST_CASE("workload and workload_include", "[config]")
{
    CHECK(parse_ok("").workload == WorkloadMode::none);
    CHECK(parse_ok("workload: cgroup\n").workload == WorkloadMode::cgroup);
    const Config unit = parse_ok("workload: unit\nworkload_include: [\"*.service\", \"pod*\"]\n");
    CHECK(unit.workload == WorkloadMode::unit);
    CHECK(unit.workload_include == std::vector<std::string>{"*.service", "pod*"});
    CHECK(parse_ok("workload: none\n").workload == WorkloadMode::none);

    CHECK(errors_of("workload: systemd\n") ==
          std::vector<std::string>{"t.yaml:1:11: workload: expected none, cgroup or unit, got \"systemd\""});
    CHECK(errors_of("workload: [cgroup]\n").size() == 1);
    CHECK(errors_of("workload_include: [\"\"]\n") ==
          std::vector<std::string>{"t.yaml:1:20: workload_include[0]: pattern must not be empty"});
    CHECK(errors_of("workload_include: [a, a]\n") ==
          std::vector<std::string>{"t.yaml:1:23: workload_include[1]: duplicate of workload_include[0]"});

    Config many = embedded_default();
    many.workload_include.assign(kMaxWorkloadPatterns + 1, "x");
    const auto problems = validate(many);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].key == "workload_include");
    CHECK(parse_workload_mode("unit") == WorkloadMode::unit);
    CHECK_FALSE(parse_workload_mode("Unit").has_value());
}
