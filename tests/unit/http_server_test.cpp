#include "export/http_server.hpp"

#include <arpa/inet.h>
#include <catch2/catch.hpp>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>

using namespace flowlat;

namespace {

struct Response {
    int status{0};
    std::map<std::string, std::string> headers; // lower-case names
    std::string body;
};

// Undoes chunked transfer encoding strictly: every size line, CRLF and the final 0 chunk.
std::string dechunk(const std::string& raw)
{
    std::string body;
    std::size_t at = 0;
    for (;;) {
        const auto line_end = raw.find("\r\n", at);
        REQUIRE(line_end != std::string::npos);
        const std::size_t size = std::stoul(raw.substr(at, line_end - at), nullptr, 16);
        at = line_end + 2;
        REQUIRE(at + size + 2 <= raw.size());
        body.append(raw, at, size);
        REQUIRE(raw.compare(at + size, 2, "\r\n") == 0);
        at += size + 2;
        if (size == 0) break;
    }
    REQUIRE(at == raw.size());
    return body;
}

// The raw bytes of one HTTP/1.1 exchange with host:port (Connection: close).
std::string raw_get(const char* host, std::uint16_t port, const std::string& path,
                    const std::string& extra_headers = "")
{
    const bool v6 = std::string_view(host).find(':') != std::string_view::npos;
    const int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_storage storage{};
    if (v6) {
        auto* address = reinterpret_cast<sockaddr_in6*>(&storage);
        address->sin6_family = AF_INET6;
        address->sin6_port = htons(port);
        REQUIRE(inet_pton(AF_INET6, host, &address->sin6_addr) == 1);
    } else {
        auto* address = reinterpret_cast<sockaddr_in*>(&storage);
        address->sin_family = AF_INET;
        address->sin_port = htons(port);
        REQUIRE(inet_pton(AF_INET, host, &address->sin_addr) == 1);
    }
    const socklen_t length = v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&storage), length) == 0);
    const std::string request =
        "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n" + extra_headers + "\r\n";
    REQUIRE(write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
    std::string raw;
    char buffer[4096];
    for (ssize_t n; (n = read(fd, buffer, sizeof(buffer))) > 0;) raw.append(buffer, static_cast<std::size_t>(n));
    close(fd);
    return raw;
}

// A minimal HTTP/1.1 client for 127.0.0.1: one request, the response parsed and de-chunked.
Response get(std::uint16_t port, const std::string& path, const std::string& extra_headers = "")
{
    const std::string raw = raw_get("127.0.0.1", port, path, extra_headers);
    Response response;
    const auto head_end = raw.find("\r\n\r\n");
    REQUIRE(head_end != std::string::npos);
    const std::string head = raw.substr(0, head_end);
    response.body = raw.substr(head_end + 4);
    REQUIRE(head.rfind("HTTP/1.1 ", 0) == 0);
    response.status = std::stoi(head.substr(9, 3));
    std::size_t start = head.find("\r\n") + 2;
    while (start < head.size()) {
        auto end = head.find("\r\n", start);
        if (end == std::string::npos) end = head.size();
        const auto line = head.substr(start, end - start);
        const auto colon = line.find(':');
        if (colon != std::string::npos) {
            std::string name = line.substr(0, colon);
            std::transform(name.begin(), name.end(), name.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
            response.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
        }
        start = end + 2;
    }
    if (response.headers["transfer-encoding"] == "chunked") response.body = dechunk(response.body);
    return response;
}

std::string gunzip(const std::string& data)
{
    z_stream stream{};
    REQUIRE(inflateInit2(&stream, 15 + 16) == Z_OK);
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    stream.avail_in = static_cast<uInt>(data.size());
    std::string out;
    char buffer[16384];
    int rc;
    do {
        stream.next_out = reinterpret_cast<Bytef*>(buffer);
        stream.avail_out = sizeof(buffer);
        rc = inflate(&stream, Z_NO_FLUSH);
        REQUIRE((rc == Z_OK || rc == Z_STREAM_END));
        out.append(buffer, sizeof(buffer) - stream.avail_out);
    } while (rc != Z_STREAM_END);
    inflateEnd(&stream);
    return out;
}

std::string big_metrics()
{
    std::string text = "# HELP flowlat_test_total Test.\n# TYPE flowlat_test_total counter\n";
    for (int i = 0; i < 2000; ++i) text += "flowlat_test_total{peer=\"198.18.0." + std::to_string(i % 256) + "\",n=\"" +
                                          std::to_string(i) + "\"} " + std::to_string(i * 7) + "\n";
    return text;
}

} // namespace

