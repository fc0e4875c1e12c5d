// An address prefix (10.0.0.0/8, fd00::/8): the one place that masks addresses and
// tests containment, for the config's peer groups and the label policy's folding.
#pragma once

#include "flow/handshake_event.hpp"

#include <compare>
#include <cstdint>
#include <string>

namespace flowlat {

// The width of the family's addresses in bits: 32 or 128.
std::uint8_t family_bits(Family family);

// `address` with every bit past the first `length` cleared; a length past the family's
// width keeps every bit.
IpAddress mask_address(Family family, const IpAddress& address, std::uint8_t length);

struct Prefix {
    Family family{Family::ipv4};
    IpAddress address{}; // normally masked to length; masked() says whether it is
    std::uint8_t length{0};

    // The same prefix with its host bits cleared.
    Prefix masked() const { return Prefix{family, mask_address(family, address, length), length}; }
    // False for another family (an IPv4 prefix never contains an IPv4-mapped IPv6
    // address) and for a length past the family's width. Host bits of `address` are ignored.
    bool contains(Family f, const IpAddress& a) const;
    // One contains the other (the same family, and the shorter one covers the longer).
    bool overlaps(const Prefix& other) const;
    std::string to_string() const; // "10.0.0.0/8"

    friend bool operator==(const Prefix&, const Prefix&) = default;
    // Family, then address (numerically: bytes are in network order), then length; so the
    // prefixes inside a prefix P sort right after it, before the next address past P.
    friend auto operator<=>(const Prefix&, const Prefix&) = default;
};

} // namespace flowlat
