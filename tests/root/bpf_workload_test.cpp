// Tier 2: the probe records the local socket's cgroup v2 id, through BPF_PROG_TEST_RUN.
//
// A tc test run cannot attach a chosen socket to its skb, but it does give the skb a socket:
// the kernel's test harness allocates a dummy one in the calling task's context, so
// bpf_skb_cgroup_id() returns the cgroup of the task that runs the test. The test moves
// itself into a cgroup it creates under the cgroup2 mount, so the id it expects is neither
// 0 nor the root's, runs our SYN and our SYN-ACK (the two packets whose socket the probe
// reads), and checks the flow table and the events. The packets whose socket the probe
// must not take (the peer's SYN-ACK, the client's ACK) run from another cgroup, so a probe
// that read the wrong packet would record the wrong id. What a test run cannot show (a
// real request socket resolved to its listener, a SYN cookie's SYN-ACK without a socket)
// is end to end: tests/e2e/test_workload_labels.py.
#include "os/cgroup.hpp"
#include "loopback_run.hpp"
#include "packet_builder.hpp"

#include "flow/flowlat_abi.hpp"
#include "flow/handshake_event.hpp"
#include "flowlat_probe.skel.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace flowlat::test;

// A cgroup of our own under the cgroup2 mount; the process moves in and back out.
class OwnCgroup {
public:
    explicit OwnCgroup(const std::string& name)
    {
        auto mount = flowlat::cgroup::cgroup2_mount();
        if (!mount) throw std::runtime_error(mount.error().message());
        mount_ = mount.value();
        original_ = mount_ + current_path();
        path_ = mount_ + "/" + name;
        if (::mkdir(path_.c_str(), 0755) != 0 && errno != EEXIST)
            throw std::runtime_error("mkdir " + path_ + ": " + std::strerror(errno));
        struct stat st{};
        if (::stat(path_.c_str(), &st) != 0) throw std::runtime_error("stat " + path_);
        id_ = st.st_ino;
        struct stat root{};
        if (::stat(original_.c_str(), &root) != 0) throw std::runtime_error("stat " + original_);
        original_id_ = root.st_ino;
    }
    ~OwnCgroup()
    {
        leave();
        ::rmdir(path_.c_str());
    }
    OwnCgroup(const OwnCgroup&) = delete;
    OwnCgroup& operator=(const OwnCgroup&) = delete;

    void enter() const { move_to(path_); }
    void leave() const { move_to(original_); }
    std::uint64_t id() const { return id_; }
    std::uint64_t original_id() const { return original_id_; }

private:
    static std::string current_path()
    {
        std::ifstream in("/proc/self/cgroup");
        std::string line;
        while (std::getline(in, line))
            if (line.rfind("0::", 0) == 0) return line.substr(3) == "/" ? std::string() : line.substr(3);
        throw std::runtime_error("no cgroup2 line in /proc/self/cgroup");
    }
    static void move_to(const std::string& dir)
    {
        std::ofstream procs(dir + "/cgroup.procs");
        procs << ::getpid() << std::flush;
        if (!procs) throw std::runtime_error("cannot move into " + dir);
    }

    std::string mount_, original_, path_;
    std::uint64_t id_{0}, original_id_{0};
};

struct SkeletonDeleter {
    void operator()(flowlat_probe* skeleton) const { flowlat_probe__destroy(skeleton); }
};

class Probe {
public:
    Probe()
    {
        skeleton_.reset(flowlat_probe__open_and_load());
        if (!skeleton_) throw std::runtime_error("flowlat_probe__open_and_load failed");
        ring_ = ring_buffer__new(bpf_map__fd(skeleton_->maps.events), &Probe::on_record, this, nullptr);
        if (ring_ == nullptr) throw std::runtime_error("ring_buffer__new failed");
    }
    ~Probe() { ring_buffer__free(ring_); }
    Probe(const Probe&) = delete;
    Probe& operator=(const Probe&) = delete;

    void run(bool egress, const PacketBuilder& builder)
    {
        bpf_program* program = egress ? skeleton_->progs.flowlat_egress : skeleton_->progs.flowlat_ingress;
        REQUIRE(run_on_loopback(bpf_program__fd(program), builder.build()) == static_cast<__u32>(-1)); // TC_ACT_UNSPEC
    }

