// The bounds that keep reading and checking any configuration short: the overlap check of
// large files, the peer-group CIDR limit after alias expansion, regular files only and
// the file size limit. Correctness only: speed is measured, never asserted (docs/testing.md).
#include "config/yaml_parser.hpp"
#include "temp_file.hpp"

#include <catch2/catch.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

using namespace flowlat;
using namespace flowlat::config;
using flowlat::testing::TempFile;

namespace {

// "  group-00042: [10.0.0.0/24, "fd00:2a::/64"]" for group i: no two groups overlap.
std::string many_groups(std::size_t count)
{
    std::string yaml = "peer_groups:\n";
    for (std::size_t i = 0; i < count; ++i) {
        const std::string index = std::to_string(i);
        yaml += "  group-" + index + ": [" + std::to_string(10 + (i >> 16)) + "." + std::to_string((i >> 8) & 255) +
                "." + std::to_string(i & 255) + ".0/24, \"fd00:" + std::to_string(i % 10000) + ":" +
                std::to_string(i / 10000) + "::/64\"]\n";
    }
    return yaml;
}

std::vector<std::string> messages(const ParseResult& result)
{
    std::vector<std::string> out;
    for (const auto& d : result.diagnostics) out.push_back(d.to_string());
    return out;
}

// The first CIDR of an earlier group that overlaps each CIDR, by comparing every pair:
// the rule validate() implements by sorting.
std::vector<std::string> overlaps_pairwise(const std::vector<PeerGroup>& groups)
{
    std::vector<std::string> out;
    for (std::size_t g = 0; g < groups.size(); ++g) {
        for (std::size_t i = 0; i < groups[g].cidrs.size(); ++i) {
            bool found = false;
            for (std::size_t e = 0; e < g && !found; ++e) {
                for (std::size_t j = 0; j < groups[e].cidrs.size() && !found; ++j) {
                    if (!groups[g].cidrs[i].overlaps(groups[e].cidrs[j])) continue;
                    out.push_back("<test>: peer_groups." + groups[g].name + "[" + std::to_string(i) + "]: " +
                                  groups[g].cidrs[i].to_string() + " overlaps " + groups[e].cidrs[j].to_string() +
                                  " (peer_groups." + groups[e].name + "[" + std::to_string(j) +
                                  "]); a peer can belong to only one group");
                    found = true;
                }
            }
        }
    }
    return out;
}

} // namespace

