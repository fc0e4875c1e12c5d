#include "bench_common.hpp"

#include "packet_builder.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace flowlat::bench {

namespace {

constexpr std::size_t eth_len = 14, ip_len = 20; // where patch_tcp4 writes

void put16(Frame& f, std::size_t at, std::uint16_t v)
{
    f[at] = static_cast<std::uint8_t>(v >> 8);
    f[at + 1] = static_cast<std::uint8_t>(v);
}

void put32(Frame& f, std::size_t at, std::uint32_t v)
{
    put16(f, at, static_cast<std::uint16_t>(v >> 16));
    put16(f, at + 2, static_cast<std::uint16_t>(v));
}

// One's complement sum of big-endian 16-bit words.
std::uint32_t sum16(const Frame& f, std::size_t from, std::size_t to, std::uint32_t sum = 0)
{
    for (std::size_t i = from; i + 1 < to; i += 2) sum += static_cast<std::uint32_t>(f[i] << 8 | f[i + 1]);
    if ((to - from) % 2 != 0) sum += static_cast<std::uint32_t>(f[to - 1] << 8);
    return sum;
}

std::uint16_t fold(std::uint32_t sum)
{
    while (sum >> 16) sum = (sum & 0xffffu) + (sum >> 16);
    return static_cast<std::uint16_t>(~sum & 0xffffu);
}

// The IPv4 and TCP checksums of a tcp4_frame after its fields changed: the probe verifies
// them on the packets that end a handshake, as the receiving stack would.
void fix_checksums(Frame& f)
{
    const std::size_t t = eth_len + ip_len;
    put16(f, eth_len + 10, 0);
    put16(f, eth_len + 10, fold(sum16(f, eth_len, t)));
    const std::size_t segment = (static_cast<std::size_t>(f[eth_len + 2]) << 8 | f[eth_len + 3]) - ip_len;
    put16(f, t + 16, 0);
    const std::uint32_t pseudo = sum16(f, eth_len + 12, eth_len + 20) + 6 + static_cast<std::uint32_t>(segment);
    put16(f, t + 16, fold(sum16(f, t, t + segment, pseudo)));
}

} // namespace

// The frames come from the BPF table tests' builder (tests/support/packet_builder.hpp).
Frame tcp4_frame(const TcpSpec& s)
{
    test::PacketBuilder builder;
    builder.ip(test::Address::ipv4(s.saddr), test::Address::ipv4(s.daddr))
        .tcp(s.sport, s.dport)
        .flags(s.flags)
        .seq(s.seq)
        .ack(s.ack)
        .payload(Frame(s.payload, 0));
    if (s.linux_syn_options) builder.linux_syn_options(s.tsval, s.tsecr);
    Frame frame = builder.build().bytes;
    // Addressed to the test run's device (loopback, all zeros), so that the kernel gives it
    // pkt_type PACKET_HOST as a receiving device would; the probe ignores answers for other hosts.
    std::fill(frame.begin(), frame.begin() + 6, 0);
    return frame;
}

void patch_tcp4(Frame& f, std::uint32_t saddr, std::uint32_t daddr, std::uint16_t sport, std::uint16_t dport,
                std::uint32_t seq, std::uint32_t ack)
{
    put32(f, eth_len + 12, saddr);
    put32(f, eth_len + 16, daddr);
    const std::size_t t = eth_len + ip_len;
    put16(f, t, sport);
    put16(f, t + 2, dport);
    put32(f, t + 4, seq);
    put32(f, t + 8, ack);
    fix_checksums(f);
}

Frame udp4_frame(std::uint32_t saddr, std::uint32_t daddr, std::uint16_t sport, std::uint16_t dport,
                 std::size_t payload)
{
    return test::PacketBuilder()
        .ip(test::Address::ipv4(saddr), test::Address::ipv4(daddr))
        .udp(sport, dport)
        .payload(Frame(payload, 0))
        .build()
        .bytes;
}

Frame arp_frame()
{
    return test::PacketBuilder().ethertype(test::ethertype::arp).payload(Frame(28, 0)).build().bytes;
}

TestRun test_run(int prog_fd, Frame& frame, std::uint32_t repeat)
{
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_size_in = static_cast<__u32>(frame.size()),
                .repeat = static_cast<int>(repeat));
    if (bpf_prog_test_run_opts(prog_fd, &opts) != 0)
        throw std::runtime_error(std::string("BPF_PROG_TEST_RUN: ") + std::strerror(errno));
    return {opts.retval, opts.duration};
}


namespace {
std::uint64_t tv_ns(const timeval& tv)
{
    return static_cast<std::uint64_t>(tv.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(tv.tv_usec) * 1000ull;
}
} // namespace

std::uint64_t thread_user_ns()
{
    rusage usage{};
    getrusage(RUSAGE_THREAD, &usage);
    return tv_ns(usage.ru_utime);
}

std::uint64_t thread_sys_ns()
{
    rusage usage{};
    getrusage(RUSAGE_THREAD, &usage);
    return tv_ns(usage.ru_stime);
}

void row(std::string_view section, std::string_view path, std::string_view figure, std::string_view floor,
         std::string_view target, std::string_view met)
{
    std::printf("ROW\t%.*s\t%.*s\t%.*s\t%.*s\t%.*s\t%.*s\n", static_cast<int>(section.size()), section.data(),
                static_cast<int>(path.size()), path.data(), static_cast<int>(figure.size()), figure.data(),
                static_cast<int>(floor.size()), floor.data(), static_cast<int>(target.size()), target.data(),
                static_cast<int>(met.size()), met.data());
    std::fflush(stdout);
}

void note(std::string_view section, std::string_view text)
{
    std::printf("NOTE\t%.*s\t%.*s\n", static_cast<int>(section.size()), section.data(), static_cast<int>(text.size()),
                text.data());
    std::fflush(stdout);
}

std::string fmt_ns(double ns)
{
    char text[64];
    if (ns >= 1e6)
        std::snprintf(text, sizeof(text), "%.2f ms", ns / 1e6);
    else if (ns >= 1e4)
        std::snprintf(text, sizeof(text), "%.1f us", ns / 1e3);
    else
        std::snprintf(text, sizeof(text), "%.1f ns", ns);
    return text;
}

std::string fmt_rate(double per_second)
{
    char text[64];
    std::snprintf(text, sizeof(text), "%.3f M/s", per_second / 1e6);
    return text;
}

double median(std::vector<double> values)
{
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

bool smoke_mode(int argc, char** argv)
{
    for (int i = 1; i < argc; ++i)
        if (std::string_view(argv[i]) == "--smoke") return true;
    return false;
}

std::string flag(int argc, char** argv, std::string_view name, std::string fallback)
{
    for (int i = 1; i < argc; ++i) {
        std::string_view arg(argv[i]);
        if (arg.size() > name.size() + 3 && arg.substr(0, 2) == "--" && arg.substr(2, name.size()) == name &&
            arg[2 + name.size()] == '=')
            return std::string(arg.substr(3 + name.size()));
    }
    return fallback;
}

} // namespace flowlat::bench