TEST_CASE("HTTP server routes, gzip and health", "[metrics][http]")
{
    const std::string metrics = big_metrics();
    std::atomic<bool> healthy{true};
    http::ServerOptions options;
    options.listen_addresses = {"127.0.0.1:0"};
    options.metrics = [&](const http::BodyWriter& write, exposition::Format format) {
        // Several pieces, as the exposition streams them; the format's name first, so that the
        // test sees which one the server negotiated.
        write(exposition::to_string(format));
        for (std::size_t at = 0; at < metrics.size(); at += 1000) write(std::string_view(metrics).substr(at, 1000));
    };
    options.health = [&] { return healthy ? http::Health{} : http::Health{false, "probe detached from eth0"}; };
    options.landing = [] { return http::LandingInfo{"0.1.0", {"eth0", "eth<1>"}}; };
    options.num_threads = 2;
    auto started = http::HttpServer::start(options);
    INFO((started.ok() ? std::string() : started.error().message()));
    REQUIRE(started.ok());
    const auto server = std::move(started).value();
    REQUIRE(server->ports().size() == 1);
    const auto port = server->ports()[0];
    CHECK(port != 0);
    // One server for every check below (no SECTIONs): civetweb takes up to 2 s to stop.

    { // /metrics plain
        const auto r = get(port, "/metrics");
        CHECK(r.status == 200);
        CHECK(r.headers.at("content-type") == "text/plain; version=0.0.4; charset=utf-8");
        CHECK(r.headers.count("content-encoding") == 0);
        CHECK(r.body == "text" + metrics);
    }
    // Each format, identity and gzip, with Prometheus 2.42's own Accept headers.
    const struct {
        const char* accept;
        const char* format;
        const char* content_type;
    } negotiated[] = {
        {"Accept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,"
         "application/openmetrics-text;version=1.0.0;q=0.8,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n",
         "protobuf", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"},
        {"Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
         "text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n",
         "openmetrics", "application/openmetrics-text; version=1.0.0; charset=utf-8"},
        {"Accept: text/plain;version=0.0.4;q=0.5,application/json\r\n", "text",
         "text/plain; version=0.0.4; charset=utf-8"},
    };
    for (const auto& n : negotiated) {
        INFO(n.accept);
        auto r = get(port, "/metrics", n.accept);
        CHECK(r.status == 200);
        CHECK(r.headers.at("content-type") == n.content_type);
        CHECK(r.body == n.format + metrics);
        r = get(port, "/metrics", std::string(n.accept) + "Accept-Encoding: gzip\r\n");
        CHECK(r.headers.at("content-type") == n.content_type);
        CHECK(r.headers.at("content-encoding") == "gzip");
        CHECK(gunzip(r.body) == n.format + metrics);
    }
    { // /metrics gzip
        const auto r = get(port, "/metrics", "Accept-Encoding: deflate, gzip;q=0.8\r\n");
        CHECK(r.status == 200);
        CHECK(r.headers.at("content-encoding") == "gzip");
        CHECK(r.headers.at("content-type") == "text/plain; version=0.0.4; charset=utf-8");
        CHECK(r.body.size() < metrics.size() / 4);
        CHECK(gunzip(r.body) == "text" + metrics);
    }
    { // landing page
        const auto r = get(port, "/");
        CHECK(r.status == 200);
        CHECK_THAT(r.headers.at("content-type"), Catch::StartsWith("text/html"));
        CHECK_THAT(r.body, Catch::Contains("0.1.0"));
        CHECK_THAT(r.body, Catch::Contains("eth0, eth&lt;1&gt;"));
        CHECK_THAT(r.body, Catch::Contains("href=\"/metrics\""));
    }
    { // /healthz
        auto r = get(port, "/healthz");
        CHECK(r.status == 200);
        CHECK(r.body == "ok\n");
        healthy = false;
        r = get(port, "/healthz");
        CHECK(r.status == 503);
        CHECK_THAT(r.body, Catch::Contains("probe detached from eth0"));
    }
    { // unknown paths are 404
        CHECK(get(port, "/nope").status == 404);
        CHECK(get(port, "/metrics/extra").status == 404);
        CHECK(get(port, "/metricsx").status == 404);
    }
}

TEST_CASE("HTTP server reports bind failures and bad addresses", "[metrics][http]")
{
    http::ServerOptions options;
    options.metrics = [](const http::BodyWriter&, exposition::Format) {};

    SECTION("IPv6 loopback and dual stack serve")
    {
        for (const char* address : {"[::1]:0", "[::]:0", ":0"}) {
            options.listen_addresses = {address};
            auto r = http::HttpServer::start(options);
            REQUIRE(r.ok());
            const auto port = r.value()->ports().at(0);
            CHECK_THAT(raw_get("::1", port, "/healthz"), Catch::StartsWith("HTTP/1.1 200"));
            if (std::string_view(address) != "[::1]:0")
                CHECK_THAT(raw_get("127.0.0.1", port, "/healthz"), Catch::StartsWith("HTTP/1.1 200"));
        }
    }
    SECTION("malformed addresses")
    {
        for (const char* address : {"127.0.0.1:", "127.0.0.1:65536", "bad_host!:80", "x", ":-1", "::1:80", "[::1]",
                                    "[fe80::zz]:1", "[::1]80"}) {
            options.listen_addresses = {address};
            const auto r = http::HttpServer::start(options);
            REQUIRE_FALSE(r.ok());
            CHECK_THAT(r.error().message(), Catch::Contains(address));
        }
    }
    SECTION("an address in use names the address")
    {
        options.listen_addresses = {"127.0.0.1:0"};
        auto first = http::HttpServer::start(options);
        REQUIRE(first.ok());
        const std::string taken = "127.0.0.1:" + std::to_string(first.value()->ports()[0]);
        options.listen_addresses = {taken};
        const auto second = http::HttpServer::start(options);
        REQUIRE_FALSE(second.ok());
        CHECK_THAT(second.error().message(), Catch::Contains(taken));
    }
}

TEST_CASE("listen address translation and Accept-Encoding", "[metrics][http]")
{
    CHECK(http::civetweb_listening_ports({":10435"}).value() == "+10435");
    CHECK(http::civetweb_listening_ports({"[::]:10435"}).value() == "+10435");
    CHECK(http::civetweb_listening_ports({"[::1]:9100", "[fd00::1]:1"}).value() == "[::1]:9100,[fd00::1]:1");
    CHECK(http::civetweb_listening_ports({":10435", "127.0.0.1:1"}, true).value() == "+10435s,127.0.0.1:1s");
    CHECK(http::civetweb_listening_ports({"127.0.0.1:0", "0.0.0.0:9100"}).value() == "127.0.0.1:0,0.0.0.0:9100");
    CHECK_FALSE(http::civetweb_listening_ports({}).ok());
    // Host names resolve to IPv4 (localhost comes from /etc/hosts: no network needed).
    CHECK(http::civetweb_listening_ports({"localhost:0"}).value() == "127.0.0.1:0");

    CHECK(http::accepts_gzip("gzip"));
    CHECK(http::accepts_gzip("deflate, GZIP"));
    CHECK(http::accepts_gzip("gzip;q=0.5"));
    CHECK(http::accepts_gzip("*"));
    CHECK_FALSE(http::accepts_gzip("gzip;q=0"));
    CHECK_FALSE(http::accepts_gzip("gzip; q=0.000"));
    CHECK_FALSE(http::accepts_gzip("identity"));
    CHECK_FALSE(http::accepts_gzip("xgzip"));
    CHECK_FALSE(http::accepts_gzip(""));
}


TEST_CASE("a scrape that fails mid-stream breaks its framing and a non-loopback listener stops at once",
          "[metrics][http]")
{
    http::ServerOptions options;
    // Not 127.0.0.1: stopping must wake the listener where it is bound.
    options.listen_addresses = {"127.0.0.2:0"};
    options.metrics = [](const http::BodyWriter& write, exposition::Format) {
        write("flowlat_series 1\n");
        throw std::runtime_error("renderer failed");
    };
    auto started = http::HttpServer::start(options);
    REQUIRE(started.ok());
    auto server = std::move(started).value();
    const auto port = server->ports().at(0);

    const std::string raw = raw_get("127.0.0.2", port, "/metrics");
    CHECK(raw.rfind("HTTP/1.1 200", 0) == 0);
    CHECK_THAT(raw, Catch::Contains("flowlat_series 1\n"));
    // No second status line inside the body, and no terminating chunk: the client sees a
    // failed transfer, not a complete scrape.
    CHECK(raw.find("HTTP/1.1", 1) == std::string::npos);
    CHECK_THAT(raw, !Catch::EndsWith("0\r\n\r\n"));
    CHECK_THAT(raw, Catch::Contains("scrape-aborted"));

    const auto before = std::chrono::steady_clock::now();
    server.reset();
    const auto stop_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - before).count();
    INFO("stop took " << stop_ms << " ms");
    CHECK(stop_ms < 1900); // the daemon's SIGTERM budget is 2 s in all
}

