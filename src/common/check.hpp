// Internal error helpers: every failure carries file:line.
#pragma once

#include <sstream>
#include <string>

#include "vktrain/error.hpp"

namespace vktrain::detail {

[[noreturn]] void throw_error(const char* file, int line, const std::string& message);

template <typename... Args>
std::string concat(const Args&... args) {
    std::ostringstream s;
    (s << ... << args);
    return s.str();
}

} // namespace vktrain::detail

// Throws vktrain::Error("<message> (file:line)") when cond is false.
#define VKT_CHECK(cond, ...)                                                                                           \
    do {                                                                                                               \
        if (!(cond)) ::vktrain::detail::throw_error(__FILE__, __LINE__, ::vktrain::detail::concat(__VA_ARGS__));       \
    } while (0)

#define VKT_FAIL(...) ::vktrain::detail::throw_error(__FILE__, __LINE__, ::vktrain::detail::concat(__VA_ARGS__))
