#include "export/http_server.hpp"

#include "config/config.hpp"
#include "os/unique_fd.hpp"

#include <CivetServer.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <spdlog/spdlog.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <thread>
#include <cctype>
#include <charconv>
#include <stdexcept>

namespace flowlat::http {

namespace {

// Startup errors arrive through the log callback on the thread calling the constructor;
// they are kept here so the bind error can say why.
thread_local std::string* startup_errors = nullptr;

int log_message(const mg_connection*, const char* message)
{
    std::string_view text(message != nullptr ? message : "");
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
    spdlog::warn("civetweb: {}", text);
    if (startup_errors != nullptr) {
        if (!startup_errors->empty()) *startup_errors += "; ";
        *startup_errors += text;
    }
    return 1; // handled: civetweb writes no log file of its own
}

std::string trim(std::string_view text)
{
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
    return std::string(text);
}

std::string lower(std::string text)
{
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

std::string html_escape(std::string_view text)
{
    std::string out;
    for (char c : text) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        default: out += c;
        }
    }
    return out;
}

// One listener as civetweb binds it: an IPv4 literal (empty: every address) and a port.
struct Listener {
    std::string host;
    std::uint16_t port{0};

    std::string civetweb() const { return host.empty() ? std::to_string(port) : host + ":" + std::to_string(port); }
};

// The address as parsed by the config (which validated it), with a host name resolved.
Result<Listener> listener_for(const std::string& address)
{
    auto parsed = config::parse_listen_address(address);
    if (auto* problem = std::get_if<std::string>(&parsed)) return Error{"listen address '" + address + "': " + *problem, 0};
    const config::ListenAddress& listen = std::get<config::ListenAddress>(parsed);
    if (listen.ipv6)
        return Error{"listen address '" + address +
                         "': IPv6 is not supported (this civetweb build has no IPv6); use an IPv4 address",
                     0};
    Listener listener{listen.host, listen.port};
    in_addr ipv4{};
    if (listen.host.empty() || inet_pton(AF_INET, listen.host.c_str(), &ipv4) == 1) return listener;
    // civetweb binds literals only: resolve a host name to its first IPv4 address.
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const int rc = getaddrinfo(listen.host.c_str(), nullptr, &hints, &found);
    if (rc != 0 || found == nullptr)
        return Error{"listen address '" + address + "': cannot resolve '" + listen.host + "' to an IPv4 address: " +
                         gai_strerror(rc),
                     0};
    char text[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(found->ai_addr)->sin_addr, text, sizeof(text));
    freeaddrinfo(found);
    listener.host = text;
    return listener;
}

Result<std::vector<Listener>> listeners_for(const std::vector<std::string>& addresses)
{
    if (addresses.empty()) return Error{"no listen address", 0};
    std::vector<Listener> listeners;
    for (const auto& address : addresses) {
        auto listener = listener_for(address);
        if (!listener) return listener.error();
        listeners.push_back(std::move(listener).value());
    }
    return listeners;
}

} // namespace

Result<std::string> civetweb_listening_ports(const std::vector<std::string>& addresses)
{
    auto listeners = listeners_for(addresses);
    if (!listeners) return listeners.error();
    std::string ports;
    for (const auto& listener : listeners.value()) ports += (ports.empty() ? "" : ",") + listener.civetweb();
    return ports;
}

bool accepts_gzip(std::string_view accept_encoding)
{
    std::size_t start = 0;
    while (start <= accept_encoding.size()) {
        const auto comma = std::min(accept_encoding.find(',', start), accept_encoding.size());
        const auto item = accept_encoding.substr(start, comma - start);
        start = comma + 1;
        const auto semi = item.find(';');
        const auto coding = lower(trim(item.substr(0, semi)));
        if (coding != "gzip" && coding != "*") continue;
        if (semi == std::string_view::npos) return true;
        // "q=0", "q=0.0", "q=0.000" refuse the coding; any other weight accepts it.
        auto params = lower(trim(item.substr(semi + 1)));
        params.erase(std::remove(params.begin(), params.end(), ' '), params.end());
        if (params.rfind("q=", 0) != 0) return true;
        const auto weight = params.substr(2);
        if (weight.find_first_not_of("0.") != std::string::npos || weight.empty()) return true;
    }
    return false;
}

