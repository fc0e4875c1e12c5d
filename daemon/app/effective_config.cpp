#include "app/effective_config.hpp"

#include "config/yaml_parser.hpp"

#include <sys/stat.h>

#include <array>
#include <string_view>

namespace flowlat {

namespace {

bool file_exists(std::string_view path)
{
    struct stat info{};
    return ::stat(std::string(path).c_str(), &info) == 0;
}

// The config keys a flag overrides, and whether it was given.
struct FlagKey {
    std::string_view key;
    std::string_view flag;
    bool list; // repeatable: a problem names the value at fault, "--interface=eth/0"
};
constexpr std::array<FlagKey, 5> kFlagKeys{{
    {"interfaces", "--interface", true},
    {"web.listen_addresses", "--web.listen-address", true},
    {"log.level", "--log.level", false},
    {"log.format", "--log.format", false},
    {"handshake_timeout", "--handshake-timeout", false},
}};

bool given(const FlagKey& flag, const cli::Options& options)
{
    if (flag.key == "interfaces") return !options.interfaces.empty();
    if (flag.key == "web.listen_addresses") return !options.listen_addresses.empty();
    if (flag.key == "log.level") return options.log_level.has_value();
    if (flag.key == "log.format") return options.log_format.has_value();
    return options.handshake_timeout.has_value();
}

// Rewrites a problem of a key that a flag set as a problem of that flag.
config::Diagnostic attribute(config::Diagnostic diagnostic, const cli::Options& options)
{
    for (const auto& flag : kFlagKeys) {
        const std::string_view key = diagnostic.key;
        if (!given(flag, options) || !key.starts_with(flag.key)) continue;
        const std::string_view rest = key.substr(flag.key.size());
        if (!rest.empty() && rest.front() != '[') continue;
        std::string name(flag.flag);
        if (flag.list && rest.size() > 2) {
            const std::size_t index = std::stoul(std::string(rest.substr(1)));
            const auto& values = flag.key == "interfaces" ? options.interfaces : options.listen_addresses;
            if (index < values.size()) name += "=" + values[index];
        }
        return config::Diagnostic{std::move(name), 0, 0, "", std::move(diagnostic.message)};
    }
    return diagnostic;
}

} // namespace

EffectiveConfig load_effective_config(const cli::Options& options)
{
    config::ParseResult parsed;
    if (options.config_file) {
        parsed = config::load_config_file(*options.config_file);
    } else if (file_exists(cli::default_config_file)) {
        parsed = config::load_config_file(std::string(cli::default_config_file));
    } else {
        parsed.config = config::embedded_default();
    }
    if (!parsed.config) return {std::nullopt, std::move(parsed.diagnostics)};

    config::Config effective = std::move(*parsed.config);
    if (!options.interfaces.empty()) effective.interfaces = options.interfaces;
    if (!options.listen_addresses.empty()) effective.listen_addresses = options.listen_addresses;
    if (options.log_level) effective.log_level = *options.log_level;
    if (options.log_format) effective.log_format = *options.log_format;
    if (options.handshake_timeout) effective.handshake_timeout = *options.handshake_timeout;
    // The file was valid on its own: what fails now is a flag's value.
    auto diagnostics = config::validate(effective);
    if (diagnostics.empty()) return {std::move(effective), {}};
    for (auto& diagnostic : diagnostics) diagnostic = attribute(std::move(diagnostic), options);
    return {std::nullopt, std::move(diagnostics)};
}

} // namespace flowlat
