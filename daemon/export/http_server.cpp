#include "export/http_server.hpp"

#include "config/config.hpp"
#include "export/basic_auth.hpp"
#include "export/status_page.hpp"
#include "os/unique_fd.hpp"

#include <CivetServer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <spdlog/spdlog.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>

namespace flowlat::http {

namespace {

// How long a scrape beyond --web.max-requests waits for one to finish before it is refused.
constexpr std::chrono::milliseconds kScrapeSlotWait{500};

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

bool ipv6_available()
{
    const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    ::close(fd);
    return true;
}

// One listen address in civetweb's "listening_ports" syntax: "+PORT" (dual stack: [::] with
// IPV6_V6ONLY off), "PORT" (every IPv4 address), "1.2.3.4:PORT", "[::1]:PORT"; "s" appended
// for TLS.
Result<std::string> listening_port(const std::string& address, bool tls)
{
    auto parsed = config::parse_listen_address(address);
    if (auto* problem = std::get_if<std::string>(&parsed)) return Error{"listen address '" + address + "': " + *problem, 0};
    const config::ListenAddress& listen = std::get<config::ListenAddress>(parsed);
    std::string host = listen.host;
    if (listen.ipv6 && host == "::") host.clear(); // [::]:PORT is every address, as :PORT is
    const unsigned value = listen.port;
    const std::string suffix = std::to_string(value) + (tls ? "s" : "");
    if (host.empty()) return (ipv6_available() ? "+" : "") + suffix;
    in_addr ipv4{};
    if (inet_pton(AF_INET, host.c_str(), &ipv4) == 1) return host + ":" + suffix;
    in6_addr ipv6{};
    if (inet_pton(AF_INET6, host.c_str(), &ipv6) == 1) return "[" + host + "]:" + suffix;
    // civetweb binds literals only: resolve a host name to its first address.
    const bool name_ok = std::all_of(host.begin(), host.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '-' || c == '.';
    });
    if (!name_ok)
        return Error{"listen address '" + address + "': host must be an IP address or a host name", 0};
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found);
    if (rc != 0 || found == nullptr)
        return Error{"listen address '" + address + "': cannot resolve '" + host + "': " + gai_strerror(rc), 0};
    char text[INET6_ADDRSTRLEN] = {};
    const bool v6 = found->ai_family == AF_INET6;
    if (v6)
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(found->ai_addr)->sin6_addr, text, sizeof(text));
    else
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(found->ai_addr)->sin_addr, text, sizeof(text));
    freeaddrinfo(found);
    return v6 ? "[" + std::string(text) + "]:" + suffix : std::string(text) + ":" + suffix;
}

// Where a local connection reaches a listener given in civetweb's syntax (to wake it at stop).
sockaddr_storage wake_address(std::string_view entry, std::uint16_t port)
{
    sockaddr_storage storage{};
    if (!entry.empty() && entry.back() == 's') entry.remove_suffix(1);
    const auto colon = entry.rfind(':');
    std::string host = colon == std::string_view::npos ? "" : std::string(entry.substr(0, colon));
    if (host.size() >= 2 && host.front() == '[') {
        host = host.substr(1, host.size() - 2);
        in6_addr address{};
        if (inet_pton(AF_INET6, host.c_str(), &address) == 1) {
            auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons(port);
            v6->sin6_addr = IN6_IS_ADDR_UNSPECIFIED(&address) ? in6addr_loopback : address;
            return storage;
        }
    }
    auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in_addr parsed{};
    if (inet_pton(AF_INET, host.c_str(), &parsed) == 1 && parsed.s_addr != htonl(INADDR_ANY)) v4->sin_addr = parsed;
    return storage;
}

// Where a local connection reaches an inherited listener: its own address, or loopback for a
// wildcard one.
sockaddr_storage wake_address(int fd)
{
    sockaddr_storage storage{};
    socklen_t length = sizeof(storage);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) return storage;
    if (storage.ss_family == AF_INET6) {
        auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
        if (IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr)) v6->sin6_addr = in6addr_loopback;
    } else if (storage.ss_family == AF_INET) {
        auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
        if (v4->sin_addr.s_addr == htonl(INADDR_ANY)) v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    return storage;
}

} // namespace

