#include "probe/hook_healer.hpp"

#include "probe/probe_session.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace flowlat::probe {

HookHealer::HookHealer(ProbeSession& session)
    : attach_([&session](const interfaces::Interface& interface) { return session.attach(interface); })
{
}

void HookHealer::lost(const std::string& name)
{
    down_.try_emplace(name);
}

Status HookHealer::attach(const std::string& name, const std::vector<interfaces::Interface>& present)
{
    const auto found = std::find_if(present.begin(), present.end(),
                                    [&](const interfaces::Interface& interface) { return interface.name == name; });
    Status attached = found == present.end() ? Status(Error{"attach to " + name + ": no such interface"})
                                             : attach_(*found);
    const auto previous = down_.find(name);
    if (attached) {
        if (previous != down_.end()) {
            spdlog::info("{}: probe attached again", name);
            down_.erase(previous);
        }
        return attached;
    }
    const std::string message = attached.error().message();
    if (previous != down_.end() && previous->second == message)
        spdlog::debug("cannot {}", message);
    else
        spdlog::error("cannot {}", message);
    down_[name] = message;
    return attached;
}

void HookHealer::keep_only(const std::vector<std::string>& wanted)
{
    std::erase_if(down_, [&](const auto& entry) {
        return std::find(wanted.begin(), wanted.end(), entry.first) == wanted.end();
    });
}

std::vector<std::string> HookHealer::down() const
{
    std::vector<std::string> names;
    for (const auto& [name, error] : down_) names.push_back(name);
    return names;
}

} // namespace flowlat::probe
