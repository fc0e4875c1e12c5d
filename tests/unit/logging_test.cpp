// --log.format: the lines the stderr formatter writes, and their escaping.
#include "os/logging.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

using namespace flowlat;
using logging::Format;
using namespace std::string_literals;

namespace {

// 2026-12-03T10:00:00.123Z
const auto kTime = std::chrono::system_clock::time_point(std::chrono::milliseconds(1796292000123));

struct Case {
    const char* description;
    std::string message;
    std::string logfmt_msg; // what follows msg= in logfmt
    std::string json_msg;   // what follows "msg": in JSON
};

// Both formats quote with the same escapes, so one expected value serves both.
const Case kCases[] = {
    {"plain text", "flowlatd 1.0 starting", R"("flowlatd 1.0 starting")", R"("flowlatd 1.0 starting")"},
    {"empty", "", R"("")", R"("")"},
    {"quotes", R"(cannot attach to "eth0")", R"("cannot attach to \"eth0\"")", R"("cannot attach to \"eth0\"")"},
    {"backslash", R"(C:\path\)", R"("C:\\path\\")", R"("C:\\path\\")"},
    {"newline, carriage return, tab", "a\nb\rc\td", R"("a\nb\rc\td")", R"("a\nb\rc\td")"},
    {"backspace and form feed", "a\bb\fc", R"("a\bb\fc")", R"("a\bb\fc")"},
    {"other control characters", "nul\0bel\aesc\x1b del\x7f"s,
     R"("nul\u0000bel\u0007esc\u001b del\u007f")", R"("nul\u0000bel\u0007esc\u001b del\u007f")"},
    {"equals and braces need no escape inside quotes", "key=value {x}", R"("key=value {x}")",
     R"("key=value {x}")"},
    {"non-ASCII passes through", "r\xc3\xa9seau \xe2\x86\x92 \xf0\x9f\x90\x9d", "\"r\xc3\xa9seau \xe2\x86\x92 \xf0\x9f\x90\x9d\"",
     "\"r\xc3\xa9seau \xe2\x86\x92 \xf0\x9f\x90\x9d\""},
    {"invalid UTF-8 becomes U+FFFD", "bad \xff" " byte, cut \xe2\x86", R"("bad \ufffd byte, cut \ufffd\ufffd")",
     R"("bad \ufffd byte, cut \ufffd\ufffd")"},
    {"overlong encoding and surrogate are invalid", "\xc0\xaf \xed\xa0\x80", R"("\ufffd\ufffd \ufffd\ufffd\ufffd")",
     R"("\ufffd\ufffd \ufffd\ufffd\ufffd")"},
};

} // namespace

TEST_CASE("logfmt: ts, level and a quoted msg, one line", "[logging]")
{
    CHECK(logging::format_line(Format::logfmt, kTime, "info", "listening on [::]:10435") ==
          "ts=2026-12-03T10:00:00.123Z level=info msg=\"listening on [::]:10435\"\n");
    CHECK(logging::format_line(Format::logfmt, kTime, "warn", "x") == "ts=2026-12-03T10:00:00.123Z level=warn msg=\"x\"\n");
}

TEST_CASE("json: one object per line", "[logging]")
{
    CHECK(logging::format_line(Format::json, kTime, "error", "reload failed") ==
          "{\"ts\":\"2026-12-03T10:00:00.123Z\",\"level\":\"error\",\"msg\":\"reload failed\"}\n");
}

TEST_CASE("timestamps are UTC with milliseconds, zero-padded", "[logging]")
{
    const auto epoch = std::chrono::system_clock::time_point(std::chrono::milliseconds(7));
    CHECK(logging::format_line(Format::logfmt, epoch, "info", "") == "ts=1970-01-01T00:00:00.007Z level=info msg=\"\"\n");
}

TEST_CASE("escaping of msg in both formats", "[logging]")
{
    for (const auto& c : kCases) {
        INFO(c.description);
        CHECK(logging::format_line(Format::logfmt, kTime, "info", c.message) ==
              "ts=2026-12-03T10:00:00.123Z level=info msg=" + c.logfmt_msg + "\n");
        CHECK(logging::format_line(Format::json, kTime, "info", c.message) ==
              "{\"ts\":\"2026-12-03T10:00:00.123Z\",\"level\":\"info\",\"msg\":" + c.json_msg + "}\n");
    }
}

TEST_CASE("format names", "[logging]")
{
    CHECK(logging::parse_format("logfmt") == Format::logfmt);
    CHECK(logging::parse_format("json") == Format::json);
    CHECK_FALSE(logging::parse_format("text"));
    CHECK_FALSE(logging::parse_format("JSON"));
    CHECK(logging::parse_format(logging::default_format) == Format::logfmt);
}
