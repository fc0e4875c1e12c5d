#include "aggregate/workload.hpp"

#include "os/utf8.hpp"

#include <fnmatch.h>

#include <algorithm>

namespace flowlat::workload {

namespace {

std::vector<std::string_view> components(std::string_view path)
{
    std::vector<std::string_view> parts;
    while (!path.empty()) {
        const std::size_t slash = path.find('/');
        const std::string_view part = path.substr(0, slash);
        if (!part.empty()) parts.push_back(part);
        if (slash == std::string_view::npos) break;
        path.remove_prefix(slash + 1);
    }
    return parts;
}

bool is_hex_id(std::string_view text)
{
    // Container ids are 64 hex digits; shorter ones (tests, other runtimes) are accepted from 12.
    return text.size() >= 12 && std::all_of(text.begin(), text.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

// "<prefix><id><suffix>" with a hex id -> the id; empty otherwise.
std::string_view wrapped_id(std::string_view part, std::string_view prefix, std::string_view suffix)
{
    if (!part.starts_with(prefix) || !part.ends_with(suffix) || part.size() < prefix.size() + suffix.size())
        return {};
    const std::string_view id = part.substr(prefix.size(), part.size() - prefix.size() - suffix.size());
    return is_hex_id(id) ? id : std::string_view{};
}

std::string container(std::string_view runtime, std::string_view id)
{
    return std::string(runtime) + '/' + std::string(id.substr(0, 12));
}

// The pod uid of a Kubernetes pod cgroup: "pod<uid>" (cgroupfs driver) or
// "kubepods[-<qos>]-pod<uid with _ for ->.slice" (systemd driver).
std::string pod_of(std::string_view part)
{
    if (part.ends_with(".slice")) {
        const std::size_t at = part.rfind("-pod");
        if (!part.starts_with("kubepods") || at == std::string_view::npos) return {};
        std::string uid(part.substr(at + 4, part.size() - at - 4 - 6));
        std::replace(uid.begin(), uid.end(), '_', '-');
        return uid.empty() ? std::string() : "pod" + uid;
    }
    if (part.starts_with("pod") && part.size() > 3) return std::string(part);
    return {};
}

} // namespace

std::string cgroup_label(std::string_view path)
{
    return path.empty() ? std::string(kRoot) : std::string(path);
}

std::string unit_label(std::string_view path)
{
    const auto parts = components(path);
    if (parts.empty()) return std::string(kRoot);

    if (parts.front().starts_with("kubepods")) {
        for (std::size_t i = 1; i < parts.size(); ++i)
            if (auto pod = pod_of(parts[i]); !pod.empty()) return pod;
    }
    for (std::size_t i = 0; i < parts.size(); ++i) {
        const std::string_view part = parts[i];
        if (auto id = wrapped_id(part, "docker-", ".scope"); !id.empty()) return container("docker", id);
        if (auto id = wrapped_id(part, "libpod-", ".scope"); !id.empty()) return container("libpod", id);
        if (auto id = wrapped_id(part, "cri-containerd-", ".scope"); !id.empty()) return container("containerd", id);
        if (auto id = wrapped_id(part, "crio-", ".scope"); !id.empty()) return container("crio", id);
        if (i + 1 < parts.size()) {
            // The cgroupfs drivers: docker/<id>, libpod_parent/libpod-<id>.
            if (part == "docker" && is_hex_id(parts[i + 1])) return container("docker", parts[i + 1]);
            if (part == "libpod_parent") {
                if (auto id = wrapped_id(parts[i + 1], "libpod-", ""); !id.empty()) return container("libpod", id);
            }
        }
    }
    for (auto it = parts.rbegin(); it != parts.rend(); ++it)
        if (it->ends_with(".service") || it->ends_with(".scope")) return std::string(*it);
    for (auto it = parts.rbegin(); it != parts.rend(); ++it)
        if (it->ends_with(".slice")) return std::string(*it);
    return std::string(path);
}

std::string Naming::label(const std::string* path) const
{
    if (path == nullptr) return std::string(kUnresolved);
    // A cgroup name is any bytes a delegated user chose; one invalid UTF-8 label value would
    // make Prometheus reject every scrape.
    std::string name = utf8::valid(mode_ == config::WorkloadMode::unit ? unit_label(*path) : cgroup_label(*path));
    if (include_.empty()) return name;
    for (const auto& pattern : include_)
        if (::fnmatch(pattern.c_str(), name.c_str(), 0) == 0) return name;
    return std::string(kOther);
}

} // namespace flowlat::workload
