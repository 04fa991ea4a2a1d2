// The device's own ceilings, measured with shaders/peak.comp: what the benchmark suite divides every result by,
// so that numbers from different devices and machines compare as fractions. Not used by training.
#pragma once

#include <cstdint>
#include <string>

namespace vktrain::runtime {
class Device;
}

namespace vktrain::kernels {

struct PeakResult {
    double value = 0.0;      // GFLOP/s or GB/s; 0 when the device cannot run it
    std::string config;      // the configuration that reached it (chains, workgroup size, shape)
    std::string unavailable; // why value is 0
};

// fp32 (f16 = false) or fp16 vec4 fma chains: GFLOP/s, the best over 1, 2, 4 and 8 chains per invocation.
PeakResult measure_fma_peak(runtime::Device& device, bool f16);
// fp16 × fp16 + fp32 cooperative-matrix multiply-adds with the device's largest listed shape: GFLOP/s.
PeakResult measure_coopmat_peak(runtime::Device& device);
// A vec4 copy of `bytes` (read + write, counted once each): GB/s.
PeakResult measure_copy_bandwidth(runtime::Device& device, uint64_t bytes);

} // namespace vktrain::kernels
