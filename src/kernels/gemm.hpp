// GEMM in the three forms training needs — A·B, A·Bᵀ, Aᵀ·B — batched or not, on three paths: cooperative
// matrix (fp16 in, fp32 accumulate), tiled fp16 storage with fp32 arithmetic, and fp32. fp16 results are
// rounded to nearest even with overflow to inf (bit-exact, whatever the driver's own conversion does).
#pragma once

#include <string>
#include <vector>

#include "kernels/tensor.hpp"
#include "runtime/pipeline.hpp"
#include "runtime/sequence.hpp"
#include "vktrain/context.hpp"

namespace vktrain::runtime {
class Device;
struct DeviceCaps;
} // namespace vktrain::runtime

namespace vktrain::kernels {

// A concrete path (never auto_select here) and its tiles (the specialization constants of gemm_core.glsl).
struct GemmConfig {
    GemmPath path = GemmPath::fp32;
    uint32_t bm = 0, bn = 0, bk = 0, wg = 0, tm = 0, tn = 0, tk = 0, sg_n = 0;
    uint32_t regs = 0;  // 1: register blocks without shared memory (tiled and fp32 paths on CPU devices)
    uint32_t vec_b = 0; // 1: register blocks read B as vec4 (only where gemm_vec4_b_ok holds)
    uint32_t required_subgroup_size = 0;
    std::string variant; // the gemm.comp row of shaders/variants.txt
    std::string suffix;  // what follows "gemm_" in it ("f32", "tiled_f16_f32", ...), shared by conv.comp rows

    // The tiles in a few words, the same on every run ("regs 16x16 wg8", "smem 64x64 4x4", "coopmat 2x2 sg"):
    // how reports and the tile cache name a configuration.
    std::string tile_name() const;

    // The pipeline description for `variant_name` (gemm_* or conv_*) with these tiles; spec_count >=
    // GEMM_SPEC_COUNT leaves room for the including shader's own constants (zero-filled).
    runtime::KernelDesc kernel_desc(const std::string& variant_name, uint32_t push_size, uint32_t spec_count) const;
};

// The loop of the tiled fp16 and fp32 paths: register blocks on CPU devices, shared-memory tiles elsewhere,
// unless forced (process-wide) so that tests and benchmarks can cover both on one device.
enum class TiledLoop { automatic, shared_memory, registers };
void force_tiled_loop(TiledLoop loop);
TiledLoop forced_tiled_loop();

// The cooperative-matrix shape the kernels use: the device's listed fp16 x fp16 -> fp32 subgroup shape with the most
// work per instruction (throws when it lists none).
const CoopMatShape& pick_coopmat_shape(const runtime::DeviceCaps& caps);

// The tile configurations a path may run a problem with on this device (throws if the path is unavailable),
// the default first: the one measured best on average for this kind of device and problem; the others are
// what per-shape tuning times (choose_gemm_tile, gemm_autotune.hpp). Every one computes the same result to
// within rounding (the sums run in the same order within a block, but blocks differ). `vec4_b`: B's
// columns are contiguous and every row starts 16-byte aligned with n a multiple of 4, so register blocks
// may read B four columns per load (gemm.comp; see record_gemm_strided).
std::vector<GemmConfig> gemm_configs(const runtime::Device& device, GemmPath path, DType c_type, uint32_t m, uint32_t n,
                                     uint32_t k, bool vec4_b = false);

// gemm_configs(...)[tile], or the default where `tile` is past the list.
GemmConfig gemm_config(const runtime::Device& device, GemmPath path, DType c_type, uint32_t m, uint32_t n, uint32_t k,
                       bool vec4_b = false, uint32_t tile = 0);

// C[m×n] (+)= op(A)·op(B). A is stored row-major as m×k (or k×m when trans_a), B as k×n (or n×k when trans_b).
void record_gemm(runtime::Device& device, runtime::Sequence& seq, GemmPath path, const MatRef& a, bool trans_a,
                 const MatRef& b, bool trans_b, const MatRef& c, bool accumulate = false, uint32_t tile = 0);

// `count` GEMMs whose operands lie at fixed element strides from the first (0 broadcasts one A or B to
// every item; C items must not overlap).
struct GemmBatch {
    uint32_t count = 1;
    uint64_t a_stride = 0, b_stride = 0, c_stride = 0;
};

// For z < batch.count: C_z (+)= op(A_z)·op(B_z), where the MatRefs give one item's rows and columns and the
// first item's offset, and item z starts `z · stride` elements after it. Each operand's span (from its
// first item to the end of its last) must be below 2^31 elements (32-bit shader indexing).
void record_gemm_batched(runtime::Device& device, runtime::Sequence& seq, GemmPath path, const GemmBatch& batch,
                         const MatRef& a, bool trans_a, const MatRef& b, bool trans_b, const MatRef& c,
                         bool accumulate = false);

// The GELU forms a GEMM epilogue applies (kernels::Activation's gelu and gelu_erf).
enum class GemmGelu { none, tanh, erf };

// One operand of a strided GEMM: one item's matrix (`mat`: rows × cols as stored, i.e. before the transpose,
// and the first item's first element), its leading dimension (elements from one row to the next; 0 means
// cols, contiguous rows; larger makes the item a column block of a wider matrix), and the element strides
// from item to item along the outer and the inner batch index (0 broadcasts the operand along that index).
struct GemmOperand {
    MatRef mat;
    uint64_t ld = 0;
    uint64_t stride_outer = 0, stride_inner = 0;

