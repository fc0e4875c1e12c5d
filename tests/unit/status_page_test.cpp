#include "export/status_page.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <regex>

using namespace flowlat;

namespace {

const std::vector<double> kBounds{0.001, 0.01, 0.1, 1.0};

// A snapshot with one series per entry of `rtts`: series i has peer group i, interface 1,
// port 443 + i, and the given per-bucket RTT counts (kBounds.size() + 1 each).
aggregation::Snapshot snapshot_of(const std::vector<std::vector<std::uint64_t>>& rtts,
                                  std::vector<std::string> groups = {})
{
    aggregation::Snapshot snap;
    snap.bounds = kBounds;
    for (std::size_t i = 0; i < rtts.size(); ++i) {
        if (groups.size() <= i) groups.push_back(std::string("group").append(std::to_string(i)));
        aggregation::SeriesCounters counters;
        counters.key.ifindex = 1;
        counters.key.port = static_cast<std::uint16_t>(443 + i);
        counters.key.group = static_cast<std::uint16_t>(i);
        counters.key.peer_kind = labels::PeerKind::group;
        std::uint64_t total = 0;
        for (auto c : rtts[i]) total += c;
        counters.handshakes[static_cast<std::size_t>(Outcome::completed)] = total;
        counters.handshakes[static_cast<std::size_t>(Outcome::refused)] = i;
        counters.syn_retransmits = 2 * i;
        counters.rtt_count = total;
        snap.series.push_back(counters);
        snap.buckets.insert(snap.buckets.end(), rtts[i].begin(), rtts[i].end());
        snap.buckets.insert(snap.buckets.end(), kBounds.size() + 1, 0); // duration buckets
    }
    snap.group_names = groups;
    return snap;
}

const std::unordered_map<std::uint32_t, std::string> kInterfaces{{1, "eth0"}};

// Well-formedness of the XML fragments the page embeds (SVG): every tag closed in order,
// every attribute value quoted, no stray '<' or '&' in text.
bool well_formed(const std::string& xml)
{
    std::vector<std::string> open;
    std::size_t at = 0;
    while (at < xml.size()) {
        if (xml[at] == '&') {
            const auto semi = xml.find(';', at);
            if (semi == std::string::npos || !std::regex_match(xml.substr(at, semi - at + 1), std::regex("&(#[0-9]+|[a-z]+);")))
                return false;
            at = semi + 1;
            continue;
        }
        if (xml[at] != '<') {
            if (xml[at] == '>') return false;
            ++at;
            continue;
        }
        const auto end = xml.find('>', at);
        if (end == std::string::npos) return false;
        const std::string tag = xml.substr(at + 1, end - at - 1);
        at = end + 1;
        if (!tag.empty() && tag[0] == '/') {
            if (open.empty() || open.back() != tag.substr(1)) return false;
            open.pop_back();
            continue;
        }
        const bool self_closing = !tag.empty() && tag.back() == '/';
        static const std::regex element(R"re(([a-z][a-z0-9]*)(\s+[a-zA-Z][a-zA-Z0-9:-]*="[^"<>]*")*\s*/?)re");
        std::smatch match;
        if (!std::regex_match(tag, match, element)) return false;
        if (!self_closing) open.push_back(match[1]);
    }
    return open.empty();
}

std::vector<std::string> svgs_of(const std::string& html)
{
    std::vector<std::string> out;
    for (std::size_t at = html.find("<svg"); at != std::string::npos; at = html.find("<svg", at + 1))
        out.push_back(html.substr(at, html.find("</svg>", at) + 6 - at));
    return out;
}

} // namespace

