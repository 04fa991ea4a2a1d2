// Shared by the libFuzzer harnesses: readers of outside data must either return or throw vktrain::Error (or
// std::bad_alloc for absurd sizes); anything else (a crash, an ASan/UBSan report, another exception) is a finding.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <new>
#include <string>

#include "vktrain/error.hpp"

namespace vkt_fuzz {

// The input as a file (the readers take paths), in /dev/shm when there is one; removed on destruction.
class TempFile {
public:
    TempFile(const uint8_t* data, size_t size, const char* suffix = "") {
        const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        m_path = std::string(dir) + "/vktrain-fuzz-" + std::to_string(getpid()) + suffix;
        FILE* f = std::fopen(m_path.c_str(), "wb");
        if (!f) __builtin_trap();
        if (size) std::fwrite(data, 1, size, f);
        std::fclose(f);
    }
    ~TempFile() { std::remove(m_path.c_str()); }
    const std::string& path() const { return m_path; }

private:
    std::string m_path;
};

template <typename F>
void expect_clean(F&& f) {
    try {
        f();
    } catch (const vktrain::Error&) {
    } catch (const std::bad_alloc&) {
    }
}

} // namespace vkt_fuzz
