#include "os/rtnetlink.hpp"

#include "os/unique_fd.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <vector>

namespace flowlat::netlink {

Status exchange(const nlmsghdr& request, const std::function<bool(const nlmsghdr&)>& on_message)
{
    UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
    if (!fd.valid()) return os_error("open a NETLINK_ROUTE socket");
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (::sendto(fd.get(), &request, request.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0)
        return os_error("send an rtnetlink request");

    std::vector<char> buffer(32768); // a dump's parts come in pages; this holds several
    for (;;) {
        const ssize_t received = ::recv(fd.get(), buffer.data(), buffer.size(), 0);
        if (received < 0) {
            if (errno == EINTR) continue;
            return os_error("receive an rtnetlink answer");
        }
        if (received == 0) return Ok{};
        auto left = static_cast<int>(received);
        for (auto* message = reinterpret_cast<const nlmsghdr*>(buffer.data()); NLMSG_OK(message, left);
             message = NLMSG_NEXT(message, left)) {
            if (message->nlmsg_seq != request.nlmsg_seq) continue;
            if (!on_message(*message) || message->nlmsg_type == NLMSG_DONE) return Ok{};
        }
    }
}

} // namespace flowlat::netlink
