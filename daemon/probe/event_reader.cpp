#include "probe/event_reader.hpp"

#include <bpf/libbpf.h>

namespace flowlat::probe {

namespace {
constexpr std::size_t max_batch = 4096;
}

Result<std::unique_ptr<EventReader>> EventReader::open(int ring_buffer_fd, EventSink sink)
{
    std::unique_ptr<EventReader> reader(new EventReader(std::move(sink)));
    reader->batch_.reserve(max_batch);
    reader->ring_ = ring_buffer__new(ring_buffer_fd, &EventReader::on_record, reader.get(), nullptr);
    if (reader->ring_ == nullptr) return os_error("open the ring buffer reader");
    return reader;
}

EventReader::~EventReader()
{
    ring_buffer__free(ring_);
}

int EventReader::epoll_fd() const
{
    return ring_buffer__epoll_fd(ring_);
}

int EventReader::on_record(void* context, void* data, std::size_t size)
{
    auto* self = static_cast<EventReader*>(context);
    if (auto event = decode_event(data, size)) {
        self->batch_.push_back(*event);
        if (self->batch_.size() >= max_batch) {
            self->sink_(self->batch_);
            self->batch_.clear();
        }
    } else {
        self->malformed_.fetch_add(1, std::memory_order_relaxed);
    }
    return 0;
}

std::size_t EventReader::drain()
{
    const int consumed = ring_buffer__consume(ring_);
    if (!batch_.empty()) {
        sink_(batch_);
        batch_.clear();
    }
    return consumed > 0 ? static_cast<std::size_t>(consumed) : 0;
}

} // namespace flowlat::probe
