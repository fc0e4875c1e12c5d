#include "export/process_metrics.hpp"

#include <dirent.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <fstream>
#include <limits>
#include <sstream>
#include <vector>

namespace flowlat::process {

namespace {

Result<std::string> read_file(const std::string& path)
{
    std::ifstream in(path);
    if (!in) return os_error("open " + path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

Error parse_error(const std::string& path, const std::string& what)
{
    return Error{"parse " + path + ": " + what, 0};
}

} // namespace

Result<ProcessMetrics> read_process_metrics(const std::string& self_dir, const std::string& proc_stat)
{
    ProcessMetrics metrics;
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    const double page_size = static_cast<double>(sysconf(_SC_PAGESIZE));

    // /proc/stat: "btime <seconds since epoch>".
    auto boot = read_file(proc_stat);
    if (!boot) return boot.error();
    double boot_time = 0;
    {
        std::istringstream lines(boot.value());
        std::string line;
        bool found = false;
        while (std::getline(lines, line)) {
            if (line.rfind("btime ", 0) == 0) {
                boot_time = std::stod(line.substr(6));
                found = true;
                break;
            }
        }
        if (!found) return parse_error(proc_stat, "no btime line");
    }

    // <self>/stat: the command name may contain spaces and ')', so fields are counted
    // from the last ')'. Field 3 (state) is the first after it.
    const std::string stat_path = self_dir + "/stat";
    auto stat = read_file(stat_path);
    if (!stat) return stat.error();
    {
        const auto close = stat.value().rfind(')');
        if (close == std::string::npos) return parse_error(stat_path, "no ')'");
        std::istringstream fields(stat.value().substr(close + 1));
        std::vector<std::string> field;
        for (std::string f; fields >> f;) field.push_back(f);
        // field[0] is field 3 of proc(5); utime 14, stime 15, starttime 22, vsize 23, rss 24.
        if (field.size() < 22) return parse_error(stat_path, "too few fields");
        try {
            const double utime = std::stod(field[14 - 3]);
            const double stime = std::stod(field[15 - 3]);
            metrics.cpu_seconds_total = (utime + stime) / ticks;
            metrics.start_time_seconds = boot_time + std::stod(field[22 - 3]) / ticks;
            metrics.virtual_memory_bytes = std::stod(field[23 - 3]);
            metrics.resident_memory_bytes = std::stod(field[24 - 3]) * page_size;
        } catch (const std::exception&) {
            return parse_error(stat_path, "bad number");
        }
    }

    // <self>/fd: one entry per open descriptor (the directory stream's own fd included,
    // as client_golang does).
    const std::string fd_path = self_dir + "/fd";
    DIR* dir = opendir(fd_path.c_str());
    if (dir == nullptr) return os_error("open " + fd_path);
    std::size_t fds = 0;
    while (const dirent* entry = readdir(dir)) {
        if (entry->d_name[0] != '.') ++fds;
    }
    closedir(dir);
    metrics.open_fds = static_cast<double>(fds);

    // <self>/limits: "Max open files  <soft>  <hard>  files".
    const std::string limits_path = self_dir + "/limits";
    auto limits = read_file(limits_path);
    if (!limits) return limits.error();
    {
        std::istringstream lines(limits.value());
        std::string line;
        bool found = false;
        while (std::getline(lines, line)) {
            if (line.rfind("Max open files", 0) != 0) continue;
            std::istringstream words(line.substr(14));
            std::string soft;
            words >> soft;
            if (soft == "unlimited") {
                metrics.max_fds = std::numeric_limits<double>::infinity();
            } else {
                try {
                    metrics.max_fds = std::stod(soft);
                } catch (const std::exception&) {
                    return parse_error(limits_path, "bad Max open files");
                }
            }
            found = true;
            break;
        }
        if (!found) return parse_error(limits_path, "no Max open files line");
    }
    return metrics;
}

} // namespace flowlat::process
