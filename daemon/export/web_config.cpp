#include "export/web_config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace flowlat::web {

namespace {

class Checker {
public:
    explicit Checker(std::string source) : source_(std::move(source)) {}

    void error(const YAML::Mark& mark, const std::string& key, const std::string& message)
    {
        // Appended piece by piece: GCC 12 at -O3 flags `":" + std::to_string(...)` with a false -Wrestrict.
        std::string line = source_;
        if (!mark.is_null()) {
            line += ':';
            line += std::to_string(mark.line + 1);
            line += ':';
            line += std::to_string(mark.column + 1);
        }
        line += ": ";
        line += key;
        line += ": ";
        line += message;
        errors.push_back(std::move(line));
    }

    // The keys of a mapping, each checked against `known`; false when `node` is not a mapping.
    bool mapping(const YAML::Node& node, const std::string& key, std::initializer_list<std::string_view> known)
    {
        if (node.IsNull()) return true;
        if (!node.IsMap()) {
            error(node.Mark(), key, "must be a mapping");
            return false;
        }
        for (const auto& item : node) {
            const std::string name = item.first.as<std::string>("");
            if (std::find(known.begin(), known.end(), name) == known.end())
                error(item.first.Mark(), key.empty() ? name : key + "." + name, "unknown key");
        }
        return true;
    }

    std::optional<std::string> string(const YAML::Node& node, const std::string& key)
    {
        if (!node || node.IsNull()) return std::nullopt;
        if (!node.IsScalar()) {
            error(node.Mark(), key, "must be a string");
            return std::nullopt;
        }
        return node.Scalar();
    }

    std::vector<std::string> errors;

private:
    std::string source_;
};

std::optional<int> tls_version(std::string_view name)
{
    static constexpr std::array<std::pair<std::string_view, int>, 4> versions{
        {{"TLS10", 0x0301}, {"TLS11", 0x0302}, {"TLS12", 0x0303}, {"TLS13", 0x0304}}};
    for (const auto& [text, value] : versions)
        if (text == name) return value;
    return std::nullopt;
}

std::optional<ClientAuth> client_auth(std::string_view name)
{
    if (name == "NoClientCert" || name.empty()) return ClientAuth::none;
    if (name == "RequestClientCert") return ClientAuth::request;
    if (name == "RequireAnyClientCert") return ClientAuth::require_any;
    if (name == "VerifyClientCertIfGiven") return ClientAuth::verify_if_given;
    if (name == "RequireAndVerifyClientCert") return ClientAuth::require_and_verify;
    return std::nullopt;
}

// A bcrypt hash as htpasswd -B and Go's bcrypt write it: $2a$, $2b$ or $2y$, a two-digit cost
// from 04 to 31, then 53 characters of bcrypt's base64.
bool is_bcrypt(std::string_view hash)
{
    if (hash.size() != 60 || hash[0] != '$' || hash[1] != '2' || hash[3] != '$' || hash[6] != '$') return false;
    if (hash[2] != 'a' && hash[2] != 'b' && hash[2] != 'y') return false;
    if (!std::isdigit(static_cast<unsigned char>(hash[4])) || !std::isdigit(static_cast<unsigned char>(hash[5])))
        return false;
    const int cost = (hash[4] - '0') * 10 + (hash[5] - '0');
    if (cost < 4 || cost > 31) return false;
    return std::all_of(hash.begin() + 7, hash.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '.' || c == '/';
    });
}

// exporter-toolkit accepts these response headers only.
constexpr std::array<std::string_view, 5> allowed_headers{
    "Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "X-XSS-Protection",
    "Strict-Transport-Security"};

void check_readable(Checker& check, const YAML::Node& node, const std::string& key, const std::string& path)
{
    if (access(path.c_str(), R_OK) != 0) check.error(node.Mark(), key, "cannot read '" + path + "'");
}

// Relative file names are relative to the web config file's folder, as in exporter-toolkit.
std::string resolve(const std::string& source, const std::string& path)
{
    if (path.empty() || path.front() == '/') return path;
    const auto slash = source.rfind('/');
    return slash == std::string::npos ? path : source.substr(0, slash + 1) + path;
}

} // namespace

