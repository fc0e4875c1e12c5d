// HTTP basic authentication against bcrypt hashes (web config basic_auth_users), with libcrypt.
// bcrypt is slow on purpose (tens of ms at cost 10); a cache of verified (user, digest of the
// password) answers so that a scraper pays it once, not at every scrape. An unknown user is
// checked against a dummy hash of the same cost, so the answer takes as long as for a known one.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace flowlat::web {

class BasicAuth {
public:
    explicit BasicAuth(std::map<std::string, std::string> users); // user -> bcrypt hash

    bool enabled() const { return !users_.empty(); }
    // True when `authorization` (the header's value, or null) is "Basic <base64 user:password>"
    // for a configured user and the right password.
    bool allows(const char* authorization);

    static constexpr std::size_t max_cached = 4096;

private:
    using Digest = std::array<std::uint8_t, 32>;
    std::map<std::string, std::string> users_;
    std::string dummy_hash_;
    std::mutex mutex_;
    std::map<Digest, bool> cache_; // SHA-256 of user, password and hash -> bcrypt's verdict
};

// "Basic dXNlcjpwYXNz" -> ("user", "pass"); nullopt when it is not a well-formed basic credential.
std::optional<std::pair<std::string, std::string>> parse_basic_authorization(std::string_view header);
// True when bcrypt of `password` with the salt and cost of `hash` is `hash`.
bool bcrypt_matches(const std::string& password, const std::string& hash);

} // namespace flowlat::web
