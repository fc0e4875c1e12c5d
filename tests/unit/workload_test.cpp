// The workload label: unit folding, cgroup mode, include patterns, and the aggregator's
// cache and interning of workload names.
#include "aggregate/aggregator.hpp"
#include "aggregate/workload.hpp"
#include "export/metrics_exposition.hpp"
#include "exposition_oracle.hpp"

#include <catch2/catch.hpp>

#include <map>

using namespace flowlat;
using workload::unit_label;

namespace {

constexpr std::string_view kDockerId = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa99887766554433221100";

TEST_CASE("unit folding: systemd units", "[workload]")
{
    CHECK(unit_label("system.slice/nginx.service") == "nginx.service");
    CHECK(unit_label("system.slice/postgresql@15-main.service") == "postgresql@15-main.service");
    // A service's own sub-cgroups (delegation) belong to the service.
    CHECK(unit_label("system.slice/foo.service/worker/1") == "foo.service");
    // The deepest unit: a user's service, not user@1000.service.
    CHECK(unit_label("user.slice/user-1000.slice/user@1000.service/app.slice/app-firefox.service") ==
          "app-firefox.service");
    CHECK(unit_label("user.slice/user-1000.slice/user@1000.service/init.scope") == "init.scope");
    CHECK(unit_label("user.slice/user-1000.slice/session-3.scope") == "session-3.scope");
    CHECK(unit_label("flowlat-test.slice/client.scope") == "client.scope");
    CHECK(unit_label("init.scope") == "init.scope");
    // No unit: the deepest slice, else the path as it is.
    CHECK(unit_label("system.slice") == "system.slice");
    CHECK(unit_label("user.slice/user-1000.slice") == "user-1000.slice");
    CHECK(unit_label("mygroup/sub") == "mygroup/sub");
    CHECK(unit_label("") == "/");
}

TEST_CASE("unit folding: containers", "[workload]")
{
    const std::string id(kDockerId);
    CHECK(unit_label("system.slice/docker-" + id + ".scope") == "docker/3f4e5d6c7b8a");
    CHECK(unit_label("docker/" + id) == "docker/3f4e5d6c7b8a");
    // systemd inside the container: the container wins over its inner units.
    CHECK(unit_label("system.slice/docker-" + id + ".scope/system.slice/nginx.service") == "docker/3f4e5d6c7b8a");
    CHECK(unit_label("machine.slice/libpod-" + id + ".scope/container") == "libpod/3f4e5d6c7b8a");
    CHECK(unit_label("machine.slice/libpod_parent/libpod-" + id) == "libpod/3f4e5d6c7b8a");
    CHECK(unit_label("system.slice/cri-containerd-" + id + ".scope") == "containerd/3f4e5d6c7b8a");
    CHECK(unit_label("system.slice/crio-" + id + ".scope") == "crio/3f4e5d6c7b8a");
    // Not a hex id: an ordinary scope.
    CHECK(unit_label("system.slice/docker-compose.scope") == "docker-compose.scope");
    CHECK(unit_label("docker/not-an-id") == "docker/not-an-id");
}

TEST_CASE("unit folding: Kubernetes pods, both cgroup drivers", "[workload]")
{
    const std::string id(kDockerId);
    // systemd driver: dashes of the uid are underscores in the slice name.
    CHECK(unit_label("kubepods.slice/kubepods-burstable.slice/"
                     "kubepods-burstable-pod6f1c2a3b_4d5e_6789_abcd_ef0123456789.slice/cri-containerd-" +
                     id + ".scope") == "pod6f1c2a3b-4d5e-6789-abcd-ef0123456789");
    CHECK(unit_label("kubepods.slice/kubepods-pod6f1c2a3b_4d5e.slice") == "pod6f1c2a3b-4d5e");
    // cgroupfs driver.
    CHECK(unit_label("kubepods/besteffort/pod6f1c2a3b-4d5e-6789-abcd-ef0123456789/" + id) ==
          "pod6f1c2a3b-4d5e-6789-abcd-ef0123456789");
    CHECK(unit_label("kubepods/pod1234/" + id) == "pod1234");
    // The QoS slices themselves hold no pod.
    CHECK(unit_label("kubepods.slice/kubepods-burstable.slice") == "kubepods-burstable.slice");
    // "pod..." outside kubepods is nothing special.
    CHECK(unit_label("podcast.slice/podcast.service") == "podcast.service");
}

TEST_CASE("naming: a cgroup name that is not UTF-8 becomes valid UTF-8", "[workload]")
{
    // Anyone with a delegated subtree can name a cgroup so; one such label value would make
    // Prometheus reject every scrape.
    const std::string bad = "user.slice/bad\xff\"x.scope";
    const workload::Naming cgroup(config::WorkloadMode::cgroup, {});
    CHECK(cgroup.label(&bad) == "user.slice/bad\xef\xbf\xbd\"x.scope");
    const workload::Naming unit(config::WorkloadMode::unit, {});
    CHECK(unit.label(&bad) == "bad\xef\xbf\xbd\"x.scope");
    const std::string fine = "system.slice/caf\xc3\xa9.service"; // valid UTF-8 is kept
    CHECK(cgroup.label(&fine) == fine);
}

TEST_CASE("naming: modes, unresolved, include patterns", "[workload]")
{
    const std::string nginx = "system.slice/nginx.service";
    const std::string root;
    const workload::Naming cgroup(config::WorkloadMode::cgroup, {});
    CHECK(cgroup.label(&nginx) == nginx);
    CHECK(cgroup.label(&root) == "/");
    CHECK(cgroup.label(nullptr) == "unresolved");

    const workload::Naming unit(config::WorkloadMode::unit, {"nginx.*", "/"});
    CHECK(unit.label(&nginx) == "nginx.service");
    CHECK(unit.label(&root) == "/");
    const std::string other = "system.slice/cron.service";
    CHECK(unit.label(&other) == "other");
    CHECK(unit.label(nullptr) == "unresolved"); // never folded: not a workload

    // fnmatch without FNM_PATHNAME: '*' crosses '/'.
    const workload::Naming paths(config::WorkloadMode::cgroup, {"system.slice/*"});
    CHECK(paths.label(&nginx) == nginx);
    const std::string user = "user.slice/user-1000.slice/session-3.scope";
    CHECK(paths.label(&user) == "other");
    CHECK_FALSE(workload::Naming().enabled());
}

// A cgroup tree for the aggregator, counting lookups.
struct FakePaths final : workload::CgroupPaths {
    std::map<std::uint64_t, std::string> paths;
    std::uint64_t gen{0};
    int lookups{0};
    const std::string* path(std::uint64_t id) override
    {
        ++lookups;
        const auto it = paths.find(id);
        return it != paths.end() ? &it->second : nullptr;
    }
    std::uint64_t generation() const override { return gen; }
};

HandshakeEvent event(std::uint64_t cgroup_id, std::uint64_t at_ns = 1'000'000'000)
{
    HandshakeEvent e;
    e.monotonic_ns = at_ns;
    e.ifindex = 3;
    e.family = Family::ipv4;
    e.peer = {198, 18, 0, 2};
    e.peer_port = 443;
    e.local_port = 40000;
    e.rtt_ns = 1000;
    e.handshake_ns = 1000;
    e.cgroup_id = cgroup_id;
    return e;
}

config::Config with_workload(config::WorkloadMode mode, std::vector<std::string> include = {})
{
    config::Config c;
    c.workload = mode;
    c.workload_include = std::move(include);
    return c;
}

aggregation::Settings settings(std::size_t max_series = 100, std::chrono::seconds ttl = std::chrono::seconds(60))
{
    return aggregation::Settings{{0.001}, max_series, ttl};
}

// workload label -> handshakes
std::map<std::string, std::uint64_t> by_workload(const aggregation::Aggregator& agg)
{
    const auto snap = agg.snapshot();
    std::map<std::string, std::uint64_t> out;
    for (const auto& s : snap.series)
        out[labels::render_labels(s.key, snap.group_names, {}, snap.workload_names).workload] += s.handshakes[0];
    return out;
}

TEST_CASE("aggregator: the workload label per cgroup id, cached", "[workload][aggregator]")
{
    FakePaths tree;
    tree.paths = {{1, ""}, {10, "system.slice/nginx.service"}, {11, "system.slice/nginx.service/worker"}};
    aggregation::Aggregator agg(labels::LabelPolicy(with_workload(config::WorkloadMode::unit)), settings());
    agg.set_cgroup_paths(&tree);
    const std::vector<HandshakeEvent> events{event(10), event(10), event(11), event(1), event(0), event(99)};
    agg.add(events);
    CHECK(by_workload(agg) == std::map<std::string, std::uint64_t>{
                                  {"nginx.service", 3}, {"/", 1}, {"unknown", 1}, {"unresolved", 1}});
    // 10, 11 and 1 once each, 99 every time (unresolved ids are not cached), 0 never.
    CHECK(tree.lookups == 4);
    agg.add(events);
    CHECK(tree.lookups == 5);

    SECTION("a reload with other patterns names the ids again")
    {
        agg.set_policy(labels::LabelPolicy(with_workload(config::WorkloadMode::unit, {"cron*"})));
        agg.add(std::vector<HandshakeEvent>{event(10)});
        CHECK(by_workload(agg)["other"] == 1);
        CHECK(tree.lookups == 6);
    }
    SECTION("a changed generation (removed cgroups) drops the cache at the next expiry")
    {
        tree.gen = 1;
        agg.expire(2'000'000'000);
        agg.add(std::vector<HandshakeEvent>{event(10)});
        CHECK(tree.lookups == 6);
    }
}

TEST_CASE("aggregator: workload none adds no label and asks nothing", "[workload][aggregator]")
{
    FakePaths tree;
    tree.paths = {{10, "system.slice/nginx.service"}};
    aggregation::Aggregator agg(labels::LabelPolicy(config::Config{}), settings());
    agg.set_cgroup_paths(&tree);
    agg.add(std::vector<HandshakeEvent>{event(10), event(0)});
    CHECK(by_workload(agg) == std::map<std::string, std::uint64_t>{{"", 2}});
    CHECK(tree.lookups == 0);
}

TEST_CASE("aggregator: cgroup mode without a tree is unresolved", "[workload][aggregator]")
{
    aggregation::Aggregator agg(labels::LabelPolicy(with_workload(config::WorkloadMode::cgroup)), settings());
    agg.add(std::vector<HandshakeEvent>{event(10), event(0)});
    CHECK(by_workload(agg) == std::map<std::string, std::uint64_t>{{"unresolved", 1}, {"unknown", 1}});
}

TEST_CASE("aggregator: max_series folds the workload to other too", "[workload][aggregator]")
{
    FakePaths tree;
    for (std::uint64_t id = 10; id < 20; ++id) tree.paths[id] = "system.slice/s" + std::to_string(id) + ".service";
    aggregation::Aggregator agg(labels::LabelPolicy(with_workload(config::WorkloadMode::cgroup)), settings(3));
    agg.set_cgroup_paths(&tree);
    std::vector<HandshakeEvent> events;
    for (std::uint64_t id = 10; id < 20; ++id) events.push_back(event(id));
    agg.add(events);
    const auto counts = by_workload(agg);
    CHECK(counts.size() == 4);
    CHECK(counts.at("other") == 7);
    CHECK(agg.series_overflow() == 7);
}

TEST_CASE("aggregator: names of expired series are freed and reused", "[workload][aggregator]")
{
    FakePaths tree;
    tree.paths = {{10, "a.slice/a.service"}, {11, "b.slice/b.service"}};
    aggregation::Aggregator agg(labels::LabelPolicy(with_workload(config::WorkloadMode::cgroup)),
                                settings(100, std::chrono::seconds(1)));
    agg.set_cgroup_paths(&tree);
    agg.add(std::vector<HandshakeEvent>{event(10, 1'000'000'000)});
    const std::size_t names_before = agg.snapshot().workload_names.size();
    agg.expire(5'000'000'000); // a.service's series is gone, and its name
    CHECK(agg.series_count() == 0);
    agg.add(std::vector<HandshakeEvent>{event(11, 6'000'000'000)});
    const auto snap = agg.snapshot();
    CHECK(snap.workload_names.size() == names_before); // the freed id was reused
    CHECK(by_workload(agg) == std::map<std::string, std::uint64_t>{{"b.slice/b.service", 1}});
    // The cache forgot id 10: a new event names it again, correctly.
    agg.add(std::vector<HandshakeEvent>{event(10, 6'000'000'000)});
    CHECK(by_workload(agg) == std::map<std::string, std::uint64_t>{{"a.slice/a.service", 1}, {"b.slice/b.service", 1}});
}

TEST_CASE("exposition: workload is the last label, only when on, byte-identical to the oracle",
          "[workload][exposition]")
{
    FakePaths tree;
    tree.paths = {{10, "system.slice/nginx.service"}};
    labels::InterfaceNames names;
    names.set(3, "eth0");
    const exposition::OperationalSnapshot op;

    aggregation::Aggregator on(labels::LabelPolicy(with_workload(config::WorkloadMode::cgroup)), settings());
    on.set_cgroup_paths(&tree);
    on.add(std::vector<HandshakeEvent>{event(10), event(0)});
    const auto snap = on.snapshot();
    const std::string text = exposition::render_metrics(snap, names, op, std::nullopt);
    CHECK_THAT(text, Catch::Contains("flowlat_handshakes_total{interface=\"eth0\",direction=\"outbound\","
                                     "family=\"ipv4\",peer=\"198.18.0.2\",port=\"443\","
                                     "workload=\"system.slice/nginx.service\",outcome=\"completed\"} 1"));
    CHECK_THAT(text, Catch::Contains("port=\"443\",workload=\"unknown\"} 1"));
    CHECK(text == test::render_metrics_oracle(snap, names, op, std::nullopt));

    aggregation::Aggregator off(labels::LabelPolicy(config::Config{}), settings());
    off.add(std::vector<HandshakeEvent>{event(10)});
    const std::string plain = exposition::render_metrics(off.snapshot(), names, op, std::nullopt);
    CHECK_THAT(plain, !Catch::Contains(",workload="));
    CHECK_THAT(plain, Catch::Contains("port=\"443\"} 1"));
}

} // namespace
