#include "runtime/logger.hpp"

#include <cstdio>

namespace vktrain::runtime {

void Logger::log(LogLevel level, LogSource source, const std::string& message) const {
    // Validation messages always reach the callback: tests turn every one of them into a failure.
    if (source != LogSource::validation && int(level) < int(m_min_level)) return;
    if (m_callback) {
        m_callback(level, source, message);
        return;
    }
    std::fprintf(stderr, "vktrain %s%s: %s\n", source == LogSource::validation ? "validation " : "", to_string(level),
                 message.c_str());
}

void Logger::warning_once(const std::string& key, const std::string& m) const {
    {
        std::lock_guard<std::mutex> lock(m_once_mutex);
        if (!m_once.insert(key).second) return;
    }
    warning(m);
}

} // namespace vktrain::runtime
