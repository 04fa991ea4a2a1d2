#include "import/convert.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include <cmath>
#include <cstdio>

#include "common/check.hpp"

namespace vktrain::import {

bool floating(ElementType t) {
    return t == ElementType::f32 || t == ElementType::f16 || t == ElementType::bf16;
}

void check_values(const float* v, uint64_t count, uint64_t first, const std::string& name, const std::string& source,
                  bool fp16) {
    for (uint64_t i = 0; i < count; ++i) {
        const float x = v[i];
        const uint64_t k = first + i;
        if (std::isfinite(x) && (!fp16 || std::fabs(x) <= 65504.0f)) continue;
        char value[32];
        std::snprintf(value, sizeof value, "%.9g", double(x));
        VKT_CHECK(std::isfinite(x), source, ": tensor '", name, "' holds ", value, " at element ", k,
                  " (weights must be finite)");
        VKT_FAIL(source, ": tensor '", name, "' holds ", value, " at element ", k,
                 ", outside fp16's range (|x| <= 65504) that mixed precision stores weights in; import with "
                 "--precision fp32 (ImportOptions::precision) to keep fp32 storage for it");
    }
}

void release(const void* data, uint64_t bytes, bool mapped) {
#if defined(__unix__) || defined(__APPLE__)
    if (!mapped || bytes == 0) return;
    const auto page = uintptr_t(sysconf(_SC_PAGESIZE));
    const auto begin = (uintptr_t(data) + page - 1) & ~(page - 1);
    const auto end = (uintptr_t(data) + bytes) & ~(page - 1);
    if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
#else
    (void)data;
    (void)bytes;
    (void)mapped;
#endif
}

} // namespace vktrain::import
