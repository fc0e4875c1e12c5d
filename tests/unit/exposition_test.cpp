#include "export/metrics_exposition.hpp"
#include "exposition_oracle.hpp"
#include "db_group_config.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

using namespace flowlat;

namespace {

HandshakeEvent make_event(Outcome outcome, std::optional<std::uint64_t> rtt_ns, std::uint64_t handshake_ns,
                          std::uint16_t retransmits = 0)
{
    HandshakeEvent e;
    e.monotonic_ns = 1'000'000'000;
    e.ifindex = 2;
    e.direction = Direction::outbound;
    e.outcome = outcome;
    e.peer = {10, 1, 2, 3};
    e.peer_port = 5432;
    e.local_port = 40000;
    e.rtt_ns = rtt_ns;
    e.handshake_ns = handshake_ns;
    e.retransmits = retransmits;
    return e;
}

exposition::OperationalSnapshot operational()
{
    exposition::OperationalSnapshot op;
    op.events_lost = 1;
    op.events_malformed = 4;
    op.flow_table_entries = 12;
    op.flow_table_size = 65536;
    op.flow_table_full = 2;
    op.packets_malformed = 3;
    op.handshakes_abandoned = 4;
    op.answers_rejected = 6;
    op.flow_table_evictions = 7;
    op.probes = {{"eth0", true}, {"eth1", false}};
    op.config_reload_ok = true;
    op.config_reload_success_timestamp = 1700000000;
    op.build = {"0.1.0", "abc123", "1.1.0"};
    return op;
}

std::string render_small()
{
    aggregation::Aggregator agg(labels::LabelPolicy(testing::db_group_config()),
                                aggregation::Settings{{0.001, 0.01, 0.1}, 2000, std::chrono::seconds(0)});
    const std::vector<HandshakeEvent> events = {
        make_event(Outcome::completed, 500'000, 500'000),            // 0.0005 s
        make_event(Outcome::completed, 10'000'000, 1'010'000'000, 1), // 0.01 s, one retransmission
        make_event(Outcome::refused, 2'000'000, 2'000'000),             // rtt 0.002 s, no duration
        make_event(Outcome::timeout, std::nullopt, 10'000'000'000, 3),
        make_event(Outcome::unreachable, std::nullopt, 20'000'000),
        make_event(Outcome::accept_overflow, std::nullopt, 30'000'000),
    };
    agg.add(events);
    labels::InterfaceNames names;
    names.set(2, "eth0");
    return exposition::render_metrics(agg.snapshot(), names, operational(), std::nullopt);
}

bool has_line(const std::string& text, const std::string& line)
{
    std::istringstream lines(text);
    for (std::string l; std::getline(lines, l);)
        if (l == line) return true;
    return false;
}

std::string lines_starting(const std::string& text, const std::string& prefix)
{
    std::istringstream lines(text);
    std::string out;
    for (std::string l; std::getline(lines, l);)
        if (l.rfind(prefix, 0) == 0) out += l + "\n";
    return out;
}

} // namespace

TEST_CASE("exposition of a small known input", "[metrics][exposition]")
{
    const std::string text = render_small();
    const std::string labels = R"(interface="eth0",direction="outbound",family="ipv4",peer="db",port="5432")";

    CHECK(lines_starting(text, "flowlat_handshake_rtt_seconds") ==
          "flowlat_handshake_rtt_seconds_count{" + labels + "} 3\n"
          "flowlat_handshake_rtt_seconds_sum{" + labels + "} 0.0125\n"
          "flowlat_handshake_rtt_seconds_bucket{" + labels + ",le=\"0.001\"} 1\n"
          "flowlat_handshake_rtt_seconds_bucket{" + labels + ",le=\"0.01\"} 3\n"
          "flowlat_handshake_rtt_seconds_bucket{" + labels + ",le=\"0.1\"} 3\n"
          "flowlat_handshake_rtt_seconds_bucket{" + labels + ",le=\"+Inf\"} 3\n");
    CHECK(lines_starting(text, "flowlat_handshake_duration_seconds") ==
          "flowlat_handshake_duration_seconds_count{" + labels + "} 2\n"
          "flowlat_handshake_duration_seconds_sum{" + labels + "} 1.0105\n"
          "flowlat_handshake_duration_seconds_bucket{" + labels + ",le=\"0.001\"} 1\n"
          "flowlat_handshake_duration_seconds_bucket{" + labels + ",le=\"0.01\"} 1\n"
          "flowlat_handshake_duration_seconds_bucket{" + labels + ",le=\"0.1\"} 1\n"
          "flowlat_handshake_duration_seconds_bucket{" + labels + ",le=\"+Inf\"} 2\n");
    CHECK(lines_starting(text, "flowlat_handshakes_total") ==
          "flowlat_handshakes_total{" + labels + ",outcome=\"completed\"} 2\n"
          "flowlat_handshakes_total{" + labels + ",outcome=\"refused\"} 1\n"
          "flowlat_handshakes_total{" + labels + ",outcome=\"timeout\"} 1\n"
          "flowlat_handshakes_total{" + labels + ",outcome=\"unreachable\"} 1\n");
    CHECK(has_line(text, "flowlat_syn_retransmits_total{" + labels + "} 4"));
    CHECK(has_line(text, "flowlat_handshake_accept_overflows_total{" + labels + "} 1"));

    for (const char* line : {
             "# HELP flowlat_handshake_rtt_seconds",
             "# TYPE flowlat_handshake_rtt_seconds histogram",
             "# TYPE flowlat_handshake_duration_seconds histogram",
             "# TYPE flowlat_handshakes_total counter",
             "# TYPE flowlat_syn_retransmits_total counter",
             "# TYPE flowlat_flow_table_entries gauge",
         }) {
        INFO(line);
        CHECK(text.find(line) != std::string::npos);
    }
    CHECK(has_line(text, "flowlat_series 1"));
    CHECK(has_line(text, "flowlat_series_overflow_total 0"));
    CHECK(has_line(text, "flowlat_events_lost_total 1"));
    CHECK(has_line(text, "flowlat_events_malformed_total 4"));
    CHECK(has_line(text, "flowlat_flow_table_entries 12"));
    CHECK(has_line(text, "flowlat_flow_table_size 65536"));
    CHECK(has_line(text, "flowlat_flow_table_full_total 2"));
    CHECK(has_line(text, "flowlat_packets_malformed_total 3"));
    CHECK(has_line(text, "flowlat_handshakes_abandoned_total 4"));
    CHECK(has_line(text, "flowlat_probe_answers_rejected_total 6"));
    CHECK(has_line(text, "flowlat_flow_table_evictions_total 7"));
    CHECK(has_line(text, "flowlat_probe_attached{interface=\"eth0\"} 1"));
    CHECK(has_line(text, "flowlat_probe_attached{interface=\"eth1\"} 0"));
    CHECK(has_line(text, "flowlat_probe_interfaces_wanted 2"));
    CHECK(has_line(text, "flowlat_probe_interfaces_attached 1"));
    CHECK(has_line(text, "flowlat_build_info{version=\"0.1.0\",revision=\"abc123\",libbpf_version=\"1.1.0\"} 1"));
    CHECK(has_line(text, "flowlat_config_last_reload_successful 1"));
    CHECK(has_line(text, "flowlat_config_last_reload_success_timestamp_seconds 1700000000"));
    CHECK(text.find("process_") == std::string::npos);

    // Every sample line belongs to a family with HELP and TYPE.
    std::istringstream lines(text);
    std::string family;
    for (std::string l; std::getline(lines, l);) {
        if (l.rfind("# HELP ", 0) == 0) {
            family = l.substr(7, l.find(' ', 7) - 7);
            continue;
        }
        if (l.rfind("# TYPE ", 0) == 0) {
            CHECK(l.substr(7, family.size()) == family);
            continue;
        }
        INFO(l);
        CHECK(l.rfind(family, 0) == 0);
    }
}

TEST_CASE("an empty interface selection still exports the probe totals", "[metrics][exposition]")
{
    // The configuration selects nothing: no flowlat_probe_attached series at all, but the
    // totals stay, at 0, so "probing no interface" can alert.
    auto op = operational();
    op.probes.clear();
    aggregation::Aggregator agg(labels::LabelPolicy(testing::db_group_config()),
                                aggregation::Settings{{0.001}, 2000, std::chrono::seconds(0)});
    const std::string text = exposition::render_metrics(agg.snapshot(), labels::InterfaceNames{}, op, std::nullopt);
    CHECK(text.find("flowlat_probe_attached{") == std::string::npos);
    CHECK(has_line(text, "flowlat_probe_interfaces_wanted 0"));
    CHECK(has_line(text, "flowlat_probe_interfaces_attached 0"));
    CHECK(text.find("# TYPE flowlat_probe_interfaces_wanted gauge") != std::string::npos);
}

TEST_CASE("exposition sorts series and merges label sets that coincide", "[metrics][exposition]")
{
    aggregation::Aggregator agg(labels::LabelPolicy(testing::db_group_config()),
                                aggregation::Settings{{0.001}, 2000, std::chrono::seconds(0)});
    // Interface eth0 re-created: ifindex 2 and 7 both render as "eth0".
    auto a = make_event(Outcome::completed, 500, 500);
    auto b = a;
    b.ifindex = 7;
    auto c = a;
    c.peer = {198, 18, 0, 1};
    const std::vector<HandshakeEvent> events = {c, a, b};
    agg.add(events);
    labels::InterfaceNames names;
    names.set(2, "eth0");
    names.set(7, "eth0");
    const auto text = exposition::render_metrics(agg.snapshot(), names, operational(), std::nullopt);
    CHECK(lines_starting(text, "flowlat_handshakes_total{interface=\"eth0\",direction=\"outbound\",family=\"ipv4\","
                               "peer=\"db\",port=\"5432\",outcome=\"completed\"}") ==
          "flowlat_handshakes_total{interface=\"eth0\",direction=\"outbound\",family=\"ipv4\",peer=\"db\","
          "port=\"5432\",outcome=\"completed\"} 2\n");
    // "198.18.0.1" sorts before "db".
    CHECK(text.find("peer=\"198.18.0.1\"") < text.find("peer=\"db\""));
}

TEST_CASE("process metrics are read from /proc", "[metrics][process]")
{
    auto metrics = process::read_process_metrics();
    REQUIRE(metrics.ok());
    const auto& m = metrics.value();
    CHECK(m.cpu_seconds_total >= 0);
    CHECK(m.resident_memory_bytes > 0);
    CHECK(m.virtual_memory_bytes >= m.resident_memory_bytes);
    CHECK(m.open_fds >= 3);
    CHECK(m.max_fds >= m.open_fds);
    CHECK(m.start_time_seconds > 1.5e9);
    CHECK(m.start_time_seconds <= static_cast<double>(time(nullptr)) + 1);

    const auto missing = process::read_process_metrics("/nonexistent/self");
    REQUIRE_FALSE(missing.ok());
    CHECK_THAT(missing.error().message(), Catch::Contains("/nonexistent/self/stat"));
}

TEST_CASE("promtool check metrics accepts the exposition", "[metrics][exposition][promtool]")
{
    const char* promtool = "/usr/bin/promtool";
    // packaging/build-deps.sh installs it; a missing promtool must not pass silently.
    INFO("promtool not installed (Debian package 'prometheus')");
    REQUIRE(access(promtool, X_OK) == 0);
    aggregation::Aggregator agg(labels::LabelPolicy(testing::db_group_config()),
                                aggregation::Settings{config::default_buckets(), 3, std::chrono::seconds(0)});
    std::vector<HandshakeEvent> events;
    for (std::uint8_t i = 0; i < 10; ++i) {
        auto e = make_event(i % 3 == 0 ? Outcome::refused : Outcome::completed, 1000u * i * i, 2000u * i);
        e.peer = {198, 18, i, 1};
        e.direction = i % 2 == 0 ? Direction::inbound : Direction::outbound;
        events.push_back(e);
    }
    agg.add(events);
    labels::InterfaceNames names;
    names.set(2, "eth0");
    auto proc = process::read_process_metrics();
    REQUIRE(proc.ok());
    const auto text = exposition::render_metrics(agg.snapshot(), names, operational(), proc.value());

    char path[] = "/tmp/flowlat-exposition-XXXXXX";
    const int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    std::ofstream(path) << text;
    const std::string command = std::string(promtool) + " check metrics < " + path + " 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::string output;
    char buffer[512];
    while (const std::size_t n = fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
    const int status = pclose(pipe);
    unlink(path);
    INFO(text);
    CHECK(output.empty());
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("the text writer matches prometheus-cpp's TextSerializer byte for byte", "[metrics][exposition]")
{
    aggregation::Aggregator agg(labels::LabelPolicy(testing::db_group_config()),
                                aggregation::Settings{config::default_buckets(), 50, std::chrono::seconds(0)});
    std::uint64_t state = 12345;
    const auto next = [&] {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        return state >> 11;
    };
    std::vector<HandshakeEvent> events;
    for (int i = 0; i < 3000; ++i) {
        auto e = make_event(static_cast<Outcome>(next() % 3), std::nullopt, next() % 20'000'000'000ull,
                            static_cast<std::uint16_t>(next() % 4));
        if (next() % 4 != 0) e.rtt_ns = next() % (1ull << (next() % 36));
        e.ifindex = 2 + static_cast<std::uint32_t>(next() % 3);
        e.direction = next() % 2 ? Direction::inbound : Direction::outbound;
        e.peer = {198, 18, static_cast<std::uint8_t>(next() % 8), static_cast<std::uint8_t>(next())};
        if (next() % 5 == 0) {
            e.family = Family::ipv6;
            e.peer = {0x20, 0x01, 0x0d, 0xb8, 0, static_cast<std::uint8_t>(next() % 4)};
            e.peer[15] = static_cast<std::uint8_t>(next());
        }
        e.peer_port = static_cast<std::uint16_t>(next() % 3 == 0 ? 40000 + next() % 100 : 443);
        events.push_back(e);
    }
    agg.add(events);
    labels::InterfaceNames names;
    names.set(2, "eth0");
    names.set(3, "we\"ird\\name\nx"); // not a legal interface name, but exercises escaping
    auto op = operational();
    op.config_reload_success_timestamp = 1700000000.123456789;
    process::ProcessMetrics proc{12.34, 1e7, 2.5e9, 17, std::numeric_limits<double>::infinity(), 1.7e9 + 0.01};

    const auto snap = agg.snapshot();
    CHECK(snap.series_overflow > 0);
    const auto fast = exposition::render_metrics(snap, names, op, proc);
    const auto reference = test::render_metrics_oracle(snap, names, op, proc);
    // The oracle formats on its own (TextSerializer): it must have written every kind of line.
    CHECK(reference.find("# TYPE flowlat_handshake_rtt_seconds histogram\n") != std::string::npos);
    CHECK(reference.find("flowlat_handshake_rtt_seconds_bucket{") != std::string::npos);
    CHECK(reference.find("le=\"+Inf\"} ") != std::string::npos);
    CHECK(reference.find("\nprocess_max_fds +Inf\n") != std::string::npos);
    CHECK(fast.size() == reference.size());
    CHECK(fast == reference);
}
