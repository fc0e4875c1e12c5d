#include "export/status_page.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <iterator>
#include <limits>
#include <numeric>

namespace flowlat::status {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The page renders every label of the label set, in kLabelNames order, so a label added to
// the set appears as a column by itself. LabelValues has named fields, though: one added
// there must be listed here too, which this assertion makes a build error, not a silent gap.
static_assert(std::size(labels::kLabelNames) == 6, "list the new label of LabelValues in label_list()");
std::vector<std::string> label_list(const labels::LabelValues& v)
{
    return {v.interface, v.direction, v.family, v.peer, v.port, v.workload};
}

// The workload label exists only with `workload` set; without it the page has no such column.
std::size_t label_columns(const std::vector<Row>& rows)
{
    const bool any_workload = std::any_of(rows.begin(), rows.end(), [](const Row& row) {
        return !row.labels.back().empty();
    });
    return std::size(labels::kLabelNames) - (any_workload ? 0 : 1);
}

std::string number(double value, const char* format)
{
    char text[64];
    std::snprintf(text, sizeof(text), format, value);
    return text;
}

// RTT for people: ms with three significant digits ("0.412 ms", "12.3 ms", "1,230 ms").
std::string milliseconds(double seconds)
{
    if (std::isnan(seconds)) return "&ndash;";
    const double ms = seconds * 1000;
    if (ms < 1) return number(ms, "%.3f ms");
    if (ms < 10) return number(ms, "%.2f ms");
    if (ms < 100) return number(ms, "%.1f ms");
    return number(ms, "%.0f ms");
}

std::string duration_text(double seconds)
{
    auto s = static_cast<std::uint64_t>(std::max(0.0, seconds));
    const std::uint64_t d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60;
    s %= 60;
    std::string out;
    if (d > 0) out += std::to_string(d) + "d ";
    if (d > 0 || h > 0) out += std::to_string(h) + "h ";
    if (d > 0 || h > 0 || m > 0) out += std::to_string(m) + "m ";
    out += std::to_string(s) + "s";
    return out;
}

std::string utc_text(double unix_seconds)
{
    const auto t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char text[32];
    std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S UTC", &tm);
    return text;
}

// A sort key's value for a row; labels compare as text, the rest as numbers.
bool is_label(std::string_view key)
{
    return std::any_of(std::begin(labels::kLabelNames), std::end(labels::kLabelNames),
                       [&](const char* name) { return key == name; });
}

constexpr const char* kNumericKeys[] = {"rate",      "completed",   "refused", "timeout", "unreachable",
                                        "overflows", "retransmits", "p50",     "p90",     "p99"};

double numeric_key(const Row& row, std::string_view key)
{
    using aggregation::SeriesCounters;
    if (key == "rate") return row.rate;
    if (key == "completed") return static_cast<double>(row.counters.handshakes[static_cast<std::size_t>(Outcome::completed)]);
    if (key == "refused") return static_cast<double>(row.counters.handshakes[static_cast<std::size_t>(Outcome::refused)]);
    if (key == "timeout") return static_cast<double>(row.counters.handshakes[static_cast<std::size_t>(Outcome::timeout)]);
    if (key == "unreachable")
        return static_cast<double>(row.counters.handshakes[static_cast<std::size_t>(Outcome::unreachable)]);
    if (key == "overflows")
        return static_cast<double>(row.counters.handshakes[static_cast<std::size_t>(Outcome::accept_overflow)]);
    if (key == "retransmits") return static_cast<double>(row.counters.syn_retransmits);
    if (key == "p50") return row.p50;
    if (key == "p90") return row.p90;
    return row.p99;
}

std::string query_link(std::string_view sort, bool ascending, std::size_t limit)
{
    std::string link = "?sort="; // appended piecewise: GCC 12 -O3 -Wrestrict
    link += sort;
    link += "&amp;order=";
    link += ascending ? "asc" : "desc";
    if (limit != Query{}.limit) {
        link += "&amp;limit=";
        link += std::to_string(limit);
    }
    return link;
}

} // namespace

