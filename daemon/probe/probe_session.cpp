#include "probe/probe_session.hpp"
#include "os/clock.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace flowlat::probe {

namespace {

// With a wakeup threshold the kernel stays quiet below it, so the reader also drains on a timer.
constexpr std::chrono::milliseconds drain_interval{100};

} // namespace

Result<std::unique_ptr<ProbeSession>> ProbeSession::start(std::unique_ptr<Probe> probe, EventLoop& loop,
                                                          EventSink sink)
{
    const ProbeOptions options = probe->options();
    std::unique_ptr<ProbeSession> session(new ProbeSession());
    session->sink_ = sink;
    session->slot_ = options.attach_slot;
    session->probe_ = std::move(probe);
    auto reader = EventReader::open(session->probe_->ring_buffer_fd(), std::move(sink));
    if (!reader) return reader.error();
    session->reader_ = std::move(reader).value();
    session->sweeper_ = std::make_unique<TimeoutSweeper>(*session->probe_);

    ProbeSession* self = session.get();
    if (Status s = loop.watch(self->reader_->epoll_fd(), [self] { self->reader_->drain(); }); !s) return s.error();
    if (Status s = loop.every(drain_interval, [self] { self->reader_->drain(); }); !s) return s.error();
    if (Status s = loop.every(TimeoutSweeper::interval(options.handshake_timeout_ns), [self] { self->sweep(); }); !s)
        return s.error();
    return session;
}

ProbeSession::~ProbeSession()
{
    detach_all();
}

Status ProbeSession::attach(const interfaces::Interface& interface)
{
    if (attached(interface.name)) return Ok{};
    auto attachment = TcAttachment::attach(*probe_, interface.name, interface.ifindex, slot_);
    if (!attachment) return attachment.error();
    spdlog::info("{}: probe attached ({}{})", interface.name, to_string(attachment.value()->mode()),
                 attachment.value()->link_layer() == LinkLayer::raw_ip ? ", raw IP" : "");
    names_[interface.ifindex] = interface.name;
    attachments_[interface.name] = std::move(attachment).value();
    return Ok{};
}

void ProbeSession::detach(const std::string& name)
{
    if (attachments_.erase(name) != 0) spdlog::info("{}: probe detached", name);
}

void ProbeSession::detach_all()
{
    while (!attachments_.empty()) detach(attachments_.begin()->first);
}

std::vector<std::string> ProbeSession::drop_lost_attachments()
{
    std::vector<std::string> dropped;
    for (const auto& [name, attachment] : attachments_) {
        const auto lost = attachment->lost_hooks();
        if (lost.empty()) continue;
        for (auto hook : lost) {
            if (attachment->mode() == AttachMode::tcx)
                spdlog::error("{}: the probe's {} TCX link was detached by someone else; re-attaching", name, hook);
            else
                spdlog::error("{}: the probe's {} filter was removed by someone else; re-attaching", name, hook);
        }
        dropped.push_back(name);
    }
    // Destroying an attachment detaches only what is still ours: a foreign filter in the slot stays.
    for (const auto& name : dropped) detach(name);
    return dropped;
}

std::vector<interfaces::Interface> ProbeSession::attached_interfaces() const
{
    std::vector<interfaces::Interface> list;
    for (const auto& [name, attachment] : attachments_) list.push_back({name, attachment->ifindex()});
    return list;
}

std::optional<AttachMode> ProbeSession::attach_mode(const std::string& name) const
{
    auto found = attachments_.find(name);
    if (found == attachments_.end()) return std::nullopt;
    return found->second->mode();
}

std::string ProbeSession::interface_name(unsigned ifindex) const
{
    auto found = names_.find(ifindex);
    return found != names_.end() ? found->second : "if" + std::to_string(ifindex);
}

void ProbeSession::sweep()
{
    auto timeouts = sweeper_->sweep(clock::monotonic_ns());
    if (!timeouts.empty()) sink_(timeouts);
}

void ProbeSession::flush()
{
    reader_->drain();
    sweep();
}

} // namespace flowlat::probe
