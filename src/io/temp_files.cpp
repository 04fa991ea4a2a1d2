#include "io/temp_files.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

namespace vktrain::io {

int remove_stale_temporaries(const std::string& path) noexcept {
    namespace fs = std::filesystem;
    int removed = 0;
    try {
        const fs::path target(path);
        const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
        const std::string prefix = target.filename().string() + ".tmp-";
        std::error_code ec;
        for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
            const std::string name = it->path().filename().string();
            if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
            const std::string digits = name.substr(prefix.size());
            if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
            const long pid = std::stol(digits);
            if (pid <= 0 || pid == long(::getpid())) continue;
            // kill(pid, 0) probes without signalling: ESRCH means no such process (EPERM: it exists).
            if (::kill(pid_t(pid), 0) == 0 || errno != ESRCH) continue;
            std::error_code rm;
            if (fs::is_regular_file(it->symlink_status(rm)) && fs::remove(it->path(), rm)) ++removed;
        }
    } catch (...) {
    }
    return removed;
}

} // namespace vktrain::io
