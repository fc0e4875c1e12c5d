// Shared by the benchmark programs: frames, BPF_PROG_TEST_RUN, clocks, and the result rows
// that bench/run.sh turns into the table. Benchmarks print figures; they assert nothing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>
#include "os/clock.hpp"
#include "packet_builder.hpp"

namespace flowlat::bench {

using Frame = test::Bytes;

// An IPv4 address in 198.18.0.0/15, host order, e.g. v4(198, 18, 0, 1).
constexpr std::uint32_t v4(unsigned a, unsigned b, unsigned c, unsigned d)
{
    return a << 24 | b << 16 | c << 8 | d;
}

namespace tcp = test::tcp_flag;

struct TcpSpec {
    std::uint32_t saddr{v4(198, 18, 0, 1)};
    std::uint32_t daddr{v4(198, 19, 0, 1)};
    std::uint16_t sport{40000};
    std::uint16_t dport{443};
    std::uint8_t flags{tcp::syn};
    std::uint32_t seq{1000};
    std::uint32_t ack{0};
    bool linux_syn_options{false}; // MSS, SACK-permitted, timestamps, NOP, window scale
    std::uint32_t tsval{0};
    std::uint32_t tsecr{0};
    std::size_t payload{0};
};

// Built by the tests' PacketBuilder (tests/support): IPv4 with DF, checksums filled in.
Frame tcp4_frame(const TcpSpec& spec);
Frame udp4_frame(std::uint32_t saddr, std::uint32_t daddr, std::uint16_t sport, std::uint16_t dport,
                 std::size_t payload);
Frame arp_frame();

// Rewrites the IPv4 TCP frame's addresses, ports, seq and ack in place (offsets of tcp4_frame).
void patch_tcp4(Frame& frame, std::uint32_t saddr, std::uint32_t daddr, std::uint16_t sport,
                std::uint16_t dport, std::uint32_t seq, std::uint32_t ack);

struct TestRun {
    std::uint32_t retval{0};
    std::uint32_t duration_ns{0}; // the kernel's mean per repetition (bpf_test_timer)
};

// One BPF_PROG_TEST_RUN; throws std::runtime_error on failure.
TestRun test_run(int prog_fd, Frame& frame, std::uint32_t repeat);

using flowlat::clock::monotonic_ns;
using flowlat::clock::thread_cpu_ns; // user + system
std::uint64_t thread_user_ns();  // getrusage(RUSAGE_THREAD).ru_utime
std::uint64_t thread_sys_ns();   // getrusage(RUSAGE_THREAD).ru_stime

// One table row for bench/run.sh: section, path, figure, floor, target, met.
void row(std::string_view section, std::string_view path, std::string_view figure, std::string_view floor,
         std::string_view target, std::string_view met);
// Free-form detail printed under the table.
void note(std::string_view section, std::string_view text);

std::string fmt_ns(double ns);
std::string fmt_rate(double per_second);
double median(std::vector<double> values);

// "--smoke" anywhere in argv: tiny counts, seconds in total.
bool smoke_mode(int argc, char** argv);
// Value of "--name=value", or fallback.
std::string flag(int argc, char** argv, std::string_view name, std::string fallback);

} // namespace flowlat::bench
