#include "export/negotiation.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>
#include <vector>

namespace flowlat::exposition {

namespace {

std::string_view trim(std::string_view text)
{
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
    return text;
}

bool iequals(std::string_view a, std::string_view b)
{
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

struct MediaRange {
    std::string_view type;
    std::string_view version, proto, encoding;
    double q{1};
    bool bad_q{false};
};

MediaRange parse_range(std::string_view item)
{
    MediaRange range;
    std::size_t semi = item.find(';');
    range.type = trim(item.substr(0, semi));
    while (semi != std::string_view::npos) {
        item.remove_prefix(semi + 1);
        semi = item.find(';');
        const std::string_view param = trim(item.substr(0, semi));
        const auto eq = param.find('=');
        if (eq == std::string_view::npos) continue;
        const std::string_view key = trim(param.substr(0, eq));
        std::string_view value = trim(param.substr(eq + 1));
        if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
        if (iequals(key, "version")) {
            range.version = value;
        } else if (iequals(key, "proto")) {
            range.proto = value;
        } else if (iequals(key, "encoding")) {
            range.encoding = value;
        } else if (iequals(key, "q")) {
            // Weights are 0 to 1 with up to three decimals (RFC 9110); anything else is ignored.
            const std::string text(value);
            char* end = nullptr;
            const double q = std::strtod(text.c_str(), &end);
            if (end == text.c_str() || *end != '\0' || !(q >= 0 && q <= 1)) {
                range.bad_q = true;
            } else {
                range.q = q;
            }
        }
    }
    return range;
}

// The format a media range names, or false when flowlatd writes nothing it accepts.
bool format_of(const MediaRange& range, Format& format)
{
    if (iequals(range.type, "application/vnd.google.protobuf")) {
        if (range.proto != "io.prometheus.client.MetricFamily" || range.encoding != "delimited") return false;
        format = Format::protobuf;
        return true;
    }
    if (iequals(range.type, "application/openmetrics-text")) {
        if (!range.version.empty() && range.version != "1.0.0") return false;
        format = Format::openmetrics;
        return true;
    }
    if (iequals(range.type, "text/plain")) {
        if (!range.version.empty() && range.version != "0.0.4") return false;
        format = Format::text;
        return true;
    }
    return false;
}

} // namespace

Format negotiate(std::string_view accept)
{
    std::vector<MediaRange> ranges;
    std::size_t start = 0;
    while (start <= accept.size()) {
        const auto comma = std::min(accept.find(',', start), accept.size());
        const auto item = trim(accept.substr(start, comma - start));
        start = comma + 1;
        if (item.empty()) continue;
        MediaRange range = parse_range(item);
        if (!range.bad_q && range.q > 0) ranges.push_back(range);
    }
    // Stable: among equal weights the order of the header decides, as in client_golang.
    std::stable_sort(ranges.begin(), ranges.end(), [](const MediaRange& a, const MediaRange& b) { return a.q > b.q; });
    for (const auto& range : ranges) {
        Format format{};
        if (format_of(range, format)) return format;
    }
    return Format::text;
}

const char* content_type(Format format)
{
    switch (format) {
    case Format::openmetrics: return "application/openmetrics-text; version=1.0.0; charset=utf-8";
    case Format::protobuf:
        return "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";
    case Format::text: break;
    }
    return "text/plain; version=0.0.4; charset=utf-8";
}

std::string_view to_string(Format format)
{
    switch (format) {
    case Format::openmetrics: return "openmetrics";
    case Format::protobuf: return "protobuf";
    case Format::text: break;
    }
    return "text";
}

} // namespace flowlat::exposition
