// A fluent builder for the frames the BPF table tests and the benchmarks feed to BPF_PROG_TEST_RUN:
// Ethernet [+ up to two 802.1Q/802.1ad tags] + IPv4 [options, fragment fields] or
// IPv6 [hop-by-hop, routing, destination options, fragment] + TCP, UDP, or anything else.
// Setters may be called in any order; build() lays the layers out. Fields hold host
// byte order; build() writes network order and fills in lengths and checksums.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flowlat::test {

using Bytes = std::vector<std::uint8_t>;

// Only documentation ranges are accepted: 198.18.0.0/15 (RFC 2544) and fd00::/8 (RFC 4193).
struct Address {
    bool ipv6{false};
    std::array<std::uint8_t, 16> bytes{}; // IPv4 in the first four, network order

    static Address parse(std::string_view text); // throws std::invalid_argument
    static Address ipv4(std::uint32_t host_order); // 198.18.0.1 is 0xc6120001; throws likewise
    std::string text() const;
};

namespace ethertype {
inline constexpr std::uint16_t ipv4 = 0x0800;
inline constexpr std::uint16_t arp = 0x0806;
inline constexpr std::uint16_t vlan_8021q = 0x8100;
inline constexpr std::uint16_t vlan_8021ad = 0x88a8;
inline constexpr std::uint16_t ipv6 = 0x86dd;
} // namespace ethertype

namespace tcp_flag {
inline constexpr std::uint8_t fin = 0x01;
inline constexpr std::uint8_t syn = 0x02;
inline constexpr std::uint8_t rst = 0x04;
inline constexpr std::uint8_t psh = 0x08;
inline constexpr std::uint8_t ack = 0x10;
inline constexpr std::uint8_t urg = 0x20;
inline constexpr std::uint8_t ece = 0x40;
inline constexpr std::uint8_t cwr = 0x80;
} // namespace tcp_flag

// Where a layer starts, for truncate_at().
enum class Layer { ethernet, network, transport, payload };

struct Packet {
    Bytes bytes;
    std::size_t network_offset{0};   // first byte after the Ethernet header and tags
    std::size_t transport_offset{0}; // first byte after IP and its extension headers
    std::string summary;             // one line for test failure messages
};

class PacketBuilder {
public:
    // Link layer. Tags are written outermost first; tpid is ethertype::vlan_8021q or _8021ad.
    PacketBuilder& vlan(std::uint16_t tpid, std::uint16_t vlan_id);
    // A frame that is not IP: this ethertype, then the payload.
    PacketBuilder& ethertype(std::uint16_t type);

    // Network layer; the family follows the addresses.
    PacketBuilder& ip(const Address& source, const Address& destination);
    PacketBuilder& ipv4_options(Bytes options); // padded with EOL to a multiple of four
    PacketBuilder& ipv4_ihl(std::uint8_t words); // overrides the computed IHL (malformed frames)
    PacketBuilder& ipv4_fragment(std::uint16_t offset_8_bytes, bool more_fragments);
    PacketBuilder& ipv6_hop_by_hop(std::uint8_t extra_8_byte_units = 0);
    PacketBuilder& ipv6_routing();
    PacketBuilder& ipv6_destination_options(std::uint8_t extra_8_byte_units = 0);
    PacketBuilder& ipv6_fragment(std::uint16_t offset_8_bytes, bool more_fragments);
    PacketBuilder& ip_protocol(std::uint8_t protocol); // a transport the builder does not model

    // Transport layer.
    PacketBuilder& tcp(std::uint16_t source_port, std::uint16_t destination_port);
    PacketBuilder& udp(std::uint16_t source_port, std::uint16_t destination_port);
    PacketBuilder& flags(std::uint8_t tcp_flags); // tcp_flag::*, or-ed
    PacketBuilder& seq(std::uint32_t value);
    PacketBuilder& ack(std::uint32_t value);
    PacketBuilder& window(std::uint16_t value);
    PacketBuilder& nop();
    PacketBuilder& mss(std::uint16_t value);
    PacketBuilder& sack_permitted();
    PacketBuilder& window_scale(std::uint8_t shift);
    PacketBuilder& timestamp(std::uint32_t tsval, std::uint32_t tsecr);
    PacketBuilder& tcp_option(std::uint8_t kind, const Bytes& data); // kind, length, data
    // The options Linux puts on a SYN: MSS, SACK permitted, timestamps, NOP, window scale.
    PacketBuilder& linux_syn_options(std::uint32_t tsval, std::uint32_t tsecr = 0);
    PacketBuilder& tcp_data_offset(std::uint8_t words); // overrides the computed one

    PacketBuilder& payload(Bytes data);

    // Keeps the first `bytes_into_layer` bytes of `layer` and drops everything after.
    PacketBuilder& truncate_at(Layer layer, std::size_t bytes_into_layer);

    Packet build() const;

private:
    enum class Transport { none, tcp, udp, other };
    struct Ipv6Extension {
        std::uint8_t type;
        std::uint8_t extra_units;
        std::uint16_t fragment_offset;
        bool more_fragments;
    };

    struct VlanTag {
        std::uint16_t tpid;
        std::uint16_t id;
    };
    std::vector<VlanTag> tags_;
    std::optional<std::uint16_t> ethertype_;

    std::optional<Address> source_;
    std::optional<Address> destination_;
    Bytes ipv4_options_;
    std::optional<std::uint8_t> ipv4_ihl_;
    std::uint16_t fragment_offset_{0};
    bool more_fragments_{false};
    bool fragmented_{false};
    std::vector<Ipv6Extension> ipv6_extensions_;

    Transport transport_{Transport::none};
    std::uint8_t protocol_{0};
    std::uint16_t source_port_{0};
    std::uint16_t destination_port_{0};
    std::uint8_t flags_{0};
    std::uint32_t seq_{0};
    std::uint32_t ack_{0};
    std::uint16_t window_{64240};
    Bytes tcp_options_;
    std::optional<std::uint8_t> tcp_data_offset_;
    Bytes payload_;

    std::optional<std::pair<Layer, std::size_t>> truncation_;
};

} // namespace flowlat::test