TEST_CASE("10,000 peer groups validate, and an overlap among them is found", "[config][limits]")
{
    const std::string yaml = many_groups(10'000);
    const ParseResult valid = parse_config_text(yaml, "big.yaml");
    REQUIRE(valid.diagnostics.empty());
    REQUIRE(valid.config->peer_groups.size() == 10'000);

    // A group at the end whose /16 covers group 257's /24 (10.1.1.0/24) and more.
    const ParseResult overlap = parse_config_text(yaml + "  late: [10.1.0.0/16]\n", "big.yaml");
    REQUIRE(overlap.diagnostics.size() == 1);
    CHECK(overlap.diagnostics[0].to_string() ==
          "big.yaml:10002:10: peer_groups.late[0]: 10.1.0.0/16 overlaps 10.1.0.0/24 (peer_groups.group-256[0]); "
          "a peer can belong to only one group");
}

TEST_CASE("the sorted overlap check reports what comparing every pair reports", "[config][limits]")
{
    // Random prefixes in a small space, so that overlaps, nesting and equal prefixes in
    // different groups are common; both families; several CIDRs per group.
    std::mt19937 random(7);
    for (int round = 0; round < 200; ++round) {
        Config config = embedded_default();
        config.source = "<test>";
        const int groups = 1 + static_cast<int>(random() % 12);
        for (int g = 0; g < groups; ++g) {
            PeerGroup group;
            group.name = "g"; // appended: GCC 12 at -O3 flags "g" + std::to_string(g) (false -Wrestrict)
            group.name += std::to_string(g);
            const int cidrs = 1 + static_cast<int>(random() % 4);
            for (int c = 0; c < cidrs; ++c) {
                Cidr cidr;
                cidr.family = random() % 4 == 0 ? Family::ipv6 : Family::ipv4;
                cidr.address[0] = static_cast<std::uint8_t>(random() % 4);
                cidr.address[1] = static_cast<std::uint8_t>(random() % 4 * 64);
                cidr.length = static_cast<std::uint8_t>(random() % 17);
                cidr = cidr.masked();
                if (std::find(group.cidrs.begin(), group.cidrs.end(), cidr) == group.cidrs.end())
                    group.cidrs.push_back(cidr);
            }
            config.peer_groups.push_back(std::move(group));
        }
        std::vector<std::string> got;
        for (const auto& d : validate(config)) got.push_back(d.to_string());
        INFO("round " << round);
        CHECK(got == overlaps_pairwise(config.peer_groups));
    }
}

TEST_CASE("peer groups are bounded after alias expansion", "[config][limits]")
{
    SECTION("1,000 groups aliasing one 1,000-CIDR list: one error, where the limit is passed")
    {
        std::string yaml = "peer_groups:\n  g0: &nets [";
        for (int i = 0; i < 1000; ++i) yaml += (i ? ", " : "") + std::string("10.") + std::to_string(i >> 8) + "." +
                                                std::to_string(i & 255) + ".0/24";
        yaml += "]\n";
        for (int i = 1; i < 1000; ++i) yaml += "  g" + std::to_string(i) + ": *nets\n";
        REQUIRE(yaml.size() < 30'000);
        const ParseResult result = parse_config_text(yaml, "alias.yaml");
        REQUIRE_FALSE(result.config);
        CHECK(messages(result) ==
              std::vector<std::string>{"alias.yaml:102:3: peer_groups.g100: the peer groups up to here list 101000 "
                                       "CIDRs (counting each alias expansion), more than the 100000 allowed; the "
                                       "remaining groups are not read"});
    }
    SECTION("validate() applies the same limit to a Config built in code")
    {
        Config config = embedded_default();
        PeerGroup group{"wide", {}};
        for (std::size_t i = 0; i <= kMaxPeerCidrs; ++i) {
            Cidr cidr{Family::ipv6, {}, 128};
            cidr.address[12] = static_cast<std::uint8_t>(i >> 24);
            cidr.address[13] = static_cast<std::uint8_t>(i >> 16);
            cidr.address[14] = static_cast<std::uint8_t>(i >> 8);
            cidr.address[15] = static_cast<std::uint8_t>(i);
            group.cidrs.push_back(cidr);
        }
        config.peer_groups.push_back(std::move(group));
        std::vector<std::string> got;
        for (const auto& d : validate(config)) got.push_back(d.to_string());
        CHECK(got == std::vector<std::string>{"<embedded default>: peer_groups: list 100001 CIDRs in total, at "
                                              "most 100000 are allowed"});
    }
    SECTION("exactly the limit is fine")
    {
        std::string yaml = "peer_groups:\n  g0: &nets [";
        for (int i = 0; i < 1000; ++i) yaml += (i ? ", " : "") + std::string("\"fd00::") + std::to_string(i) + "/128\"";
        yaml += "]\n";
        for (int i = 1; i < 100; ++i) yaml += "  g" + std::to_string(i) + ": *nets\n";
        const ParseResult result = parse_config_text(yaml, "alias.yaml");
        // The same CIDRs in 100 groups: every CIDR of the 99 later groups overlaps, nothing else.
        const auto overlapping = std::count_if(result.diagnostics.begin(), result.diagnostics.end(),
                                               [](const Diagnostic& d) { return d.message.find(" overlaps ") != std::string::npos; });
        CHECK(overlapping == 99'000);
        CHECK(result.diagnostics.size() == 99'000);
    }
}

TEST_CASE("only regular files are read, up to the size limit", "[config][limits]")
{
    SECTION("a FIFO is refused without waiting for a writer")
    {
        const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                          ("flowlat_fifo_test_" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir);
        const std::string fifo = (dir / "config.yaml").string();
        REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
        const ParseResult result = load_config_file(fifo);
        std::filesystem::remove_all(dir);
        CHECK(messages(result) == std::vector<std::string>{fifo + ": cannot read: not a regular file (it is a FIFO); "
                                                                  "the configuration must be a regular file"});
    }
    SECTION("a character device is refused without reading it")
    {
        CHECK(messages(load_config_file("/dev/zero")) ==
              std::vector<std::string>{"/dev/zero: cannot read: not a regular file (it is a character device); the "
                                       "configuration must be a regular file"});
    }
    SECTION("a file at the limit is read; one byte more is refused")
    {
        TempFile at_limit(std::string(kMaxConfigFileBytes, '#'));
        CHECK(load_config_file(at_limit.path.string()).diagnostics.empty());
        TempFile over(std::string(kMaxConfigFileBytes + 1, '#'));
        CHECK(messages(load_config_file(over.path.string())) ==
              std::vector<std::string>{over.path.string() + ": cannot read: larger than 4MiB"});
    }
}
