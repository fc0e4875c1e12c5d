// Talking to rtnetlink: one request and its answers, and walking the attributes of a message.
// Shared by the modules that query the kernel over NETLINK_ROUTE (tc filters, routes).
#pragma once

#include "os/result.hpp"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cstddef>
#include <functional>

namespace flowlat::netlink {

// Calls visit(type, payload, payload_size) for each rtattr in [data, data + length).
template <typename Visit>
void for_each_attribute(const void* data, std::size_t length, Visit visit)
{
    auto* attribute = static_cast<const rtattr*>(data);
    auto left = static_cast<int>(length);
    for (; RTA_OK(attribute, left); attribute = RTA_NEXT(attribute, left))
        visit(attribute->rta_type & NLA_TYPE_MASK, RTA_DATA(attribute), RTA_PAYLOAD(attribute));
}

// Sends `request` (a whole message, nlmsg_len set) on a fresh NETLINK_ROUTE socket and hands
// each answer with the request's sequence number to on_message, NLMSG_ERROR and NLMSG_DONE
// included, until on_message returns false or NLMSG_DONE has been handed over. An error names
// the socket call that failed and carries its errno.
Status exchange(const nlmsghdr& request, const std::function<bool(const nlmsghdr&)>& on_message);

} // namespace flowlat::netlink