double estimate_quantile(double q, std::span<const double> bounds, std::span<const std::uint64_t> counts)
{
    const std::uint64_t total = std::accumulate(counts.begin(), counts.end(), std::uint64_t{0});
    if (total == 0 || counts.size() != bounds.size() + 1) return kNaN;
    q = std::clamp(q, 0.0, 1.0);
    const double rank = q * static_cast<double>(total);
    std::uint64_t below = 0;
    for (std::size_t i = 0; i < counts.size(); ++i) {
        const std::uint64_t upto = below + counts[i];
        if (static_cast<double>(upto) >= rank && counts[i] > 0) {
            if (i == bounds.size()) return bounds.empty() ? kNaN : bounds.back();
            const double lower = i == 0 ? 0.0 : bounds[i - 1];
            const double upper = bounds[i];
            if (i == 0 && upper <= 0) return upper;
            return lower + (upper - lower) * (rank - static_cast<double>(below)) / static_cast<double>(counts[i]);
        }
        below = upto;
    }
    return bounds.empty() ? kNaN : bounds.back();
}

void History::record(const aggregation::Snapshot& snapshot, double now_seconds)
{
    const std::size_t width = snapshot.bounds.size() + 1;
    std::lock_guard lock(mutex_);
    const double interval = last_seconds_ < 0 ? 0 : now_seconds - last_seconds_;
    last_seconds_ = now_seconds;
    if (interval > 0) {
        seconds_[seconds_next_] = interval;
        seconds_next_ = (seconds_next_ + 1) % kIntervals;
    }
    // Counts per interval are stored in 32 bits: 4 billion handshakes in 5 s is far off.
    auto narrow = [](std::uint64_t v) {
        return static_cast<std::uint32_t>(std::min<std::uint64_t>(v, std::numeric_limits<std::uint32_t>::max()));
    };
    std::unordered_map<labels::SeriesKey, Entry, labels::SeriesKeyHash> next;
    next.reserve(snapshot.series.size());
    std::vector<std::uint64_t> delta(width);
    for (std::size_t i = 0; i < snapshot.series.size(); ++i) {
        const auto buckets = snapshot.rtt_buckets(i);
        const auto& key = snapshot.series[i].key;
        auto found = entries_.find(key);
        Entry entry;
        const bool fresh = found == entries_.end() || found->second.rtt_buckets.size() != width;
        if (!fresh) entry = std::move(found->second);
        if (fresh) entry.rtt_buckets.assign(width, 0);
        const auto& outcomes = snapshot.series[i].handshakes;
        // Every outcome, but not accept overflows: each is a handshake already counted completed.
        const std::uint64_t handshakes = std::accumulate(
            outcomes.begin(), outcomes.begin() + static_cast<std::ptrdiff_t>(Outcome::accept_overflow), std::uint64_t{0});
        const std::uint64_t new_handshakes = handshakes >= entry.handshakes ? handshakes - entry.handshakes : 0;
        entry.handshakes = handshakes;
        std::uint64_t samples = 0;
        for (std::size_t b = 0; b < width; ++b) {
            // A series that was merged or moved can go down: count that interval as empty.
            delta[b] = buckets[b] >= entry.rtt_buckets[b] ? buckets[b] - entry.rtt_buckets[b] : 0;
            samples += delta[b];
            entry.rtt_buckets[b] = buckets[b];
        }
        // A series first seen now was created during the interval that just ended, so all
        // its counts belong to it; at the very first call no interval has been timed yet.
        if (interval > 0) {
            entry.p50[entry.next] = static_cast<float>(estimate_quantile(0.5, snapshot.bounds, delta));
            entry.samples[entry.next] = narrow(samples);
            entry.handshake_counts[entry.next] = narrow(new_handshakes);
            entry.next = (entry.next + 1) % kIntervals;
            entry.filled = std::min(entry.filled + 1, kIntervals);
        }
        next.emplace(key, std::move(entry));
    }
    entries_ = std::move(next);
}

History::Copy History::copy() const
{
    std::lock_guard lock(mutex_);
    Copy out;
    out.reserve(entries_.size());
    for (const auto& [key, entry] : entries_) {
        Recent recent;
        recent.p50.reserve(entry.filled);
        recent.samples.reserve(entry.filled);
        recent.handshakes.reserve(entry.filled);
        for (std::size_t k = 0; k < entry.filled; ++k) {
            const std::size_t at = (entry.next + kIntervals - entry.filled + k) % kIntervals;
            recent.p50.push_back(static_cast<double>(entry.p50[at]));
            recent.samples.push_back(entry.samples[at]);
            recent.handshakes.push_back(entry.handshake_counts[at]);
            recent.seconds += seconds_[(seconds_next_ + kIntervals - entry.filled + k) % kIntervals];
        }
        out.emplace(key, std::move(recent));
    }
    return out;
}

