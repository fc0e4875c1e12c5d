#include "packet_builder.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdexcept>
#include <utility>

namespace flowlat::test {

namespace {

constexpr std::size_t ipv4_header_bytes = 20;
constexpr std::size_t tcp_header_bytes = 20;
constexpr std::size_t udp_header_bytes = 8;

constexpr std::uint8_t tcpopt_eol = 0;
constexpr std::uint8_t tcpopt_nop = 1;
constexpr std::uint8_t tcpopt_mss = 2;
constexpr std::uint8_t tcpopt_window_scale = 3;
constexpr std::uint8_t tcpopt_sack_permitted = 4;
constexpr std::uint8_t tcpopt_timestamp = 8;

void put8(Bytes& out, unsigned value)
{
    out.push_back(static_cast<std::uint8_t>(value & 0xffu));
}

void put16(Bytes& out, unsigned value)
{
    put8(out, value >> 8);
    put8(out, value);
}

void put32(Bytes& out, std::uint32_t value)
{
    put16(out, value >> 16);
    put16(out, value & 0xffffu);
}

void patch16(Bytes& out, std::size_t at, unsigned value)
{
    out[at] = static_cast<std::uint8_t>((value >> 8) & 0xffu);
    out[at + 1] = static_cast<std::uint8_t>(value & 0xffu);
}

std::uint32_t sum16(const std::uint8_t* data, std::size_t size, std::uint32_t sum = 0)
{
    for (std::size_t i = 0; i + 1 < size; i += 2) sum += static_cast<std::uint32_t>(data[i] << 8 | data[i + 1]);
    if (size % 2 != 0) sum += static_cast<std::uint32_t>(data[size - 1] << 8);
    return sum;
}

std::uint16_t fold(std::uint32_t sum)
{
    while (sum >> 16) sum = (sum & 0xffffu) + (sum >> 16);
    return static_cast<std::uint16_t>(~sum & 0xffffu);
}

// PadN filling a hop-by-hop or destination options header to (1 + extra_units) * 8 bytes.
void put_padded_options(Bytes& out, std::uint8_t next_header, std::uint8_t extra_units)
{
    put8(out, next_header);
    put8(out, extra_units);
    const unsigned pad = 6u + 8u * extra_units;
    put8(out, 1); // PadN
    put8(out, pad - 2);
    for (unsigned i = 2; i < pad; ++i) put8(out, 0);
}

std::string flag_letters(std::uint8_t flags)
{
    std::string text;
    if (flags & tcp_flag::syn) text += 'S';
    if (flags & tcp_flag::fin) text += 'F';
    if (flags & tcp_flag::rst) text += 'R';
    if (flags & tcp_flag::psh) text += 'P';
    if (flags & tcp_flag::ack) text += '.';
    if (flags & tcp_flag::ece) text += 'E';
    if (flags & tcp_flag::cwr) text += 'W';
    return text.empty() ? "none" : text;
}

} // namespace

namespace {

Address checked_ipv4(const Address& address)
{
    if (address.bytes[0] != 198 || (address.bytes[1] & 0xfe) != 18)
        throw std::invalid_argument("test addresses must be in 198.18.0.0/15: " + address.text());
    return address;
}

} // namespace

Address Address::ipv4(std::uint32_t host_order)
{
    Address address;
    for (std::size_t i = 0; i < 4; ++i) address.bytes[i] = static_cast<std::uint8_t>(host_order >> (24 - 8 * i));
    return checked_ipv4(address);
}

Address Address::parse(std::string_view text)
{
    const std::string copy(text);
    Address address;
    if (inet_pton(AF_INET, copy.c_str(), address.bytes.data()) == 1) return checked_ipv4(address);
    if (inet_pton(AF_INET6, copy.c_str(), address.bytes.data()) == 1) {
        if (address.bytes[0] != 0xfd)
            throw std::invalid_argument("test addresses must be in fd00::/8: " + copy);
        address.ipv6 = true;
        return address;
    }
    throw std::invalid_argument("not an IP address: " + copy);
}

std::string Address::text() const
{
    char buffer[INET6_ADDRSTRLEN] = {};
    inet_ntop(ipv6 ? AF_INET6 : AF_INET, bytes.data(), buffer, sizeof(buffer));
    return buffer;
}

PacketBuilder& PacketBuilder::vlan(std::uint16_t tpid, std::uint16_t vlan_id)
{
    tags_.push_back({tpid, vlan_id});
    return *this;
}

PacketBuilder& PacketBuilder::ethertype(std::uint16_t type)
{
    ethertype_ = type;
    return *this;
}

PacketBuilder& PacketBuilder::ip(const Address& source, const Address& destination)
{
    if (source.ipv6 != destination.ipv6) throw std::invalid_argument("mixed address families");
    source_ = source;
    destination_ = destination;
    return *this;
}

PacketBuilder& PacketBuilder::ipv4_options(Bytes options)
{
    ipv4_options_ = std::move(options);
    while (ipv4_options_.size() % 4 != 0) ipv4_options_.push_back(0); // EOL
    if (ipv4_options_.size() > 40) throw std::invalid_argument("IPv4 options exceed 40 bytes");
    return *this;
}

PacketBuilder& PacketBuilder::ipv4_ihl(std::uint8_t words)
{
    ipv4_ihl_ = words;
    return *this;
}

PacketBuilder& PacketBuilder::ipv4_fragment(std::uint16_t offset_8_bytes, bool more_fragments)
{
    fragmented_ = true;
    fragment_offset_ = offset_8_bytes;
    more_fragments_ = more_fragments;
    return *this;
}

PacketBuilder& PacketBuilder::ipv6_hop_by_hop(std::uint8_t extra_8_byte_units)
{
    ipv6_extensions_.push_back({IPPROTO_HOPOPTS, extra_8_byte_units, 0, false});
    return *this;
}

PacketBuilder& PacketBuilder::ipv6_routing()
{
    ipv6_extensions_.push_back({IPPROTO_ROUTING, 0, 0, false});
    return *this;
}

PacketBuilder& PacketBuilder::ipv6_destination_options(std::uint8_t extra_8_byte_units)
{
    ipv6_extensions_.push_back({IPPROTO_DSTOPTS, extra_8_byte_units, 0, false});
    return *this;
}

PacketBuilder& PacketBuilder::ipv6_fragment(std::uint16_t offset_8_bytes, bool more_fragments)
{
    ipv6_extensions_.push_back({IPPROTO_FRAGMENT, 0, offset_8_bytes, more_fragments});
    return *this;
}

PacketBuilder& PacketBuilder::ip_protocol(std::uint8_t protocol)
{
    transport_ = Transport::other;
    protocol_ = protocol;
    return *this;
}

PacketBuilder& PacketBuilder::tcp(std::uint16_t source_port, std::uint16_t destination_port)
{
    transport_ = Transport::tcp;
    protocol_ = IPPROTO_TCP;
    source_port_ = source_port;
    destination_port_ = destination_port;
    return *this;
}

PacketBuilder& PacketBuilder::udp(std::uint16_t source_port, std::uint16_t destination_port)
{
    transport_ = Transport::udp;
    protocol_ = IPPROTO_UDP;
    source_port_ = source_port;
    destination_port_ = destination_port;
    return *this;
}

PacketBuilder& PacketBuilder::flags(std::uint8_t tcp_flags)
{
    flags_ = tcp_flags;
    return *this;
}

PacketBuilder& PacketBuilder::seq(std::uint32_t value)
{
    seq_ = value;
    return *this;
}

PacketBuilder& PacketBuilder::ack(std::uint32_t value)
{
    ack_ = value;
    return *this;
}

PacketBuilder& PacketBuilder::window(std::uint16_t value)
{
    window_ = value;
    return *this;
}

PacketBuilder& PacketBuilder::nop()
{
    put8(tcp_options_, tcpopt_nop);
    return *this;
}

PacketBuilder& PacketBuilder::mss(std::uint16_t value)
{
    return tcp_option(tcpopt_mss, {static_cast<std::uint8_t>(value >> 8), static_cast<std::uint8_t>(value & 0xff)});
}

PacketBuilder& PacketBuilder::sack_permitted()
{
    return tcp_option(tcpopt_sack_permitted, {});
}

PacketBuilder& PacketBuilder::window_scale(std::uint8_t shift)
{
    return tcp_option(tcpopt_window_scale, {shift});
}

PacketBuilder& PacketBuilder::timestamp(std::uint32_t tsval, std::uint32_t tsecr)
{
    Bytes data;
    put32(data, tsval);
    put32(data, tsecr);
    return tcp_option(tcpopt_timestamp, data);
}

PacketBuilder& PacketBuilder::tcp_option(std::uint8_t kind, const Bytes& data)
{
    put8(tcp_options_, kind);
    put8(tcp_options_, static_cast<unsigned>(data.size() + 2));
    tcp_options_.insert(tcp_options_.end(), data.begin(), data.end());
    return *this;
}

PacketBuilder& PacketBuilder::linux_syn_options(std::uint32_t tsval, std::uint32_t tsecr)
{
    return mss(1460).sack_permitted().timestamp(tsval, tsecr).nop().window_scale(7);
}

PacketBuilder& PacketBuilder::tcp_data_offset(std::uint8_t words)
{
    tcp_data_offset_ = words;
    return *this;
}

PacketBuilder& PacketBuilder::payload(Bytes data)
{
    payload_ = std::move(data);
    return *this;
}

PacketBuilder& PacketBuilder::truncate_at(Layer layer, std::size_t bytes_into_layer)
{
    truncation_ = std::make_pair(layer, bytes_into_layer);
    return *this;
}

Packet PacketBuilder::build() const
{
    Packet packet;
    Bytes& out = packet.bytes;

    // Ethernet: locally administered MACs, then the tags, then the payload's ethertype.
    for (unsigned byte : {0x02u, 0u, 0u, 0u, 0u, 0x02u}) put8(out, byte);
    for (unsigned byte : {0x02u, 0u, 0u, 0u, 0u, 0x01u}) put8(out, byte);
    for (const auto& tag : tags_) {
        put16(out, tag.tpid);
        put16(out, tag.id & 0x0fffu);
    }
    std::uint16_t type = 0;
    if (ethertype_) type = *ethertype_;
    else if (source_) type = source_->ipv6 ? ethertype::ipv6 : ethertype::ipv4;
    else throw std::logic_error("a frame needs ip() or ethertype()");
    put16(out, type);
    packet.network_offset = out.size();

    if (!source_) {
        out.insert(out.end(), payload_.begin(), payload_.end());
        packet.transport_offset = out.size();
        packet.summary = "ethertype " + std::to_string(type) + " len " + std::to_string(out.size());
    } else {
        // The transport segment first: the IP header carries its length.
        Bytes segment;
        std::size_t checksum_at = 0;
        bool has_checksum = false;
        if (transport_ == Transport::tcp) {
            Bytes options = tcp_options_;
            while (options.size() % 4 != 0) options.push_back(tcpopt_eol);
            if (options.size() > 40) throw std::invalid_argument("TCP options exceed 40 bytes");
            const unsigned words = tcp_data_offset_.value_or(
                static_cast<std::uint8_t>((tcp_header_bytes + options.size()) / 4));
            put16(segment, source_port_);
            put16(segment, destination_port_);
            put32(segment, seq_);
            put32(segment, ack_);
            put8(segment, words << 4);
            put8(segment, flags_);
            put16(segment, window_);
            checksum_at = segment.size();
            has_checksum = true;
            put16(segment, 0); // checksum
            put16(segment, 0); // urgent pointer
            segment.insert(segment.end(), options.begin(), options.end());
        } else if (transport_ == Transport::udp) {
            put16(segment, source_port_);
            put16(segment, destination_port_);
            put16(segment, static_cast<unsigned>(udp_header_bytes + payload_.size()));
            checksum_at = segment.size();
            has_checksum = true;
            put16(segment, 0);
        } else if (transport_ == Transport::none) {
            throw std::logic_error("an IP packet needs tcp(), udp() or ip_protocol()");
        }
        segment.insert(segment.end(), payload_.begin(), payload_.end());

        const Address& src = *source_;
        const Address& dst = *destination_;
        if (has_checksum) {
            // RFC 793/768 pseudo-header for IPv4, RFC 8200 section 8.1 for IPv6.
            Bytes pseudo;
            const std::size_t address_bytes = src.ipv6 ? 16 : 4;
            pseudo.insert(pseudo.end(), src.bytes.begin(), src.bytes.begin() + static_cast<long>(address_bytes));
            pseudo.insert(pseudo.end(), dst.bytes.begin(), dst.bytes.begin() + static_cast<long>(address_bytes));
            if (src.ipv6) {
                put32(pseudo, static_cast<std::uint32_t>(segment.size()));
                put32(pseudo, protocol_);
            } else {
                put8(pseudo, 0);
                put8(pseudo, protocol_);
                put16(pseudo, static_cast<unsigned>(segment.size()));
            }
            const std::uint32_t partial = sum16(pseudo.data(), pseudo.size());
            std::uint16_t checksum = fold(sum16(segment.data(), segment.size(), partial));
            if (transport_ == Transport::udp && checksum == 0) checksum = 0xffff;
            patch16(segment, checksum_at, checksum);
        }

        if (!src.ipv6) {
            const std::size_t header_bytes = ipv4_header_bytes + ipv4_options_.size();
            const unsigned ihl = ipv4_ihl_.value_or(static_cast<std::uint8_t>(header_bytes / 4));
            const std::size_t start = out.size();
            put8(out, 0x40u | (ihl & 0x0fu));
            put8(out, 0); // DSCP/ECN
            put16(out, static_cast<unsigned>(header_bytes + segment.size()));
            put16(out, 0x1234); // identification
            put16(out, fragmented_ ? (fragment_offset_ & 0x1fffu) | (more_fragments_ ? 0x2000u : 0u)
                                   : 0x4000u); // DF when not fragmented
            put8(out, 64);
            put8(out, protocol_);
            put16(out, 0);
            out.insert(out.end(), src.bytes.begin(), src.bytes.begin() + 4);
            out.insert(out.end(), dst.bytes.begin(), dst.bytes.begin() + 4);
            out.insert(out.end(), ipv4_options_.begin(), ipv4_options_.end());
            patch16(out, start + 10, fold(sum16(out.data() + start, header_bytes)));
        } else {
            Bytes extensions;
            for (std::size_t i = 0; i < ipv6_extensions_.size(); ++i) {
                const auto& ext = ipv6_extensions_[i];
                const std::uint8_t next = i + 1 < ipv6_extensions_.size() ? ipv6_extensions_[i + 1].type : protocol_;
                if (ext.type == IPPROTO_HOPOPTS || ext.type == IPPROTO_DSTOPTS) {
                    put_padded_options(extensions, next, ext.extra_units);
                } else if (ext.type == IPPROTO_ROUTING) {
                    // A segment routing header (RFC 8754) listing one segment, already reached.
                    put8(extensions, next);
                    put8(extensions, 2); // (2 + 1) * 8 = 24 bytes
                    put8(extensions, 4); // routing type: SRH
                    put8(extensions, 0); // segments left
                    put8(extensions, 0); // last entry
                    put8(extensions, 0); // flags
                    put16(extensions, 0); // tag
                    extensions.insert(extensions.end(), dst.bytes.begin(), dst.bytes.end());
                } else {
                    put8(extensions, next);
                    put8(extensions, 0);
                    put16(extensions, static_cast<unsigned>(ext.fragment_offset << 3) | (ext.more_fragments ? 1u : 0u));
                    put32(extensions, 0x12345678);
                }
            }
            put32(out, 0x60000000u);
            put16(out, static_cast<unsigned>(extensions.size() + segment.size()));
            put8(out, ipv6_extensions_.empty() ? protocol_ : ipv6_extensions_.front().type);
            put8(out, 64);
            out.insert(out.end(), src.bytes.begin(), src.bytes.end());
            out.insert(out.end(), dst.bytes.begin(), dst.bytes.end());
            out.insert(out.end(), extensions.begin(), extensions.end());
        }
        packet.transport_offset = out.size();
        out.insert(out.end(), segment.begin(), segment.end());

        packet.summary = (src.ipv6 ? "IPv6 [" + src.text() + "]:" : "IPv4 " + src.text() + ":") +
                         std::to_string(source_port_) + " > " +
                         (src.ipv6 ? "[" + dst.text() + "]:" : dst.text() + ":") +
                         std::to_string(destination_port_) + " proto " + std::to_string(protocol_);
        if (transport_ == Transport::tcp)
            packet.summary += " [" + flag_letters(flags_) + "] seq " + std::to_string(seq_) + " ack " +
                              std::to_string(ack_);
        packet.summary += " len " + std::to_string(out.size());
    }

    if (truncation_) {
        std::size_t start = 0;
        switch (truncation_->first) {
        case Layer::ethernet: start = 0; break;
        case Layer::network: start = packet.network_offset; break;
        case Layer::transport: start = packet.transport_offset; break;
        case Layer::payload: start = out.size() - payload_.size(); break;
        }
        const std::size_t keep = start + truncation_->second;
        if (keep > out.size()) throw std::logic_error("truncate_at() beyond the end of the frame");
        out.resize(keep);
        packet.summary += ", truncated to " + std::to_string(keep);
    }
    return packet;
}

} // namespace flowlat::test
