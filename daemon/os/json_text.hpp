// Text for a JSON string (and a logfmt quoted value, whose readers unquote the same escapes):
// quote, backslash and control characters escaped, valid UTF-8 kept, any other byte U+FFFD.
#pragma once

#include <string>
#include <string_view>

namespace flowlat::json {

// Appends the escaped text, without the surrounding quotes.
void append_json_escaped(std::string& out, std::string_view text);

std::string escaped(std::string_view text);

} // namespace flowlat::json
