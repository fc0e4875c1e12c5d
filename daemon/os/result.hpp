// Errors from calls that reach the operating system: what was attempted, and errno.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace flowlat {

struct Error {
    std::string what;   // the operation and its object, e.g. "attach to eth0 ingress"
    int errno_value{0}; // 0 when the failure did not come from the OS

    std::string message() const
    {
        if (errno_value == 0) return what;
        return what + ": " + std::strerror(errno_value);
    }
};

// A value or an Error. Small on purpose: C++20 has no std::expected.
template <typename T>
class Result {
public:
    Result(T value) : state_(std::move(value)) {}
    Result(Error error) : state_(std::move(error)) {}

    bool ok() const { return std::holds_alternative<T>(state_); }
    explicit operator bool() const { return ok(); }
    T& value() & { return std::get<T>(state_); }
    T&& value() && { return std::get<T>(std::move(state_)); }
    const Error& error() const { return std::get<Error>(state_); }

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
