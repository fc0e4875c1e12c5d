// The one error type: what was attempted, the errno, and any detail a reader needs; and the
// [[nodiscard]] Result that carries a value or that Error.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace flowlat {

struct Error {
    Error() = default;
    explicit Error(std::string what_, int errno_value_ = 0) : what(std::move(what_)), errno_value(errno_value_) {}

    std::string what;   // the operation and its object, e.g. "attach to eth0 ingress"
    int errno_value{0}; // 0 when the failure did not come from the OS
    // More than one line holds, for the person who reads the failure at start-up: the end of a
    // log (the verifier's), its title ("verifier log (last 25 of 812 lines)") and its lines.
    // Empty for most errors; message() leaves it out.
    std::string detail_title;
    std::vector<std::string> detail;

    std::string message() const
    {
        if (errno_value == 0) return what;
        return what + ": " + std::strerror(errno_value);
    }
};

// A value or an Error. Small on purpose: C++20 has no std::expected. [[nodiscard]]: a failure
// that nobody looks at is a failure nobody hears of.
template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : state_(std::move(value)) {}
    Result(Error error) : state_(std::move(error)) {}

    bool ok() const { return std::holds_alternative<T>(state_); }
    explicit operator bool() const { return ok(); }
    T& value() & { return std::get<T>(state_); }
    T&& value() && { return std::get<T>(std::move(state_)); }
    const Error& error() const& { return std::get<Error>(state_); }
    Error&& error() && { return std::get<Error>(std::move(state_)); }

private:
    std::variant<T, Error> state_;
};

struct Ok {};
using Status = Result<Ok>;

inline Error os_error(std::string what, int errno_value = errno)
{
    return Error{std::move(what), errno_value};
}

} // namespace flowlat
