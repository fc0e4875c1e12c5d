#include "os/systemd_sockets.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include <cstdlib>

namespace flowlat::systemd {

namespace {

std::string socket_address(int fd)
{
    sockaddr_storage storage{};
    socklen_t length = sizeof(storage);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) return "?";
    char text[INET6_ADDRSTRLEN] = {};
    if (storage.ss_family == AF_INET6) {
        const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&storage);
        inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
        std::string address = "["; // appended piecewise: GCC 12 -O3 -Wrestrict
        address += text;
        address += "]:";
        address += std::to_string(ntohs(v6->sin6_port));
        return address;
    }
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&storage);
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text));
    std::string address = text;
    address += ':';
    address += std::to_string(ntohs(v4->sin_port));
    return address;
}

} // namespace

Result<std::vector<ListenSocket>> take_listen_sockets()
{
    char** names = nullptr;
    const int count = sd_listen_fds_with_names(1, &names);
    std::vector<std::string> name_list;
    if (names != nullptr) {
        for (char** name = names; *name != nullptr; ++name) {
            name_list.emplace_back(*name);
            std::free(*name);
        }
        std::free(names);
    }
    if (count < 0) return Error{"--web.systemd-socket: cannot read the sockets passed by systemd", -count};
    if (count == 0)
        return Error{"--web.systemd-socket: systemd passed no socket (LISTEN_FDS is unset, or LISTEN_PID is not this "
                     "process): start flowlatd through its socket unit (flowlatd.socket) or drop the flag"};
    std::vector<ListenSocket> sockets;
    // Every passed fd is owned from here on, including any that is refused below.
    for (int i = 0; i < count; ++i) {
        ListenSocket socket;
        socket.fd = UniqueFd(SD_LISTEN_FDS_START + i);
        socket.name = static_cast<std::size_t>(i) < name_list.size() ? name_list[static_cast<std::size_t>(i)] : "unknown";
        sockets.push_back(std::move(socket));
    }
    for (auto& socket : sockets) {
        const int fd = socket.fd.get();
        const int inet = sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0);
        std::string what = "--web.systemd-socket: fd "; // appended piecewise: GCC 12 -O3 -Wrestrict
        what += std::to_string(fd);
        what += " (";
        what += socket.name;
        what += ')';
        if (inet < 0) return Error{what, -inet};
        if (inet == 0)
            return Error{what + " is not a listening TCP socket (the socket unit needs ListenStream=[ADDRESS:]PORT)"};
        socket.address = socket_address(fd);
    }
    return sockets;
}

} // namespace flowlat::systemd
