// One loaded probe with its attachments, ring reader and timeout sweep, driven by an EventLoop.
// `--print` and the daemon both run through this, so they measure identically.
#pragma once

#include "os/event_loop.hpp"
#include "probe/event_reader.hpp"
#include "os/interfaces.hpp"
#include "probe/probe.hpp"
#include "probe/tc_attachment.hpp"
#include "probe/timeout_sweeper.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace flowlat::probe {

// How often both modes check their hooks for removal by someone else (drop_lost_attachments)
// and retry attachments that failed (hook_healer.hpp).
inline constexpr std::chrono::seconds attachment_check_interval{5};

class ProbeSession {
public:
    // Runs a loaded probe (Probe::load): its ring reader and timeout sweep, on `loop`.
    static Result<std::unique_ptr<ProbeSession>> start(std::unique_ptr<Probe> probe, EventLoop& loop,
                                                       EventSink sink);
    ~ProbeSession();

    Status attach(const interfaces::Interface& interface);
    void detach(const std::string& name);
    void detach_all();
    // Drops every attachment with a hook that something outside flowlatd removed (see
    // TcAttachment::lost_hooks), logging an error per hook, and returns their names; the caller
    // attaches them again. The probe, its maps and the counters stay as they are.
    std::vector<std::string> drop_lost_attachments();
    bool attached(const std::string& name) const { return attachments_.count(name) != 0; }
    std::vector<interfaces::Interface> attached_interfaces() const;
    // tcx or clsact for an attached interface (the status page shows it).
    std::optional<AttachMode> attach_mode(const std::string& name) const;
    // Name of an ifindex seen since start, even if it has been detached since.
    std::string interface_name(unsigned ifindex) const;

    Probe& probe() { return *probe_; }
    const Probe& probe() const { return *probe_; }
    std::uint64_t flow_table_entries() const { return sweeper_->last_entry_count(); }
    std::uint64_t flow_table_evictions() const { return sweeper_->evictions_total(); }
    std::uint64_t ring_records_malformed() const { return reader_->malformed_records(); }
    // Drains the ring and runs a sweep now (shutdown, tests).
    void flush();

private:
    ProbeSession() = default;
    void sweep();

    std::unique_ptr<Probe> probe_;
    std::unique_ptr<EventReader> reader_;
    std::unique_ptr<TimeoutSweeper> sweeper_;
    EventSink sink_;
    AttachSlot slot_{AttachSlot::daemon};
    std::map<std::string, std::unique_ptr<TcAttachment>> attachments_;
    std::map<unsigned, std::string> names_;
};

} // namespace flowlat::probe