TEST_CASE("quantiles from buckets follow histogram_quantile()", "[status]")
{
    using status::estimate_quantile;
    // All in (0.01, 0.1]: linear inside the bucket.
    CHECK(estimate_quantile(0.5, kBounds, std::vector<std::uint64_t>{0, 0, 10, 0, 0}) == Approx(0.055));
    CHECK(estimate_quantile(0.9, kBounds, std::vector<std::uint64_t>{0, 0, 10, 0, 0}) == Approx(0.091));
    // The first bucket interpolates from 0.
    CHECK(estimate_quantile(0.5, kBounds, std::vector<std::uint64_t>{4, 0, 0, 0, 0}) == Approx(0.0005));
    // Spread over buckets: rank 0.99*100 = 99 falls in (0.1, 1] holding ranks 91..100.
    CHECK(estimate_quantile(0.99, kBounds, std::vector<std::uint64_t>{50, 30, 10, 10, 0}) == Approx(0.1 + 0.9 * 0.9));
    CHECK(estimate_quantile(0.5, kBounds, std::vector<std::uint64_t>{50, 30, 10, 10, 0}) == Approx(0.001));
    // In +Inf: the highest finite bound, as Prometheus answers.
    CHECK(estimate_quantile(0.99, kBounds, std::vector<std::uint64_t>{1, 0, 0, 0, 99}) == Approx(1.0));
    // Empty, or a count list that does not fit the bounds: no value.
    CHECK(std::isnan(estimate_quantile(0.5, kBounds, std::vector<std::uint64_t>{0, 0, 0, 0, 0})));
    CHECK(std::isnan(estimate_quantile(0.5, kBounds, std::vector<std::uint64_t>{1, 2})));
}

TEST_CASE("status page query parameters", "[status]")
{
    auto q = status::parse_query("sort=p99&order=asc&limit=5");
    CHECK(q.sort == "p99");
    CHECK(q.ascending);
    CHECK(q.limit == 5);
    q = status::parse_query("sort=peer&limit=0");
    CHECK(q.sort == "peer");
    CHECK(q.limit == 0);
    // Unknown keys, junk and hostile values keep the defaults.
    q = status::parse_query("sort=%3Cscript%3E&order=sideways&limit=-1&x");
    CHECK(q.sort == "rate");
    CHECK_FALSE(q.ascending);
    CHECK(q.limit == status::Query{}.limit);
}

TEST_CASE("status page rows sort by any column, slowest and busiest", "[status]")
{
    // group0: fast (1 ms bucket), many; group1: slow (1 s bucket), few; group2: middle.
    const auto snap = snapshot_of({{90, 0, 0, 0, 0}, {0, 0, 0, 5, 0}, {0, 0, 20, 0, 0}});
    auto order = [&](const std::string& query) {
        std::vector<std::string> peers;
        for (const auto& row : status::build_rows(snap, kInterfaces, {}, status::parse_query(query)))
            peers.push_back(row.labels[3]);
        return peers;
    };
    CHECK(order("sort=p99") == std::vector<std::string>{"group1", "group2", "group0"});
    CHECK(order("sort=p50&order=asc") == std::vector<std::string>{"group0", "group2", "group1"});
    CHECK(order("sort=completed") == std::vector<std::string>{"group0", "group2", "group1"});
    CHECK(order("sort=refused") == std::vector<std::string>{"group2", "group1", "group0"});
    CHECK(order("sort=peer&order=desc") == std::vector<std::string>{"group2", "group1", "group0"});
    CHECK(order("sort=port&order=asc") == std::vector<std::string>{"group0", "group1", "group2"});

    const auto rows = status::build_rows(snap, kInterfaces, {}, status::parse_query("sort=peer&order=asc"));
    REQUIRE(rows.size() == 3);
    CHECK(rows[0].labels == std::vector<std::string>{"eth0", "outbound", "ipv4", "group0", "443", ""});
    CHECK(rows[2].p50 == Approx(0.055));
    CHECK(rows[2].counters.syn_retransmits == 4);
}