Query parse_query(std::string_view query_string)
{
    Query query;
    while (!query_string.empty()) {
        const auto amp = std::min(query_string.find('&'), query_string.size());
        const auto item = query_string.substr(0, amp);
        query_string.remove_prefix(std::min(amp + 1, query_string.size()));
        const auto eq = item.find('=');
        if (eq == std::string_view::npos) continue;
        const auto name = item.substr(0, eq);
        const auto value = item.substr(eq + 1);
        if (name == "sort") {
            const bool known = is_label(value) || std::any_of(std::begin(kNumericKeys), std::end(kNumericKeys),
                                                              [&](const char* k) { return value == k; });
            if (known) query.sort = std::string(value); // anything else keeps the default
        } else if (name == "order") {
            if (value == "asc") query.ascending = true;
            if (value == "desc") query.ascending = false;
        } else if (name == "limit") {
            std::size_t limit = 0;
            const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), limit);
            if (ec == std::errc{} && end == value.data() + value.size()) query.limit = limit;
        }
    }
    return query;
}

std::vector<Row> build_rows(const aggregation::Snapshot& snapshot,
                            const std::unordered_map<std::uint32_t, std::string>& interfaces,
                            const History::Copy& history, const Query& query)
{
    const std::size_t width = snapshot.bounds.size() + 1;
    std::vector<Row> rows;
    rows.reserve(snapshot.series.size());
    for (std::size_t i = 0; i < snapshot.series.size(); ++i) {
        Row row;
        row.labels = label_list(labels::render_labels(snapshot.series[i].key, snapshot.group_names, interfaces, snapshot.workload_names));
        row.counters = snapshot.series[i];
        const auto buckets = snapshot.rtt_buckets(i);
        row.rtt_buckets.assign(buckets.begin(), buckets.end());
        if (auto found = history.find(snapshot.series[i].key); found != history.end()) row.recent = &found->second;
        rows.push_back(std::move(row));
    }
    // Series that render to one label set (an interface re-created) are one row, as on /metrics.
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.labels < b.labels; });
    std::vector<Row> merged;
    merged.reserve(rows.size());
    for (auto& row : rows) {
        if (!merged.empty() && merged.back().labels == row.labels) {
            Row& into = merged.back();
            into.counters.add(row.counters);
            for (std::size_t b = 0; b < width; ++b) into.rtt_buckets[b] += row.rtt_buckets[b];
            if (into.recent == nullptr) into.recent = row.recent;
            continue;
        }
        merged.push_back(std::move(row));
    }
    for (auto& row : merged) {
        row.p50 = estimate_quantile(0.50, snapshot.bounds, row.rtt_buckets);
        row.p90 = estimate_quantile(0.90, snapshot.bounds, row.rtt_buckets);
        row.p99 = estimate_quantile(0.99, snapshot.bounds, row.rtt_buckets);
        if (row.recent != nullptr && row.recent->seconds > 0) {
            const std::uint64_t recent =
                std::accumulate(row.recent->handshakes.begin(), row.recent->handshakes.end(), std::uint64_t{0});
            row.rate = static_cast<double>(recent) / row.recent->seconds;
        }
    }
    const auto label_at = std::find_if(std::begin(labels::kLabelNames), std::end(labels::kLabelNames),
                                       [&](const char* name) { return query.sort == name; });
    const std::size_t label_index = static_cast<std::size_t>(label_at - std::begin(labels::kLabelNames));
    const bool by_label = label_at != std::end(labels::kLabelNames);
    std::stable_sort(merged.begin(), merged.end(), [&](const Row& a, const Row& b) {
        if (by_label) {
            if (a.labels[label_index] == b.labels[label_index]) return false;
            return query.ascending ? a.labels[label_index] < b.labels[label_index]
                                   : a.labels[label_index] > b.labels[label_index];
        }
        const double x = numeric_key(a, query.sort), y = numeric_key(b, query.sort);
        // Rows without a value (no RTT sample) go last, in either order.
        if (std::isnan(x) || std::isnan(y)) return !std::isnan(x) && std::isnan(y);
        if (x == y) return false;
        return query.ascending ? x < y : x > y;
    });
    return merged;
}

std::string html_escape(std::string_view text)
{
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
        }
    }
    return out;
}