std::string gzip_compress(std::string_view data)
{
    z_stream stream{};
    // windowBits 15 + 16: a gzip header and trailer instead of zlib's.
    if (deflateInit2(&stream, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        throw std::runtime_error("deflateInit2 failed");
    std::string out(deflateBound(&stream, static_cast<uLong>(data.size())), '\0');
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    stream.avail_in = static_cast<uInt>(data.size());
    stream.next_out = reinterpret_cast<Bytef*>(out.data());
    stream.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&stream, Z_FINISH);
    out.resize(stream.total_out);
    deflateEnd(&stream);
    if (rc != Z_STREAM_END) throw std::runtime_error("deflate did not finish");
    return out;
}

namespace {

constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// Streaming gzip: compresses pieces as they come and sends each filled buffer as one chunk.
class GzipChunks {
public:
    explicit GzipChunks(mg_connection* conn) : conn_(conn)
    {
        // windowBits 15 + 16: a gzip header and trailer instead of zlib's.
        if (deflateInit2(&stream_, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            throw std::runtime_error("deflateInit2 failed");
    }
    ~GzipChunks() { deflateEnd(&stream_); }
    GzipChunks(const GzipChunks&) = delete;
    GzipChunks& operator=(const GzipChunks&) = delete;

    void write(std::string_view piece) { pump(piece, Z_NO_FLUSH); }
    void finish() { pump({}, Z_FINISH); }

private:
    void pump(std::string_view piece, int flush)
    {
        stream_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(piece.data()));
        stream_.avail_in = static_cast<uInt>(piece.size());
        int rc = Z_OK;
        do {
            stream_.next_out = reinterpret_cast<Bytef*>(buffer_.data());
            stream_.avail_out = static_cast<uInt>(buffer_.size());
            rc = deflate(&stream_, flush);
            if (rc == Z_STREAM_ERROR) throw std::runtime_error("deflate failed");
            const std::size_t produced = buffer_.size() - stream_.avail_out;
            if (produced > 0) mg_send_chunk(conn_, buffer_.data(), static_cast<unsigned>(produced));
        } while (stream_.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
    }

    mg_connection* conn_;
    z_stream stream_{};
    std::array<char, 64 * 1024> buffer_{};
};

} // namespace

struct HttpServer::Impl : public CivetHandler {
    ServerOptions options;
    std::unique_ptr<CivetServer> server;
    std::vector<std::uint16_t> ports;
    std::vector<in_addr> wake_hosts; // per port: where a connection reaches its listener

    using CivetHandler::handleGet;
    using CivetHandler::handleHead;
    bool handleGet(CivetServer*, mg_connection* conn) override { return dispatch(conn); }
    // HEAD: the same headers, no body. Other methods are left to civetweb (404).
    bool handleHead(CivetServer*, mg_connection* conn) override { return dispatch(conn); }

    bool dispatch(mg_connection* conn)
    {
        const mg_request_info* request = mg_get_request_info(conn);
        const std::string_view uri = request->local_uri != nullptr ? request->local_uri : "";
        bool streaming = false;
        try {
            if (uri == "/metrics") {
                serve_metrics(conn, streaming);
            } else if (uri == "/healthz") {
                const Health health = options.health ? options.health() : Health{};
                if (health.ok) {
                    send(conn, 200, "text/plain; charset=utf-8", "ok\n");
                } else {
                    send(conn, 503, "text/plain; charset=utf-8", health.reason + "\n");
                }
            } else if (uri == "/") {
                send(conn, 200, "text/html; charset=utf-8", landing_page());
            } else {
                send(conn, 404, "text/plain; charset=utf-8", "not found\n");
            }
        } catch (const std::exception& e) {
            spdlog::error("http: {} failed: {}", uri, e.what());
            if (streaming) {
                // The 200 and part of the body are gone; a second response would be read as
                // body. Breaking the chunk framing makes the scraper fail this scrape
                // instead of storing a truncated one.
                mg_write(conn, "\r\nscrape-aborted\r\n", 18);
                return true;
            }
            send(conn, 500, "text/plain; charset=utf-8", std::string("internal error: ") + e.what() + "\n");
        }
        return true;
    }

    void serve_metrics(mg_connection* conn, bool& streaming)
    {
        const mg_request_info* request = mg_get_request_info(conn);
        const char* accept = mg_get_header(conn, "Accept-Encoding");
        const bool gzip = accept != nullptr && accepts_gzip(accept);
        const bool head = std::string_view(request->request_method) == "HEAD";
        // HTTP/1.0 has no chunked encoding: those (rare) clients get one buffered body.
        if (std::string_view(request->http_version) == "1.0") {
            std::string body;
            if (options.metrics) options.metrics([&](std::string_view piece) { body += piece; });
            send(conn, 200, kMetricsContentType, gzip ? gzip_compress(body) : body, gzip ? "gzip" : nullptr);
            return;
        }
        mg_response_header_start(conn, 200);
        mg_response_header_add(conn, "Content-Type", kMetricsContentType, -1);
        if (gzip) mg_response_header_add(conn, "Content-Encoding", "gzip", -1);
        mg_response_header_add(conn, "Vary", "Accept-Encoding", -1);
        if (!head) mg_response_header_add(conn, "Transfer-Encoding", "chunked", -1);
        mg_response_header_send(conn);
        streaming = !head;
        if (head || !options.metrics) {
            if (!head) mg_send_chunk(conn, "", 0);
            return;
        }
        if (gzip) {
            GzipChunks compressor(conn);
            options.metrics([&](std::string_view piece) { compressor.write(piece); });
            compressor.finish();
        } else {
            options.metrics([&](std::string_view piece) {
                if (!piece.empty()) mg_send_chunk(conn, piece.data(), static_cast<unsigned>(piece.size()));
            });
        }
        mg_send_chunk(conn, "", 0);
    }

    std::string landing_page() const
    {
        const LandingInfo info = options.landing ? options.landing() : LandingInfo{};
        std::string html = "<!DOCTYPE html>\n<html><head><title>flowlatd</title></head><body>\n"
                           "<h1>flowlatd</h1>\n<p>TCP handshake latency exporter, version " +
                           html_escape(info.version) + "</p>\n<p>Attached interfaces: ";
        if (info.interfaces.empty()) html += "none";
        for (std::size_t i = 0; i < info.interfaces.size(); ++i) {
            if (i > 0) html += ", ";
            html += html_escape(info.interfaces[i]);
        }
        html += "</p>\n<p><a href=\"/metrics\">Metrics</a> &middot; <a href=\"/healthz\">Health</a></p>\n"
                "</body></html>\n";
        return html;
    }

    static void send(mg_connection* conn, int status, const char* content_type, const std::string& body,
                     const char* content_encoding = nullptr)
    {
        const std::string length = std::to_string(body.size());
        mg_response_header_start(conn, status);
        mg_response_header_add(conn, "Content-Type", content_type, -1);
        mg_response_header_add(conn, "Content-Length", length.c_str(), -1);
        if (content_encoding != nullptr) mg_response_header_add(conn, "Content-Encoding", content_encoding, -1);
        mg_response_header_add(conn, "Vary", "Accept-Encoding", -1);
        mg_response_header_send(conn);
        const std::string_view method = mg_get_request_info(conn)->request_method;
        if (!body.empty() && method != "HEAD") mg_write(conn, body.data(), body.size());
    }
};

Result<std::unique_ptr<HttpServer>> HttpServer::start(ServerOptions options)
{
    auto listeners = listeners_for(options.listen_addresses);
    if (!listeners) return listeners.error();
    std::string ports;
    for (const auto& listener : listeners.value()) ports += (ports.empty() ? "" : ",") + listener.civetweb();
    if (options.num_threads < 1) return Error{"http server: num_threads must be at least 1", 0};

    std::string joined;
    for (const auto& address : options.listen_addresses) joined += (joined.empty() ? "" : ", ") + address;

    auto impl = std::make_unique<Impl>();
    impl->options = std::move(options);
    const std::vector<std::string> civet_options = {
        "listening_ports", ports,
        "num_threads", std::to_string(impl->options.num_threads),
        "request_timeout_ms", "10000",
        "enable_keep_alive", "yes",
    };
    CivetCallbacks callbacks;
    callbacks.log_message = log_message;

    std::string errors;
    startup_errors = &errors;
    try {
        impl->server = std::make_unique<CivetServer>(civet_options, &callbacks);
    } catch (const std::exception& e) {
        startup_errors = nullptr;
        return Error{"listen on " + joined + ": " + (errors.empty() ? std::string(e.what()) : errors), 0};
    }
    startup_errors = nullptr;
    impl->server->addHandler("/", *impl);

    std::vector<mg_server_port> bound(impl->options.listen_addresses.size() + 4);
    const int n = mg_get_server_ports(impl->server->getContext(), static_cast<int>(bound.size()), bound.data());
    for (int i = 0; i < n; ++i) impl->ports.push_back(static_cast<std::uint16_t>(bound[static_cast<std::size_t>(i)].port));
    // civetweb reports ports in the order of listening_ports; a wildcard is reached on loopback.
    for (std::size_t i = 0; i < impl->ports.size(); ++i) {
        in_addr host{htonl(INADDR_LOOPBACK)};
        in_addr parsed{};
        const std::string literal = i < listeners.value().size() ? listeners.value()[i].host : "";
        if (inet_pton(AF_INET, literal.c_str(), &parsed) == 1 && parsed.s_addr != htonl(INADDR_ANY)) host = parsed;
        impl->wake_hosts.push_back(host);
    }
    for (std::size_t i = 0; i < impl->ports.size(); ++i)
        spdlog::info("http: listening on {} (port {})", impl->options.listen_addresses[std::min(i, impl->options.listen_addresses.size() - 1)], impl->ports[i]);
    return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

namespace {

// Opens and closes a connection to a local listener, so that a poll() waiting on it returns.
void poke_listener(in_addr host, std::uint16_t port)
{
    const UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr = host;
    (void)::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address));
}

} // namespace

HttpServer::~HttpServer()
{
    if (!impl_ || !impl_->server) return;
    // civetweb's master thread sees the stop flag only when its poll() returns, which it does
    // every 2 s when idle; a connection to each listener wakes it at once.
    auto closed = std::make_shared<std::atomic<bool>>(false);
    Impl* impl = impl_.get();
    std::thread closer([impl, closed] {
        impl->server->close();
        *closed = true;
    });
    for (int attempt = 0; attempt < 75 && !*closed; ++attempt) {
        for (std::size_t i = 0; i < impl_->ports.size(); ++i) poke_listener(impl_->wake_hosts[i], impl_->ports[i]);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (*closed) {
        closer.join();
        return;
    }
    // A worker is still writing to a client that does not read (it would hold us for the
    // request timeout). Shutdown must stay bounded, so the server is left to the closing
    // thread and never freed: the process is about to exit.
    spdlog::warn("http: a connection is still being served after 1.5 s; not waiting for it");
    closer.detach();
    (void)impl_.release();
}

const std::vector<std::uint16_t>& HttpServer::ports() const { return impl_->ports; }

} // namespace flowlat::http
