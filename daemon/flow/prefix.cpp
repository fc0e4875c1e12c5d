#include "flow/prefix.hpp"

#include <algorithm>
#include <cstring>

namespace flowlat {

std::uint8_t family_bits(Family family)
{
    return family == Family::ipv4 ? 32 : 128;
}

IpAddress mask_address(Family family, const IpAddress& address, std::uint8_t length)
{
    const std::size_t bits = std::min(length, family_bits(family));
    IpAddress masked{};
    const std::size_t full = bits / 8u;
    std::memcpy(masked.data(), address.data(), full);
    const unsigned rest = bits % 8u;
    if (rest != 0) masked[full] = static_cast<std::uint8_t>(address[full] & (0xffu << (8u - rest)));
    // An IPv4 address uses the first 4 bytes; the rest stays zero whatever the input held.
    return masked;
}

bool Prefix::contains(Family f, const IpAddress& a) const
{
    if (f != family || length > family_bits(family)) return false;
    return mask_address(family, a, length) == mask_address(family, address, length);
}

bool Prefix::overlaps(const Prefix& other) const
{
    return contains(other.family, other.address) || other.contains(family, address);
}

std::string Prefix::to_string() const
{
    return format_address(family, address) + "/" + std::to_string(length);
}

} // namespace flowlat