namespace {

// SVG coordinates are drawn in tenths of a pixel (the viewBox is 10x the size), so that
// every number written is an integer: to_chars, not printf, at ~200 numbers per row.
void append_int(std::string& out, long value)
{
    char text[24];
    const auto [end, ec] = std::to_chars(text, text + sizeof(text), value);
    out.append(text, end);
}

void svg_open(std::string& out, const char* cls, int width, int height, std::string_view title)
{
    out += "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"";
    out += cls;
    out += "\" width=\"";
    append_int(out, width);
    out += "\" height=\"";
    append_int(out, height);
    out += "\" viewBox=\"0 0 ";
    append_int(out, width * 10);
    out += ' ';
    append_int(out, height * 10);
    out += "\" role=\"img\"><title>";
    out += title;
    out += "</title>";
}

} // namespace

// The base line both SVG charts end with, and the end of the SVG.
static void close_with_axis(std::string& out, int width, int height)
{
    out += "<line x1=\"0\" y1=\"";
    append_int(out, height * 10);
    out += "\" x2=\"";
    append_int(out, width * 10);
    out += "\" y2=\"";
    append_int(out, height * 10);
    out += "\" class=\"axis\"/></svg>";
}

void histogram_svg(std::string& out, std::span<const double> bounds, std::span<const std::uint64_t> counts)
{
    constexpr int kWidth = 132, kHeight = 28;
    std::string title = "RTT per bucket";
    if (!bounds.empty()) title += ", " + milliseconds(bounds.front()) + " to " + milliseconds(bounds.back()) + " and above";
    svg_open(out, "hist", kWidth, kHeight, title);
    const std::size_t n = counts.size();
    const std::uint64_t top = n == 0 ? 0 : *std::max_element(counts.begin(), counts.end());
    if (top > 0) {
        const long bar = kWidth * 10 / static_cast<long>(n);
        for (std::size_t i = 0; i < n; ++i) {
            if (counts[i] == 0) continue;
            const long h = std::max(10L, static_cast<long>((kHeight - 2) * 10 * counts[i] / top));
            out += "<rect x=\"";
            append_int(out, bar * static_cast<long>(i));
            out += "\" y=\"";
            append_int(out, kHeight * 10 - h);
            out += "\" width=\"";
            append_int(out, std::max(10L, bar - 10));
            out += "\" height=\"";
            append_int(out, h);
            out += "\"/>";
        }
    }
    close_with_axis(out, kWidth, kHeight);
}

void sparkline_svg(std::string& out, const std::vector<double>& values, std::size_t slots)
{
    slots = std::max(slots, values.size());
    // Right-aligned on `slots` positions, so every row's x axis is the same time span.
    const std::size_t first_slot = slots - values.size();
    constexpr int kWidth = 120, kHeight = 28;
    double top = 0;
    for (double v : values)
        if (!std::isnan(v)) top = std::max(top, v);
    svg_open(out, "spark", kWidth, kHeight, top > 0 ? "recent p50 RTT, up to " + milliseconds(top) : "recent p50 RTT");
    if (top > 0) {
        const long step = slots > 1 ? (kWidth - 4) * 10 / static_cast<long>(slots - 1) : 0;
        // One polyline per run of intervals with samples; an empty interval breaks the line.
        std::size_t i = 0;
        while (i < values.size()) {
            if (std::isnan(values[i])) {
                ++i;
                continue;
            }
            std::size_t end = i;
            while (end < values.size() && !std::isnan(values[end])) ++end;
            auto point = [&](std::size_t k, char between) {
                append_int(out, 20 + step * static_cast<long>(first_slot + k));
                out += between;
                append_int(out, static_cast<long>((kHeight - 2) * 10 - (kHeight - 4) * 10 * values[k] / top));
            };
            if (end - i == 1) { // a lone interval: a dot
                out += "<circle cx=\"";
                append_int(out, 20 + step * static_cast<long>(first_slot + i));
                out += "\" cy=\"";
                append_int(out, static_cast<long>((kHeight - 2) * 10 - (kHeight - 4) * 10 * values[i] / top));
                out += "\" r=\"20\"/>";
            } else {
                out += "<polyline points=\"";
                for (std::size_t k = i; k < end; ++k) {
                    if (k > i) out += ' ';
                    point(k, ',');
                }
                out += "\"/>";
            }
            i = end;
        }
    }
    close_with_axis(out, kWidth, kHeight);
}

