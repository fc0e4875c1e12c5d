#include "os/systemd_notify.hpp"
#include "os/clock.hpp"


#include <systemd/sd-daemon.h>

#include <string>

namespace flowlat::systemd {

namespace {

void notify(const std::string& message)
{
    sd_notify(0, message.c_str());
}

} // namespace

void ready(std::string_view text)
{
    notify("READY=1\nSTATUS=" + std::string(text));
}

void reloading()
{
    // MONOTONIC_USEC lets newer systemd (253+) match the reload; 252 ignores it.
    notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(clock::monotonic_ns() / 1000));
}

void status(std::string_view text)
{
    notify("STATUS=" + std::string(text));
}

void stopping()
{
    notify("STOPPING=1");
}

void watchdog_ping()
{
    notify("WATCHDOG=1");
}

std::optional<std::chrono::milliseconds> watchdog_interval()
{
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
    return std::chrono::milliseconds(usec / 2000 > 0 ? usec / 2000 : 1);
}

} // namespace flowlat::systemd
