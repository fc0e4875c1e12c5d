// (d) Scrape: /metrics at 100, 1,000 and 10,000 label sets, in each of the three formats
// (text 0.0.4, OpenMetrics 1.0, protobuf with native histograms), with and without gzip,
// while events flow. Also: the Prometheus series one label set becomes in each format, and
// the aggregator's memory per label set. The real HttpServer (civetweb) serves exposition::render_metrics over
// a snapshot of the real Aggregator, wired as daemon_mode.cpp wires it; a feeder thread adds
// events to every series throughout. A client on 127.0.0.1 times each request from connect
// to the last byte; render_metrics alone is timed in process as well.
#include "bench_common.hpp"

#include "aggregate/aggregator.hpp"
#include "config/config.hpp"
#include "export/http_server.hpp"
#include "aggregate/label_policy.hpp"
#include "export/metrics_exposition.hpp"
#include "export/process_metrics.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <io/prometheus/client/metrics.pb.h>
#include <google/protobuf/io/coded_stream.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace flowlat;
using namespace flowlat::bench;

namespace {

HandshakeEvent event_for(std::uint32_t series, std::uint64_t n)
{
    HandshakeEvent e;
    e.monotonic_ns = monotonic_ns();
    e.ifindex = 1;
    e.direction = Direction::outbound;
    e.outcome = n % 50 == 0 ? Outcome::refused : Outcome::completed;
    e.family = Family::ipv4;
    const std::uint32_t local = htonl(v4(198, 18, 0, 1)), peer = htonl(v4(198, 19, series >> 8 & 0xff, series & 0xff));
    std::memcpy(e.local.data(), &local, 4);
    std::memcpy(e.peer.data(), &peer, 4);
    e.local_port = static_cast<std::uint16_t>(40000 + n % 20000);
    e.peer_port = 443;
    e.rtt_ns = 20'000 + (n * 7919) % 50'000'000; // spread over the buckets
    e.handshake_ns = *e.rtt_ns + 1000;
    return e;
}

// One HTTP/1.1 request on a fresh connection; returns the response size, time in *ns.
std::size_t fetch(std::uint16_t port, bool gzip, exposition::Format format, std::uint64_t* ns)
{
    const auto t0 = monotonic_ns();
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        ::close(fd);
        throw std::runtime_error("connect to the metrics server failed");
    }
    const std::string request = std::string("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n") +
                                (gzip ? "Accept-Encoding: gzip\r\n" : "") +
                                (format == exposition::Format::protobuf
                                     ? "Accept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
                                       "encoding=delimited\r\n"
                                 : format == exposition::Format::openmetrics
                                     ? "Accept: application/openmetrics-text;version=1.0.0\r\n"
                                     : "") +
                                "\r\n";
    if (::send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size()))
        throw std::runtime_error("send failed");
    std::vector<char> buffer(1 << 16);
    std::size_t total = 0;
    for (;;) {
        const ssize_t got = ::recv(fd, buffer.data(), buffer.size(), 0);
        if (got <= 0) break;
        total += static_cast<std::size_t>(got);
    }
    ::close(fd);
    *ns = monotonic_ns() - t0;
    return total;
}

// The series Prometheus 2.42 stores for the label sets of one body (those with a `peer`
// label), per label set. Text: every sample line is a series (OpenMetrics' _created lines too:
// 2.42 stores them as series). Protobuf with native histograms: one series per histogram.
double series_per_label_set(const std::string& body, exposition::Format format, std::uint32_t label_sets)
{
    std::size_t series = 0;
    if (format != exposition::Format::protobuf) {
        std::size_t at = 0;
        while ((at = body.find("peer=\"", at)) != std::string::npos) {
            ++series;
            at = body.find('\n', at);
        }
        // Exemplars repeat the label name peer_address, not peer=: nothing else matches.
    } else {
        google::protobuf::io::CodedInputStream in(reinterpret_cast<const std::uint8_t*>(body.data()),
                                                  static_cast<int>(body.size()));
        in.SetTotalBytesLimit(1 << 30);
        while (!in.ExpectAtEnd()) {
            std::uint32_t size = 0;
            if (!in.ReadVarint32(&size)) break;
            const auto limit = in.PushLimit(static_cast<int>(size));
            io::prometheus::client::MetricFamily f;
            if (!f.ParseFromCodedStream(&in)) break;
            in.PopLimit(limit);
            for (const auto& m : f.metric())
                for (const auto& l : m.label())
                    if (l.name() == "peer") ++series;
        }
    }
    return static_cast<double>(series) / label_sets;
}

} // namespace

