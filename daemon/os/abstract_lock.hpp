// A lock that the kernel releases when its holder dies, however it dies: a bound abstract
// AF_UNIX socket. Abstract names live per network namespace, like interfaces, so a lock
// guards "this network namespace" without any file to clean up after a SIGKILL.
#pragma once

#include "os/result.hpp"
#include "os/unique_fd.hpp"

#include <string>

namespace flowlat {

// Binds "@name". A name already bound (a live holder) gives an Error with errno EBUSY whose
// message names the lock; `ss -xap | grep name` shows the holder.
Result<UniqueFd> take_abstract_lock(const std::string& name);

} // namespace flowlat
