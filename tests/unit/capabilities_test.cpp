#include "os/capabilities.hpp"

#include <catch2/catch.hpp>

#include <linux/capability.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

using namespace flowlat::capabilities;

namespace {

constexpr Mask all_known = (Mask{1} << 41) - 1;
const Mask probe = bit(CAP_BPF) | bit(CAP_NET_ADMIN) | bit(CAP_PERFMON);

Sets root_sets()
{
    return Sets{all_known, all_known, 0, all_known, 0};
}

// CapEff from /proc/self/status, the figure a test of the service reads from /proc/PID/status.
Mask status_capeff()
{
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("CapEff:", 0) == 0) return std::stoull(line.substr(7), nullptr, 16);
    return ~Mask{0};
}

} // namespace

TEST_CASE("plan: a root start keeps only the kept capabilities, in every set", "[capabilities]")
{
    const Sets next = plan(root_sets(), kept_after_attach());
    CHECK(next.effective == (bit(CAP_BPF) | bit(CAP_NET_ADMIN) | bit(CAP_NET_BIND_SERVICE)));
    CHECK(next.permitted == next.effective);
    CHECK(next.bounding == next.effective);
    CHECK(next.inheritable == 0);
    CHECK(next.ambient == 0);
}

TEST_CASE("plan: under the unit, CAP_PERFMON goes and ambient is cleared", "[capabilities]")
{
    const Sets unit{probe, probe, probe, probe, probe};
    const Sets next = plan(unit, kept_after_attach());
    // CAP_NET_BIND_SERVICE is kept only when it is there; the probe is never loaded again.
    CHECK(next.effective == (bit(CAP_BPF) | bit(CAP_NET_ADMIN)));
    CHECK(next.permitted == next.effective);
    CHECK(next.bounding == probe); // no CAP_SETPCAP: unchanged, and already the three
    CHECK(next.inheritable == 0);
    CHECK(next.ambient == 0);
}

TEST_CASE("plan: without CAP_SETPCAP the bounding set cannot shrink and is left as it is", "[capabilities]")
{
    Sets current = root_sets();
    current.effective &= ~bit(CAP_SETPCAP);
    const Sets next = plan(current, probe);
    CHECK(next.bounding == all_known);
    CHECK(next.permitted == probe);
}

TEST_CASE("plan: nothing is ever added", "[capabilities]")
{
    const Sets none{};
    const Sets next = plan(none, kept_after_attach());
    CHECK(next.effective == 0);
    CHECK(next.permitted == 0);
}

TEST_CASE("names: lowest first, none, unknown bits", "[capabilities]")
{
    CHECK(names(probe) == "CAP_NET_ADMIN,CAP_PERFMON,CAP_BPF");
    CHECK(names(0) == "none");
    CHECK(names(bit(CAP_CHOWN) | bit(63)) == "CAP_CHOWN,cap_63");
}

TEST_CASE("keep_only: a child keeps exactly what it asked for and had, as /proc/PID/status shows", "[capabilities]")
{
    auto before = read_current();
    REQUIRE(before);
    const Mask keep = bit(CAP_NET_ADMIN) | bit(CAP_KILL);
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        auto after = keep_only(keep);
        const Mask want = before.value().permitted & keep;
        const bool ok = after && after.value().effective == want && after.value().permitted == want &&
                        after.value().inheritable == 0 && after.value().ambient == 0 &&
                        after.value() == plan(before.value(), keep) && status_capeff() == want;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}
