// Drains the probe's ring buffer in batches and hands decoded handshakes to a sink.
#pragma once

#include "flow/handshake_event.hpp"
#include "os/result.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

struct ring_buffer;

namespace flowlat::probe {

using EventSink = std::function<void(std::span<const HandshakeEvent>)>;

class EventReader {
public:
    static Result<std::unique_ptr<EventReader>> open(int ring_buffer_fd, EventSink sink);
    ~EventReader();
    EventReader(const EventReader&) = delete;
    EventReader& operator=(const EventReader&) = delete;

    // Readable when the kernel woke us; poll it, then call drain().
    int epoll_fd() const;
    // Consumes everything queued, delivering one batch per call of the sink. Returns the count.
    std::size_t drain();
    std::uint64_t malformed_records() const { return malformed_.load(std::memory_order_relaxed); }

private:
    EventReader(EventSink sink) : sink_(std::move(sink)) {}
    static int on_record(void* context, void* data, std::size_t size);

    ::ring_buffer* ring_{nullptr};
    EventSink sink_;
    std::vector<HandshakeEvent> batch_;
    std::atomic<std::uint64_t> malformed_{0}; // read by scrapes on other threads
};

} // namespace flowlat::probe
