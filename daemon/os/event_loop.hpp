// A small epoll loop: readable fds, periodic timers and signals (through signalfd), one thread.
#pragma once

#include "os/result.hpp"
#include "os/unique_fd.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <vector>

namespace flowlat {

class EventLoop {
public:
    static Result<std::unique_ptr<EventLoop>> create();

    Status watch(int fd, std::function<void()> on_readable);
    Status every(std::chrono::milliseconds interval, std::function<void()> on_tick);
    // Blocks the signals for the whole process and delivers them here instead.
    Status on_signals(std::span<const int> signals, std::function<void(int)> handler);

    // Runs until stop(); an error only when the loop itself fails (epoll_wait), after which
    // nothing is watched any more. A signal that interrupts the wait is not an error.
    Status run();
    void stop() { running_ = false; }
    // CLOCK_MONOTONIC ns of the last loop iteration, for health checks from other threads.
    std::uint64_t last_iteration_ns() const { return last_iteration_ns_.load(std::memory_order_relaxed); }

private:
    EventLoop() = default;
    UniqueFd epoll_;
    std::map<int, std::function<void()>> handlers_;
    std::vector<UniqueFd> owned_fds_;
    bool running_{false};
    std::atomic<std::uint64_t> last_iteration_ns_{0};
};

} // namespace flowlat
