// Walking rtnetlink attributes, shared by the modules that parse rtnetlink answers.
#pragma once

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cstddef>

namespace flowlat::netlink {

// Calls visit(type, payload, payload_size) for each rtattr in [data, data + length).
template <typename Visit>
void for_each_attribute(const void* data, std::size_t length, Visit visit)
{
    auto* attribute = static_cast<const rtattr*>(data);
    auto left = static_cast<int>(length);
    for (; RTA_OK(attribute, left); attribute = RTA_NEXT(attribute, left))
        visit(attribute->rta_type & NLA_TYPE_MASK, RTA_DATA(attribute), RTA_PAYLOAD(attribute));
}

} // namespace flowlat::netlink
