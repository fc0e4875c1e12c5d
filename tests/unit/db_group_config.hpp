// The configuration the aggregation and exposition tests share: one peer group, "db"
// (10.1.0.0/16), and every server port outside Linux's default ephemeral range labelled.
#pragma once

#include "config/config.hpp"

namespace flowlat::testing {

inline config::Config db_group_config()
{
    config::Config c;
    c.peer_groups = {{"db", {*config::parse_cidr("10.1.0.0/16")}}};
    c.ports.all_outside_ephemeral = true;
    c.ports.ephemeral_low = 32768;
    c.ports.ephemeral_high = 60999;
    return c;
}

} // namespace flowlat::testing