WebConfigResult parse_web_config(const std::string& text, const std::string& source)
{
    WebConfigResult result;
    Checker check(source);
    YAML::Node root;
    try {
        root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
        check.error(e.mark, "yaml", e.msg);
        result.errors = std::move(check.errors);
        return result;
    }
    WebConfig config;
    config.source = source;
    if (!check.mapping(root, "", {"tls_server_config", "basic_auth_users", "http_server_config"})) {
        result.errors = std::move(check.errors);
        return result;
    }

    const YAML::Node tls = root["tls_server_config"];
    if (tls && !tls.IsNull() &&
        check.mapping(tls, "tls_server_config",
                      {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version"})) {
        TlsServerConfig out;
        const auto cert = check.string(tls["cert_file"], "tls_server_config.cert_file");
        const auto key = check.string(tls["key_file"], "tls_server_config.key_file");
        if (!cert || cert->empty()) check.error(tls.Mark(), "tls_server_config.cert_file", "is required");
        if (!key || key->empty()) check.error(tls.Mark(), "tls_server_config.key_file", "is required");
        if (cert && !cert->empty()) {
            out.cert_file = resolve(source, *cert);
            check_readable(check, tls["cert_file"], "tls_server_config.cert_file", out.cert_file);
        }
        if (key && !key->empty()) {
            out.key_file = resolve(source, *key);
            check_readable(check, tls["key_file"], "tls_server_config.key_file", out.key_file);
        }
        if (auto type = check.string(tls["client_auth_type"], "tls_server_config.client_auth_type")) {
            if (auto parsed = client_auth(*type))
                out.client_auth = *parsed;
            else
                check.error(tls["client_auth_type"].Mark(), "tls_server_config.client_auth_type",
                            "'" + *type + "' is not NoClientCert, RequestClientCert, RequireAnyClientCert, "
                                          "VerifyClientCertIfGiven or RequireAndVerifyClientCert");
        }
        if (auto ca = check.string(tls["client_ca_file"], "tls_server_config.client_ca_file"); ca && !ca->empty()) {
            out.client_ca_file = resolve(source, *ca);
            check_readable(check, tls["client_ca_file"], "tls_server_config.client_ca_file", out.client_ca_file);
        }
        const bool verifies = out.client_auth == ClientAuth::verify_if_given ||
                              out.client_auth == ClientAuth::require_and_verify;
        if (verifies && out.client_ca_file.empty())
            check.error(tls.Mark(), "tls_server_config.client_ca_file", "is required to verify client certificates");
        if (!verifies && !out.client_ca_file.empty())
            check.error(tls["client_ca_file"].Mark(), "tls_server_config.client_ca_file",
                        "is set but client_auth_type does not verify client certificates");
        for (const char* name : {"min_version", "max_version"}) {
            const std::string key_path = std::string("tls_server_config.") + name;
            if (auto value = check.string(tls[name], key_path)) {
                if (auto version = tls_version(*value))
                    (std::string_view(name) == "min_version" ? out.min_version : out.max_version) = *version;
                else
                    check.error(tls[name].Mark(), key_path, "'" + *value + "' is not TLS10, TLS11, TLS12 or TLS13");
            }
        }
        if (out.max_version != 0 && out.max_version < out.min_version)
            check.error(tls["max_version"].Mark(), "tls_server_config.max_version", "is below min_version");
        config.tls = std::move(out);
    }

    const YAML::Node users = root["basic_auth_users"];
    if (users && !users.IsNull()) {
        if (!users.IsMap()) {
            check.error(users.Mark(), "basic_auth_users", "must be a mapping of user names to bcrypt hashes");
        } else {
            for (const auto& item : users) {
                const std::string user = item.first.as<std::string>("");
                const std::string key = "basic_auth_users." + user;
                const auto hash = check.string(item.second, key);
                if (user.empty() || user.find(':') != std::string::npos)
                    check.error(item.first.Mark(), key, "a user name must be non-empty and have no ':'");
                else if (!hash || !is_bcrypt(*hash))
                    check.error(item.second.Mark(), key, "is not a bcrypt hash ($2y$10$..., as htpasswd -nBC 10 writes)");
                else
                    config.basic_auth_users[user] = *hash;
            }
        }
    }

    const YAML::Node server = root["http_server_config"];
    if (server && !server.IsNull() && check.mapping(server, "http_server_config", {"headers", "http2"})) {
        if (const YAML::Node http2 = server["http2"]; http2 && !http2.IsNull()) {
            if (!http2.IsScalar() || (http2.Scalar() != "true" && http2.Scalar() != "false"))
                check.error(http2.Mark(), "http_server_config.http2", "must be true or false");
            else if (http2.Scalar() == "true")
                check.error(http2.Mark(), "http_server_config.http2", "HTTP/2 is not supported; set false or leave it out");
        }
        const YAML::Node headers = server["headers"];
        if (headers && !headers.IsNull()) {
            if (!headers.IsMap()) {
                check.error(headers.Mark(), "http_server_config.headers", "must be a mapping");
            } else {
                for (const auto& item : headers) {
                    const std::string name = item.first.as<std::string>("");
                    const std::string key = "http_server_config.headers." + name;
                    const auto value = check.string(item.second, key);
                    if (std::find(allowed_headers.begin(), allowed_headers.end(), name) == allowed_headers.end())
                        check.error(item.first.Mark(), key,
                                    "not an allowed header (Content-Security-Policy, X-Frame-Options, "
                                    "X-Content-Type-Options, X-XSS-Protection, Strict-Transport-Security)");
                    else if (!value || value->find_first_of("\r\n") != std::string::npos)
                        check.error(item.second.Mark(), key, "must be a one-line string");
                    else
                        config.headers.emplace_back(name, *value);
                }
            }
        }
    }

    if (check.errors.empty())
        result.config = std::move(config);
    else
        result.errors = std::move(check.errors);
    return result;
}

WebConfigResult load_web_config(const std::string& path)
{
    std::ifstream in(path);
    if (!in) return {std::nullopt, {path + ": cannot read the web configuration file"}};
    std::stringstream text;
    text << in.rdbuf();
    return parse_web_config(text.str(), path);
}

} // namespace flowlat::web
