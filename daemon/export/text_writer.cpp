#include "export/text_writer.hpp"

#include <charconv>
#include <cmath>
#include <limits>

namespace flowlat::exposition {

namespace {

void append_uint(std::string& out, std::uint64_t v)
{
    char buffer[24];
    const auto end = std::to_chars(buffer, buffer + sizeof(buffer), v).ptr;
    out.append(buffer, end);
}

// The formats' escapes: backslash and newline everywhere, '"' in label values (and, in
// OpenMetrics, in HELP text too).
void append_escaped(std::string& out, std::string_view text, bool quote)
{
    for (char c : text) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else if (quote && c == '"') {
            out += "\\\"";
        } else {
            out += c;
        }
    }
}

void append_label(std::string& out, std::string_view name, std::string_view value)
{
    out += ',';
    out += name;
    out += "=\"";
    append_escaped(out, value, true);
    out += '"';
}

// OpenMetrics names a counter family without its `_total`, which only its samples carry.
std::string_view family_name(std::string_view name, MetricType type, TextFlavour flavour)
{
    constexpr std::string_view total = "_total";
    if (flavour == TextFlavour::openmetrics_1_0 && type == MetricType::counter && name.ends_with(total))
        name.remove_suffix(total.size());
    return name;
}

} // namespace

void append_double(std::string& out, double v)
{
    if (std::isnan(v)) {
        out += "NaN";
    } else if (std::isinf(v)) {
        out += v > 0 ? "+Inf" : "-Inf";
    } else {
        char buffer[32];
        const auto end = std::to_chars(buffer, buffer + sizeof(buffer), v, std::chars_format::general,
                                       std::numeric_limits<double>::max_digits10 - 1)
                             .ptr;
        out.append(buffer, end);
    }
}

TextWriter::TextWriter(TextFlavour flavour, std::size_t reserve) : flavour_(flavour) { out_.reserve(reserve); }

TextWriter::TextWriter(TextFlavour flavour, const std::function<void(std::string_view)>& write,
                       std::size_t piece_bytes)
    : flavour_(flavour), write_(&write), piece_bytes_(piece_bytes)
{
    out_.reserve(piece_bytes + 64 * 1024);
}

void TextWriter::family(std::string_view name, std::string_view help, MetricType type)
{
    name_ = name;
    help_ = help;
    type_ = type;
    header_written_ = false;
}

void TextWriter::value(std::initializer_list<Label> labels, std::span<const Label> more, double v, double created)
{
    header();
    label_text_.clear();
    for (const auto& l : more) append_label(label_text_, l.name, l.value);
    for (const auto& l : labels) append_label(label_text_, l.name, l.value);
    const std::string_view inner = std::string_view(label_text_).substr(label_text_.empty() ? 0 : 1);
    auto sample = [&](std::string_view name, std::string_view suffix, double value) {
        out_ += name;
        out_ += suffix;
        if (!inner.empty()) {
            out_ += '{';
            out_ += inner;
            out_ += '}';
        }
        out_ += ' ';
        append_double(out_, value);
        out_ += '\n';
    };
    sample(name_, "", v);
    if (flavour_ == TextFlavour::openmetrics_1_0 && type_ == MetricType::counter && created > 0)
        sample(family_name(name_, type_, flavour_), "_created", created);
    maybe_flush();
}

void TextWriter::histogram(std::span<const Label> labels, const HistogramPoint& point)
{
    header();
    label_text_.clear();
    for (const auto& l : labels) append_label(label_text_, l.name, l.value);
    const std::string_view inner = std::string_view(label_text_).substr(label_text_.empty() ? 0 : 1);
    const bool om = flavour_ == TextFlavour::openmetrics_1_0;
    // Text 0.0.4 as prometheus-cpp writes it: count, sum, buckets. OpenMetrics as its
    // reference parser reads a MetricPoint: buckets, count, sum, created.
    auto count_and_sum = [&] {
        sample("_count", inner, {});
        append_uint(out_, point.count);
        out_ += '\n';
        sample("_sum", inner, {});
        append_double(out_, point.sum);
        out_ += '\n';
    };
    if (!om) count_and_sum();
    if (le_source_ != point.bounds) cache_le(point.bounds);
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < point.counts.size(); ++b) {
        cumulative += point.counts[b];
        sample("_bucket", inner, le_[b]);
        append_uint(out_, cumulative);
        // Exemplars exist only in OpenMetrics: text 0.0.4 parsers take "#" after a value as an error.
        if (om && b < point.exemplars.size() && !point.exemplars[b].empty()) exemplar(point.exemplars[b]);
        out_ += '\n';
    }
    if (om) {
        count_and_sum();
        if (point.created > 0) {
            sample("_created", inner, {});
            append_double(out_, point.created);
            out_ += '\n';
        }
    }
    maybe_flush();
}

std::string TextWriter::finish()
{
    if (flavour_ == TextFlavour::openmetrics_1_0) out_ += "# EOF\n";
    if (write_ == nullptr) return std::move(out_);
    if (!out_.empty()) (*write_)(out_);
    out_.clear();
    return {};
}

void TextWriter::maybe_flush()
{
    if (write_ == nullptr || out_.size() < piece_bytes_) return;
    (*write_)(out_);
    out_.clear();
}

// name + suffix + {labels[,extra]} + ' ', the value follows.
void TextWriter::sample(std::string_view suffix, std::string_view inner, std::string_view extra_label)
{
    out_ += name_;
    out_ += suffix;
    if (!inner.empty() || !extra_label.empty()) {
        out_ += '{';
        out_ += inner;
        if (!inner.empty() && !extra_label.empty()) out_ += ',';
        out_ += extra_label;
        out_ += '}';
    }
    out_ += ' ';
}

void TextWriter::exemplar(const aggregation::Exemplar& e)
{
    const ExemplarLabels l = exemplar_labels(e);
    out_ += " # {";
    std::string labels;
    append_label(labels, kExemplarLabelNames[0], l.peer_address);
    append_label(labels, kExemplarLabelNames[1], l.peer_port);
    append_label(labels, kExemplarLabelNames[2], l.local_port);
    out_.append(labels, 1);
    out_ += "} ";
    // The shortest text that reads back as the same double: 9e-05, not 9.000000000000001e-05.
    char buffer[32];
    out_.append(buffer, std::to_chars(buffer, buffer + sizeof(buffer), static_cast<double>(e.value_ns) / 1e9).ptr);
    out_ += ' ';
    // Milliseconds, as Prometheus stores exemplar timestamps.
    append_double(out_, static_cast<double>(e.unix_ns / 1'000'000) / 1e3);
}

void TextWriter::header()
{
    if (header_written_) return;
    header_written_ = true;
    const bool om = flavour_ == TextFlavour::openmetrics_1_0;
    const std::string_view name = family_name(name_, type_, flavour_);
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    append_escaped(out_, help_, om);
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += type_ == MetricType::counter ? " counter\n" : type_ == MetricType::gauge ? " gauge\n" : " histogram\n";
    constexpr std::string_view seconds = "_seconds";
    if (om && type_ == MetricType::histogram && name.ends_with(seconds)) {
        out_ += "# UNIT ";
        out_ += name;
        out_ += " seconds\n";
    }
}

void TextWriter::cache_le(const std::vector<double>& bounds)
{
    le_source_ = bounds;
    le_.clear();
    for (double bound : bounds) {
        std::string text = "le=\"";
        append_double(text, bound);
        le_.push_back(text + '"');
    }
    le_.push_back("le=\"+Inf\"");
}

} // namespace flowlat::exposition
