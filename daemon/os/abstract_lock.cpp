#include "os/abstract_lock.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

namespace flowlat {

Result<UniqueFd> take_abstract_lock(const std::string& name)
{
    UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return os_error("open a socket for the lock @" + name);
    sockaddr_un address{};
    if (name.size() + 1 > sizeof(address.sun_path)) return Error{"lock name too long: @" + name, ENAMETOOLONG};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path + 1, name.data(), name.size()); // sun_path[0] == 0: abstract
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), length) != 0) {
        if (errno == EADDRINUSE) return Error{"held by a live process (@" + name + ")", EBUSY};
        return os_error("bind the lock @" + name);
    }
    return fd;
}

} // namespace flowlat
