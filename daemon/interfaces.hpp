// Interface names, globs and the default route's interfaces.
#pragma once

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

// Interfaces that carry an IPv4 or IPv6 default route, from /proc/net/route and /proc/net/ipv6_route.
std::vector<std::string> default_route_interfaces(const std::string& proc_net = "/proc/net");

} // namespace flowlat::interfaces
