// UTF-8 validity: Prometheus rejects a whole scrape for one label value that is not valid
// UTF-8, and JSON readers reject such strings, so text from the system (interface and
// cgroup names, paths) is made valid before it is exported.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace flowlat::utf8 {

// The length of the valid UTF-8 sequence that starts text, or 0 when it does not start one
// (overlong forms, surrogates and code points above U+10FFFF are invalid).
std::size_t sequence_length(std::string_view text);

// text with every byte that starts no valid sequence replaced by U+FFFD.
std::string valid(std::string_view text);

} // namespace flowlat::utf8
