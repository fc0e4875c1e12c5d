// The configuration file: strict YAML into a validated Config, or every problem in the file
// as file:line:column: key: message.
#pragma once

#include "config/config.hpp"

#include <string>

namespace flowlat::config {

// Both collect every problem in the file, sorted by position, rather than stopping at the
// first. Keys that are absent (or sections and lists left empty, `key:`) keep their
// defaults; the ephemeral range defaults to system_ephemeral_range(). Both run in bounded
// time and memory: peer groups may hold at most kMaxPeerCidrs CIDRs, counted after alias
// expansion, and the parser stops walking them past that.
ParseResult parse_config_text(const std::string& text, const std::string& file_name);
// Reads only a regular file of at most kMaxConfigFileBytes: a FIFO, socket or device is
// refused at once (it is opened without blocking and never read).
ParseResult load_config_file(const std::string& path);

} // namespace flowlat::config
