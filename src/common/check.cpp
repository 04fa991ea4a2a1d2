#include "common/check.hpp"

#include <cstring>

namespace vktrain {

const char* to_string(LogLevel level) {
    switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warning: return "warning";
    case LogLevel::error: return "error";
    }
    return "?";
}

namespace detail {

void throw_error(const char* file, int line, const std::string& message) {
    const char* base = std::strrchr(file, '/');
    throw Error(concat(message, " (", base ? base + 1 : file, ":", line, ")"));
}

} // namespace detail
} // namespace vktrain
