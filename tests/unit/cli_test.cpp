#include "app/cli.hpp"
#include "config/duration.hpp"

#include <catch2/catch.hpp>

#include <initializer_list>
#include <vector>

using namespace flowlat;

namespace {

Result<cli::Options> parse(std::initializer_list<std::string_view> arguments)
{
    std::vector<std::string_view> list(arguments);
    return cli::parse_arguments(list);
}

} // namespace

TEST_CASE("no arguments means the daemon with defaults", "[cli]")
{
    auto options = parse({});
    REQUIRE(options);
    CHECK_FALSE(options.value().config_file);
    CHECK_FALSE(options.value().print);
    CHECK(options.value().interfaces.empty());
}

TEST_CASE("print mode with interfaces, both value styles", "[cli]")
{
    auto options = parse({"--interface", "eth0", "--interface=veth*", "--print=json", "--handshake-timeout=2s"});
    REQUIRE(options);
    CHECK(options.value().interfaces == std::vector<std::string>{"eth0", "veth*"});
    REQUIRE(options.value().print);
    CHECK(*options.value().print == print::PrintMode::json);
    CHECK(options.value().handshake_timeout == std::chrono::milliseconds(2000));

    auto text = parse({"--print"});
    REQUIRE(text);
    CHECK(*text.value().print == print::PrintMode::text);
}

TEST_CASE("exporter flags", "[cli]")
{
    auto options = parse({"--config.file=/tmp/x.yaml", "--web.listen-address=127.0.0.1:0",
                          "--web.listen-address", ":9000", "--log.level=debug", "--config.check"});
    REQUIRE(options);
    CHECK(*options.value().config_file == "/tmp/x.yaml");
    CHECK(options.value().listen_addresses == std::vector<std::string>{"127.0.0.1:0", ":9000"});
    CHECK(*options.value().log_level == "debug");
    CHECK(options.value().config_check);
}

TEST_CASE("the log format flag takes logfmt or json", "[cli][logging]")
{
    CHECK_FALSE(parse({}).value().log_format);
    CHECK(*parse({"--log.format=json"}).value().log_format == "json");
    CHECK(*parse({"--log.format", "logfmt"}).value().log_format == "logfmt");
}

TEST_CASE("argument errors name the flag at fault", "[cli]")
{
    struct Case {
        std::vector<std::string_view> arguments;
        std::string expected;
    };
    const std::vector<Case> cases = {
        {{"--bogus"}, "unknown argument '--bogus'"},
        {{"--interface"}, "flag --interface needs a value"},
        {{"--interface="}, "flag --interface needs a value"},
        {{"--print=xml"}, "--print: 'xml' is not text or json"},
        {{"--log.level=loud"}, "--log.level: 'loud' is not one of"},
        {{"--log.format=text"}, "--log.format: 'text' is not logfmt or json"},
        {{"--log.format="}, "flag --log.format needs a value"},
        {{"--handshake-timeout=soon"}, "--handshake-timeout: 'soon' is not a positive duration"},
        {{"--handshake-timeout=0"}, "--handshake-timeout: '0' is not a positive duration"},
        {{"--version=2"}, "flag --version takes no value"},
        {{"--print", "--config.check"}, "--print and --config.check cannot be combined"},
    };
    for (const auto& c : cases) {
        auto result = cli::parse_arguments(c.arguments);
        INFO(c.expected);
        REQUIRE_FALSE(result);
        CHECK_THAT(result.error().message(), Catch::Contains(c.expected));
    }
}

TEST_CASE("durations in the Prometheus style", "[cli][duration]")
{
    CHECK(parse_duration("10s") == std::chrono::milliseconds(10'000));
    CHECK(parse_duration("500ms") == std::chrono::milliseconds(500));
    CHECK(parse_duration("1h30m") == std::chrono::milliseconds(5'400'000));
    CHECK(parse_duration("2d") == std::chrono::milliseconds(172'800'000));
    CHECK(parse_duration("0") == std::chrono::milliseconds(0));
    CHECK_FALSE(parse_duration(""));
    CHECK_FALSE(parse_duration("10"));
    CHECK_FALSE(parse_duration("s"));
    CHECK_FALSE(parse_duration("1.5s"));
    CHECK_FALSE(parse_duration("1s1h"));
    CHECK_FALSE(parse_duration("1s1s"));
    CHECK(parse_duration("1m1s500ms") == std::chrono::milliseconds(61'500));
    CHECK_FALSE(parse_duration("-1s"));
    CHECK_FALSE(parse_duration("99999999999999999999s"));
    CHECK(format_duration(std::chrono::milliseconds(5'400'000)) == "1h30m");
    CHECK(format_duration(std::chrono::milliseconds(250)) == "250ms");
    CHECK(format_duration(std::chrono::milliseconds(0)) == "0s");
}

TEST_CASE("the systemd-socket flag takes no value and excludes --web.listen-address", "[cli]")
{
    CHECK_FALSE(parse({}).value().web_systemd_socket);
    CHECK(parse({"--web.systemd-socket"}).value().web_systemd_socket);
    CHECK_FALSE(parse({"--web.systemd-socket=true"}).ok());
    const auto both = parse({"--web.systemd-socket", "--web.listen-address=:9100"});
    REQUIRE_FALSE(both.ok());
    CHECK_THAT(both.error().message(), Catch::Contains("--web.systemd-socket and --web.listen-address cannot be combined"));
    CHECK_FALSE(parse({"--web.listen-address=:9100", "--web.systemd-socket"}).ok());
    CHECK_FALSE(parse({"--web.systemd-socket", "--print"}).ok());
}
