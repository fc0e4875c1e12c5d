#include "os/link_watcher.hpp"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>

namespace flowlat::interfaces {

Result<std::unique_ptr<LinkWatcher>> LinkWatcher::open()
{
    std::unique_ptr<LinkWatcher> watcher(new LinkWatcher());
    watcher->socket_.reset(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE));
    if (!watcher->socket_.valid()) return os_error("open rtnetlink socket");
    sockaddr_nl address{};
    address.nl_family = AF_NETLINK;
    // Routes too: with the embedded default, the probed interfaces are those of the default
    // route, which DHCP or a failover may add or move after the links came up.
    address.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
    if (bind(watcher->socket_.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0)
        return os_error("subscribe to rtnetlink link and route events");
    return watcher;
}

bool LinkWatcher::drain()
{
    std::array<char, 16384> buffer{};
    bool links_changed = false;
    for (;;) {
        const ssize_t length = recv(socket_.get(), buffer.data(), buffer.size(), 0);
        if (length < 0) {
            // ENOBUFS: notifications were dropped; the caller re-reads the full list anyway.
            if (errno == ENOBUFS) links_changed = true;
            if (errno == EINTR || errno == ENOBUFS) continue;
            break;
        }
        if (length == 0) break;
        int remaining = static_cast<int>(length);
        for (auto* header = reinterpret_cast<nlmsghdr*>(buffer.data()); NLMSG_OK(header, remaining);
             header = NLMSG_NEXT(header, remaining)) {
            if (header->nlmsg_type == RTM_NEWLINK || header->nlmsg_type == RTM_DELLINK) links_changed = true;
            // Only default routes matter; a busy routing table must not cause a reconcile each.
            if ((header->nlmsg_type == RTM_NEWROUTE || header->nlmsg_type == RTM_DELROUTE) &&
                header->nlmsg_len >= NLMSG_LENGTH(sizeof(rtmsg))) {
                const auto* route = static_cast<const rtmsg*>(NLMSG_DATA(header));
                if (route->rtm_dst_len == 0 && route->rtm_table == RT_TABLE_MAIN) links_changed = true;
            }
        }
    }
    return links_changed;
}

} // namespace flowlat::interfaces
