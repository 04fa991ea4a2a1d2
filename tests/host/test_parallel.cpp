// Host threading helpers: the hardware thread count is asked of the system once per process, not on every
// optimizer step (glibc's get_nprocs, behind std::thread::hardware_concurrency, reads /sys/devices/system/cpu/online
// each time). The test counts the real calls by interposing get_nprocs for this test binary (the C++ runtime calls it
// through the dynamic linker, so the executable's definition is the one it finds).
#include <gtest/gtest.h>

#include <dlfcn.h>

#include <atomic>
#include <vector>

#include "common/parallel.hpp"
#include "train/gradients.hpp"
#include "train/optimizer.hpp"

namespace {
std::atomic<int> g_nprocs_calls{0};
}

extern "C" int get_nprocs() {
    g_nprocs_calls.fetch_add(1);
    using Fn = int (*)();
    static const Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "get_nprocs"));
    return real ? real() : 1;
}

namespace {

TEST(HostThreads, HardwareConcurrencyIsAskedOncePerProcessNotPerStep) {
    // Anything that ran before in this process may already have asked once.
    (void)vktrain::threads_for(1);
    const int before = g_nprocs_calls.load();
    // Large enough to be split over threads: the optimizer and the norm ask for a thread count on every call.
    const size_t n = size_t(3) << 20;
    vktrain::train::Optimizer o(vktrain::OptimizerOptions{}, {n});
    std::vector<float> p(n, 0.5f), g(n, 0.25f);
    std::vector<uint16_t> halves(n);
    for (int step = 0; step < 3; ++step) {
        (void)vktrain::train::global_sum_squares({g.data()}, {n}, 1.0f);
        o.step({p.data()}, {g.data()}, 1.0f, 1.0f, {halves.data()});
    }
    EXPECT_EQ(g_nprocs_calls.load(), before) << "the thread count was asked of the system again during steps";
    EXPECT_GE(vktrain::threads_for(size_t(1) << 30), 1u);
    EXPECT_EQ(g_nprocs_calls.load(), before);
}

} // namespace
