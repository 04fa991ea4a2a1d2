// Files are written as "<path>.tmp-<pid>" and renamed over <path>, so a reader never sees half a file and an existing
// file is replaced only by a complete one. A process killed mid-write leaves its temporary behind; the next writer of
// the same path removes the ones whose process no longer exists.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>

namespace vktrain::io {

// Removes "<path>.tmp-<pid>" files next to `path` whose process is gone; returns how many. Never throws (a
// leftover that cannot be removed is left where it is).
int remove_stale_temporaries(const std::string& path) noexcept;

// The file under construction: written to the temporary, removed on any failure (or when destroyed uncommitted),
// renamed over the target by commit(). Every error names the target path, the one the user asked for (the
// temporary is an implementation detail), and a full disk says so. Move-only in spirit: neither copied nor moved.
class AtomicFile {
public:
    // sync: fsync before the rename, so a crash soon after cannot leave an empty file under the final name (weights
    // and checkpoints; small reports and caches skip the cost).
    explicit AtomicFile(const std::string& path, bool sync = true);
    ~AtomicFile();
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;

    void write(const void* data, size_t size);
    // Flushes, syncs and renames; the target then holds everything written.
    void commit();

    const std::string& temporary_path() const { return m_temp; }

private:
    [[noreturn]] void fail(const char* what, int error);

    std::string m_target, m_temp;
    std::FILE* m_file = nullptr;
    bool m_sync;
    bool m_committed = false;
};

} // namespace vktrain::io