    uint64_t row_stride() const { return ld != 0 ? ld : mat.cols; }
};

// outer · inner GEMMs (item z = o · inner + i, e.g. sample o and attention head i): C_oi (+)= op(A_oi)·op(B_oi),
// where each operand's item (o, i) starts o · stride_outer + i · stride_inner elements after its first one.
struct GemmDesc {
    GemmOperand a, b, c;
    bool trans_a = false, trans_b = false;
    uint32_t outer = 1, inner = 1;
    bool accumulate = false;
    // Optional (buffer set): 1 × n in the input type, added to every row of every item before the result is rounded to
    // C's type (and before accumulate adds C's old value).
    MatRef bias;
    bool relu = false; // then max(0, ·), after the bias (not with accumulate)
    // A GELU fused into the epilogue (not with accumulate, ReLU, or batches): forward, C = gelu(round(·)) after the
    // bias, rounding to C's type first as the unfused GEMM's stored result would be, and `aux` (set: C's type and
    // shape, contiguous rows) receives round(·), the pre-activation its backward reads; backward (gelu_grad), C =
    // round(·) · gelu'(aux) with aux the pre-activation. Either way the bits of the unfused GEMM + activation kernel.
    GemmGelu gelu = GemmGelu::none;
    bool gelu_grad = false;
    MatRef aux;
};

// The general entry point (record_gemm and record_gemm_batched are special cases). Checks, with one-line
// errors: inner dimensions and the output shape agree, input types suit the path, every leading dimension
// holds its row, every operand's bound span (first element of the first item to the last element of the
// last one) is below 2^31 elements (32-bit shader indexing), and no two output elements (of one item or
// of different items) coincide.
// Whether register blocks may read `d`'s B four columns per load (the `vec4_b` of gemm_configs), with B's first
// element `b_offset` elements into its bound range.
bool gemm_vec4_b(const GemmDesc& d, uint64_t b_offset);

// `tile` picks one of gemm_configs(...) for the problem (0, the default, where past the list).
void record_gemm_strided(runtime::Device& device, runtime::Sequence& seq, GemmPath path, const GemmDesc& desc,
                         uint32_t tile = 0);

// Shared by the GEMM-shaped kernels (GEMM, implicit-GEMM convolution): workgroups for `items` m × n
// outputs in `cfg`'s blocks, each count clamped to the device's maxComputeWorkGroupCount (the shaders
// loop over the blocks and items beyond it).
struct GemmGrid {
    uint32_t x = 1, y = 1, z = 1;
};
GemmGrid gemm_grid(const runtime::Device& device, const GemmConfig& cfg, uint32_t m, uint32_t n, uint32_t items);

// Shaders index with 32-bit unsigned arithmetic: every operand's bound range must hold fewer elements.
inline constexpr uint64_t k_max_kernel_elements = 1ull << 31;

} // namespace vktrain::kernels
