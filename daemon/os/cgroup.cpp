#include "os/cgroup.hpp"

#include "os/unique_fd.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

namespace flowlat::cgroup {

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(std::string_view field)
{
    std::string out;
    out.reserve(field.size());
    const auto octal = [](char c) { return c >= '0' && c <= '7'; };
    for (std::size_t i = 0; i < field.size(); ++i) {
        if (field[i] == '\\' && i + 3 < field.size() && octal(field[i + 1]) && octal(field[i + 2]) &&
            octal(field[i + 3])) {
            out += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0'));
            i += 3;
            continue;
        }
        out += field[i];
    }
    return out;
}

std::vector<std::string_view> split_fields(std::string_view line)
{
    std::vector<std::string_view> fields;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && line[i] == ' ') ++i;
        const std::size_t start = i;
        while (i < line.size() && line[i] != ' ') ++i;
        if (i > start) fields.push_back(line.substr(start, i - start));
    }
    return fields;
}

} // namespace

std::optional<std::string> find_cgroup2_mount(std::string_view mountinfo)
{
    while (!mountinfo.empty()) {
        const std::size_t end = mountinfo.find('\n');
        const std::string_view line = mountinfo.substr(0, end);
        mountinfo = end == std::string_view::npos ? std::string_view{} : mountinfo.substr(end + 1);
        // id parent major:minor root mount-point options [optional...] - fstype source super-options
        const auto fields = split_fields(line);
        std::size_t dash = 6;
        while (dash < fields.size() && fields[dash] != "-") ++dash;
        if (fields.size() < 5 || dash + 1 >= fields.size()) continue;
        if (fields[dash + 1] == "cgroup2") return unescape(fields[4]);
    }
    return std::nullopt;
}

Result<std::string> cgroup2_mount(const std::string& mountinfo_path)
{
    std::ifstream in(mountinfo_path);
    if (!in) return os_error("read " + mountinfo_path);
    std::stringstream text;
    text << in.rdbuf();
    if (auto mount = find_cgroup2_mount(text.str())) return std::move(*mount);
    return Error{"no cgroup2 file system is mounted (" + mountinfo_path + ")"};
}

Result<Tree> walk(const std::string& root, std::size_t max_directories)
{
    UniqueFd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root_fd.valid()) return os_error("open " + root);
    struct stat st{};
    if (::fstat(root_fd.get(), &st) != 0) return os_error("stat " + root);

    Tree tree;
    tree.paths.emplace(static_cast<std::uint64_t>(st.st_ino), std::string());
    struct Pending {
        std::string path; // relative to the root; "" is the root
        std::size_t depth;
    };
    std::vector<Pending> pending{{std::string(), 0}};
    while (!pending.empty()) {
        if (tree.directories >= max_directories) {
            tree.truncated = true;
            break;
        }
        Pending dir = std::move(pending.back());
        pending.pop_back();
        const int fd = dir.path.empty() ? ::dup(root_fd.get())
                                        : ::openat(root_fd.get(), dir.path.c_str(),
                                                   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) continue; // removed meanwhile
        DIR* stream = ::fdopendir(fd);
        if (stream == nullptr) {
            ::close(fd);
            continue;
        }
        ++tree.directories;
        while (const dirent* entry = ::readdir(stream)) {
            if (entry->d_type != DT_DIR) continue;
            const std::string_view name = entry->d_name;
            if (name == "." || name == "..") continue;
            std::string path = dir.path.empty() ? std::string(name) : dir.path + '/' + std::string(name);
            // kernfs reports the node id as d_ino, so no stat per directory is needed.
            tree.paths.emplace(static_cast<std::uint64_t>(entry->d_ino), path);
            if (dir.depth + 1 < kMaxDepth) {
                pending.push_back({std::move(path), dir.depth + 1});
            } else {
                tree.truncated = true;
            }
        }
        ::closedir(stream);
    }
    return tree;
}

Resolver::Resolver(std::string root, Options options) : root_(std::move(root)), options_(options) {}

bool Resolver::walk_now(std::uint64_t now_ns)
{
    last_walk_ns_ = now_ns;
    if (root_.empty()) return false;
    auto tree = walk(root_, options_.max_directories);
    if (!tree) {
        ++stats_.walk_errors;
        return false;
    }
    ++stats_.walks;
    bool forgot = false;
    for (const auto& [id, path] : paths_) {
        if (tree.value().paths.count(id) == 0) {
            forgot = true;
            break;
        }
    }
    paths_ = std::move(tree.value().paths);
    if (forgot) ++generation_;
    return forgot;
}

const std::string* Resolver::find_or_walk(std::uint64_t id, std::uint64_t now_ns)
{
    if (const auto it = paths_.find(id); it != paths_.end()) return &it->second;
    if (!last_walk_ns_ || now_ns - *last_walk_ns_ >= options_.min_walk_interval_ns) {
        walk_now(now_ns);
        if (const auto it = paths_.find(id); it != paths_.end()) return &it->second;
    }
    return nullptr;
}

const std::string* Resolver::resolve(std::uint64_t id, std::uint64_t now_ns)
{
    const std::string* found = find_or_walk(id, now_ns);
    if (found == nullptr) ++stats_.unresolved;
    return found;
}

void Resolver::prefetch(std::uint64_t id, std::uint64_t now_ns)
{
    find_or_walk(id, now_ns);
}

bool Resolver::refresh(std::uint64_t now_ns)
{
    return walk_now(now_ns);
}

ResolverStats Resolver::stats() const
{
    ResolverStats stats = stats_;
    stats.cached = paths_.size();
    return stats;
}

} // namespace flowlat::cgroup
