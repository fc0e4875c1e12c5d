#include "export/basic_auth.hpp"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstring>
#include <memory>

namespace flowlat::web {

namespace {

std::optional<std::string> base64_decode(std::string_view text)
{
    std::string out;
    std::uint32_t bits = 0;
    int count = 0;
    std::size_t padding = 0;
    for (const char c : text) {
        int value = -1;
        if (c >= 'A' && c <= 'Z') value = c - 'A';
        else if (c >= 'a' && c <= 'z') value = c - 'a' + 26;
        else if (c >= '0' && c <= '9') value = c - '0' + 52;
        else if (c == '+') value = 62;
        else if (c == '/') value = 63;
        else if (c == '=') { ++padding; continue; }
        else return std::nullopt;
        if (padding > 0) return std::nullopt; // data after '='
        bits = (bits << 6) | static_cast<std::uint32_t>(value);
        count += 6;
        if (count >= 8) {
            count -= 8;
            out += static_cast<char>((bits >> count) & 0xff);
        }
    }
    if (padding > 2 || (text.size() % 4) != 0) return std::nullopt;
    return out;
}

// The cost of a bcrypt hash ("$2y$10$..." -> 10), for a dummy hash that costs the same.
unsigned long cost_of(const std::string& hash)
{
    return static_cast<unsigned long>((hash[4] - '0') * 10 + (hash[5] - '0'));
}

} // namespace

std::optional<std::pair<std::string, std::string>> parse_basic_authorization(std::string_view header)
{
    constexpr std::string_view scheme = "basic ";
    if (header.size() <= scheme.size()) return std::nullopt;
    for (std::size_t i = 0; i < scheme.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(header[i])) != scheme[i]) return std::nullopt;
    header.remove_prefix(scheme.size());
    while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
    auto decoded = base64_decode(header);
    if (!decoded) return std::nullopt;
    const auto colon = decoded->find(':');
    if (colon == std::string::npos) return std::nullopt;
    return std::make_pair(decoded->substr(0, colon), decoded->substr(colon + 1));
}

bool bcrypt_matches(const std::string& password, const std::string& hash)
{
    auto data = std::make_unique<crypt_data>(); // about 32 KiB: not on a worker's small stack
    const char* out = crypt_rn(password.c_str(), hash.c_str(), data.get(), sizeof(crypt_data));
    if (out == nullptr || out[0] == '*' || std::strlen(out) != hash.size()) return false;
    return CRYPTO_memcmp(out, hash.data(), hash.size()) == 0;
}

BasicAuth::BasicAuth(std::map<std::string, std::string> users) : users_(std::move(users))
{
    if (users_.empty()) return;
    unsigned long cost = 0;
    for (const auto& [user, hash] : users_) cost = std::max(cost, cost_of(hash));
    char salt[CRYPT_GENSALT_OUTPUT_SIZE] = {};
    auto data = std::make_unique<crypt_data>();
    if (crypt_gensalt_rn("$2b$", cost, nullptr, 0, salt, sizeof(salt)) != nullptr) {
        const char* out = crypt_rn("flowlatd dummy password", salt, data.get(), sizeof(crypt_data));
        if (out != nullptr && out[0] != '*') dummy_hash_ = out;
    }
    if (dummy_hash_.empty()) dummy_hash_ = users_.begin()->second; // same cost, never matched by design
}

bool BasicAuth::allows(const char* authorization)
{
    if (users_.empty()) return true;
    if (authorization == nullptr) return false;
    const auto credentials = parse_basic_authorization(authorization);
    if (!credentials) return false;
    const auto& [user, password] = *credentials;
    const auto found = users_.find(user);
    const std::string& hash = found != users_.end() ? found->second : dummy_hash_;

    Digest digest{};
    const std::string key = user + '\0' + password + '\0' + hash;
    unsigned int length = 0;
    if (EVP_Digest(key.data(), key.size(), digest.data(), &length, EVP_sha256(), nullptr) != 1) return false;
    {
        std::lock_guard lock(mutex_);
        if (auto cached = cache_.find(digest); cached != cache_.end()) return cached->second && found != users_.end();
    }
    const bool matches = bcrypt_matches(password, hash) && found != users_.end();
    std::lock_guard lock(mutex_);
    if (cache_.size() >= max_cached) cache_.clear();
    cache_[digest] = matches;
    return matches;
}

} // namespace flowlat::web
