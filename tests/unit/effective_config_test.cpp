// What the daemon runs on: the file (named, default path, or embedded default), then flags.
#include "app/daemon_mode.hpp"
#include "temp_file.hpp"

#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdlib>
#include <string>

using namespace flowlat;

using flowlat::testing::TempFile;

TEST_CASE("flags override the keys of the named file", "[config][cli]")
{
    const TempFile file("interfaces: [eth9]\n"
                        "web: {listen_addresses: [\"127.0.0.1:9000\"]}\n"
                        "log: {level: debug}\n"
                        "handshake_timeout: 3s\n"
                        "max_series: 77\n");
    cli::Options options;
    options.config_file = file.path.string();

    auto from_file = load_effective_config(options);
    REQUIRE(from_file.config);
    CHECK(from_file.config->interfaces == std::vector<std::string>{"eth9"});
    CHECK(from_file.config->listen_addresses == std::vector<std::string>{"127.0.0.1:9000"});
    CHECK(from_file.config->log_level == "debug");
    CHECK(from_file.config->handshake_timeout == std::chrono::milliseconds(3000));

    options.interfaces = {"veth*", "lo"};
    options.listen_addresses = {":10435"};
    options.log_level = "warn";
    options.handshake_timeout = std::chrono::milliseconds(500);
    auto overridden = load_effective_config(options);
    REQUIRE(overridden.config);
    CHECK(overridden.config->interfaces == std::vector<std::string>{"veth*", "lo"});
    CHECK(overridden.config->listen_addresses == std::vector<std::string>{":10435"});
    CHECK(overridden.config->log_level == "warn");
    CHECK(overridden.config->handshake_timeout == std::chrono::milliseconds(500));
    CHECK(overridden.config->max_series == 77); // keys without a flag stay as the file says
}

TEST_CASE("a flag's value is validated like the key it overrides", "[config][cli]")
{
    const TempFile file("max_series: 10\n");
    cli::Options options;
    options.config_file = file.path.string();
    options.listen_addresses = {"[::1]:10435"};
    const auto loaded = load_effective_config(options);
    REQUIRE_FALSE(loaded.config);
    REQUIRE(loaded.diagnostics.size() == 1);
    CHECK_THAT(loaded.diagnostics[0].to_string(), Catch::Contains("IPv6 listen addresses are not supported"));
}

TEST_CASE("a named file that is missing is an error, never the embedded default", "[config][cli]")
{
    cli::Options options;
    options.config_file = "/nonexistent/flowlatd.yaml";
    const auto loaded = load_effective_config(options);
    REQUIRE_FALSE(loaded.config);
    REQUIRE_FALSE(loaded.diagnostics.empty());
    CHECK_THAT(loaded.diagnostics[0].to_string(), Catch::Contains("/nonexistent/flowlatd.yaml"));
}

TEST_CASE("without a named file and without the default file, the embedded default runs", "[config][cli]")
{
    if (access(std::string(cli::default_config_file).c_str(), F_OK) == 0) {
        WARN(std::string(cli::default_config_file) + " exists on this host; the fallback cannot be observed here");
        return;
    }
    cli::Options options;
    options.interfaces = {"eth0"};
    const auto loaded = load_effective_config(options);
    REQUIRE(loaded.config);
    CHECK(loaded.config->source == "<embedded default>");
    CHECK(loaded.config->listen_addresses == std::vector<std::string>{":10435"});
    CHECK(loaded.config->interfaces == std::vector<std::string>{"eth0"});
}

TEST_CASE("a flag's bad value is reported as the flag's, not the file's", "[config][cli]")
{
    const TempFile file("max_series: 10\n");
    cli::Options options;
    options.config_file = file.path.string();
    options.handshake_timeout = std::chrono::milliseconds(1);
    options.listen_addresses = {":10435", "bad"};
    options.interfaces = {"eth0", "a/b"};
    const auto loaded = load_effective_config(options);
    REQUIRE_FALSE(loaded.config);
    std::vector<std::string> messages;
    for (const auto& d : loaded.diagnostics) messages.push_back(d.to_string());
    CHECK(messages ==
          std::vector<std::string>{
              "--interface=a/b: \"a/b\" contains '/', ':' or white space, which interface names cannot",
              "--web.listen-address=bad: missing port in \"bad\" (expected HOST:PORT such as :10435 or "
              "127.0.0.1:10435)",
              "--handshake-timeout: must be between 100ms and 10m, got 1ms",
          });

    // Without a file: the flag still, never "<embedded default>".
    cli::Options no_file;
    no_file.config_file = std::nullopt;
    no_file.log_level = "loud"; // the CLI refuses this first; validate() says the same of the flag
    no_file.interfaces = {"eth0"};
    if (access(std::string(cli::default_config_file).c_str(), F_OK) != 0) {
        const auto embedded = load_effective_config(no_file);
        REQUIRE(embedded.diagnostics.size() == 1);
        CHECK(embedded.diagnostics[0].to_string() ==
              "--log.level: unknown log level \"loud\" (expected trace, debug, info, warn, error, critical or off)");
    }
}
