#include "interfaces.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

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

TEST_CASE("default route interfaces come from /proc/net", "[interfaces]")
{
    const auto dir = std::filesystem::temp_directory_path() / ("flowlat-route-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    {
        std::ofstream route(dir / "route");
        route << "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
              << "eth0\t00000000\t010012C6\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
              << "eth1\t000012C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        std::ofstream route6(dir / "ipv6_route");
        route6 << "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
                  "fd000000000000000000000000000001 00000400 00000001 00000000 00000003 wg0\n"
               << "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 "
                  "00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth1\n"
               << "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
                  "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n"
               // "default dev tun0": no gateway, still the default route.
               << "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
                  "00000000000000000000000000000000 00000400 00000001 00000000 00000001 tun0\n"
               // An unreachable default (RTF_REJECT) on a real device is not a way out.
               << "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
                  "00000000000000000000000000000000 00000400 00000001 00000000 00000201 eth2\n";
    }
    CHECK(default_route_interfaces(dir.string()) == std::vector<std::string>{"eth0", "wg0", "tun0"});
    std::filesystem::remove_all(dir);
}