    std::vector<std::uint64_t> flow_cgroup_ids() const
    {
        std::vector<std::uint64_t> ids;
        const int fd = bpf_map__fd(skeleton_->maps.flows);
        flowlat_flow_key key{};
        bool first = true;
        flowlat_flow_key next{};
        while (bpf_map_get_next_key(fd, first ? nullptr : &key, &next) == 0) {
            first = false;
            key = next;
            flowlat_flow value{};
            if (bpf_map_lookup_elem(fd, &key, &value) == 0) ids.push_back(value.cgroup_id);
        }
        return ids;
    }

    std::vector<flowlat::HandshakeEvent> events()
    {
        events_.clear();
        REQUIRE(ring_buffer__consume(ring_) >= 0);
        return std::move(events_);
    }

private:
    static int on_record(void* self, void* data, std::size_t size)
    {
        if (auto event = flowlat::decode_event(data, size)) static_cast<Probe*>(self)->events_.push_back(*event);
        return 0;
    }

    std::unique_ptr<flowlat_probe, SkeletonDeleter> skeleton_;
    ring_buffer* ring_{nullptr};
    std::vector<flowlat::HandshakeEvent> events_;
};

const Address local = Address::parse("198.18.0.1");
const Address peer = Address::parse("198.18.0.2");

PacketBuilder tcp(const Address& from, const Address& to, std::uint16_t sport, std::uint16_t dport,
                  std::uint8_t flags, std::uint32_t seq, std::uint32_t ack)
{
    return std::move(PacketBuilder().ip(from, to).tcp(sport, dport).flags(flags).seq(seq).ack(ack));
}

constexpr std::uint8_t syn = tcp_flag::syn;
constexpr std::uint8_t syn_ack = tcp_flag::syn | tcp_flag::ack;

TEST_CASE("our SYN and our SYN-ACK record the socket's cgroup id", "[root][bpf][workload]")
{
    OwnCgroup cgroup("flowlat-test-bpf.scope");
    Probe probe;
    REQUIRE(cgroup.id() != cgroup.original_id());

    // Outbound: our SYN in our cgroup; the peer's SYN-ACK arrives from elsewhere.
    cgroup.enter();
    probe.run(true, tcp(local, peer, 40000, 443, syn, 1000, 0));
    cgroup.leave();
    CHECK(probe.flow_cgroup_ids() == std::vector<std::uint64_t>{cgroup.id()});
    probe.run(false, tcp(peer, local, 443, 40000, syn_ack, 5000, 1001));
    auto outbound = probe.events();
    REQUIRE(outbound.size() == 1);
    CHECK(outbound[0].direction == flowlat::Direction::outbound);
    CHECK(outbound[0].cgroup_id == cgroup.id());

    // Inbound: the client's SYN arrives (no workload yet), our SYN-ACK names it.
    probe.run(false, tcp(peer, local, 50000, 8080, syn, 7000, 0));
    CHECK(probe.flow_cgroup_ids() == std::vector<std::uint64_t>{0});
    cgroup.enter();
    probe.run(true, tcp(local, peer, 8080, 50000, syn_ack, 9000, 7001));
    cgroup.leave();
    CHECK(probe.flow_cgroup_ids() == std::vector<std::uint64_t>{cgroup.id()});
    probe.run(false, tcp(peer, local, 50000, 8080, tcp_flag::ack, 7001, 9001));
    auto inbound = probe.events();
    REQUIRE(inbound.size() == 1);
    CHECK(inbound[0].direction == flowlat::Direction::inbound);
    CHECK(inbound[0].cgroup_id == cgroup.id());

    // Our RST refusing an inbound SYN: no SYN-ACK was sent, so no workload is known.
    probe.run(false, tcp(peer, local, 50001, 8081, syn, 100, 0));
    cgroup.enter();
    probe.run(true, tcp(local, peer, 8081, 50001, tcp_flag::rst | tcp_flag::ack, 0, 101));
    cgroup.leave();
    auto refused = probe.events();
    REQUIRE(refused.size() == 1);
    CHECK(refused[0].outcome == flowlat::Outcome::refused);
    CHECK(refused[0].cgroup_id == 0);
}

} // namespace
