// spdlog set-up: the journal when systemd gave us one (JOURNAL_STREAM), stderr otherwise.
#pragma once

#include <string_view>

namespace flowlat::logging {

void setup(std::string_view level);
void set_level(std::string_view level);

} // namespace flowlat::logging