Result<std::string> civetweb_listening_ports(const std::vector<std::string>& addresses, bool tls)
{
    if (addresses.empty()) return Error{"no listen address", 0};
    std::string ports;
    for (const auto& address : addresses) {
        auto port = listening_port(address, tls);
        if (!port) return port.error();
        if (!ports.empty()) ports += ',';
        ports += port.value();
    }
    return ports;
}

std::string civetweb_inherited_ports(const std::vector<int>& fds, bool tls)
{
    std::string ports;
    for (const int fd : fds) {
        if (!ports.empty()) ports += ',';
        ports += "fd:";
        ports += std::to_string(fd);
        if (tls) ports += 's';
    }
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
    std::vector<char> buffer_ = std::vector<char>(64 * 1024); // heap: civetweb's worker stacks are small
};

// Every queued and served connection is an fd: raise the soft limit (often 1024) towards the
// hard one so that a connection flood meets civetweb's queue bound, not EMFILE in accept().
void raise_fd_limit(const ServerOptions& options)
{
    const auto wanted = static_cast<rlim_t>(options.num_threads + options.limits.connection_queue) * 2 + 1024;
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= wanted) return;
    limit.rlim_cur = std::min(wanted, limit.rlim_max);
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
        spdlog::warn("http: cannot raise the open-file limit to {}: {}", wanted, std::strerror(errno));
}

} // namespace

struct HttpServer::Impl : public CivetHandler {
    ServerOptions options;
    std::unique_ptr<CivetServer> server;
    std::vector<std::uint16_t> ports;
    std::vector<sockaddr_storage> wake_addresses; // per port: where a connection reaches its listener
    // Connections a worker holds now (from after the TLS handshake to close). When half the
    // workers are held, responses end their connection instead of keeping it alive, so that
    // idle kept-alive connections cannot take every worker from a scrape.
    std::atomic<int> held{0};
    // --web.max-requests: scrapes rendering at once. A scrape beyond it waits a moment for a
    // slot (a flood of scrapes must not turn the real scraper's request into a 503), then 503.
    std::mutex scrape_slots_mutex;
    std::condition_variable scrape_slot_freed;
    int scrapes_in_flight{0};

    bool acquire_scrape_slot()
    {
        std::unique_lock lock(scrape_slots_mutex);
        return scrape_slot_freed.wait_for(lock, kScrapeSlotWait,
                                          [this] { return scrapes_in_flight < options.max_requests; }) &&
               ++scrapes_in_flight > 0;
    }
    void release_scrape_slot()
    {
        {
            const std::lock_guard lock(scrape_slots_mutex);
            --scrapes_in_flight;
        }
        scrape_slot_freed.notify_one();
    }
    std::unique_ptr<web::BasicAuth> auth;

    static Impl* of(const mg_connection* conn)
    {
        const auto* server = static_cast<const CivetServer*>(mg_get_user_data(mg_get_context(conn)));
        return server == nullptr ? nullptr : static_cast<Impl*>(const_cast<void*>(server->getUserContext()));
    }
    static int on_connection_open(const mg_connection* conn, void** data)
    {
        if (Impl* impl = of(conn)) {
            impl->held.fetch_add(1, std::memory_order_relaxed);
            *data = impl; // marks a counted connection: close callbacks also come for TLS failures
        }
        return 0;
    }
    static void on_connection_close(const mg_connection* conn)
    {
        if (void* data = mg_get_user_connection_data(conn)) static_cast<Impl*>(data)->held.fetch_sub(1, std::memory_order_relaxed);
    }
    bool busy() const { return held.load(std::memory_order_relaxed) * 2 >= options.num_threads; }

    // civetweb keeps a connection alive when the request's Connection header (or HTTP/1.1's
    // default) says so and has no call to refuse it; this makes the request say "close", so
    // the response carries "Connection: close" and the worker closes after it. The request
    // record is civetweb's own mutable memory behind a const pointer (civetweb 1.15, built here).
    static void close_after_response(mg_connection* conn)
    {
        auto* request = const_cast<mg_request_info*>(mg_get_request_info(conn));
        for (int i = 0; i < request->num_headers; ++i) {
            if (strcasecmp(request->http_headers[i].name, "Connection") == 0) {
                request->http_headers[i].value = "close";
                return;
            }
        }
        if (request->num_headers < static_cast<int>(std::size(request->http_headers))) {
            request->http_headers[request->num_headers].name = "Connection";
            request->http_headers[request->num_headers].value = "close";
            ++request->num_headers;
        }
    }

