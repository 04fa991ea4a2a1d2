// Timing recorded device work, for tuning (gemm_autotune) and the benchmarks (peak, bench/): one warm-up
// submission, which pays first-use driver work, then timed ones; device timestamps where the device has them,
// else host time around the submission.
#pragma once

#include <functional>
#include <vector>

namespace vktrain::runtime {
class Buffer;
class Device;
class Sequence;
} // namespace vktrain::runtime

namespace vktrain::kernels {

// Microseconds per repetition of what `record` records `repeats` times in one submission (the buffers in `zero`
// zero-filled first): the best of `submissions` timed submissions after the warm-up.
double time_recorded(runtime::Device& device, const std::vector<const runtime::Buffer*>& zero, int repeats,
                     const std::function<void(runtime::Sequence&)>& record, int submissions = 1);

} // namespace vktrain::kernels
