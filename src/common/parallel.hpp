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

// Threads worth starting for `elements` elements of streaming work (one per million, up to the hardware's, at most 8).
inline size_t threads_for(size_t elements) {
    const size_t hw = std::max(1u, std::thread::hardware_concurrency());
    return std::max<size_t>(1, std::min<size_t>({hw, 8, elements >> 20}));
}

} // namespace vktrain