    using CivetHandler::handleDelete;
    using CivetHandler::handleGet;
    using CivetHandler::handleHead;
    using CivetHandler::handleOptions;
    using CivetHandler::handlePatch;
    using CivetHandler::handlePost;
    using CivetHandler::handlePut;
    bool handleGet(CivetServer*, mg_connection* conn) override { return dispatch(conn); }
    // HEAD: the same headers, no body.
    bool handleHead(CivetServer*, mg_connection* conn) override { return dispatch(conn); }
    // Every other method: 405 with the methods that are served.
    bool handlePost(CivetServer*, mg_connection* conn) override { return refuse_method(conn); }
    bool handlePut(CivetServer*, mg_connection* conn) override { return refuse_method(conn); }
    bool handleDelete(CivetServer*, mg_connection* conn) override { return refuse_method(conn); }
    bool handleOptions(CivetServer*, mg_connection* conn) override { return refuse_method(conn); }
    bool handlePatch(CivetServer*, mg_connection* conn) override { return refuse_method(conn); }

    bool refuse_method(mg_connection* conn)
    {
        close_after_response(conn); // a request body, if any, is not read
        send(conn, 405, "text/plain; charset=utf-8", "method not allowed\n", nullptr, {{"Allow", "GET, HEAD"}});
        return true;
    }

