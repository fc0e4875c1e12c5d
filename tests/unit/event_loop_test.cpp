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

} // namespace

TEST_CASE("a timer that fires runs its tick, and stop() ends run() without an error")
{
    auto loop = EventLoop::create();
    REQUIRE(loop.ok());
    EventLoop& event_loop = *loop.value();
    int ticks = 0;
    REQUIRE(event_loop.every(std::chrono::milliseconds(1), [&] {
        if (++ticks == 3) event_loop.stop();
    }).ok());
    const Status ran = event_loop.run();
    CHECK(ran.ok());
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
    auto loop = EventLoop::create();
    REQUIRE(loop.ok());
    EventLoop& event_loop = *loop.value();
    int ticks = 0;
    REQUIRE(event_loop.every(std::chrono::milliseconds(30), [&] {
        if (++ticks == 5) event_loop.stop();
    }).ok());
    const pthread_t loop_thread = pthread_self();
    std::thread interrupter([loop_thread] {
        for (int i = 0; i < 5; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            pthread_kill(loop_thread, SIGUSR2);
        }
    });
    const Status ran = event_loop.run();
    interrupter.join();
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
