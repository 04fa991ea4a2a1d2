// Effective GEMM path = requested ∧ supported ∧ worthwhile. "Supported" is not enough: lavapipe emulates
// cooperative matrix and is slower with it than with the tiled fp16 loop, so in auto mode each GEMM
// shape (or convolution problem, which runs on the same paths as an implicit GEMM) is timed on both fp16
// paths the first time it is seen, and the choice is cached per device and driver
// (cache_dir/gemm-paths-<device key>.json, keyed by GemmShape::key() / ConvProblem::key()). Within a path, the
// tile configuration of each GEMM shape is chosen the same way (choose_gemm_tile). Device types and the timing
// helper come from timing.hpp.
#pragma once

#include <string>
#include <vector>

#include "kernels/conv.hpp"
#include "kernels/gemm.hpp"
#include "kernels/tensor.hpp"
#include "kernels/timing.hpp"
#include "vktrain/context.hpp"

namespace vktrain::kernels {

struct GemmShape {
    bool trans_a = false, trans_b = false;
    uint32_t m = 0, n = 0, k = 0;
    DType out = DType::f16;
    // Strided GEMMs (record_gemm_strided): items in all, and leading dimensions (0: contiguous rows).
    uint32_t batch = 1;
    uint32_t lda = 0, ldb = 0, ldc = 0;
    // "AtB:m=256,n=784,k=128,out=f32", plus ",batch=96" and ",ld=384/384/128" where not the defaults.
    std::string key() const;
};

// The shape a strided GEMM description times as (leading dimensions equal to the row are written as 0).
GemmShape gemm_shape(const GemmDesc& desc);

struct GemmChoice {
    GemmPath path = GemmPath::fp32;
    std::string reason;       // one line: why this path
    double coopmat_us = -1.0; // measured time per GEMM (-1: not measured)
    double tiled_us = -1.0;
    bool cached = false; // came from the cache file
};

// For mixed precision: resolves `requested` (auto, coopmat or tiled_fp16) for one GEMM shape.
GemmChoice choose_gemm_path(runtime::Device& device, GemmPath requested, const GemmShape& shape);

// Microseconds per GEMM of `shape` on `path` with gemm_configs(...)[tile] (a few timed repetitions after a
// warm-up).
double time_gemm(runtime::Device& device, GemmPath path, const GemmShape& shape, int repeats = 3, uint32_t tile = 0);

// The tile configurations `path` has for `shape` on this device (gemm_configs, as time_gemm lays it out).
std::vector<GemmConfig> gemm_shape_configs(const runtime::Device& device, GemmPath path, const GemmShape& shape);

// The tiles one GEMM shape runs with on a concrete path: where the path has several configurations (register
// blocks of several sizes on CPU devices, shared-memory tiles on GPUs, subgroup layouts for coopmat), each is
// timed the first time the shape is seen (the best of two short timings) and the fastest cached per device
// and driver (cache_dir/gemm-tiles-<device key>.json, keyed by "<path>|<shape key>", naming the tiles).
struct TileChoice {
    uint32_t tile = 0;      // index into gemm_shape_configs (0: the default)
    std::string name;       // GemmConfig::tile_name()
    std::string reason;     // one line
    std::vector<double> us; // measured microseconds per configuration (empty when cached or not measured)
    bool cached = false;
};
TileChoice choose_gemm_tile(runtime::Device& device, GemmPath path, const GemmShape& shape);

// How tile tuning bounds its start-up cost: a problem's configurations are each timed once, and the ones within
// k_retime_margin of the fastest (at most k_retimed) a second time; convolution problems stop being tuned once the
// device has spent k_tile_tuning_budget_s seconds tuning them (the rest run the default tiles until a later run,
// with the earlier choices cached, tunes them).
constexpr double k_retime_margin = 1.25;
constexpr size_t k_retimed = 3;
constexpr double k_tile_tuning_budget_s = 20.0;

// One convolution of a model: its direction, shape and output precision.
struct ConvProblem {
    ConvDirection direction = ConvDirection::forward;
    Conv2dShape shape;
    DType out = DType::f16;
    std::string key() const; // "conv_fwd:n=2,c=3,h=7,w=9,oc=5,k=3x2,s=2x1,p=1x2,d=1x2,g=1,out=f32"
};

// As choose_gemm_path, for a convolution (timed and cached like a GEMM shape).
GemmChoice choose_conv_path(runtime::Device& device, GemmPath requested, const ConvProblem& problem);

// Microseconds per convolution of `problem` on `path` (fp32 forces an fp32 output) with conv_configs(...)[tile]
// (record_conv2d's stride_phases: false times a strided data gradient's single gather, for comparisons).
double time_conv(runtime::Device& device, GemmPath path, const ConvProblem& problem, int repeats = 3, uint32_t tile = 0,
                 bool stride_phases = true);

// As choose_gemm_tile, for the implicit GEMM of a convolution (conv_configs; the same cache file, keyed by
// "<path>|<ConvProblem::key()>").
TileChoice choose_conv_tile(runtime::Device& device, GemmPath path, const ConvProblem& problem);

} // namespace vktrain::kernels
