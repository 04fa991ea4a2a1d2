// Routes diagnostics to the user's callback (or stderr), filtered by level.
#pragma once

#include <mutex>
#include <set>
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
    // A warning reported only the first time `key` comes up for this logger (one per context): a condition every
    // later operation would run into again, such as a cache directory that cannot be written (issue 22: an
    // unwritable HOME gave a program eight identical warnings).
    void warning_once(const std::string& key, const std::string& m) const;

private:
    LogCallback m_callback;
    LogLevel m_min_level;
    mutable std::mutex m_once_mutex;
    mutable std::set<std::string> m_once;
};

} // namespace vktrain::runtime
