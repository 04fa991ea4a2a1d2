// Routes diagnostics to the user's callback (or stderr), filtered by level.
#pragma once

#include <string>

#include "vktrain/error.hpp"

namespace vktrain::runtime {

class Logger {
public:
    Logger(LogCallback callback, LogLevel min_level) : m_callback(std::move(callback)), m_min_level(min_level) {}
    void log(LogLevel level, LogSource source, const std::string& message) const;
    void debug(const std::string& m) const { log(LogLevel::debug, LogSource::library, m); }
    void info(const std::string& m) const { log(LogLevel::info, LogSource::library, m); }
    void warning(const std::string& m) const { log(LogLevel::warning, LogSource::library, m); }

private:
    LogCallback m_callback;
    LogLevel m_min_level;
};

} // namespace vktrain::runtime
