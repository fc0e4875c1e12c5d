#include "os/interfaces.hpp"

#include <catch2/catch.hpp>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <vector>

using namespace flowlat::interfaces;

TEST_CASE("names and globs select interfaces in ifindex order", "[interfaces]")
{
    const std::vector<Interface> all = {{"lo", 1}, {"eth1", 3}, {"eth0", 2}, {"veth9", 4}};
    CHECK(match({"eth*"}, all) == std::vector<Interface>{{"eth0", 2}, {"eth1", 3}});
    CHECK(match({"veth9", "lo"}, all) == std::vector<Interface>{{"lo", 1}, {"veth9", 4}});
    CHECK(match({"eth"}, all).empty());
    CHECK(is_glob("eth*"));
    CHECK(is_glob("eth[01]"));
    CHECK_FALSE(is_glob("eth0"));
}

namespace {

// An RTM_NEWROUTE message as a route dump carries it, built attribute by attribute.
class RouteMessage {
public:
    RouteMessage(unsigned char family, unsigned char dst_len, unsigned char table, unsigned char type)
    {
        bytes_.resize(NLMSG_LENGTH(sizeof(rtmsg)));
        rtmsg route{};
        route.rtm_family = family;
        route.rtm_dst_len = dst_len;
        route.rtm_table = table;
        route.rtm_type = type;
        std::memcpy(bytes_.data() + NLMSG_HDRLEN, &route, sizeof(route));
    }
    RouteMessage& u32(unsigned short type, std::uint32_t value)
    {
        return attribute(type, &value, sizeof(value));
    }
    RouteMessage& multipath(std::initializer_list<int> ifindexes)
    {
        std::vector<char> hops;
        for (int ifindex : ifindexes) {
            rtnexthop hop{};
            hop.rtnh_len = sizeof(hop);
            hop.rtnh_ifindex = ifindex;
            const std::size_t at = hops.size();
            hops.resize(at + RTNH_ALIGN(sizeof(hop)));
            std::memcpy(hops.data() + at, &hop, sizeof(hop));
        }
        return attribute(RTA_MULTIPATH, hops.data(), hops.size());
    }
    // Appends the finished message (its header filled in) to a dump.
    void append_to(std::vector<char>& dump) const
    {
        std::vector<char> message = bytes_;
        nlmsghdr header{};
        header.nlmsg_len = static_cast<std::uint32_t>(message.size());
        header.nlmsg_type = RTM_NEWROUTE;
        header.nlmsg_flags = NLM_F_MULTI;
        std::memcpy(message.data(), &header, sizeof(header));
        message.resize(NLMSG_ALIGN(message.size()));
        dump.insert(dump.end(), message.begin(), message.end());
    }

private:
    RouteMessage& attribute(unsigned short type, const void* data, std::size_t size)
    {
        const std::size_t at = NLMSG_ALIGN(bytes_.size());
        bytes_.resize(at + RTA_SPACE(size));
        rtattr header{static_cast<unsigned short>(RTA_LENGTH(size)), type};
        std::memcpy(bytes_.data() + at, &header, sizeof(header));
        std::memcpy(bytes_.data() + at + RTA_LENGTH(0), data, size);
        return *this;
    }
    std::vector<char> bytes_;
};

} // namespace

TEST_CASE("default routes: main-table unicast defaults of both families, every ECMP nexthop", "[interfaces]")
{
    std::vector<char> dump;
    RouteMessage(AF_INET, 0, RT_TABLE_MAIN, RTN_UNICAST).u32(RTA_GATEWAY, 0x010012c6).u32(RTA_OIF, 2).append_to(dump);
    RouteMessage(AF_INET, 24, RT_TABLE_MAIN, RTN_UNICAST).u32(RTA_OIF, 3).append_to(dump); // not a default
    RouteMessage(AF_INET6, 0, RT_TABLE_MAIN, RTN_UNICAST).u32(RTA_OIF, 4).append_to(dump); // "default dev wg0"
    RouteMessage(AF_INET6, 0, RT_TABLE_MAIN, RTN_UNREACHABLE).u32(RTA_OIF, 1).append_to(dump);
    RouteMessage(AF_INET, 0, RT_TABLE_MAIN, RTN_BLACKHOLE).append_to(dump);
    RouteMessage(AF_INET, 0, 100, RTN_UNICAST).u32(RTA_OIF, 5).append_to(dump); // a policy table
    // A table past 255 is only in RTA_TABLE (rtm_table says RT_TABLE_COMPAT).
    RouteMessage(AF_INET6, 0, RT_TABLE_COMPAT, RTN_UNICAST).u32(RTA_TABLE, 1000).u32(RTA_OIF, 6).append_to(dump);
    RouteMessage(AF_INET, 0, RT_TABLE_COMPAT, RTN_UNICAST).u32(RTA_TABLE, RT_TABLE_MAIN).u32(RTA_OIF, 9).append_to(dump);
    RouteMessage(AF_INET, 0, RT_TABLE_MAIN, RTN_UNICAST).multipath({7, 2, 8}).append_to(dump); // ECMP
    RouteMessage(AF_MPLS, 0, RT_TABLE_MAIN, RTN_UNICAST).u32(RTA_OIF, 10).append_to(dump);

    CHECK(default_route_ifindexes(dump.data(), dump.size()) == std::vector<unsigned>{2, 4, 9, 7, 8});
    CHECK(default_route_ifindexes(dump.data(), 0).empty());
    // A truncated dump yields what was complete, and never reads past the end.
    CHECK(default_route_ifindexes(dump.data(), 20).empty());
}

TEST_CASE("default routes: the live dump names interfaces, never lo", "[interfaces]")
{
    // Whatever this machine routes by default: each name must exist and none is lo.
    const auto all = list_all();
    for (const auto& name : default_route_interfaces()) {
        INFO(name);
        CHECK(name != "lo");
        CHECK(std::any_of(all.begin(), all.end(), [&](const Interface& i) { return i.name == name; }));
    }
}
