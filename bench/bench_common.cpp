#include "bench_common.hpp"

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

constexpr std::size_t eth_len = 14, ip_len = 20, tcp_len = 20;

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

void ethernet(Frame& f, std::uint16_t type)
{
    const std::uint8_t dst[6] = {0x02, 0, 0, 0, 0, 0x02}, src[6] = {0x02, 0, 0, 0, 0, 0x01};
    std::memcpy(f.data(), dst, 6);
    std::memcpy(f.data() + 6, src, 6);
    put16(f, 12, type);
}

void ipv4(Frame& f, std::uint8_t protocol, std::uint32_t saddr, std::uint32_t daddr)
{
    const std::size_t at = eth_len;
    f[at] = 0x45;
    put16(f, at + 2, static_cast<std::uint16_t>(f.size() - eth_len));
    f[at + 8] = 64;
    f[at + 9] = protocol;
    put32(f, at + 12, saddr);
    put32(f, at + 16, daddr);
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < ip_len; i += 2) sum += static_cast<std::uint32_t>(f[at + i] << 8 | f[at + i + 1]);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    put16(f, at + 10, static_cast<std::uint16_t>(~sum));
}

} // namespace

Frame tcp4_frame(const TcpSpec& s)
{
    const std::size_t options = s.linux_syn_options ? 20 : 0;
    Frame f(eth_len + ip_len + tcp_len + options + s.payload, 0);
    ethernet(f, 0x0800);
    ipv4(f, 6, s.saddr, s.daddr);
    const std::size_t t = eth_len + ip_len;
    put16(f, t, s.sport);
    put16(f, t + 2, s.dport);
    put32(f, t + 4, s.seq);
    put32(f, t + 8, s.ack);
    f[t + 12] = static_cast<std::uint8_t>((tcp_len + options) / 4 << 4);
    f[t + 13] = s.flags;
    put16(f, t + 14, 64240);
    if (options) {
        std::size_t o = t + tcp_len;
        f[o++] = 2, f[o++] = 4, put16(f, o, 1460), o += 2;       // MSS
        f[o++] = 4, f[o++] = 2;                                 // SACK permitted
        f[o++] = 8, f[o++] = 10, put32(f, o, s.tsval), o += 4;  // timestamps
        put32(f, o, s.tsecr), o += 4;
        f[o++] = 1;                                             // NOP
        f[o++] = 3, f[o++] = 3, f[o++] = 7;                     // window scale
    }
    return f;
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
}

Frame udp4_frame(std::uint32_t saddr, std::uint32_t daddr, std::uint16_t sport, std::uint16_t dport,
                 std::size_t payload)
{
    Frame f(eth_len + ip_len + 8 + payload, 0);
    ethernet(f, 0x0800);
    ipv4(f, 17, saddr, daddr);
    const std::size_t u = eth_len + ip_len;
    put16(f, u, sport);
    put16(f, u + 2, dport);
    put16(f, u + 4, static_cast<std::uint16_t>(8 + payload));
    return f;
}

Frame arp_frame()
{
    Frame f(eth_len + 28, 0);
    ethernet(f, 0x0806);
    return f;
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
