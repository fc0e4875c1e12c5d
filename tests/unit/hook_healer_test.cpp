// Healing hooks: attach by name, each error logged once (again when it changes), recovery logged.
#include "probe/hook_healer.hpp"
#include "log_sink.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace flowlat;

namespace {

std::size_t count(const std::string& text, const std::string& needle)
{
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
}

// An attach that fails with `failure` while it is set, and records what it was asked to attach.
struct FakeAttach {
    std::string failure;
    std::vector<interfaces::Interface> calls;

    probe::HookHealer::AttachFunction function()
    {
        return [this](const interfaces::Interface& interface) -> Status {
            calls.push_back(interface);
            if (!failure.empty()) return Error{"attach to " + interface.name + ": " + failure, EBUSY};
            return Ok{};
        };
    }
};

} // namespace

TEST_CASE("a failure that repeats is logged once at error level, another one again, recovery once")
{
    LogSink log(spdlog::level::debug);
    FakeAttach fake{"a foreign program holds the slot", {}};
    probe::HookHealer healer(fake.function());
    const std::vector<interfaces::Interface> present{{"eth0", 2}, {"eth1", 3}};

    for (int retry = 0; retry < 4; ++retry) CHECK_FALSE(healer.attach("eth0", present).ok());
    CHECK(count(log.text(), "error cannot attach to eth0: a foreign program holds the slot") == 1);
    CHECK(count(log.text(), "debug cannot attach to eth0") == 3);
    CHECK(healer.down() == std::vector<std::string>{"eth0"});

    fake.failure = "the clsact qdisc cannot be created";
    CHECK_FALSE(healer.attach("eth0", present).ok());
    CHECK(count(log.text(), "error cannot attach to eth0: the clsact qdisc cannot be created") == 1);

    fake.failure.clear();
    CHECK(healer.attach("eth0", present).ok());
    CHECK(healer.attach("eth0", present).ok());
    CHECK(count(log.text(), "info eth0: probe attached again") == 1);
    CHECK(healer.all_up());
    // Found by name: the interface's ifindex is the one present now.
    CHECK(fake.calls.back() == interfaces::Interface{"eth0", 2});
}

TEST_CASE("an interface that is not present fails by name, a lost hook logs its recovery")
{
    LogSink log(spdlog::level::debug);
    FakeAttach fake;
    probe::HookHealer healer(fake.function());

    healer.lost("wg0");
    CHECK_FALSE(healer.all_up());
    CHECK_FALSE(healer.attach("wg0", {}).ok());
    CHECK_FALSE(healer.attach("wg0", {}).ok());
    CHECK(fake.calls.empty());
    CHECK(count(log.text(), "error cannot attach to wg0: no such interface") == 1);

    // Re-created with another ifindex.
    CHECK(healer.attach("wg0", {{"wg0", 17}}).ok());
    CHECK(fake.calls == std::vector<interfaces::Interface>{{"wg0", 17}});
    CHECK(count(log.text(), "info wg0: probe attached again") == 1);

    // A first attach that succeeds is not a recovery.
    log.clear();
    CHECK(healer.attach("eth0", {{"eth0", 2}}).ok());
    CHECK(log.text().empty());
}

TEST_CASE("an interface no longer wanted is forgotten with its error")
{
    LogSink log(spdlog::level::debug);
    FakeAttach fake{"busy", {}};
    probe::HookHealer healer(fake.function());
    const std::vector<interfaces::Interface> present{{"veth1", 5}, {"veth2", 6}};
    CHECK_FALSE(healer.attach("veth1", present).ok());
    CHECK_FALSE(healer.attach("veth2", present).ok());
    healer.keep_only({"veth2"});
    CHECK(healer.down() == std::vector<std::string>{"veth2"});
    // Wanted again later, its failure is news again.
    CHECK_FALSE(healer.attach("veth1", present).ok());
    CHECK(count(log.text(), "error cannot attach to veth1: busy") == 2);
}
