// HTTP server for /metrics, /healthz and a landing page, on civetweb. civetweb stays in
// http_server.cpp: this header names none of its types.
#pragma once

#include "os/result.hpp"

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

struct ServerOptions {
    // ":10435" (every IPv4 address), "127.0.0.1:0" (port 0: ephemeral), "0.0.0.0:9100",
    // "host.example:9100" (resolved once, at start, to its first IPv4 address). IPv6 is an
    // error: this civetweb is built without it.
    std::vector<std::string> listen_addresses{":10435"};
    // Writes the text exposition through `write`, in pieces, on a worker thread. The body is
    // streamed with chunked transfer encoding, so a scrape never holds the whole body in memory.
    std::function<void(const BodyWriter& write)> metrics;
    std::function<Health()> health;
    std::function<LandingInfo()> landing;
    int num_threads{4};
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

// Exposed for tests. civetweb's "listening_ports" value for `addresses`, or the first bad one.
Result<std::string> civetweb_listening_ports(const std::vector<std::string>& addresses);
// True when an Accept-Encoding header allows gzip (a "gzip" or "*" coding without q=0).
bool accepts_gzip(std::string_view accept_encoding);
// gzip (RFC 1952) of `data`.
std::string gzip_compress(std::string_view data);

} // namespace flowlat::http
