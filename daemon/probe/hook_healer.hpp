// Attaching again, by name, what failed or what someone else removed, with each error logged once.
// The daemon (over the interfaces its config wants) and `--print` (over the ones it was given)
// both retry every attachment_check_interval through this, so they heal and log alike.
#pragma once

#include "os/interfaces.hpp"
#include "os/result.hpp"

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace flowlat::probe {

class ProbeSession;

class HookHealer {
public:
    using AttachFunction = std::function<Status(const interfaces::Interface&)>;

    explicit HookHealer(AttachFunction attach) : attach_(std::move(attach)) {}
    explicit HookHealer(ProbeSession& session);

    // The interface's hooks were removed by someone else (ProbeSession::drop_lost_attachments,
    // which logs that): it is down until attached again.
    void lost(const std::string& name);

    // Attaches the interface called `name` among `present`, found by name because it may have
    // been re-created with another ifindex; absent, it fails "attach to <name>: no such interface".
    // A failure is logged at error level when it is new for that interface (or says something
    // else than the last one), else at debug level; the first success after a loss or a failure
    // logs "<name>: probe attached again".
    Status attach(const std::string& name, const std::vector<interfaces::Interface>& present);

    // Forgets the interfaces outside `wanted`: no longer wanted, they are not down.
    void keep_only(const std::vector<std::string>& wanted);

    // Interfaces lost or failing, by name.
    std::vector<std::string> down() const;
    bool all_up() const { return down_.empty(); }

private:
    AttachFunction attach_;
    std::map<std::string, std::string> down_; // name -> the last error logged ("" after a loss)
};

} // namespace flowlat::probe