int main(int argc, char** argv)
{
    const bool smoke = smoke_mode(argc, argv);
    spdlog::set_level(spdlog::level::warn);
    config::Config config = config::embedded_default();
    config.max_series = 20000;

    const std::string only = flag(argc, argv, "series", "");
    for (const std::uint32_t series : {100u, 1000u, 10000u}) {
        if (!only.empty() && std::to_string(series) != only) continue;
        aggregation::Aggregator aggregator(labels::LabelPolicy(config), aggregation::Settings::from(config));
        labels::InterfaceNames names;
        names.set(1, "eth0");
        std::vector<HandshakeEvent> batch;
        for (std::uint32_t s = 0; s < series; ++s) batch.push_back(event_for(s, s));
        aggregator.add(batch);

        // What the daemon does on a scrape: snapshot, then stream the body out in pieces.
        auto stream = [&](const http::BodyWriter& write, exposition::Format format) {
            exposition::OperationalSnapshot op;
            op.flow_table_size = 65536;
            op.probes.push_back({"eth0", true});
            op.build = {"bench", "bench", "1.1"};
            auto process = process::read_process_metrics();
            std::optional<process::ProcessMetrics> pm;
            if (process) pm = process.value();
            exposition::stream_metrics(write, format, aggregator.snapshot(exposition::snapshot_detail(format)), names, op, pm);
        };
        // Render only: the same stream into a sink that just counts bytes.
        auto render = [&](exposition::Format format) {
            std::size_t bytes = 0;
            stream([&](std::string_view piece) { bytes += piece.size(); }, format);
            return bytes;
        };

        // Events keep flowing into every series: 1,024 every 2 ms (~0.5 M/s).
        std::atomic<bool> stop{false};
        std::atomic<std::uint64_t> fed{0};
        std::thread feeder([&] {
            std::uint64_t n = series;
            std::vector<HandshakeEvent> b;
            while (!stop.load()) {
                b.clear();
                for (int i = 0; i < 1024; ++i, ++n) b.push_back(event_for(static_cast<std::uint32_t>(n % series), n));
                aggregator.add(b);
                fed += b.size();
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
            }
        });

        http::ServerOptions options;
        options.listen_addresses = {"127.0.0.1:0"};
        options.metrics = stream;
        options.num_threads = 2;
        auto server = http::HttpServer::start(options);
        if (!server) {
            std::fprintf(stderr, "bench_scrape: %s\n", server.error().message().c_str());
            return 2;
        }
        const std::uint16_t port = server.value()->ports().at(0);

        const int reps = smoke ? 2 : (series >= 10000 ? 7 : 15);
        const std::string n = std::to_string(series);
        auto ms = [](double v) {
            char text[32];
            std::snprintf(text, sizeof(text), "%.2f ms", v);
            return std::string(text);
        };
        for (const auto format : {exposition::Format::text, exposition::Format::openmetrics, exposition::Format::protobuf}) {
            const std::string name(exposition::to_string(format));
            std::vector<double> render_ms, plain_ms, gzip_ms;
            std::size_t body = 0, plain_bytes = 0, gzip_bytes = 0;
            for (int r = 0; r < reps; ++r) {
                const auto t0 = monotonic_ns();
                body = render(format);
                render_ms.push_back(static_cast<double>(monotonic_ns() - t0) / 1e6);
                std::uint64_t ns = 0;
                plain_bytes = fetch(port, false, format, &ns);
                plain_ms.push_back(static_cast<double>(ns) / 1e6);
                gzip_bytes = fetch(port, true, format, &ns);
                gzip_ms.push_back(static_cast<double>(ns) / 1e6);
            }
            std::string whole;
            stream([&](std::string_view piece) { whole += piece; }, format);
            char per[32];
            std::snprintf(per, sizeof(per), "%.1f", series_per_label_set(whole, format, series));
            row("scrape", name + ": render only, " + n + " label sets (" + std::to_string(body / 1024) + " KiB)",
                ms(median(render_ms)), "-", "-", "-");
            // The original targets hold for the default format (text 0.0.4) only.
            const double target = format != exposition::Format::text ? 0 : series == 1000 ? 10 : series == 10000 ? 100 : 0;
            const double plain = median(plain_ms);
            row("scrape", name + ": GET, " + n + " label sets, identity (" + std::to_string(plain_bytes / 1024) + " KiB)",
                ms(plain), ms(median(render_ms)) + " (render)", target > 0 ? "<= " + ms(target) : "-",
                target > 0 ? (plain <= target ? "yes" : "NO") : "-");
            row("scrape", name + ": GET, " + n + " label sets, gzip (" + std::to_string(gzip_bytes / 1024) + " KiB)",
                ms(median(gzip_ms)), ms(median(render_ms)) + " (render)", "-", "-");
            note("scrape", name + ", " + n + " label sets: " + per + " Prometheus series per label set; " +
                               std::to_string(reps) + " requests of each kind, medians");
        }
        const double memory = static_cast<double>(aggregator.memory_bytes()) / series;
        char mem[64];
        std::snprintf(mem, sizeof(mem), "%.0f bytes", memory);
        note("scrape", n + " label sets: aggregator memory " + mem + " per label set (classic buckets, exemplars, "
                           "native buckets of RTTs spread over 20 us..50 ms, key index); " +
                           std::to_string(fed.load()) + " events added meanwhile");
        stop = true;
        feeder.join();
        server.value().reset();
    }
    return 0;
}
