#include "os/interfaces.hpp"

#include "os/rtnetlink.hpp"

#include <fnmatch.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <string_view>

namespace flowlat::interfaces {

std::vector<Interface> list_all()
{
    std::vector<Interface> all;
    if (struct if_nameindex* list = if_nameindex()) {
        for (struct if_nameindex* entry = list; entry->if_index != 0; ++entry)
            all.push_back({entry->if_name, entry->if_index});
        if_freenameindex(list);
    }
    return all;
}

bool is_glob(const std::string& pattern)
{
    return pattern.find_first_of("*?[") != std::string::npos;
}

std::vector<Interface> match(const std::vector<std::string>& patterns, const std::vector<Interface>& candidates)
{
    std::vector<Interface> matched;
    for (const auto& candidate : candidates) {
        const bool wanted = std::any_of(patterns.begin(), patterns.end(), [&](const std::string& pattern) {
            return fnmatch(pattern.c_str(), candidate.name.c_str(), 0) == 0;
        });
        if (wanted) matched.push_back(candidate);
    }
    std::sort(matched.begin(), matched.end(), [](const auto& a, const auto& b) { return a.ifindex < b.ifindex; });
    return matched;
}

namespace {

using netlink::for_each_attribute;

// One route message: its output interfaces if it is a main-table unicast default route.
void collect_default(const nlmsghdr* message, std::vector<unsigned>& out)
{
    if (message->nlmsg_type != RTM_NEWROUTE || message->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) return;
    auto* route = static_cast<const rtmsg*>(NLMSG_DATA(message));
    if ((route->rtm_family != AF_INET && route->rtm_family != AF_INET6) || route->rtm_dst_len != 0 ||
        route->rtm_type != RTN_UNICAST)
        return;
    unsigned table = route->rtm_table; // RTA_TABLE, when present, holds tables past 255 exactly
    std::vector<unsigned> found;
    for_each_attribute(route + 1, message->nlmsg_len - NLMSG_LENGTH(sizeof(rtmsg)),
                       [&](unsigned type, const void* data, std::size_t size) {
                           if (type == RTA_TABLE && size >= sizeof(__u32)) {
                               __u32 value;
                               std::memcpy(&value, data, sizeof(value));
                               table = value;
                           } else if (type == RTA_OIF && size >= sizeof(__u32)) {
                               __u32 value;
                               std::memcpy(&value, data, sizeof(value));
                               found.push_back(value);
                           } else if (type == RTA_MULTIPATH) {
                               auto* hop = static_cast<const rtnexthop*>(data);
                               auto left = static_cast<int>(size);
                               while (RTNH_OK(hop, left)) {
                                   found.push_back(static_cast<unsigned>(hop->rtnh_ifindex));
                                   left -= static_cast<int>(RTNH_ALIGN(hop->rtnh_len));
                                   hop = RTNH_NEXT(hop);
                               }
                           }
                       });
    if (table != RT_TABLE_MAIN) return;
    for (unsigned ifindex : found)
        if (ifindex != 0 && std::find(out.begin(), out.end(), ifindex) == out.end()) out.push_back(ifindex);
}

} // namespace

std::vector<unsigned> default_route_ifindexes(const void* dump, std::size_t length)
{
    std::vector<unsigned> out;
    auto left = static_cast<int>(length);
    for (auto* message = static_cast<const nlmsghdr*>(dump); NLMSG_OK(message, left);
         message = NLMSG_NEXT(message, left))
        collect_default(message, out);
    return out;
}

std::vector<std::string> default_route_interfaces()
{
    struct {
        nlmsghdr header;
        rtmsg route;
    } request{};
    request.header.nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg));
    request.header.nlmsg_type = RTM_GETROUTE;
    request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    request.header.nlmsg_seq = 1;
    request.route.rtm_family = AF_UNSPEC; // both families in one dump

    std::vector<unsigned> ifindexes;
    const Status exchanged = netlink::exchange(request.header, [&](const nlmsghdr& message) {
        collect_default(&message, ifindexes);
        return message.nlmsg_type != NLMSG_ERROR;
    });
    if (!exchanged) return {};

    std::vector<std::string> names;
    for (unsigned ifindex : ifindexes) {
        char name[IF_NAMESIZE] = {};
        if (if_indextoname(ifindex, name) != nullptr && std::string_view(name) != "lo") names.emplace_back(name);
    }
    return names;
}

} // namespace flowlat::interfaces
