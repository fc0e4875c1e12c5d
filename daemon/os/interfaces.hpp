// Interface names, globs and the default route's interfaces.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace flowlat::interfaces {

struct Interface {
    std::string name;
    unsigned ifindex{0};
    friend bool operator==(const Interface&, const Interface&) = default;
};

// Every interface that exists now.
std::vector<Interface> list_all();

// Interfaces matching any pattern (exact names or fnmatch globs), in ifindex order.
std::vector<Interface> match(const std::vector<std::string>& patterns, const std::vector<Interface>& candidates);

bool is_glob(const std::string& pattern);

// Interfaces that carry an IPv4 or IPv6 default route of the main table, from an rtnetlink
// route dump (no capability needed); empty when there is none or the dump fails. `lo` never.
std::vector<std::string> default_route_interfaces();

// The parsing half, apart from the socket for tests: the output ifindexes of the unicast
// default routes (destination length 0) of the main table in an RTM_GETROUTE dump, every
// nexthop of a multipath (ECMP) route, each once, in order of appearance. Routes with or
// without a gateway count ("default dev wg0"); unreachable, prohibit and blackhole ones do not.
std::vector<unsigned> default_route_ifindexes(const void* dump, std::size_t length);

} // namespace flowlat::interfaces
