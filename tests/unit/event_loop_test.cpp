// The event loop's own failures: they come back as errors, never as a quiet stop.
#include "os/event_loop.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <thread>

using namespace flowlat;

namespace {

std::set<int> eventpoll_fds()
{
    std::set<int> fds;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
        std::error_code ignored;
        const auto target = std::filesystem::read_symlink(entry.path(), ignored);
        if (target.string() == "anon_inode:[eventpoll]") fds.insert(std::stoi(entry.path().filename().string()));
    }
    return fds;
}

// Runs a new loop whose one timer stops it at the `stop_at`th tick; `during` runs beside it.
// Returns run()'s Status; *ticks counts the ticks seen.
Status run_ticks(std::chrono::milliseconds interval, int stop_at, int* ticks, const std::function<void()>& during)
{
    auto loop = EventLoop::create();
    REQUIRE(loop.ok());
    EventLoop& event_loop = *loop.value();
    REQUIRE(event_loop.every(interval, [&] {
        if (++*ticks == stop_at) event_loop.stop();
    }).ok());
    std::thread beside(during);
    Status ran = event_loop.run();
    beside.join();
    return ran;
}

} // namespace

TEST_CASE("a timer that fires runs its tick, and stop() ends run() without an error")
{
    int ticks = 0;
    CHECK(run_ticks(std::chrono::milliseconds(1), 3, &ticks, [] {}).ok());
    CHECK(ticks == 3);
}

TEST_CASE("a timer that cannot be armed is an error, not a timer that never fires")
{
    auto loop = EventLoop::create();
    REQUIRE(loop.ok());
    for (auto interval : {std::chrono::milliseconds(0), std::chrono::milliseconds(-5)}) {
        const Status armed = loop.value()->every(interval, [] {});
        REQUIRE_FALSE(armed.ok());
        CHECK(armed.error().message().find("timer") != std::string::npos);
    }
}

TEST_CASE("a signal that interrupts epoll_wait (EINTR) does not end run()")
{
    struct sigaction quiet{};
    quiet.sa_handler = [](int) {};
    struct sigaction previous{};
    REQUIRE(sigaction(SIGUSR2, &quiet, &previous) == 0);
    int ticks = 0;
    const pthread_t loop_thread = pthread_self();
    const Status ran = run_ticks(std::chrono::milliseconds(30), 5, &ticks, [loop_thread] {
        for (int i = 0; i < 5; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            pthread_kill(loop_thread, SIGUSR2);
        }
    });
    sigaction(SIGUSR2, &previous, nullptr);
    CHECK(ran.ok());
    CHECK(ticks == 5);
}

TEST_CASE("run() returns the error when epoll_wait fails")
{
    const std::set<int> before = eventpoll_fds();
    auto loop = EventLoop::create();
    REQUIRE(loop.ok());
    std::set<int> created = eventpoll_fds();
    for (int fd : before) created.erase(fd);
    REQUIRE(created.size() == 1);
    // Put a descriptor that is not an epoll instance where the loop's epoll fd was: every
    // epoll_wait on it fails with EINVAL, as a corrupted loop would.
    const int not_epoll = eventfd(0, EFD_CLOEXEC);
    REQUIRE(not_epoll >= 0);
    REQUIRE(dup2(not_epoll, *created.begin()) == *created.begin());
    close(not_epoll);

    const Status ran = loop.value()->run();
    REQUIRE_FALSE(ran.ok());
    CHECK(ran.error().errno_value == EINVAL);
    CHECK(ran.error().message().find("epoll_wait") != std::string::npos);
}
