// sd_notify(3) messages: READY, STATUS, RELOADING and watchdog pings. Silent outside systemd.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace flowlat::systemd {

void ready(std::string_view status);
void reloading();
void status(std::string_view status);
void stopping();
void watchdog_ping();
// Half of WATCHDOG_USEC when systemd asked for pings, so one missed tick is tolerated.
std::optional<std::chrono::milliseconds> watchdog_interval();

} // namespace flowlat::systemd
