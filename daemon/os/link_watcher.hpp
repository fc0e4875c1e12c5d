// Tells the daemon when interfaces appear, vanish or change, or a default route moves
// (rtnetlink link and route groups).
#pragma once

#include "os/result.hpp"
#include "os/unique_fd.hpp"

#include <memory>

namespace flowlat::interfaces {

class LinkWatcher {
public:
    static Result<std::unique_ptr<LinkWatcher>> open();
    int fd() const { return socket_.get(); }
    // Reads every queued notification; true when any concerned a link or a default route.
    bool drain();

private:
    LinkWatcher() = default;
    UniqueFd socket_;
};

} // namespace flowlat::interfaces
