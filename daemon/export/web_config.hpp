// --web.config.file: TLS, basic authentication and response headers for the HTTP endpoint, in
// the schema of the Prometheus exporter-toolkit, so that a file written for node_exporter works
// here. Plain structs, parsed and validated in one place; errors carry file:line:column.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace flowlat::web {

enum class ClientAuth {
    none,                  // NoClientCert
    request,               // RequestClientCert: asked for, not verified
    require_any,           // RequireAnyClientCert: required, not verified
    verify_if_given,       // VerifyClientCertIfGiven
    require_and_verify,    // RequireAndVerifyClientCert
};

struct TlsServerConfig {
    std::string cert_file;
    std::string key_file;
    ClientAuth client_auth{ClientAuth::none};
    std::string client_ca_file;
    int min_version{0x0303}; // TLS 1.2, exporter-toolkit's default
    int max_version{0};      // 0: the highest this OpenSSL has
};

struct WebConfig {
    std::string source; // the file it came from
    std::optional<TlsServerConfig> tls;
    std::map<std::string, std::string> basic_auth_users; // user -> bcrypt hash
    std::vector<std::pair<std::string, std::string>> headers;

    bool operator==(const WebConfig&) const = default;
};

struct WebConfigResult {
    std::optional<WebConfig> config;
    std::vector<std::string> errors; // "file:line:column: key: message", one per problem
};

// Reads and validates `path`: unknown keys, wrong types, missing or unreadable files, bad
// bcrypt hashes and headers exporter-toolkit does not allow are errors.
WebConfigResult load_web_config(const std::string& path);
WebConfigResult parse_web_config(const std::string& text, const std::string& source);

} // namespace flowlat::web