TEST_CASE("status page has a workload column only when the workload label is on", "[status]")
{
    auto snap = snapshot_of({{1, 2, 3, 4, 5}});
    const std::string without = status::render_page({}, snap, kInterfaces, {}, {});
    CHECK(without.find("l-workload") == std::string::npos);
    CHECK(without.find("sort=workload") == std::string::npos);
    // The outcomes of issue 8 have columns of their own, sortable like the others.
    CHECK_THAT(without, Catch::Contains("sort=unreachable"));
    CHECK_THAT(without, Catch::Contains("sort=overflows"));
    CHECK(status::parse_query("sort=overflows").sort == "overflows");

    snap.workload_names = {"", "system.slice/<nginx>.service"};
    snap.series[0].key.workload = 1;
    const std::string with = status::render_page({}, snap, kInterfaces, {}, {});
    CHECK_THAT(with, Catch::Contains("sort=workload"));
    CHECK_THAT(with, Catch::Contains("<td class=\"l-workload\">system.slice/&lt;nginx&gt;.service</td>"));
}

TEST_CASE("status page escapes every label value and the SVG is well formed", "[status]")
{
    const std::string hostile = "<script>alert('x')</script>\"&";
    const auto snap = snapshot_of({{1, 2, 3, 4, 5}, {0, 0, 0, 0, 0}}, {hostile, "db"});
    status::PageInfo info;
    info.version = "0.1.0 <dev>";
    info.config_file = "/etc/flowlatd/<x>.yaml";
    info.health = "eth<1>: no such interface";
    info.interfaces = {{"eth<1>", false, "", true, "no such interface"}, {"eth0", true, "tcx", false, ""}};
    info.max_series = 2000;
    const std::unordered_map<std::uint32_t, std::string> names{{1, "<img src=x onerror=alert(1)>"}};
    status::History history;
    history.record(snap, 0);
    history.record(snapshot_of({{2, 2, 3, 4, 5}, {0, 0, 0, 0, 0}}, {hostile, "db"}), 5);
    const std::string html = status::render_page(info, snap, names, history.copy(), {});

    CHECK(html.find("<script") == std::string::npos);
    CHECK(html.find("<img") == std::string::npos);
    CHECK(html.find("<dev>") == std::string::npos);
    CHECK(html.find("<x>") == std::string::npos);
    CHECK(html.find("eth<1>") == std::string::npos);
    CHECK_THAT(html, Catch::Contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;"));
    CHECK_THAT(html, Catch::Contains("&lt;img src=x onerror=alert(1)&gt;"));
    CHECK_THAT(html, Catch::Contains("eth&lt;1&gt;"));
    // The whole body: only the page's own tags, every one closed.
    const auto body_at = html.find("<body>");
    REQUIRE(body_at != std::string::npos);
    CHECK(well_formed(html.substr(body_at, html.find("</html>") - body_at)));

    const auto svgs = svgs_of(html);
    REQUIRE(svgs.size() == 4); // a histogram and a sparkline per series
    for (const auto& svg : svgs) {
        INFO(svg);
        CHECK(well_formed(svg));
    }
    // The first series has five non-empty buckets: five bars. The empty one draws none.
    CHECK(std::regex_search(svgs[0], std::regex("^<svg xmlns=\"http://www.w3.org/2000/svg\"")));
    std::size_t bars = 0;
    for (const auto& svg : svgs)
        for (std::size_t at = svg.find("<rect"); at != std::string::npos; at = svg.find("<rect", at + 1)) ++bars;
    CHECK(bars == 5);
    std::string spark;
    status::sparkline_svg(spark, {0.1, NAN, 0.2, 0.3, NAN, 0.05});
    CHECK(well_formed(spark));
    CHECK_THAT(spark, Catch::Contains("<polyline points=\"")); // 0.2 and 0.3: a line
    CHECK_THAT(spark, Catch::Contains("<circle"));                  // 0.1 and 0.05 alone: dots
    std::string empty;
    status::sparkline_svg(empty, {NAN, NAN});
    CHECK(well_formed(empty));
    CHECK(empty.find("<polyline") == std::string::npos);

    // Bad break: an unclosed tag and an unquoted attribute are caught by the checker itself.
    CHECK_FALSE(well_formed("<svg><rect x=1/></svg>"));
    CHECK_FALSE(well_formed("<svg><g></svg>"));
}

TEST_CASE("the rate counts handshakes, not their accept-overflow reports", "[status]")
{
    status::History history;
    history.record(snapshot_of({{0, 0, 0, 0, 0}}), 100);
    auto later = snapshot_of({{10, 0, 0, 0, 0}}); // 10 completed
    later.series[0].handshakes[static_cast<std::size_t>(Outcome::accept_overflow)] = 10;
    history.record(later, 110);
    const auto rows = status::build_rows(later, kInterfaces, history.copy(), {});
    CHECK(rows.at(0).rate == Approx(1.0)); // 10 handshakes in 10 s, 10 of them overflowed
}

TEST_CASE("history keeps a bounded ring of recent p50 and the rate", "[status]")
{
    status::History history;
    history.record(snapshot_of({{10, 0, 0, 0, 0}}), 100); // baseline: no interval yet
    CHECK(history.copy().begin()->second.p50.empty());
    history.record(snapshot_of({{10, 0, 20, 0, 0}}), 105); // +20 in (0.01, 0.1]
    history.record(snapshot_of({{10, 0, 20, 0, 0}}), 110); // nothing new
    auto recent = history.copy().begin()->second;
    REQUIRE(recent.p50.size() == 2);
    CHECK(recent.p50[0] == Approx(0.055));
    CHECK(std::isnan(recent.p50[1]));
    CHECK(recent.samples == std::vector<std::uint64_t>{20, 0});
    CHECK(recent.handshakes == std::vector<std::uint64_t>{20, 0});
    CHECK(recent.seconds == Approx(10));
    const auto rows = status::build_rows(snapshot_of({{10, 0, 20, 0, 0}}), kInterfaces, history.copy(), {});
    CHECK(rows.at(0).rate == Approx(2.0)); // 20 handshakes in 10 s

    for (int i = 0; i < 200; ++i) history.record(snapshot_of({{10, 0, 20, 0, static_cast<std::uint64_t>(i)}}), 115 + 5 * i);
    CHECK(history.copy().begin()->second.p50.size() == status::History::kIntervals);
    // A series that leaves the snapshot leaves the history.
    aggregation::Snapshot empty;
    empty.bounds = kBounds;
    history.record(empty, 2000);
    CHECK(history.copy().empty());
}

TEST_CASE("status page render time at max_series is printed and not asserted", "[status][timing]")
{
    std::vector<std::vector<std::uint64_t>> rtts;
    for (std::uint64_t i = 0; i < 2000; ++i) rtts.push_back({i % 7, i % 13, i % 5 + 1, i % 3, i % 2});
    const auto snap = snapshot_of(rtts);
    status::History history;
    for (std::size_t t = 0; t < status::History::kIntervals; ++t) {
        auto later = snap;
        for (auto& b : later.buckets) b += t;
        history.record(later, static_cast<double>(t) * 5.0);
    }
    status::PageInfo info;
    info.max_series = 2000;
    auto thread_cpu_ms = [] {
        timespec ts{};
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
    };
    {
        const auto start = std::chrono::steady_clock::now();
        const double cpu = thread_cpu_ms();
        const auto copy = history.copy();
        std::printf("status page, 2000 series: history copy %.2f ms wall, %.2f ms CPU\n",
                    std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count(),
                    thread_cpu_ms() - cpu);
        CHECK(copy.size() == 2000);
    }
    for (const auto& [label, query] : {std::pair{"default (100 rows)", ""}, std::pair{"sort=p99", "sort=p99"},
                                      std::pair{"every row", "limit=0"}}) {
        std::string html = status::render_page(info, snap, kInterfaces, history.copy(), status::parse_query(query)); // warm-up
        const auto start = std::chrono::steady_clock::now();
        const double cpu = thread_cpu_ms();
        constexpr int kRuns = 5;
        for (int run = 0; run < kRuns; ++run)
            html = status::render_page(info, snap, kInterfaces, history.copy(), status::parse_query(query));
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / kRuns;
        std::printf("status page, 2000 series, %s: %.2f ms wall, %.2f ms CPU per render (history copy included), "
                    "%zu bytes\n", label, ms, (thread_cpu_ms() - cpu) / kRuns, html.size());
        CHECK(html.find("</html>") != std::string::npos);
    }
}
