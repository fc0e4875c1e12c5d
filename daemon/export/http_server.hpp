// HTTP server for /metrics, /healthz and a landing page, on civetweb. civetweb stays in
// http_server.cpp: this header names none of its types.
#pragma once

#include "export/negotiation.hpp"
#include "export/web_config.hpp"
#include "os/result.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace flowlat::http {

using BodyWriter = std::function<void(std::string_view)>;

struct Health {
    bool ok{true};
    std::string reason; // shown with 503 when !ok
};

struct LandingInfo {
    std::string version;
    std::vector<std::string> interfaces; // where the probe is attached
};

// How long and how much one connection may hold the server. civetweb serves each connection on
// one worker thread from accept to close, so these bound how long an idle, slow or silent client
// keeps a worker from a scrape (docs/security.md has the attacks and figures they were set by).
struct Limits {
    // From the moment a worker takes a connection until its request headers are complete
    // (slowloris, silent and half-open clients); also bounds each write of a response.
    std::chrono::milliseconds request_timeout{2000};
    // How long a worker waits for the next request on a kept-alive connection.
    std::chrono::milliseconds keep_alive_timeout{1000};
    // Accepted connections waiting for a worker, and the kernel's queue before accept().
    int connection_queue{1024};
    int listen_backlog{4096};
    // Request line and headers; larger requests are refused with 413.
    int max_request_size{16384};
};

struct ServerOptions {
    // ":10435" and "[::]:10435" (every IPv6 and IPv4 address: one dual-stack socket with
    // IPV6_V6ONLY off; IPv4 only on a host without IPv6), "0.0.0.0:9100" (every IPv4 address),
    // "127.0.0.1:0" (port 0: ephemeral), "[::1]:9100" (that IPv6 address only),
    // "host.example:9100" (resolved once, at start, to its first address).
    std::vector<std::string> listen_addresses{":10435"};
    // --web.systemd-socket: listening TCP sockets inherited from systemd, served instead of
    // listen_addresses. The server adopts a duplicate of each and never closes these.
    std::vector<int> inherited_fds;
    // Writes the exposition in `format` (negotiated from the scrape's Accept header) through
    // `write`, in pieces, on a worker thread. The body is streamed with chunked transfer
    // encoding, so a scrape never holds the whole body in memory.
    std::function<void(const BodyWriter& write, exposition::Format format)> metrics;
    std::function<Health()> health;
    std::function<LandingInfo()> landing;
    // GET / and HEAD /: the status page (export/status_page.hpp), given the query string
    // ("sort=p99&order=desc"); without it, `landing` renders a short page.
    std::function<std::string(std::string_view query)> status_page;
    int num_threads{512};
    Limits limits;
    // Where the exposition is served (--web.telemetry-path).
    std::string telemetry_path{"/metrics"};
    // Scrapes served at once (--web.max-requests); more are answered 503. 0: no limit.
    int max_requests{40};
    // --web.config.file: TLS on every listener, basic authentication, extra response headers.
    web::WebConfig web;
};

class HttpServer {
public:
    // Binds every address and starts the workers; the error names the failing address.
    static Result<std::unique_ptr<HttpServer>> start(ServerOptions options);

    ~HttpServer(); // stops accepting, waits for the workers
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // The bound ports, in listen_addresses order (an ephemeral port shows its real number).
    const std::vector<std::uint16_t>& ports() const;

    struct Impl;

private:
    explicit HttpServer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Exposed for tests. civetweb's "listening_ports" value for inherited listening sockets
// ("fd:N", "fd:Ns" with TLS: cmake/civetweb-adopt-listening-fd.patch).
std::string civetweb_inherited_ports(const std::vector<int>& fds, bool tls = false);
// Exposed for tests. civetweb's "listening_ports" value for `addresses`, or the first bad one.
Result<std::string> civetweb_listening_ports(const std::vector<std::string>& addresses, bool tls = false);
// True when an Accept-Encoding header allows gzip (a "gzip" or "*" coding without q=0).
bool accepts_gzip(std::string_view accept_encoding);
// gzip (RFC 1952) of `data`.
std::string gzip_compress(std::string_view data);

} // namespace flowlat::http
