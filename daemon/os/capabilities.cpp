#include "os/capabilities.hpp"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <string_view>

namespace flowlat::capabilities {

namespace {

// Capabilities the kernel knows (PR_CAPBSET_READ fails with EINVAL past CAP_LAST_CAP).
int last_capability()
{
    int last = -1;
    while (last < 63 && prctl(PR_CAPBSET_READ, last + 1, 0, 0, 0) >= 0) ++last;
    return last;
}

constexpr std::array<std::string_view, 41> known_names{
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
};
static_assert(CAP_BPF == 39 && CAP_PERFMON == 38 && CAP_NET_ADMIN == 12 && CAP_NET_BIND_SERVICE == 10);

Mask join(__u32 low, __u32 high) { return Mask{low} | (Mask{high} << 32); }

} // namespace

Mask kept_after_attach()
{
    return bit(CAP_BPF) | bit(CAP_NET_ADMIN) | bit(CAP_NET_BIND_SERVICE);
}

Result<Sets> read_current()
{
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    std::array<__user_cap_data_struct, 2> data{};
    if (syscall(SYS_capget, &header, data.data()) != 0) return os_error("capget");
    Sets sets;
    sets.effective = join(data[0].effective, data[1].effective);
    sets.permitted = join(data[0].permitted, data[1].permitted);
    sets.inheritable = join(data[0].inheritable, data[1].inheritable);
    const int last = last_capability();
    for (int cap = 0; cap <= last; ++cap) {
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1) sets.bounding |= bit(cap);
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1) sets.ambient |= bit(cap);
    }
    return sets;
}

Sets plan(const Sets& current, Mask keep)
{
    Sets next;
    next.permitted = current.permitted & keep;
    next.effective = next.permitted;
    next.inheritable = 0;
    next.ambient = 0;
    next.bounding = (current.effective & bit(CAP_SETPCAP)) != 0 ? current.bounding & keep : current.bounding;
    return next;
}

Result<Sets> keep_only(Mask keep)
{
    auto current = read_current();
    if (!current) return current.error();
    const Sets next = plan(current.value(), keep);

    // Bounding set first: dropping from it needs CAP_SETPCAP, which capset() then removes.
    for (int cap = 0; cap < 64; ++cap)
        if ((current.value().bounding & bit(cap)) != 0 && (next.bounding & bit(cap)) == 0 &&
            prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0)
            return os_error("drop " + names(bit(cap)) + " from the bounding set");
    if (current.value().ambient != 0 && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
        return os_error("clear the ambient capabilities");

    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    std::array<__user_cap_data_struct, 2> data{};
    for (int word = 0; word < 2; ++word) {
        data[word].effective = static_cast<__u32>(next.effective >> (32 * word));
        data[word].permitted = static_cast<__u32>(next.permitted >> (32 * word));
        data[word].inheritable = 0;
    }
    if (syscall(SYS_capset, &header, data.data()) != 0) return os_error("capset (keep " + names(keep) + ")");
    return read_current();
}

std::string names(Mask mask)
{
    if (mask == 0) return "none";
    std::string text;
    for (int cap = 0; cap < 64; ++cap) {
        if ((mask & bit(cap)) == 0) continue;
        if (!text.empty()) text += ',';
        text += static_cast<std::size_t>(cap) < known_names.size() ? std::string(known_names[static_cast<std::size_t>(cap)])
                                                                    : "cap_" + std::to_string(cap);
    }
    return text;
}

} // namespace flowlat::capabilities
