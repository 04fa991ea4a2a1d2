// A scratch folder for host tests that write files: made empty on construction, removed with everything in it on
// destruction; the name carries the process id, so parallel test processes never share one.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

namespace vkt_test {

class ScratchDir {
public:
    explicit ScratchDir(const std::string& name)
        : m_path(std::filesystem::temp_directory_path() / ("vktrain-" + name + "-" + std::to_string(getpid()))) {
        std::filesystem::remove_all(m_path);
        std::filesystem::create_directories(m_path);
    }
    ~ScratchDir() { std::filesystem::remove_all(m_path); }
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;

    // Writes `bytes` to the file `name` in this folder and returns its path.
    std::string write(const std::string& name, const std::string& bytes) const {
        const std::filesystem::path p = m_path / name;
        std::ofstream(p, std::ios::binary) << bytes;
        return p.string();
    }
    std::string path() const { return m_path.string(); }

private:
    std::filesystem::path m_path;
};

} // namespace vkt_test