namespace {

// A listening TCP socket of our own, as systemd would pass one (or a bound one that does not
// listen): on 127.0.0.1 or ::1, ephemeral port.
int make_socket(bool v6, bool listening)
{
    const int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_storage storage{};
    socklen_t length = 0;
    if (v6) {
        auto* address = reinterpret_cast<sockaddr_in6*>(&storage);
        address->sin6_family = AF_INET6;
        address->sin6_addr = in6addr_loopback;
        length = sizeof(sockaddr_in6);
    } else {
        auto* address = reinterpret_cast<sockaddr_in*>(&storage);
        address->sin_family = AF_INET;
        address->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        length = sizeof(sockaddr_in);
    }
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&storage), length) == 0);
    if (listening) REQUIRE(listen(fd, 16) == 0);
    return fd;
}

std::uint16_t local_port(int fd)
{
    sockaddr_storage storage{};
    socklen_t length = sizeof(storage);
    REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) == 0);
    return storage.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port)
                                         : ntohs(reinterpret_cast<sockaddr_in*>(&storage)->sin_port);
}

} // namespace

TEST_CASE("inherited listening sockets (--web.systemd-socket) are served and survive a restart", "[metrics][http]")
{
    CHECK(http::civetweb_inherited_ports({3, 4}) == "fd:3,fd:4");
    CHECK(http::civetweb_inherited_ports({3}, true) == "fd:3s");

    const int v4 = make_socket(false, true);
    const int v6 = make_socket(true, true);
    http::ServerOptions options;
    options.listen_addresses = {"127.0.0.1:1"}; // ignored: the inherited sockets win
    options.inherited_fds = {v4, v6};
    options.num_threads = 2;
    options.metrics = [](const http::BodyWriter& write, exposition::Format) { write("flowlat_x 1\n"); };
    for (int start = 0; start < 2; ++start) { // a reload restarts the server on the same sockets
        auto r = http::HttpServer::start(options);
        INFO((r.ok() ? std::string() : r.error().message()));
        REQUIRE(r.ok());
        CHECK(r.value()->ports() == std::vector<std::uint16_t>{local_port(v4), local_port(v6)});
        CHECK(get(local_port(v4), "/metrics").body == "flowlat_x 1\n");
        CHECK_THAT(raw_get("::1", local_port(v6), "/healthz"), Catch::StartsWith("HTTP/1.1 200"));
    }
    // The server is gone; our descriptors are still open listening sockets.
    int listening = 0;
    socklen_t length = sizeof(listening);
    CHECK(getsockopt(v4, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0);
    CHECK(listening == 1);

    SECTION("a socket that does not listen is refused, naming its fd")
    {
        const int bound = make_socket(false, false);
        options.inherited_fds = {bound};
        const auto r = http::HttpServer::start(options);
        REQUIRE_FALSE(r.ok());
        std::string fd_text = "fd ";
        fd_text += std::to_string(bound);
        CHECK_THAT(r.error().message(), Catch::Contains(fd_text));
        CHECK_THAT(r.error().message(), Catch::Contains("not a listening socket"));
        close(bound);
    }
    close(v4);
    close(v6);
}

TEST_CASE("GET / serves the status page with its query and a telemetry path of / wins", "[metrics][http]")
{
    http::ServerOptions options;
    options.listen_addresses = {"127.0.0.1:0"};
    options.num_threads = 2;
    options.metrics = [](const http::BodyWriter& write, exposition::Format) { write("flowlat_x 1\n"); };
    options.status_page = [](std::string_view query) {
        std::string page = "<p>status ";
        page += query;
        page += "</p>";
        return page;
    };
    {
        auto r = http::HttpServer::start(options);
        REQUIRE(r.ok());
        const auto port = r.value()->ports().at(0);
        auto page = get(port, "/?sort=p99&order=asc");
        CHECK(page.status == 200);
        CHECK(page.body == "<p>status sort=p99&order=asc</p>");
        CHECK_THAT(page.headers.at("content-type"), Catch::StartsWith("text/html"));
        CHECK(page.headers.at("cache-control") == "no-store");
        CHECK(get(port, "/").body == "<p>status </p>");
    }
    options.telemetry_path = "/";
    auto r = http::HttpServer::start(options);
    REQUIRE(r.ok());
    CHECK(get(r.value()->ports().at(0), "/").body == "flowlat_x 1\n");
}
