// os/cgroup: the cgroup2 mount from mountinfo, the walk, and the resolver's cache. The walk
// runs on a scratch directory tree: on any file system a directory's inode number is what
// readdir reports, as kernfs does with cgroup ids.
#include "os/cgroup.hpp"

#include <catch2/catch.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

using namespace flowlat;
namespace fs = std::filesystem;

namespace {

constexpr const char* kHybrid =
    "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n";

TEST_CASE("cgroup2 mount: hybrid, unified, escapes, none", "[cgroup]")
{
    CHECK(cgroup::find_cgroup2_mount(kHybrid) == "/sys/fs/cgroup/unified");
    CHECK(cgroup::find_cgroup2_mount("35 24 0:30 / /sys/fs/cgroup rw,nosuid shared:9 master:2 - cgroup2 cgroup2 "
                                     "rw,nsdelegate\n") == "/sys/fs/cgroup");
    CHECK(cgroup::find_cgroup2_mount("1 0 0:1 / /my\\040cgroups rw - cgroup2 none rw\n") == "/my cgroups");
    CHECK_FALSE(cgroup::find_cgroup2_mount("30 22 0:27 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n").has_value());
    CHECK_FALSE(cgroup::find_cgroup2_mount("").has_value());
    CHECK_FALSE(cgroup::find_cgroup2_mount("garbage\n- cgroup2\n").has_value());
    // The fstype is the field after the separator, not an optional field that says cgroup2.
    CHECK_FALSE(cgroup::find_cgroup2_mount("1 0 0:1 / /x rw cgroup2 - tmpfs none rw\n").has_value());
}

TEST_CASE("cgroup2 mount: a missing file is an error that names it", "[cgroup]")
{
    auto mount = cgroup::cgroup2_mount("/nonexistent/mountinfo");
    REQUIRE_FALSE(mount.ok());
    CHECK_THAT(mount.error().message(), Catch::Contains("/nonexistent/mountinfo"));
}

struct Tree {
    fs::path root;
    Tree()
    {
        char name[] = "/tmp/flowlat_cgroup_test_XXXXXX";
        REQUIRE(mkdtemp(name) != nullptr);
        root = name;
    }
    ~Tree() { fs::remove_all(root); }
    std::uint64_t make(const std::string& rel)
    {
        fs::create_directories(root / rel);
        return id(rel);
    }
    std::uint64_t id(const std::string& rel) const
    {
        struct stat st{};
        REQUIRE(::stat((root / rel).c_str(), &st) == 0);
        return st.st_ino;
    }
};

TEST_CASE("walk: every directory with its inode, files and links skipped, bounded", "[cgroup]")
{
    Tree t;
    const auto service = t.make("system.slice/nginx.service");
    const auto scope = t.make("user.slice/session-1.scope");
    std::ofstream((t.root / "system.slice/cgroup.procs").string()) << "1\n";
    fs::create_directory_symlink(t.root / "system.slice", t.root / "link");

    auto tree = cgroup::walk(t.root.string());
    REQUIRE(tree.ok());
    const auto& paths = tree.value().paths;
    CHECK(paths.size() == 5);
    CHECK(paths.at(t.id("")) == "");
    CHECK(paths.at(service) == "system.slice/nginx.service");
    CHECK(paths.at(scope) == "user.slice/session-1.scope");
    CHECK(paths.at(t.id("system.slice")) == "system.slice");
    CHECK_FALSE(tree.value().truncated);

    auto bounded = cgroup::walk(t.root.string(), 2);
    REQUIRE(bounded.ok());
    CHECK(bounded.value().truncated);
    CHECK(bounded.value().directories == 2);

    CHECK_FALSE(cgroup::walk((t.root / "missing").string()).ok());
}

TEST_CASE("resolver: a miss walks, at most once per interval, refresh forgets removed ids", "[cgroup]")
{
    Tree t;
    const auto a = t.make("a.slice/a.service");
    cgroup::Resolver resolver(t.root.string(), {1000, 100});

    const std::string* path = resolver.resolve(a, 0);
    REQUIRE(path != nullptr);
    CHECK(*path == "a.slice/a.service");
    CHECK(resolver.stats().walks == 1);
    CHECK(resolver.resolve(a, 10) != nullptr);
    CHECK(resolver.stats().walks == 1); // a hit: no walk

    // A cgroup made after the walk: the miss within the interval does not walk again.
    const auto b = t.make("b.slice/b.service");
    CHECK(resolver.resolve(b, 500) == nullptr);
    CHECK(resolver.stats().walks == 1);
    CHECK(resolver.stats().unresolved == 1);
    const std::string* found = resolver.resolve(b, 1000);
    REQUIRE(found != nullptr);
    CHECK(*found == "b.slice/b.service");
    CHECK(resolver.stats().walks == 2);

    // Removal: the refresh forgets it and says so through the generation.
    const auto generation = resolver.generation();
    fs::remove(t.root / "a.slice/a.service");
    CHECK(resolver.refresh(2000));
    CHECK(resolver.generation() == generation + 1);
    CHECK(resolver.resolve(a, 2500) == nullptr);
    CHECK(resolver.stats().unresolved == 2);
    CHECK_FALSE(resolver.refresh(4000)); // nothing removed since
    CHECK(resolver.generation() == generation + 1);
}

TEST_CASE("resolver: prefetch walks on a miss like resolve, but counts nothing unresolved", "[cgroup]")
{
    Tree t;
    cgroup::Resolver resolver(t.root.string(), {1000, 100});
    resolver.prefetch(12345, 0); // no such id: walks, not counted
    CHECK(resolver.stats().walks == 1);
    CHECK(resolver.stats().unresolved == 0);
    CHECK(resolver.resolve(12345, 10) == nullptr); // the lookup that counts, once
    CHECK(resolver.stats().unresolved == 1);

    const auto c = t.make("c.slice/c.service");
    resolver.prefetch(c, 1000); // the interval passed: walks and names it
    CHECK(resolver.stats().walks == 2);
    const std::string* found = resolver.resolve(c, 1001);
    REQUIRE(found != nullptr);
    CHECK(*found == "c.slice/c.service");
    CHECK(resolver.stats().walks == 2); // the resolve after it is a hit
}

TEST_CASE("resolver: no mount resolves nothing and never walks", "[cgroup]")
{
    cgroup::Resolver resolver("");
    CHECK(resolver.resolve(1, 0) == nullptr);
    CHECK(resolver.resolve(1, 5'000'000'000) == nullptr);
    CHECK(resolver.stats().walks == 0);
    CHECK(resolver.stats().unresolved == 2);
}

} // namespace
