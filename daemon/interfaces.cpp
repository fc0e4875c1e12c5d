#include "interfaces.hpp"

#include <fnmatch.h>
#include <net/if.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

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

// A route that is up and not a reject route (unreachable, prohibit, blackhole). A default
// route without a gateway (WireGuard, PPP, tunnels: "default dev wg0") counts.
bool usable_route(const std::string& hex_flags)
{
    constexpr unsigned long route_up = 0x0001, route_reject = 0x0200; // RTF_UP, RTF_REJECT
    char* end = nullptr;
    const unsigned long flags = std::strtoul(hex_flags.c_str(), &end, 16);
    return end != hex_flags.c_str() && *end == '\0' && (flags & route_up) != 0 && (flags & route_reject) == 0;
}

} // namespace

std::vector<std::string> default_route_interfaces(const std::string& proc_net)
{
    std::vector<std::string> names;
    auto add = [&](const std::string& name) {
        if (name != "lo" && std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    };
    // IPv4: Iface Destination Gateway Flags ...; the default route has destination and mask 0.
    std::ifstream route(proc_net + "/route");
    std::string line;
    std::getline(route, line); // header
    while (std::getline(route, line)) {
        std::istringstream fields(line);
        std::string iface, destination, gateway, flags, refcnt, use, metric, mask;
        if (fields >> iface >> destination >> gateway >> flags >> refcnt >> use >> metric >> mask &&
            destination == "00000000" && mask == "00000000" && usable_route(flags))
            add(iface);
    }
    // IPv6: dest destlen src srclen nexthop metric refcnt use flags iface; default is ::/0.
    std::ifstream route6(proc_net + "/ipv6_route");
    while (std::getline(route6, line)) {
        std::istringstream fields(line);
        std::string destination, length, source, source_length, next_hop, metric, refcnt, use, flags, iface;
        if (fields >> destination >> length >> source >> source_length >> next_hop >> metric >> refcnt >> use >>
                flags >> iface &&
            destination == std::string(32, '0') && length == "00" && usable_route(flags))
            add(iface);
    }
    return names;
}

} // namespace flowlat::interfaces