    // Configures civetweb's SSL_CTX from the web config (civetweb's own certificate options
    // take one PEM for both certificate and key and know no client_auth_type).
    static int init_ssl(void* ssl_ctx, void* user_data)
    {
        const auto* server = static_cast<const CivetServer*>(user_data);
        const auto* impl = static_cast<const Impl*>(server->getUserContext());
        auto* ctx = static_cast<SSL_CTX*>(ssl_ctx);
        const web::TlsServerConfig& tls = *impl->options.web.tls;
        auto fail = [](const std::string& what) {
            char detail[256] = {};
            ERR_error_string_n(ERR_get_error(), detail, sizeof(detail));
            spdlog::error("tls: {}: {}", what, detail);
            ERR_clear_error();
            return -1;
        };
        if (SSL_CTX_use_certificate_chain_file(ctx, tls.cert_file.c_str()) != 1)
            return fail("cannot load cert_file " + tls.cert_file);
        if (SSL_CTX_use_PrivateKey_file(ctx, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
            return fail("cannot load key_file " + tls.key_file);
        if (SSL_CTX_check_private_key(ctx) != 1) return fail("key_file does not match cert_file");
        if (SSL_CTX_set_min_proto_version(ctx, tls.min_version) != 1) return fail("cannot set min_version");
        if (tls.max_version != 0 && SSL_CTX_set_max_proto_version(ctx, tls.max_version) != 1)
            return fail("cannot set max_version");
        if (!tls.client_ca_file.empty()) {
            if (SSL_CTX_load_verify_locations(ctx, tls.client_ca_file.c_str(), nullptr) != 1)
                return fail("cannot load client_ca_file " + tls.client_ca_file);
            if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.client_ca_file.c_str()))
                SSL_CTX_set_client_CA_list(ctx, names);
        }
        // Go's RequestClientCert and RequireAnyClientCert take any certificate unverified.
        auto accept_any = [](int, X509_STORE_CTX*) { return 1; };
        switch (tls.client_auth) {
        case web::ClientAuth::none: SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr); break;
        case web::ClientAuth::request: SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any); break;
        case web::ClientAuth::require_any:
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, accept_any);
            break;
        case web::ClientAuth::verify_if_given: SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr); break;
        case web::ClientAuth::require_and_verify:
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
            break;
        }
        return 1; // civetweb adds nothing of its own
    }

    bool dispatch(mg_connection* conn)
    {
        if (busy()) close_after_response(conn);
        const mg_request_info* request = mg_get_request_info(conn);
        const std::string_view uri = request->local_uri != nullptr ? request->local_uri : "";
        bool streaming = false;
        try {
            if (auth && !auth->allows(mg_get_header(conn, "Authorization"))) {
                close_after_response(conn);
                send(conn, 401, "text/plain; charset=utf-8", "unauthorized\n", nullptr,
                     {{"WWW-Authenticate", "Basic realm=\"flowlatd\", charset=\"UTF-8\""}});
            } else if (uri == options.telemetry_path) {
                if (options.max_requests > 0 && !acquire_scrape_slot()) {
                    send(conn, 503, "text/plain; charset=utf-8",
                         "too many scrapes at once (--web.max-requests=" + std::to_string(options.max_requests) + ")\n");
                    return true;
                }
                struct Release {
                    Impl* impl;
                    ~Release() { if (impl != nullptr) impl->release_scrape_slot(); }
                } release{options.max_requests > 0 ? this : nullptr};
                serve_metrics(conn, streaming);
            } else if (uri == "/-/healthy") {
                send(conn, 200, "text/plain; charset=utf-8", "Healthy\n");
            } else if (uri == "/-/ready") {
                send(conn, 200, "text/plain; charset=utf-8", "Ready\n");
            } else if (uri == "/healthz") {
                const Health health = options.health ? options.health() : Health{};
                if (health.ok) {
                    send(conn, 200, "text/plain; charset=utf-8", "ok\n");
                } else {
                    send(conn, 503, "text/plain; charset=utf-8", health.reason + "\n");
                }
            } else if (uri == "/") {
                if (options.status_page)
                    send(conn, 200, "text/html; charset=utf-8",
                         options.status_page(request->query_string != nullptr ? request->query_string : ""),
                         nullptr, {{"Cache-Control", "no-store"}});
                else
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
        const char* accept_type = mg_get_header(conn, "Accept");
        const exposition::Format format = exposition::negotiate(accept_type != nullptr ? accept_type : "");
        const char* content_type = exposition::content_type(format);
        const auto metrics = [&](const BodyWriter& write) { options.metrics(write, format); };
        const bool head = std::string_view(request->request_method) == "HEAD";
        // HTTP/1.0 has no chunked encoding: those (rare) clients get one buffered body.
        if (std::string_view(request->http_version) == "1.0") {
            std::string body;
            if (options.metrics) metrics([&](std::string_view piece) { body += piece; });
            send(conn, 200, content_type, gzip ? gzip_compress(body) : body, gzip ? "gzip" : nullptr,
                 {{"Vary", "Accept"}});
            return;
        }
        mg_response_header_start(conn, 200);
        mg_response_header_add(conn, "Content-Type", content_type, -1);
        if (gzip) mg_response_header_add(conn, "Content-Encoding", "gzip", -1);
        mg_response_header_add(conn, "Vary", "Accept-Encoding", -1);
        mg_response_header_add(conn, "Vary", "Accept", -1);
        for (const auto& [name, value] : options.web.headers) mg_response_header_add(conn, name.c_str(), value.c_str(), -1);
        if (!head) mg_response_header_add(conn, "Transfer-Encoding", "chunked", -1);
        mg_response_header_send(conn);
        streaming = !head;
        if (head || !options.metrics) {
            if (!head) mg_send_chunk(conn, "", 0);
            return;
        }
        if (gzip) {
            GzipChunks compressor(conn);
            metrics([&](std::string_view piece) { compressor.write(piece); });
            compressor.finish();
        } else {
            metrics([&](std::string_view piece) {
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
                           status::html_escape(info.version) + "</p>\n<p>Attached interfaces: ";
        if (info.interfaces.empty()) html += "none";
        for (std::size_t i = 0; i < info.interfaces.size(); ++i) {
            if (i > 0) html += ", ";
            html += status::html_escape(info.interfaces[i]);
        }
        html += "</p>\n<p><a href=\"" + status::html_escape(options.telemetry_path) + "\">Metrics</a> &middot; <a href=\"/healthz\">Health</a></p>\n"
                "</body></html>\n";
        return html;
    }

    void send(mg_connection* conn, int status, const char* content_type, const std::string& body,
              const char* content_encoding = nullptr,
              std::initializer_list<std::pair<const char*, const char*>> extra = {}) const
    {
        const std::string length = std::to_string(body.size());
        mg_response_header_start(conn, status);
        mg_response_header_add(conn, "Content-Type", content_type, -1);
        mg_response_header_add(conn, "Content-Length", length.c_str(), -1);
        if (content_encoding != nullptr) mg_response_header_add(conn, "Content-Encoding", content_encoding, -1);
        mg_response_header_add(conn, "Vary", "Accept-Encoding", -1);
        for (const auto& [name, value] : extra) mg_response_header_add(conn, name, value, -1);
        for (const auto& [name, value] : options.web.headers) mg_response_header_add(conn, name.c_str(), value.c_str(), -1);
        mg_response_header_send(conn);
        const std::string_view method = mg_get_request_info(conn)->request_method;
        if (!body.empty() && method != "HEAD") mg_write(conn, body.data(), body.size());
    }
};

Result<std::unique_ptr<HttpServer>> HttpServer::start(ServerOptions options)
{
    const bool tls = options.web.tls.has_value();
    const bool inherited = !options.inherited_fds.empty();
    auto ports = inherited ? Result<std::string>(civetweb_inherited_ports(options.inherited_fds, tls))
                           : civetweb_listening_ports(options.listen_addresses, tls);
    if (!ports) return ports.error();
    if (options.num_threads < 1) return Error{"http server: num_threads must be at least 1", 0};

    raise_fd_limit(options);

    // What each listener is called in the log and in errors.
    std::vector<std::string> listeners = options.listen_addresses;
    if (inherited) {
        listeners.clear();
        for (const int fd : options.inherited_fds) {
            std::string name = "systemd socket fd "; // appended piecewise: GCC 12 -O3 -Wrestrict
            name += std::to_string(fd);
            listeners.push_back(std::move(name));
        }
    }
    std::string joined;
    for (const auto& listener : listeners) joined += (joined.empty() ? "" : ", ") + listener;

    auto impl = std::make_unique<Impl>();
    impl->options = std::move(options);
    const Limits& limits = impl->options.limits;
    const std::vector<std::string> civet_options = {
        "listening_ports", ports.value(),
        "num_threads", std::to_string(impl->options.num_threads),
        "request_timeout_ms", std::to_string(limits.request_timeout.count()),
        "keep_alive_timeout_ms", std::to_string(limits.keep_alive_timeout.count()),
        "enable_keep_alive", "yes",
        // Without it every response after the first on a kept-alive connection waits for the
        // client's delayed ACK (Nagle): 40 ms per request.
        "tcp_nodelay", "1",
        "connection_queue", std::to_string(limits.connection_queue),
        "listen_backlog", std::to_string(limits.listen_backlog),
        "max_request_size", std::to_string(limits.max_request_size),
    };
    CivetCallbacks callbacks;
    callbacks.log_message = log_message;
    callbacks.init_connection = Impl::on_connection_open;
    if (tls) callbacks.init_ssl = Impl::init_ssl;
    if (!impl->options.web.basic_auth_users.empty())
        impl->auth = std::make_unique<web::BasicAuth>(impl->options.web.basic_auth_users);
    callbacks.connection_close = Impl::on_connection_close;

    std::string errors;
    startup_errors = &errors;
    try {
        impl->server = std::make_unique<CivetServer>(civet_options, &callbacks, impl.get());
    } catch (const std::exception& e) {
        startup_errors = nullptr;
        return Error{"listen on " + joined + ": " + (errors.empty() ? std::string(e.what()) : errors), 0};
    }
    startup_errors = nullptr;
    impl->server->addHandler("/", *impl);

    std::vector<mg_server_port> bound(listeners.size() + 4);
    const int n = mg_get_server_ports(impl->server->getContext(), static_cast<int>(bound.size()), bound.data());
    for (int i = 0; i < n; ++i) impl->ports.push_back(static_cast<std::uint16_t>(bound[static_cast<std::size_t>(i)].port));
    // civetweb reports ports in the order of listening_ports; a wildcard is reached on loopback.
    std::string_view rest = ports.value();
    for (std::size_t i = 0; i < impl->ports.size(); ++i) {
        const auto comma = std::min(rest.find(','), rest.size());
        if (inherited)
            impl->wake_addresses.push_back(wake_address(impl->options.inherited_fds[std::min(i, impl->options.inherited_fds.size() - 1)]));
        else
            impl->wake_addresses.push_back(wake_address(rest.substr(0, comma), impl->ports[i]));
        rest.remove_prefix(std::min(comma + 1, rest.size()));
    }
    for (std::size_t i = 0; i < impl->ports.size(); ++i)
        spdlog::info("http: listening on {} (port {})", listeners[std::min(i, listeners.size() - 1)], impl->ports[i]);
    return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

namespace {

// Opens and closes a connection to a local listener, so that a poll() waiting on it returns.
void poke_listener(const sockaddr_storage& address)
{
    const UniqueFd fd(::socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return;
    const socklen_t length = address.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    (void)::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), length);
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
        for (const auto& address : impl_->wake_addresses) poke_listener(address);
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