std::string render_page(const PageInfo& info, const aggregation::Snapshot& snapshot,
                        const std::unordered_map<std::uint32_t, std::string>& interfaces,
                        const History::Copy& history, const Query& query)
{
    const std::vector<Row> rows = build_rows(snapshot, interfaces, history, query);
    const std::size_t shown = query.limit == 0 ? rows.size() : std::min(rows.size(), query.limit);
    const auto& op = info.operational;
    std::string h;
    h.reserve(16384 + shown * 2048);
    h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
         "<title>flowlatd status</title><style>\n"
         "body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222;background:#fff}"
         "h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin:1.2em 0 .4em}"
         "table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:middle}"
         "th{background:#f4f4f4;white-space:nowrap}th a{color:inherit}td.n{text-align:right;font-variant-numeric:tabular-nums}"
         ".bad{color:#b00020;font-weight:bold}.ok{color:#1b7d2b}.muted{color:#777}"
         "svg.hist rect{fill:#4a78b8}svg .axis{stroke:#999;stroke-width:10}svg.spark polyline{fill:none;stroke:#c05000;stroke-width:15}"
         "svg.spark circle{fill:#c05000}.grid{display:flex;flex-wrap:wrap;gap:2em}"
         "\n</style></head><body>\n";
    h += "<h1>flowlatd</h1>\n<p>TCP handshake latency exporter &middot; <a href=\"" + html_escape(info.telemetry_path) +
         "\">metrics</a> &middot; <a href=\"/healthz\">health</a></p>\n";

    h += "<div class=\"grid\"><section id=\"daemon\"><h2>Daemon</h2><table>\n";
    auto kv = [&](std::string_view key, const std::string& value_html, const char* id = nullptr) {
        h += "<tr><th>";
        h += key;
        h += "</th><td";
        if (id != nullptr) h += std::string(" id=\"") + id + "\"";
        h += ">" + value_html + "</td></tr>\n";
    };
    kv("version", html_escape(info.version), "version");
    kv("uptime", duration_text(info.uptime_seconds), "uptime");
    kv("health", info.health == "ok" ? "<span class=\"ok\">ok</span>"
                                     : "<span class=\"bad\">" + html_escape(info.health) + "</span>", "health");
    kv("configuration", html_escape(info.config_file), "config-file");
    std::string reload = op.config_reload_ok ? "<span class=\"ok\">succeeded</span>" : "<span class=\"bad\">FAILED</span>";
    reload += "; last success " + utc_text(op.config_reload_success_timestamp) + " (" +
              duration_text(info.now_unix_seconds - op.config_reload_success_timestamp) + " ago)";
    kv("last reload", reload, "reload");
    kv("flow table", std::to_string(op.flow_table_entries) + " of " + std::to_string(op.flow_table_size) +
                         " entries in use", "flow-table");
    kv("series", std::to_string(rows.size()) + " label sets (max_series " + std::to_string(info.max_series) + ")",
       "series-count");
    h += "</table></section>\n";

    h += "<section id=\"interfaces\"><h2>Interfaces</h2><table><tr><th>interface</th><th>state</th><th>attach mode</th>"
         "<th>healing</th></tr>\n";
    if (info.interfaces.empty())
        h += "<tr><td colspan=\"4\" class=\"bad\">probing no interface</td></tr>\n";
    for (const auto& iface : info.interfaces) {
        h += "<tr><td>" + html_escape(iface.name) + "</td><td>" +
             (iface.attached ? std::string("<span class=\"ok\">attached</span>")
                             : "<span class=\"bad\">not attached</span>" +
                                   (iface.problem.empty() ? std::string() : " " + html_escape(iface.problem))) +
             "</td><td>" + (iface.attached ? html_escape(iface.mode) : std::string("&ndash;")) + "</td><td>" +
             (iface.healing ? "<span class=\"bad\">retrying</span>" : std::string("no")) + "</td></tr>\n";
    }
    h += "</table></section>\n";

    // Every counter of the operational snapshot: a problem shows in red once it is non-zero.
    const std::pair<const char*, std::uint64_t> counters[] = {
        {"events lost (ring buffer full)", op.events_lost},
        {"flow table full", op.flow_table_full},
        {"flow table evictions (a SYN flood or scan)", op.flow_table_evictions},
        {"answers rejected (the host's stack drops them)", op.answers_rejected},
        {"packets malformed", op.packets_malformed},
        {"ring records malformed", op.events_malformed},
        {"handshakes abandoned", op.handshakes_abandoned},
        {"handshakes aborted", op.handshakes_aborted},
        {"series overflow (counted as peer=\"other\")", snapshot.series_overflow},
        {"workload ids unresolved", op.workload_unresolved},
    };
    h += "<section id=\"counters\"><h2>Probe counters</h2><table>\n";
    for (const auto& [name, value] : counters)
        h += "<tr><th>" + html_escape(name) + "</th><td class=\"n" + (value > 0 ? " bad" : "") + "\">" +
             std::to_string(value) + "</td></tr>\n";
    h += "</table></section></div>\n";

    h += "<section id=\"series\"><h2>Series</h2>\n<p>";
    h += std::to_string(shown) + " of " + std::to_string(rows.size()) +
         " label sets, by " + html_escape(query.sort) + (query.ascending ? " ascending" : " descending") +
         ". <a href=\"" + query_link("rate", false, query.limit) + "\">busiest</a> &middot; <a href=\"" +
         query_link("p99", false, query.limit) + "\">slowest</a>";
    if (shown < rows.size()) h += " &middot; <a href=\"" + query_link(query.sort, query.ascending, 0) + "\">show all</a>";
    double recent_seconds = 0;
    for (const auto& row : rows)
        if (row.recent != nullptr) recent_seconds = std::max(recent_seconds, row.recent->seconds);
    h += ". Rate: handshakes (every outcome) per second over the last " + duration_text(recent_seconds) +
         "; quantiles estimated from the buckets since start, as histogram_quantile() does.</p>\n";
    h += "<table id=\"series-table\"><thead><tr>";
    // A header links to its sort; the current one flips the order.
    auto header = [&](std::string_view key, std::string_view title, bool numeric) {
        const bool current = query.sort == key;
        const bool ascending = current ? !query.ascending : !numeric;
        h += "<th";
        if (current) h += std::string(" aria-sort=\"") + (query.ascending ? "ascending" : "descending") + "\"";
        h += "><a href=\"";
        h += query_link(key, ascending, query.limit);
        h += "\">";
        h += title;
        if (current) h += query.ascending ? " &#9650;" : " &#9660;";
        h += "</a></th>";
    };
    const std::size_t columns = label_columns(rows);
    for (std::size_t l = 0; l < columns; ++l) header(labels::kLabelNames[l], labels::kLabelNames[l], false);
    header("rate", "rate /s", true);
    header("completed", "completed", true);
    header("refused", "refused", true);
    header("timeout", "timeout", true);
    header("unreachable", "unreachable", true);
    header("overflows", "accept overflows", true);
    header("retransmits", "SYN retransmits", true);
    header("p50", "p50", true);
    header("p90", "p90", true);
    header("p99", "p99", true);
    h += "<th>RTT histogram</th><th>recent p50</th></tr></thead>\n<tbody>\n";
    for (std::size_t r = 0; r < shown; ++r) {
        const Row& row = rows[r];
        h += "<tr>";
        for (std::size_t l = 0; l < columns; ++l)
            h += std::string("<td class=\"l-") + labels::kLabelNames[l] + "\">" + html_escape(row.labels[l]) + "</td>";
        const auto& c = row.counters;
        h += "<td class=\"n\" data-v=\"" + number(row.rate, "%.6g") + "\">" + number(row.rate, "%.2f") + "</td>";
        for (const std::uint64_t v : {c.handshakes[static_cast<std::size_t>(Outcome::completed)],
                                      c.handshakes[static_cast<std::size_t>(Outcome::refused)],
                                      c.handshakes[static_cast<std::size_t>(Outcome::timeout)],
                                      c.handshakes[static_cast<std::size_t>(Outcome::unreachable)],
                                      c.handshakes[static_cast<std::size_t>(Outcome::accept_overflow)], c.syn_retransmits})
        {
            h += "<td class=\"n\">";
            h += std::to_string(v);
            h += "</td>";
        }
        for (const double q : {row.p50, row.p90, row.p99})
            h += "<td class=\"n\" data-v=\"" + (std::isnan(q) ? std::string("NaN") : number(q, "%.9g")) + "\">" +
                 milliseconds(q) + "</td>";
        h += "<td>";
        histogram_svg(h, snapshot.bounds, row.rtt_buckets);
        h += "</td><td>";
        sparkline_svg(h, row.recent != nullptr ? row.recent->p50 : std::vector<double>{}, History::kIntervals);
        h += "</td></tr>\n";
    }
    if (rows.empty()) h += "<tr><td colspan=\"99\" class=\"muted\">no handshake seen yet</td></tr>\n";
    h += "</tbody></table></section>\n<p class=\"muted\">Rendered " + utc_text(info.now_unix_seconds) +
         ". Every number here is also on <a href=\"" + html_escape(info.telemetry_path) + "\">" +
         html_escape(info.telemetry_path) + "</a>.</p>\n</body></html>\n";
    return h;
}

} // namespace flowlat::status
