#include "io/temp_files.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/check.hpp"

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

AtomicFile::AtomicFile(const std::string& path, bool sync)
    : m_target(path), m_temp((remove_stale_temporaries(path), detail::concat(path, ".tmp-", ::getpid()))),
      m_sync(sync) {
    m_file = std::fopen(m_temp.c_str(), "wb");
    if (m_file == nullptr) fail("cannot create", errno);
}

AtomicFile::~AtomicFile() {
    if (m_committed) return;
    if (m_file != nullptr) std::fclose(m_file);
    std::remove(m_temp.c_str());
}

void AtomicFile::fail(const char* what, int error) {
    if (m_file != nullptr) std::fclose(m_file);
    m_file = nullptr;
    std::remove(m_temp.c_str());
    if (error == ENOSPC || error == EDQUOT)
        VKT_FAIL(m_target, ": ", what, ": the disk is full (", std::strerror(error), "); the file was not written");
    VKT_FAIL(m_target, ": ", what, ": ", std::strerror(error), " (in its temporary file ", m_temp, ")");
}

void AtomicFile::write(const void* data, size_t size) {
    if (size == 0) return;
    if (std::fwrite(data, 1, size, m_file) != size) fail("write failed", errno);
}

void AtomicFile::commit() {
    if (std::fflush(m_file) != 0) fail("write failed", errno);
    if (m_sync && ::fsync(::fileno(m_file)) != 0) fail("fsync failed", errno);
    std::FILE* file = m_file;
    m_file = nullptr;
    if (std::fclose(file) != 0) fail("close failed", errno);
    if (std::rename(m_temp.c_str(), m_target.c_str()) != 0) fail("cannot rename the finished file over it", errno);
    m_committed = true;
}

} // namespace vktrain::io
