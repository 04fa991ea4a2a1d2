#include "kernels/timing.hpp"

#include <algorithm>
#include <chrono>

#include "runtime/device.hpp"
#include "runtime/memory.hpp"
#include "runtime/sequence.hpp"

namespace vktrain::kernels {

double time_recorded(runtime::Device& device, const std::vector<const runtime::Buffer*>& zero, int repeats,
                     const std::function<void(runtime::Sequence&)>& record, int submissions) {
    runtime::Sequence seq(device, 2);
    seq.begin();
    for (const runtime::Buffer* b : zero) seq.fill(*b, 0);
    const uint32_t t0 = seq.timestamp();
    for (int i = 0; i < repeats; ++i) record(seq);
    const uint32_t t1 = seq.timestamp();
    seq.end();
    seq.submit_and_wait();
    double best = 0.0;
    for (int i = 0; i < std::max(submissions, 1); ++i) {
        const auto start = std::chrono::steady_clock::now();
        seq.submit_and_wait();
        const double host_us =
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
        const double gpu_ns = seq.elapsed_ns(t0, t1);
        const double us = (gpu_ns > 0 ? gpu_ns / 1000.0 : host_us) / std::max(repeats, 1);
        best = i == 0 ? us : std::min(best, us);
    }
    return best;
}

} // namespace vktrain::kernels
