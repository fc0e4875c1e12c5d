// The reload worker: loads run off the event loop thread, requests during a load are
// coalesced into one more load, results are applied on the loop thread, and destruction
// waits for a load in progress. No root needed: an event loop is epoll, eventfd and timerfd.
#include "app/config_reloader.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

using namespace flowlat;

namespace {

// A load that blocks until released, so that requests can be made while it runs.
struct Gate {
    std::mutex mutex;
    std::condition_variable changed;
    bool open{false};
    int entered{0};

    void wait()
    {
        std::unique_lock lock(mutex);
        ++entered;
        changed.notify_all();
        changed.wait(lock, [this] { return open; });
    }
    void wait_entered(int count)
    {
        std::unique_lock lock(mutex);
        changed.wait(lock, [&] { return entered >= count; });
    }
    void release()
    {
        std::lock_guard lock(mutex);
        open = true;
        changed.notify_all();
    }
};

EffectiveConfig loaded_with(std::size_t max_series)
{
    config::Config config = config::embedded_default();
    config.max_series = max_series;
    return {config, {}};
}

} // namespace

TEST_CASE("reloads during a reload are coalesced into one more, applied on the loop thread", "[reload]")
{
    auto loop = EventLoop::create();
    REQUIRE(loop);
    EventLoop& events = *loop.value();
    Gate gate;
    std::atomic<int> loads{0};
    const auto loop_thread = std::this_thread::get_id();
    std::atomic<bool> loaded_off_loop{true};
    struct Applied {
        std::size_t max_series;
        bool another_follows;
        bool on_loop_thread;
    };
    std::vector<Applied> applied;

    auto reloader = ConfigReloader::start(
        events,
        [&] {
            if (std::this_thread::get_id() == loop_thread) loaded_off_loop = false;
            const int n = ++loads;
            if (n == 1) gate.wait();
            return loaded_with(static_cast<std::size_t>(n)); // the file "as it is by then"
        },
        [&](EffectiveConfig result, bool another_follows) {
            const std::size_t max_series = result.config ? result.config->max_series : 0;
            applied.push_back({max_series, another_follows, std::this_thread::get_id() == loop_thread});
            if (!another_follows) events.stop();
        });
    REQUIRE(reloader);
    ConfigReloader& reloads = *reloader.value();

    CHECK(reloads.request());        // starts the first load
    gate.wait_entered(1);            // which is now running
    CHECK_FALSE(reloads.request());  // coalesced...
    CHECK_FALSE(reloads.request());  // ...into one more load
    CHECK(reloads.running());
    gate.release();
    REQUIRE(events.every(std::chrono::seconds(20), [&] { events.stop(); })); // a safety net, not a timing
    REQUIRE(events.run().ok());

    CHECK(loads == 2);
    CHECK(loaded_off_loop);
    REQUIRE(applied.size() == 2);
    CHECK(applied[0].max_series == 1);
    CHECK(applied[0].another_follows);
    CHECK(applied[1].max_series == 2);
    CHECK_FALSE(applied[1].another_follows);
    CHECK(applied[0].on_loop_thread);
    CHECK(applied[1].on_loop_thread);
    CHECK_FALSE(reloads.running());
}

TEST_CASE("a reloader destroyed during a load waits for it and applies nothing", "[reload]")
{
    auto loop = EventLoop::create();
    REQUIRE(loop);
    Gate gate;
    bool applied = false;
    auto reloader = ConfigReloader::start(
        *loop.value(),
        [&] {
            gate.wait();
            return loaded_with(1);
        },
        [&](EffectiveConfig, bool) { applied = true; });
    REQUIRE(reloader);
    REQUIRE(reloader.value()->request());
    gate.wait_entered(1);
    std::thread releaser([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        gate.release();
    });
    reloader.value().reset(); // returns once the load has ended
    releaser.join();
    CHECK_FALSE(applied);
}

TEST_CASE("a load that throws is a failed reload with the reason", "[reload]")
{
    auto loop = EventLoop::create();
    REQUIRE(loop);
    EventLoop& events = *loop.value();
    std::vector<std::string> reasons;
    auto reloader = ConfigReloader::start(
        events, []() -> EffectiveConfig { throw std::runtime_error("out of memory"); },
        [&](EffectiveConfig result, bool) {
            CHECK_FALSE(result.config);
            for (const auto& d : result.diagnostics) reasons.push_back(d.to_string());
            events.stop();
        });
    REQUIRE(reloader);
    REQUIRE(reloader.value()->request());
    REQUIRE(events.every(std::chrono::seconds(20), [&] { events.stop(); }));
    REQUIRE(events.run().ok());
    CHECK(reasons == std::vector<std::string>{"reload: out of memory"});
}
