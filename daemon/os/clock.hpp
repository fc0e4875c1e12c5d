// The clocks flowlatd reads. CLOCK_MONOTONIC is the probe's clock (bpf_ktime_get_ns), so every
// age and timeout in user space is computed on it.
#pragma once

#include <cstdint>
#include <ctime>

namespace flowlat::clock {

inline std::uint64_t to_ns(const timespec& ts)
{
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

inline std::uint64_t read_ns(clockid_t id)
{
    timespec ts{};
    clock_gettime(id, &ts);
    return to_ns(ts);
}

inline std::uint64_t monotonic_ns() { return read_ns(CLOCK_MONOTONIC); }
inline std::uint64_t realtime_ns() { return read_ns(CLOCK_REALTIME); }
inline std::uint64_t thread_cpu_ns() { return read_ns(CLOCK_THREAD_CPUTIME_ID); }

} // namespace flowlat::clock
