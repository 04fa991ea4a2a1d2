// Splitting host loops over the cores without a global thread pool (no global state: several contexts may run
// at once): threads are started per call, so only work of about a million elements or more is split.
#pragma once

#include <algorithm>
#include <cstddef>
#include <exception>
#include <thread>
#include <vector>

namespace vktrain {

// Calls f(i) for every i < count, spread over at most `threads` threads (the caller's included) in contiguous
// runs of indices. The split never changes what each f(i) computes, so results do not depend on the thread count.
// An exception from f is rethrown in the caller after every thread has finished.
template <typename F>
void parallel_for(size_t count, size_t threads, F&& f) {
    threads = std::max<size_t>(1, std::min(threads, count));
    if (threads == 1) {
        for (size_t i = 0; i < count; ++i) f(i);
        return;
    }
    std::vector<std::exception_ptr> errors(threads);
    const auto run = [&](size_t t) {
        try {
            for (size_t i = count * t / threads; i < count * (t + 1) / threads; ++i) f(i);
        } catch (...) {
            errors[t] = std::current_exception();
        }
    };
    std::vector<std::thread> pool;
    pool.reserve(threads - 1);
    size_t started = 1;
    try {
        for (; started < threads; ++started) pool.emplace_back(run, started);
    } catch (...) { // no more threads: the caller runs the rest
    }
    run(0);
    for (size_t t = started; t < threads; ++t) run(t);
    for (std::thread& t : pool) t.join();
    for (const std::exception_ptr& e : errors)
        if (e) std::rethrow_exception(e);
}

// The host's hardware threads, asked once per process: std::thread::hardware_concurrency() reads
// /sys/devices/system/cpu/online on every call (glibc's get_nprocs), and the update path needs the count several
// times per step. A process's CPU count does not change under it in any way this split cares about.
inline size_t host_threads() {
    static const size_t threads = std::max(1u, std::thread::hardware_concurrency());
    return threads;
}

// Threads worth starting for `elements` elements of streaming work (one per million, up to the hardware's, at most 8).
inline size_t threads_for(size_t elements) {
    return std::max<size_t>(1, std::min<size_t>({host_threads(), 8, elements >> 20}));
}

// Host passes over many tensors (optimizer updates, gradient norms, fp16 copies) work in fixed chunks of every
// tensor, so that each element's arithmetic, and the order of any per-chunk sums, is the same whatever the number
// of threads.
struct TensorChunk {
    size_t tensor, begin, count;
};
constexpr size_t k_chunk_elements = size_t(1) << 16;

inline std::vector<TensorChunk> tensor_chunks(const std::vector<size_t>& sizes) {
    std::vector<TensorChunk> chunks;
    for (size_t t = 0; t < sizes.size(); ++t)
        for (size_t b = 0; b < sizes[t]; b += k_chunk_elements)
            chunks.push_back({t, b, std::min(k_chunk_elements, sizes[t] - b)});
    return chunks;
}

// f(index, chunk) for every chunk, on as many threads as their total size is worth.
template <typename F>
void parallel_chunks(const std::vector<TensorChunk>& chunks, F&& f) {
    size_t total = 0;
    for (const TensorChunk& c : chunks) total += c.count;
    parallel_for(chunks.size(), threads_for(total), [&](size_t i) { f(i, chunks[i]); });
}

} // namespace vktrain
