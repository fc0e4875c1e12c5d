#include "os/event_loop.hpp"
#include "os/clock.hpp"


#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

#include <array>
#include <cerrno>

namespace flowlat {

Result<std::unique_ptr<EventLoop>> EventLoop::create()
{
    std::unique_ptr<EventLoop> loop(new EventLoop());
    loop->epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
    if (!loop->epoll_.valid()) return os_error("create epoll instance");
    // Health checks may come before run() starts; "not run yet" must not read as a stall.
    loop->last_iteration_ns_.store(clock::monotonic_ns(), std::memory_order_relaxed);
    return loop;
}

Status EventLoop::watch(int fd, std::function<void()> on_readable)
{
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = fd;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) return os_error("watch fd " + std::to_string(fd));
    handlers_[fd] = std::move(on_readable);
    return Ok{};
}

Status EventLoop::every(std::chrono::milliseconds interval, std::function<void()> on_tick)
{
    // A zero interval would disarm the timer: it would never fire, and nothing would say so.
    if (interval.count() <= 0)
        return Error{"arm a timer every " + std::to_string(interval.count()) + " ms: the interval must be positive"};
    UniqueFd timer(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!timer.valid()) return os_error("create timer");
    itimerspec spec{};
    spec.it_interval.tv_sec = interval.count() / 1000;
    spec.it_interval.tv_nsec = interval.count() % 1000 * 1'000'000;
    spec.it_value = spec.it_interval;
    if (timerfd_settime(timer.get(), 0, &spec, nullptr) != 0) return os_error("arm timer");
    const int fd = timer.get();
    Status watched = watch(fd, [fd, tick = std::move(on_tick)] {
        std::uint64_t expirations = 0;
        if (::read(fd, &expirations, sizeof(expirations)) > 0) tick();
    });
    if (!watched) return watched;
    owned_fds_.push_back(std::move(timer));
    return Ok{};
}

Status EventLoop::on_signals(std::span<const int> signals, std::function<void(int)> handler)
{
    sigset_t mask;
    sigemptyset(&mask);
    for (int signal : signals) sigaddset(&mask, signal);
    // Every thread started later inherits the mask, so only the signalfd sees these.
    if (pthread_sigmask(SIG_BLOCK, &mask, nullptr) != 0) return os_error("block signals");
    UniqueFd fd(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd.valid()) return os_error("create signalfd");
    const int raw = fd.get();
    Status watched = watch(raw, [raw, handle = std::move(handler)] {
        signalfd_siginfo info{};
        while (::read(raw, &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info)))
            handle(static_cast<int>(info.ssi_signo));
    });
    if (!watched) return watched;
    owned_fds_.push_back(std::move(fd));
    return Ok{};
}

Status EventLoop::run()
{
    running_ = true;
    std::array<epoll_event, 16> events{};
    while (running_) {
        last_iteration_ns_.store(clock::monotonic_ns(), std::memory_order_relaxed);
        const int ready = epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), 1000);
        if (ready < 0) {
            if (errno == EINTR) continue;
            running_ = false;
            return os_error("wait for events (epoll_wait)");
        }
        for (int i = 0; i < ready && running_; ++i) {
            auto handler = handlers_.find(events[static_cast<std::size_t>(i)].data.fd);
            if (handler != handlers_.end()) handler->second();
        }
    }
    return Ok{};
}

} // namespace flowlat
