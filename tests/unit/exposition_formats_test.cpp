// The three formats of /metrics against each other and against their reference parsers:
// content negotiation; the protobuf body decoded with the same metrics.proto equals the text
// body; the native buckets hold each observation within schema 3's error; exemplars name the
// real peer; the OpenMetrics body passes promtool and python3-prometheus-client's parser.
#include "export/metric_writer.hpp"
#include "export/metrics_exposition.hpp"
#include "export/text_writer.hpp"
#include "temp_file.hpp"
#include "db_group_config.hpp"

#include <catch2/catch.hpp>
#include <io/prometheus/client/metrics.pb.h>
#include <google/protobuf/io/coded_stream.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>
#include <sys/wait.h>

using namespace flowlat;
namespace pb = io::prometheus::client;

namespace {

HandshakeEvent event(std::uint8_t host, std::uint16_t port, std::optional<std::uint64_t> rtt_ns,
                     Outcome outcome = Outcome::completed, std::uint64_t mono_ns = 1'000'000'000)
{
    HandshakeEvent e;
    e.monotonic_ns = mono_ns;
    e.ifindex = 2;
    e.outcome = outcome;
    e.peer = {10, 1, 2, host};
    e.peer_port = port;
    e.local_port = static_cast<std::uint16_t>(40000 + host);
    e.rtt_ns = rtt_ns;
    e.handshake_ns = rtt_ns.value_or(3'000'000'000);
    return e;
}

// RTTs from below the native zero threshold (0.5 µs) through datacenter (30 µs) and WAN
// (300 ms) to above the largest classic bound (12 s), over two label sets (ports 5432, 443).
constexpr std::uint64_t kUnix = 1'700'000'000'000'000'000ull; // unix ns at monotonic 0
std::vector<HandshakeEvent> events()
{
    std::vector<HandshakeEvent> v;
    const std::uint64_t rtts[] = {500, 30'000, 31'000, 45'000, 1'000'000, 5'000'000, 5'100'000,
                                  20'000'000, 80'000'000, 300'000'000, 12'000'000'000};
    std::uint8_t host = 1;
    for (const auto rtt : rtts) v.push_back(event(host++, 5432, rtt));
    for (const auto rtt : rtts) v.push_back(event(host++, 443, rtt * 2));
    v.push_back(event(100, 5432, std::nullopt, Outcome::timeout));
    v.push_back(event(101, 443, 2'000'000, Outcome::refused));
    return v;
}

exposition::OperationalSnapshot operational()
{
    exposition::OperationalSnapshot op;
    op.events_lost = 7;
    op.flow_table_size = 65536;
    op.probes = {{"eth0", true}};
    op.build = {"0.1.0", "abc", "1.1.2"};
    return op;
}

struct Rendered {
    std::string text, openmetrics, protobuf;
};

Rendered render(const std::vector<double>& buckets = config::default_buckets())
{
    aggregation::Aggregator agg(labels::LabelPolicy(testing::db_group_config()),
                                aggregation::Settings{buckets, 2000, std::chrono::seconds(0)});
    agg.add(events(), kUnix);
    labels::InterfaceNames names;
    names.set(2, "eth0");
    const auto snap = agg.snapshot();
    return {exposition::render_metrics(exposition::Format::text, snap, names, operational(), std::nullopt),
            exposition::render_metrics(exposition::Format::openmetrics, snap, names, operational(), std::nullopt),
            exposition::render_metrics(exposition::Format::protobuf, snap, names, operational(), std::nullopt)};
}

std::vector<pb::MetricFamily> decode(const std::string& body)
{
    std::vector<pb::MetricFamily> families;
    google::protobuf::io::CodedInputStream in(reinterpret_cast<const std::uint8_t*>(body.data()),
                                              static_cast<int>(body.size()));
    while (!in.ExpectAtEnd()) {
        std::uint32_t size = 0;
        REQUIRE(in.ReadVarint32(&size));
        const auto limit = in.PushLimit(static_cast<int>(size));
        pb::MetricFamily f;
        REQUIRE(f.ParseFromCodedStream(&in));
        REQUIRE(in.ConsumedEntireMessage());
        in.PopLimit(limit);
        families.push_back(std::move(f));
    }
    return families;
}

// Text 0.0.4 samples: "name{labels}" -> value, labels as written.
std::map<std::string, double> text_samples(const std::string& text)
{
    std::map<std::string, double> samples;
    std::istringstream lines(text);
    for (std::string l; std::getline(lines, l);) {
        if (l.empty() || l[0] == '#') continue;
        const auto space = l.rfind(' ');
        samples[l.substr(0, space)] = std::stod(l.substr(space + 1));
    }
    return samples;
}

std::string le_text(double bound)
{
    if (std::isinf(bound)) return "+Inf";
    std::string s;
    exposition::append_double(s, bound);
    return s;
}

// The text-format sample names a decoded family produces, with the text writer's label order.
std::map<std::string, double> protobuf_samples(const std::vector<pb::MetricFamily>& families)
{
    std::map<std::string, double> samples;
    for (const auto& f : families) {
        for (const auto& m : f.metric()) {
            std::string labels;
            for (const auto& l : m.label()) labels += (labels.empty() ? "" : ",") + l.name() + "=\"" + l.value() + "\"";
            auto key = [&](const std::string& suffix, const std::string& extra = "") {
                std::string all = labels;
                if (!extra.empty()) all += (all.empty() ? "" : ",") + extra;
                return f.name() + suffix + (all.empty() ? "" : "{" + all + "}");
            };
            if (f.type() == pb::HISTOGRAM) {
                const auto& h = m.histogram();
                samples[key("_count")] = static_cast<double>(h.sample_count());
                samples[key("_sum")] = h.sample_sum();
                for (const auto& b : h.bucket())
                    samples[key("_bucket", "le=\"" + le_text(b.upper_bound()) + "\"")] =
                        static_cast<double>(b.cumulative_count());
            } else {
                samples[key("")] = f.type() == pb::COUNTER ? m.counter().value() : m.gauge().value();
            }
        }
    }
    return samples;
}

// Native buckets expanded: absolute index -> count.
std::map<int, std::uint64_t> native_buckets(const pb::Histogram& h)
{
    std::map<int, std::uint64_t> out;
    int index = 0;
    int d = 0;
    std::int64_t count = 0;
    for (int s = 0; s < h.positive_span_size(); ++s) {
        index += h.positive_span(s).offset();
        for (std::uint32_t i = 0; i < h.positive_span(s).length(); ++i, ++index) {
            count += h.positive_delta(d++);
            REQUIRE(count >= 0);
            if (count > 0) out[index] = static_cast<std::uint64_t>(count);
        }
    }
    REQUIRE(d == h.positive_delta_size());
    return out;
}

const pb::Metric* find_metric(const std::vector<pb::MetricFamily>& families, const std::string& family,
                              const std::string& port)
{
    for (const auto& f : families) {
        if (f.name() != family) continue;
        for (const auto& m : f.metric())
            for (const auto& l : m.label())
                if (l.name() == "port" && l.value() == port) return &m;
    }
    return nullptr;
}

struct Run {
    int status;
    std::string output;
};

Run run(const std::string& command)
{
    Run r{-1, {}};
    FILE* pipe = popen((command + " 2>&1").c_str(), "r");
    REQUIRE(pipe != nullptr);
    char buffer[4096];
    for (std::size_t n; (n = fread(buffer, 1, sizeof(buffer), pipe)) > 0;) r.output.append(buffer, n);
    const int status = pclose(pipe);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

} // namespace

TEST_CASE("content negotiation follows the Accept header's weights", "[metrics][exposition][negotiation]")
{
    using exposition::Format;
    using exposition::negotiate;
    struct Case {
        const char* accept;
        Format want;
    };
    const Case cases[] = {
        {"", Format::text},
        {"*/*", Format::text},
        {"text/plain", Format::text},
        {"text/plain;version=0.0.4;q=1,*/*;q=0.1", Format::text},
        {"application/openmetrics-text; version=1.0.0", Format::openmetrics},
        {"application/openmetrics-text", Format::openmetrics},
        // Prometheus 2.42 without native histograms.
        {"application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
         "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
         Format::openmetrics},
        // Prometheus 2.42 with --enable-feature=native-histograms.
        {"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,"
         "application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,"
         "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
         Format::protobuf},
        // Weights decide, not the order.
        {"text/plain;version=0.0.4;q=0.3, application/openmetrics-text;version=1.0.0;q=0.9", Format::openmetrics},
        {"application/openmetrics-text;version=1.0.0;q=0, text/plain", Format::text},
        // Versions and encodings flowlatd does not write are skipped.
        {"application/openmetrics-text;version=0.0.1", Format::text},
        {"text/plain;version=0.0.5", Format::text},
        {"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text", Format::text},
        {"application/vnd.google.protobuf;proto=other;encoding=delimited", Format::text},
        {"application/vnd.google.protobuf; proto=\"io.prometheus.client.MetricFamily\"; encoding=delimited",
         Format::protobuf},
        // A malformed weight drops that range only.
        {"application/openmetrics-text;q=abc, application/vnd.google.protobuf;"
         "proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5",
         Format::protobuf},
        {",,;;=,", Format::text},
    };
    for (const auto& c : cases) {
        INFO(c.accept);
        CHECK(negotiate(c.accept) == c.want);
    }
    CHECK(std::string(exposition::content_type(Format::openmetrics)).rfind("application/openmetrics-text; version=1.0.0", 0) == 0);
}

TEST_CASE("a text scrape's counts-only snapshot renders the same text as a full one", "[metrics][exposition]")
{
    aggregation::Aggregator agg(labels::LabelPolicy(testing::db_group_config()),
                                aggregation::Settings{config::default_buckets(), 2000, std::chrono::seconds(0)});
    agg.add(events(), kUnix);
    labels::InterfaceNames names;
    names.set(2, "eth0");
    const auto counts = agg.snapshot(exposition::snapshot_detail(exposition::Format::text));
    CHECK(counts.native.empty());
    CHECK(counts.exemplars.empty());
    const auto full = agg.snapshot(exposition::snapshot_detail(exposition::Format::openmetrics));
    CHECK(full.native.size() == 2 * full.series.size());
    CHECK(agg.snapshot(exposition::snapshot_detail(exposition::Format::protobuf)).exemplars.size() ==
          full.exemplars.size());
    CHECK(exposition::render_metrics(exposition::Format::text, counts, names, operational(), std::nullopt) ==
          exposition::render_metrics(exposition::Format::text, full, names, operational(), std::nullopt));
}

TEST_CASE("the protobuf body decodes into the text body's counts, sums and buckets", "[metrics][exposition][protobuf]")
{
    const Rendered r = render();
    const auto families = decode(r.protobuf);
    REQUIRE(families.size() > 10);
    const auto text = text_samples(r.text);
    const auto proto = protobuf_samples(families);
    CHECK(proto.size() == text.size());
    for (const auto& [name, value] : text) {
        INFO(name);
        const auto it = proto.find(name);
        REQUIRE(it != proto.end());
        CHECK(it->second == value);
    }
    // The family types too.
    std::map<std::string, pb::MetricType> types;
    for (const auto& f : families) types[f.name()] = f.type();
    CHECK(types["flowlat_handshake_rtt_seconds"] == pb::HISTOGRAM);
    CHECK(types["flowlat_handshakes_total"] == pb::COUNTER);
    CHECK(types["flowlat_flow_table_size"] == pb::GAUGE);
}

TEST_CASE("native buckets hold every observation within schema 3's error", "[metrics][exposition][protobuf][native]")
{
    const auto families = decode(render().protobuf);
    for (const char* port : {"5432", "443"}) {
        const double scale = std::string(port) == "443" ? 2 : 1;
        const pb::Metric* m = find_metric(families, "flowlat_handshake_rtt_seconds", port);
        REQUIRE(m != nullptr);
        const auto& h = m->histogram();
        CHECK(h.schema() == 3);
        CHECK(h.zero_threshold() == std::ldexp(1.0, -20));
        const auto buckets = native_buckets(h);
        std::uint64_t total = h.zero_count();
        for (const auto& [index, count] : buckets) total += count;
        CHECK(total == h.sample_count());
        // Expected from first principles: bucket k is (2^((k-1)/8), 2^(k/8)]; values at or
        // below 2^-20 s go to the zero bucket; above the top (10 s) into the top bucket.
        const int top = static_cast<int>(std::ceil(std::log2(10.0) * 8));
        std::map<int, std::uint64_t> want;
        std::uint64_t zero = 0;
        std::vector<double> rtts_ns{500., 30e3, 31e3, 45e3, 1e6, 5e6, 5.1e6, 20e6, 80e6, 300e6, 12e9};
        for (auto& ns : rtts_ns) ns *= scale;
        if (scale == 2) rtts_ns.push_back(2e6); // the refused handshake's RTT
        for (const double ns : rtts_ns) {
            const double v = ns / 1e9;
            if (v <= std::ldexp(1.0, -20)) {
                ++zero;
                continue;
            }
            const int k = std::min(static_cast<int>(std::ceil(std::log2(v) * 8 - 1e-9)), top);
            ++want[k];
            if (k < top) {
                // The bucket's midpoint (in log space) is within 4.4 % of the value.
                const double mid = std::exp2((k - 0.5) / 8);
                CHECK(std::abs(mid - v) / v < 0.0443);
            }
        }
        CHECK(h.zero_count() == zero);
        CHECK(buckets == want);
    }
    // The duration histogram has native buckets as well, with the same zero threshold.
    const pb::Metric* d = find_metric(families, "flowlat_handshake_duration_seconds", "5432");
    REQUIRE(d != nullptr);
    CHECK(d->histogram().schema() == 3);
    CHECK(d->histogram().positive_span_size() > 0);
}

TEST_CASE("exemplars name the slowest recent peer of each RTT bucket", "[metrics][exposition][exemplars]")
{
    const auto families = decode(render().protobuf);
    const pb::Metric* m = find_metric(families, "flowlat_handshake_rtt_seconds", "5432");
    REQUIRE(m != nullptr);
    int with = 0;
    for (const auto& b : m->histogram().bucket()) {
        if (!b.has_exemplar()) continue;
        ++with;
        const auto& e = b.exemplar();
        std::map<std::string, std::string> l;
        std::size_t chars = 0;
        for (const auto& pair : e.label()) {
            l[pair.name()] = pair.value();
            chars += pair.name().size() + pair.value().size();
        }
        CHECK(chars <= 128);
        CHECK(l.at("peer_address").rfind("10.1.2.", 0) == 0);
        CHECK(l.at("peer_port") == "5432");
        CHECK(e.value() <= b.upper_bound());
        CHECK(e.timestamp().seconds() == 1'700'000'001); // kUnix + the events' 1 s monotonic
    }
    CHECK(with >= 8);
    // 30 µs, 31 µs and 45 µs share (0.000025, 0.00005]: the slowest, 45 µs (host 4), is kept.
    for (const auto& b : m->histogram().bucket()) {
        if (!b.has_exemplar() || b.upper_bound() < 45e-6 || b.exemplar().value() > 50e-6) continue;
        CHECK(b.exemplar().value() == Approx(45e-6));
        CHECK(b.exemplar().label(0).value() == "10.1.2.4");
        CHECK(b.exemplar().label(2).value() == "40004");
    }
    // Text 0.0.4 has no exemplars.
    CHECK(render().text.find(" # {") == std::string::npos);
}

TEST_CASE("series merged by an interface move keep native buckets and the slower exemplar",
          "[metrics][exemplars][native]")
{
    // eth0 (ifindex 2) is re-created as ifindex 3: the old series move onto the new ones.
    aggregation::Aggregator agg(labels::LabelPolicy(testing::db_group_config()),
                                aggregation::Settings{config::default_buckets(), 2000, std::chrono::seconds(0)});
    auto slow = event(1, 5432, 40'000); // 40 µs, bucket (25 µs, 50 µs]
    auto fast = event(2, 5432, 30'000);
    fast.ifindex = 3;
    agg.add(std::vector<HandshakeEvent>{slow}, kUnix);
    agg.add(std::vector<HandshakeEvent>{fast}, kUnix);
    REQUIRE(agg.series_count() == 2);
    agg.move_interface(2, 3, true);
    const auto snap = agg.snapshot();
    REQUIRE(snap.series.size() == 1);
    std::uint64_t native = 0;
    for (const auto c : snap.rtt_native(0).counts) native += c;
    CHECK(native == 2);
    const auto exemplars = snap.rtt_exemplars(0);
    const auto b = aggregation::bucket_index({10'000, 25'000, 50'000}, 40'000);
    REQUIRE(b == 2);
    CHECK(exemplars[b].value_ns == 40'000);
    CHECK(exemplars[b].peer[3] == 1);
    CHECK(snap.series[0].created_unix_ns == kUnix + 1'000'000'000);
}

TEST_CASE("exemplars prefer the slowest, until it is no longer recent", "[metrics][exemplars]")
{
    aggregation::Exemplar current{{10, 0, 0, 1}, 40'000, 1'000'000'000'000, 1, 2, Family::ipv4};
    aggregation::Exemplar faster = current;
    faster.value_ns = 30'000;
    faster.unix_ns += 1'000'000'000;
    CHECK_FALSE(aggregation::prefer_exemplar(faster, current));
    aggregation::Exemplar slower = faster;
    slower.value_ns = 45'000;
    CHECK(aggregation::prefer_exemplar(slower, current));
    faster.unix_ns = current.unix_ns + aggregation::kExemplarRecentNs;
    CHECK(aggregation::prefer_exemplar(faster, current));
    CHECK(aggregation::prefer_exemplar(faster, aggregation::Exemplar{}));
}

TEST_CASE("OpenMetrics output: # EOF, _created, exemplars, and the reference parsers accept it",
          "[metrics][exposition][openmetrics]")
{
    const Rendered r = render();
    const std::string& om = r.openmetrics;
    REQUIRE(om.size() > 6);
    CHECK(om.substr(om.size() - 6) == "# EOF\n");
    CHECK(om.find("# TYPE flowlat_handshakes counter\n") != std::string::npos);
    CHECK(om.find("# UNIT flowlat_handshake_rtt_seconds seconds\n") != std::string::npos);
    CHECK(om.find("flowlat_handshakes_created{") != std::string::npos);
    CHECK(om.find("flowlat_handshake_rtt_seconds_created{") != std::string::npos);
    CHECK(om.find("} 1700000001\n") != std::string::npos);
    CHECK(om.find(R"( # {peer_address="10.1.2.4",peer_port="5432",local_port="40004"} 4.5e-05 1700000001)") !=
          std::string::npos);

    testing::TempFile file(om);
    // promtool 2.42's `check metrics` reads text format 0.0.4 only (its parser stops at the
    // first exemplar's "#"), so it lints the same families in that format: names, suffixes,
    // HELP and TYPE. It exits 0 only when it finds no problem. The OpenMetrics body itself goes
    // through the python parser below and, end to end, through Prometheus' own OpenMetrics
    // parser (tests/e2e/test_exposition_prometheus.py).
    testing::TempFile text(r.text);
    const Run promtool = run("promtool check metrics < " + text.path.string());
    INFO(promtool.output);
    CHECK(promtool.status == 0);
    CHECK(promtool.output.empty());

    // python3-prometheus-client's OpenMetrics parser, which enforces the spec (# EOF, sample
    // order, _created, exemplar size); the script counts what it parsed.
    const char* script =
        "import sys\n"
        "from prometheus_client.openmetrics.parser import text_string_to_metric_families as p\n"
        "fams = list(p(open(sys.argv[1]).read()))\n"
        "ex = sum(1 for f in fams for s in f.samples if s.exemplar)\n"
        "cr = sum(1 for f in fams for s in f.samples if s.name.endswith('_created'))\n"
        "print(len(fams), ex, cr)\n";
    testing::TempFile py(script);
    // Debian's python3 (the package installs the module there), not another one on PATH.
    const Run parsed = run("/usr/bin/python3 " + py.path.string() + " " + file.path.string());
    INFO(parsed.output);
    REQUIRE(parsed.status == 0);
    int families = 0, exemplars = 0, created = 0;
    std::istringstream(parsed.output) >> families >> exemplars >> created;
    CHECK(families >= 15);
    CHECK(exemplars >= 16);
    // Per label set (2): rtt + duration histograms, 4 outcome counters, the accept-overflow
    // and the retransmit counters.
    CHECK(created == 2 * (2 + 4 + 1 + 1));
}
