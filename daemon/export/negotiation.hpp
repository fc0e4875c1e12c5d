// Which exposition format a scraper gets, from its Accept header, the way client_golang's
// expfmt.NegotiateIncludingOpenMetrics chooses: media ranges by falling weight, the first that
// names a format flowlatd writes wins, and the text format 0.0.4 is the default.
#pragma once

#include <string_view>

namespace flowlat::exposition {

enum class Format {
    text,        // text/plain; version=0.0.4
    openmetrics, // application/openmetrics-text; version=1.0.0
    protobuf,    // application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited
};

Format negotiate(std::string_view accept);
// The Content-Type header of a response in `format`.
const char* content_type(Format format);
std::string_view to_string(Format format);

} // namespace flowlat::exposition
