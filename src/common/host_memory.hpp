// The host memory a new allocation can count on (Linux: MemAvailable of /proc/meminfo), for the pre-checks that turn
// an out-of-memory kill into a clear error.
#pragma once

#include <cstdint>

namespace vktrain {

// Bytes of host memory available now; 0 when unknown (then no check is made).
uint64_t available_host_memory();

} // namespace vktrain
