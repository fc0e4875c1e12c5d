// One BPF_PROG_TEST_RUN of a TC program on a frame, as loopback receives or sends it.
#pragma once

#include "packet_builder.hpp"

#include <bpf/bpf.h>
#include <catch2/catch.hpp>
#include <linux/bpf.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace flowlat::test {

// The frame is addressed to loopback (its MAC is all zeros), as a receiving device would
// be: the test run sets pkt_type as eth_type_trans does, and the probe ignores answers
// for other hosts. Returns the program's verdict.
inline std::uint32_t run_on_loopback(int program_fd, Packet packet)
{
    std::fill_n(packet.bytes.begin(), 6, std::uint8_t{0});
    __sk_buff context{};
    context.ifindex = 1; // lo, in every network namespace
    std::vector<std::uint8_t> out(packet.bytes.size() + 256);
    bpf_test_run_opts opts{};
    opts.sz = sizeof(opts);
    opts.data_in = packet.bytes.data();
    opts.data_size_in = static_cast<__u32>(packet.bytes.size());
    opts.data_out = out.data();
    opts.data_size_out = static_cast<__u32>(out.size());
    opts.ctx_in = &context;
    opts.ctx_size_in = sizeof(context);
    opts.repeat = 1;
    REQUIRE(bpf_prog_test_run_opts(program_fd, &opts) == 0);
    return opts.retval;
}

} // namespace flowlat::test
