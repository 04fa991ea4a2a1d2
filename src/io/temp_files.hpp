// Files are written as "<path>.tmp-<pid>" and renamed over <path>. A process killed mid-write leaves its
// temporary behind; the next writer of the same path removes the ones whose process no longer exists.
#pragma once

#include <string>

namespace vktrain::io {

// Removes "<path>.tmp-<pid>" files next to `path` whose process is gone; returns how many. Never throws (a
// leftover that cannot be removed is left where it is).
int remove_stale_temporaries(const std::string& path) noexcept;

} // namespace vktrain::io
