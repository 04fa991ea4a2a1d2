// Set-up the kernel benchmarks share (vktrain_bench_gemm, _conv, _depthwise): the context on the device asked for
// (no cache directory, so every run measures from scratch), the device line they print, the device's own ceilings
// (src/kernels/peak.hpp) measured in the same run, which every result is divided by, their JSON form, and the
// --paths list. Header-only: each benchmark is one translation unit.
#pragma once

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "io/json.hpp"
#include "kernels/peak.hpp"
#include "runtime/context_access.hpp"
#include "runtime/device.hpp"
#include "vktrain/context.hpp"

namespace vkt_bench {

// ContextOptions for a benchmark on the device whose name contains `device` ("" = the default device).
inline vktrain::ContextOptions bench_options(const std::string& device) {
    vktrain::ContextOptions o;
    o.device_name = device;
    o.cache_dir = "none";
    return o;
}

inline vktrain::runtime::Device& device_of(vktrain::Context& ctx) {
    return vktrain::detail::ContextAccess::device(ctx);
}

// "device: NAME (DRIVER INFO)" on stdout.
inline void print_device(const vktrain::Context& ctx) {
    const auto& info = ctx.device_info();
    std::printf("device: %s (%s %s)\n", info.name.c_str(), info.driver_name.c_str(), info.driver_info.c_str());
}

// Which ceilings a benchmark measures beyond the fp32 FMA and cooperative-matrix peaks (always measured).
struct CeilingSet {
    bool fma_f16 = false;
    bool copy = false;
};

// The device's ceilings in this run: GFLOP/s (fma, coopmat) and GB/s (copy of 64 MiB); unmeasured ones stay 0.
struct Ceilings {
    vktrain::kernels::PeakResult fma_f32, fma_f16, coopmat, copy;
    CeilingSet measured;

    // The ceiling a path's arithmetic runs at: the coopmat peak there, fp32 FMA for the fp32 and tiled paths (both
    // accumulate in fp32).
    double compute(vktrain::GemmPath path) const {
        return path == vktrain::GemmPath::coopmat ? coopmat.value : fma_f32.value;
    }

    // {"fma_f32": {"value", "unit", "config"}, ...}: the measured ones, "config" saying why where a value is 0.
    vktrain::io::Json json() const {
        const auto one = [](const vktrain::kernels::PeakResult& r, const char* unit) {
            vktrain::io::Json j = vktrain::io::Json::object();
            j["value"] = r.value;
            j["unit"] = unit;
            j["config"] = r.value > 0 ? r.config : r.unavailable;
            return j;
        };
        vktrain::io::Json j = vktrain::io::Json::object();
        j["fma_f32"] = one(fma_f32, "GFLOP/s");
        if (measured.fma_f16) j["fma_f16"] = one(fma_f16, "GFLOP/s");
        j["coopmat"] = one(coopmat, "GFLOP/s");
        if (measured.copy) j["copy"] = one(copy, "GB/s");
        return j;
    }
};

// Measures the ceilings and prints them on one "ceilings: ..." line.
inline Ceilings measure_ceilings(vktrain::runtime::Device& dev, CeilingSet set = {}) {
    namespace vk = vktrain::kernels;
    Ceilings c;
    c.measured = set;
    c.fma_f32 = vk::measure_fma_peak(dev, false);
    if (set.fma_f16) c.fma_f16 = vk::measure_fma_peak(dev, true);
    c.coopmat = vk::measure_coopmat_peak(dev);
    if (set.copy) c.copy = vk::measure_copy_bandwidth(dev, 64ull << 20);
    std::printf("ceilings: fma fp32 %.1f GFLOP/s (%s)", c.fma_f32.value, c.fma_f32.config.c_str());
    if (set.fma_f16) std::printf(", fma fp16 %.1f GFLOP/s (%s)", c.fma_f16.value, c.fma_f16.config.c_str());
    std::printf(", coopmat %.1f GFLOP/s (%s)", c.coopmat.value,
                c.coopmat.value > 0 ? c.coopmat.config.c_str() : c.coopmat.unavailable.c_str());
    if (set.copy) std::printf(", copy %.1f GB/s (%s)", c.copy.value, c.copy.config.c_str());
    std::printf("\n");
    return c;
}

// Whether the context can run `path` (coopmat needs cooperative matrix, the fp16 paths 16-bit storage).
inline bool path_available(const vktrain::Context& ctx, vktrain::GemmPath path) {
    if (path == vktrain::GemmPath::coopmat && !ctx.coopmat_available()) return false;
    return path == vktrain::GemmPath::fp32 || ctx.fp16_available();
}

// Parses --paths' comma-separated list (fp32, tiled-fp16, coopmat) into `out`; on a bad name returns false with
// `error` set.
inline bool parse_paths(const std::string& list, std::vector<vktrain::GemmPath>& out, std::string& error) {
    out.clear();
    size_t start = 0;
    while (start <= list.size()) {
        const size_t end = std::min(list.find(',', start), list.size());
        const std::string p = list.substr(start, end - start);
        if (p == "fp32")
            out.push_back(vktrain::GemmPath::fp32);
        else if (p == "tiled-fp16")
            out.push_back(vktrain::GemmPath::tiled_fp16);
        else if (p == "coopmat")
            out.push_back(vktrain::GemmPath::coopmat);
        else if (!p.empty()) {
            error = "unknown path '" + p + "' in --paths (fp32, tiled-fp16, coopmat)";
            return false;
        }
        start = end + 1;
    }
    if (out.empty()) {
        error = "--paths names no path (fp32, tiled-fp16, coopmat)";
        return false;
    }
    return true;
}

} // namespace vkt_bench
