// Errors and logging: the library never aborts or exits; failures are thrown as vktrain::Error
// (carrying the file:line where they were detected) and diagnostics go to a user callback.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>

namespace vktrain {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

enum class LogLevel { debug, info, warning, error };

// Where validation-layer messages come from, so tests can treat any of them as a failure.
enum class LogSource { library, validation };

using LogCallback = std::function<void(LogLevel, LogSource, const std::string&)>;

const char* to_string(LogLevel level);

} // namespace vktrain
