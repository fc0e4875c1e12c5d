// --web.config.file parsing and the basic-auth check (export/web_config, export/basic_auth).
#include "export/basic_auth.hpp"
#include "export/web_config.hpp"

#include <catch2/catch.hpp>

using namespace flowlat;

namespace {

// bcrypt("pw") at cost 10, made with libcrypt.
constexpr const char* kHashCost10 = "$2b$10$abcdefghijklmnopqrstuuj7m4XYqbm74SxoBcXyw8to0CQ061DVG";

std::string errors_of(const std::string& text)
{
    const auto result = web::parse_web_config(text, "/etc/web.yml");
    REQUIRE_FALSE(result.config);
    std::string joined;
    for (const auto& error : result.errors) joined += error + "\n";
    return joined;
}

} // namespace

TEST_CASE("web config: users and headers parse, unknown keys and bad values are errors with file:line", "[web]")
{
    const auto ok = web::parse_web_config(std::string("basic_auth_users:\n  prom: ") + kHashCost10 +
                                              "\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n",
                                          "/etc/web.yml");
    REQUIRE(ok.config);
    CHECK(ok.config->basic_auth_users.at("prom") == kHashCost10);
    CHECK(ok.config->headers == std::vector<std::pair<std::string, std::string>>{{"X-Frame-Options", "deny"}});
    CHECK_FALSE(ok.config->tls);

    CHECK_THAT(errors_of("tls_server_confg: {}\n"), Catch::Contains("/etc/web.yml:1:1: tls_server_confg: unknown key"));
    CHECK_THAT(errors_of("basic_auth_users:\n  prom: plain\n"),
               Catch::Contains("/etc/web.yml:2:9: basic_auth_users.prom: is not a bcrypt hash"));
    CHECK_THAT(errors_of("http_server_config:\n  headers:\n    Server: x\n"),
               Catch::Contains("/etc/web.yml:3:5: http_server_config.headers.Server: not an allowed header"));
    CHECK_THAT(errors_of("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n"
                         "  min_version: TLS14\n  client_auth_type: RequireAndVerifyClientCert\n"),
               Catch::Contains("cannot read '/nonexistent.crt'") && Catch::Contains("is not TLS10, TLS11, TLS12 or TLS13") &&
                   Catch::Contains("client_ca_file: is required to verify client certificates"));
    CHECK_THAT(errors_of("http_server_config: {http2: true}\n"), Catch::Contains("HTTP/2 is not supported"));
    CHECK_THAT(errors_of("[1, 2]\n"), Catch::Contains("must be a mapping"));
}

TEST_CASE("basic auth: header parsing, bcrypt, unknown users and the cache", "[web]")
{
    CHECK(web::parse_basic_authorization("Basic cHJvbTpwdw==") == std::make_pair(std::string("prom"), std::string("pw")));
    CHECK(web::parse_basic_authorization("basic cHJvbTpwdw==").has_value());
    CHECK_FALSE(web::parse_basic_authorization("Bearer cHJvbTpwdw=="));
    CHECK_FALSE(web::parse_basic_authorization("Basic !!!"));
    CHECK_FALSE(web::parse_basic_authorization("Basic cHJvbQ==")); // "prom": no colon
    CHECK(web::bcrypt_matches("pw", kHashCost10));
    CHECK_FALSE(web::bcrypt_matches("pW", kHashCost10));

    web::BasicAuth auth(std::map<std::string, std::string>{{"prom", kHashCost10}});
    CHECK(auth.enabled());
    CHECK(auth.allows("Basic cHJvbTpwdw=="));      // prom:pw
    CHECK(auth.allows("Basic cHJvbTpwdw=="));      // cached
    CHECK_FALSE(auth.allows("Basic cHJvbTpwVw=="));  // prom:pW
    CHECK_FALSE(auth.allows("Basic b3RoZXI6cHc="));  // other:pw, checked against the dummy hash
    CHECK_FALSE(auth.allows("Basic b3RoZXI6cHc="));  // and cached as refused
    CHECK_FALSE(auth.allows(nullptr));
    web::BasicAuth none(std::map<std::string, std::string>{});
    CHECK(none.allows(nullptr)); // no users: no authentication
}
