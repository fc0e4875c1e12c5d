// A scratch file for unit tests, removed when the test ends.
#pragma once

#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace flowlat::testing {

struct TempFile {
    std::filesystem::path path;
    explicit TempFile(const std::string& content)
    {
        char name[] = "/tmp/flowlat_unit_test_XXXXXX";
        const int fd = mkstemp(name);
        REQUIRE(fd >= 0);
        close(fd);
        path = name;
        std::ofstream(path) << content;
    }
    ~TempFile() { std::filesystem::remove(path); }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
};

} // namespace flowlat::testing
