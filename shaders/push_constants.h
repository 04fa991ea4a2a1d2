// Push-constant structs and specialization-constant ids shared by GLSL and C++ (sizes are
// static_assert-ed on the C++ side). Only 32-bit members, so std430 and C layouts agree.
#ifndef VKTRAIN_PUSH_CONSTANTS_H
#define VKTRAIN_PUSH_CONSTANTS_H

#ifdef __cplusplus
#include <cstdint>
namespace vktrain::kernels {
using uint = uint32_t;
#endif

// For each batch item z < batch, with outer = z / inner and i = z % inner (a two-level batch: e.g. sample
// and attention head): C_z[m, n] (+)= sum_k A_z(m, k) * B_z(k, n) with
// A_z(m, k) = a[a_offset + outer * a_outer + i * a_inner + m * a_stride_m + k * a_stride_k],
// B_z(k, n) = b[b_offset + outer * b_outer + i * b_inner + k * b_stride_k + n * b_stride_n] and
// C_z[m, n] = c[c_offset + outer * c_outer + i * c_inner + m * c_stride_m + n]: the strides express A·B,
// A·Bᵀ and Aᵀ·B and leading dimensions wider than a row (a column block of a wider matrix); a batch stride
// of 0 broadcasts that operand. The epilogue (flags below) may add bias[bias_offset + n] (binding 3, the input type) to
// every row and then apply ReLU, before the result is rounded and stored (a Linear layer's bias and a following ReLU,
// fused: one rounding, no extra pass). The GELU bits (graph/fusion.hpp) work on the value rounded to C's type, as the
// unfused kernels see it: GEMM_EPILOGUE_GELU(_ERF) stores act(round(v)) and, with GEMM_EPILOGUE_SAVE_PRE, round(v) to
// aux (binding 4, C's type and layout, element aux_offset + the C index less c_offset); GEMM_EPILOGUE_DGELU(_ERF)
// stores round(v) · act'(aux) (a GELU's backward in the GEMM that produces its output's gradient).
struct GemmPush {
    uint m, n, k;
    uint a_offset, a_stride_m, a_stride_k;
    uint b_offset, b_stride_k, b_stride_n;
    uint c_offset, c_stride_m;
    uint accumulate; // 1: C += result
    uint batch;      // items in all
    uint inner;      // items per outer index (>= 1)
    uint a_outer, a_inner, b_outer, b_inner, c_outer, c_inner;
    uint epilogue, bias_offset; // epilogue: GEMM_EPILOGUE_* bits
    uint aux_offset;            // the GELU bits' pre-activation (binding 4)
};
#define GEMM_EPILOGUE_BIAS 1u
#define GEMM_EPILOGUE_RELU 2u
#define GEMM_EPILOGUE_GELU 4u       // tanh form (activation.comp's ACT_FLAG_GELU)
#define GEMM_EPILOGUE_GELU_ERF 8u   // exact form (ACT_FLAG_GELU_ERF)
#define GEMM_EPILOGUE_SAVE_PRE 16u  // with GELU(_ERF): also store the pre-activation to aux
#define GEMM_EPILOGUE_DGELU 32u     // multiply by GELU'(aux), tanh form
#define GEMM_EPILOGUE_DGELU_ERF 64u // ... exact form

// Specialization constant ids of gemm_core.glsl (gemm.comp, conv.comp).
#define GEMM_SPEC_BM 0    // rows of C per workgroup
#define GEMM_SPEC_BN 1    // columns of C per workgroup
#define GEMM_SPEC_BK 2    // depth of one shared-memory tile
#define GEMM_SPEC_WG 3    // invocations per workgroup
#define GEMM_SPEC_TM 4    // tiled: rows per invocation; coopmat: cooperative-matrix M
#define GEMM_SPEC_TN 5    // tiled: columns per invocation; coopmat: cooperative-matrix N
#define GEMM_SPEC_TK 6    // coopmat: cooperative-matrix K
#define GEMM_SPEC_SG_N 7  // coopmat: subgroups along N (the rest along M)
#define GEMM_SPEC_REGS 8  // tiled: 1 = register blocks without shared memory (CPU devices)
#define GEMM_SPEC_VEC_B 9 // register blocks: 1 = B read as vec4 of 4 adjacent columns (see gemm_vec4_b_ok)
#define GEMM_SPEC_COUNT 10

// Convolution as implicit GEMM (conv.comp), per group g < groups; which GEMM is chosen by the
// CONV_SPEC_DIR specialization constant:
//   forward          C = y  (c_out/g × n·oh·ow)   A = w   (c_out/g × c_in/g·kh·kw)  B = im2col(x)
//   backward data    C = dx (c_in/g × n·h·w)      A = wᵀ  (c_in/g × c_out/g·kh·kw)  B = gather(dy)
//   backward weight  C = dw (c_out/g × c_in/g·kh·kw)  A = dy (c_out/g × n·oh·ow)  B = im2col(x)ᵀ
// a/b/c_offset are the element offsets of A's, B's and C's tensors in their bound ranges. The shader
// divides by kh·kw, kw, oh·ow, ow, h·w, w, stride_h and stride_w through the div_* multipliers:
// ceil(2^(31 + l) / d) with l = ceil(log2 d), 0 for d = 1 (see conv_division_magic in conv.cpp).
//   backward data, one stride phase (CONV_DIR_BACKWARD_DATA_PHASE; strided, undilated convolutions): the dx pixels
//   iy = iy0 + a·stride_h, ix = ix0 + b·stride_w (a < hp, b < wp) only receive the taps ky = ky0 + i·stride_h,
//   kx = kx0 + j·stride_w (i < khp, j < kwp), from oy = cy + a − i, ox = cx + b − j: a dense GEMM with
//   k = c_out/g·khp·kwp, n = images·hp·wp, one dispatch per phase. Its fields are those of backward data (h, w,
//   kh, kw and the strides are the real ones) except: pad_h/pad_w = cy/cx, dil_h/dil_w = hp/wp,
//   div_ohw/div_ow = khp/kwp, div_stride_h/div_stride_w = iy0/ix0, phase_y/phase_x = ky0/kx0, div_hw/div_w and
//   div_khw/div_kw the multipliers of hp·wp, wp, khp·kwp and kwp.
struct ConvPush {
    uint m, n, k;
    uint a_offset, b_offset, c_offset;
    uint c_in_g, c_out_g, groups;
    uint h, w, oh, ow;
    uint kh, kw;
    uint stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
    uint accumulate; // 1: C += result
    uint div_khw, div_kw, div_ohw, div_ow, div_hw, div_w, div_stride_h, div_stride_w;
    uint phase_y, phase_x; // CONV_DIR_BACKWARD_DATA_PHASE only (0 otherwise)
};
#define CONV_SPEC_DIR GEMM_SPEC_COUNT // 0 forward, 1 backward data, 2 backward weight, 3 backward data by phase
#define CONV_SPEC_COUNT (GEMM_SPEC_COUNT + 1)
#define CONV_DIR_FORWARD 0
#define CONV_DIR_BACKWARD_DATA 1
#define CONV_DIR_BACKWARD_WEIGHT 2
#define CONV_DIR_BACKWARD_DATA_PHASE 3

// Depthwise convolution (depthwise_conv.comp, src/kernels/depthwise_conv.cpp): groups = c channels, c_out = c·mult
// (output channel ch·mult + j reads input channel ch), NCHW. The direction, the tile of outputs one workgroup
// computes and the kernel's size, stride and dilation are specialization constants (so that the tap loops unroll);
// sizes and padding come here. in0/in1/out are the direction's operands as in record_conv2d: forward x, w -> y;
// backward data dy, w -> dx; backward weight dy, x -> dw. *_offset: element offsets in their bound ranges.
// tiles_x, tiles_y: tiles across one output plane (forward: y's; backward data: dx's; backward weight: dy's).
struct DepthwisePush {
    uint in0_offset, in1_offset, out_offset;
    uint n, c, mult;
    uint h, w, oh, ow;
    uint pad_h, pad_w;
    uint tiles_x, tiles_y;
    uint accumulate; // 1: out += result
};
#define DW_SPEC_DIR 0    // CONV_DIR_*
#define DW_SPEC_WG 1     // invocations per workgroup (a power of two)
#define DW_SPEC_TILE_H 2 // rows of the tile one workgroup computes per step
#define DW_SPEC_TILE_W 3 // columns of that tile
#define DW_SPEC_KH 4
#define DW_SPEC_KW 5
#define DW_SPEC_STRIDE_H 6
#define DW_SPEC_STRIDE_W 7
#define DW_SPEC_DIL_H 8
#define DW_SPEC_DIL_W 9
#define DW_SPEC_SMEM 10 // floats of shared memory
#define DW_SPEC_RX 11   // adjacent outputs (along a row) per invocation; divides TILE_W
#define DW_SPEC_COUNT 12

// Element-wise, column-reduction, loss and scan kernels (bias_add, bias_grad, activation, cast,
// softmax_xent, nonfinite): n elements, a rows × cols view of them, per-kernel flags and the element
// offsets of up to three buffers (which buffer is which is listed in each shader).
struct ElementPush {
    uint n;
    uint rows;
    uint cols;
    uint flags;
    uint offset0;
    uint offset1;
    uint offset2;
    uint pad0;
};

// ElementPush::flags of activation.comp.
#define ACT_FLAG_GELU 1u     // else ReLU
#define ACT_FLAG_BACKWARD 2u // dx = dy * act'(x), else y = act(x)

// ElementPush::flags of activation.comp (beside ACT_FLAG_GELU / ACT_FLAG_BACKWARD; no flag: ReLU).
#define ACT_FLAG_GELU_ERF 4u // exact GELU x * Phi(x)
#define ACT_FLAG_SILU 8u     // x * sigmoid(x)
// ... and the vision activations (issue 24; the kind bits above and these are exclusive).
#define ACT_FLAG_RELU6 128u       // min(max(x, 0), 6)
#define ACT_FLAG_HARDSWISH 256u   // x * relu6(x + 3) / 6
#define ACT_FLAG_HARDSIGMOID 512u // relu6(x + 3) / 6

// Shared flag of the kernels that write a gradient: add to what the output holds instead of overwriting.
#define FLAG_ACCUMULATE 16u

// ElementPush::flags of add.comp (b) and cast.comp (src): multiply that operand by the fp32 whose bits are in
// ElementPush::pad0 (add: out = a + s·b, torch.add's alpha; cast: dst = s·src). LoRA's alpha / r scaling.
#define FLAG_SCALE 32u
// ElementPush::flags of add.comp: out = a·b (element-wise product, the op "mul") instead of a + b.
#define FLAG_MUL 64u

// Kernels over a tensor seen as [outer, channels, inner] (per-channel bias, channel sums, batch norm):
// element (o, c, i) is at o * channels * inner + c * inner + i of each full-size operand; per-channel operands
// hold `channels` elements. offsets[k] is the first element of binding k inside its bound range.
struct ChannelPush {
    uint outer;
    uint channels;
    uint inner;
    uint flags;     // FLAG_ACCUMULATE, BN_FLAG_*
    float eps;      // batch norm: added to the variance
    float momentum; // batch norm: running = (1 - momentum) * running + momentum * batch statistic
    uint pad0, pad1;
    uint offsets[8];
};

// ChannelPush::flags of batch_norm_apply.comp.
#define BN_FLAG_EVAL 1u // normalise with running_mean / running_var (+ eps) instead of the batch statistics
// ChannelPush::flags of batch_norm_backward_reduce.comp and batch_norm_backward_dx.comp: the forward normalised with
// the running statistics (frozen BatchNorm in training), which are constants: the mean and invstd bindings hold
// running_mean and running_var, invstd = 1 / sqrt(running_var + eps), and dx = dy * gamma * invstd.
#define BN_FLAG_FROZEN 2u

// 2-D pooling over planes = N * C images of h × w; output oh × ow. Bindings 0 x, 1 dy, 2 out (see pool2d.comp).
struct PoolPush {
    uint planes;
    uint h, w, oh, ow;
    uint kh, kw, stride_h, stride_w, pad_h, pad_w;
    uint flags; // POOL_FLAG_*, FLAG_ACCUMULATE
    uint offset0, offset1, offset2;
    uint pad0;
};

#define POOL_FLAG_MAX 1u      // else average (count_include_pad)
#define POOL_FLAG_BACKWARD 2u // out = dx, gathered per input element; else out = y (also adaptive_pool.comp)

// ChannelPush::flags of plane_sum.comp: sum a·b instead of a; one invocation per plane instead of a workgroup.
#define PLANE_FLAG_PRODUCT 1u
#define PLANE_FLAG_SERIAL 2u

// Dropout: keep element i when philox(seed, step, i) >= threshold, then scale by 1 / (1 - p). The step is
// read from a buffer at offset2 so a recorded command buffer draws new masks on every replay.
struct DropoutPush {
    uint n;
    uint threshold; // p * 2^32, rounded down
    uint seed;
    uint flags; // FLAG_ACCUMULATE
    float scale;
    uint offset0, offset1, offset2; // in, out, step
};

// strided_copy.comp: dst[dst_offset + sum_d i_d * dst_stride[d]] (+)= src[src_offset + sum_d i_d * src_stride[d]]
// over every index (i_0 .. i_5) of a shape of up to COPY_DIMS dimensions (unused leading ones are 1); n elements.
#define COPY_DIMS 6
struct CopyPush {
    uint n;
    uint src_offset;
    uint dst_offset;
    uint accumulate;
    uint size[COPY_DIMS];
    uint src_stride[COPY_DIMS];
    uint dst_stride[COPY_DIMS];
};

// Token embedding (embedding.comp, embedding_backward.comp): ids int32[positions]; weight / dweight
// [num_embeddings, dim]; out / dy [positions, dim]. offset_* are first elements inside the bound ranges.
struct EmbeddingPush {
    uint positions;
    uint dim;
    uint num_embeddings;
    uint flags; // FLAG_ACCUMULATE (backward)
    uint offset_ids;
    uint offset_weight; // weight (forward) or dweight (backward)
    uint offset_rows;   // out (forward) or dy (backward)
    uint pad0;
};

// Decode-time attention with a key/value cache (attention_decode.comp): one new position p (read from an int32
// buffer) per call; its q, k and v (GPT: three slices of one qkv row; Llama: three tensors, grouped-query), k/v
// caches fp32 [max_positions, kv_heads · head_size], out [heads · head_size]. The new k and v are written to row p,
// then each query head attends over rows 0..p of its key/value head.
struct AttnDecodePush {
    uint heads;
    uint kv_heads; // dividing heads: query head h reads key/value head h / (heads / kv_heads)
    uint head_size;
    uint max_positions;
    float scale;
    float log2_theta, log2_theta_lo; // rotary embeddings at the position (as RotaryPush), if flags has ROTARY
    uint flags;                      // ATTN_DECODE_FLAG_ROTARY
    uint offset_q, offset_k, offset_v; // the new position's q [heads · head_size], k and v [kv_heads · head_size]
    uint offset_pos;
    uint offset_kc, offset_vc; // the caches, fp32 [max_positions, kv_heads · head_size]
    uint offset_out;
    uint pad0;
};
#define ATTN_DECODE_FLAG_ROTARY 1u // rotate q and the new k by the position's angles before use (a Llama's decoder)
// LayerNorm / RMSNorm (layer_norm*.comp, src/kernels/layer_norm.cpp): x seen as rows × cols, normalised over
// each row's cols elements; per-row statistics (mean, rstd) are fp32 with `rows` elements, weight / bias and
// the parameter gradients have `cols`. offsets[k] is the first element of binding k inside its bound range.
struct NormPush {
    uint rows;
    uint cols;
    uint flags; // NORM_FLAG_AFFINE, FLAG_ACCUMULATE
    float eps;  // added to the variance (LayerNorm) or to the mean square (RMSNorm)
    uint offsets[8];
};

#define NORM_FLAG_AFFINE 1u // the weight (and for LayerNorm the bias) bindings hold parameters; else unused
#define NORM_FLAG_RESIDUAL 4u // forward: x = a + b (binding 0 a, then b and the sum written; graph/fusion.hpp)
#define NORM_FLAG_SECOND_DX 8u // backward: dx also written to a second output (a residual add's gradient copy)
// ---- softmax and self-attention (issue 12) ----
// softmax.comp: rows × cols, each row a softmax over its cols elements (see the shader for the bindings).
struct SoftmaxPush {
    uint rows;
    uint cols;
    uint flags;  // SOFTMAX_FLAG_*, FLAG_ACCUMULATE (backward)
    float scale; // the input is multiplied by it first
    uint offset0, offset1, offset2;
    uint pad0;
};
#define SOFTMAX_FLAG_BACKWARD 1u // dx from p and dp, else p from x
#define SOFTMAX_FLAG_CAUSAL 2u   // row r sees columns j <= r % cols only

// ---- fused (flash) attention (issue 25): shaders/flash_attention*.comp, src/kernels/flash_attention.cpp ----
// Rows of q, k, v, o (and dO) are ld[0..3] elements apart, a sample's seq rows in a row, head h in columns
// [h·head_size, (h+1)·head_size) from the operand's first element; lse is fp32 [batch, heads, seq]. Backward:
// ld[4], ld[5] are the rows of the gradients (dq; or dk and dv). offsets[k]: binding k's first element (plus the
// operand's first column) in its bound range.
struct FlashAttentionPush {
    uint batch, seq, heads, kv_heads;
    uint flags;  // FLASH_FLAG_*, FLAG_ACCUMULATE (backward: add to the gradients)
    float scale; // 1/sqrt(head_size)
    uint pad0, pad1;
    uint ld[6];
    uint pad2, pad3;
    uint offsets[8];
};
#define FLASH_FLAG_CAUSAL 2u // query t sees keys j <= t only
#define FLASH_FLAG_DK 4u     // backward dk/dv kernel: write dk (binding 6)
#define FLASH_FLAG_DV 8u     // ... and/or dv (binding 7)
// Specialization constants: the head size and the keys (forward, dq) or queries (dk/dv) staged per block.
#define FLASH_SPEC_HD 0
#define FLASH_SPEC_KB 1
#define FLASH_WG 64 // rows (queries, or keys for dk/dv) per workgroup: one per invocation
// The cooperative-matrix kernels (flash_attention_cm.comp): rows per block in FLASH_SPEC_KB, and these.
#define FLASH_SPEC_HDP 2 // head size padded to the tile shape
#define FLASH_SPEC_TM 3  // the device's cooperative-matrix shape
#define FLASH_SPEC_TN 4
#define FLASH_SPEC_TK 5
#define FLASH_SPEC_WG 6 // invocations per workgroup (a few subgroups)

// The device ceilings of shaders/peak.comp (src/kernels/peak.cpp).
struct PeakPush {
    uint iterations; // fma / coopmat: dependent steps per chain
    uint n;          // copy: vec4s to copy; fma / coopmat: result slots
    float a, b;      // the fma operands (acc = acc * a + b stays finite)
};
#define PEAK_SPEC_WG 0
#define PEAK_SPEC_CHAINS 1
#define PEAK_SPEC_M 2 // coopmat shape
#define PEAK_SPEC_N 3
#define PEAK_SPEC_K 4
#define PEAK_SPEC_COUNT 5

// The device-side optimizer (optimizer_update.comp, src/kernels/optimizer_update.cpp): one dispatch per piece of a
// trainable tensor updates n fp32 master weights (binding 1) and their state (binding 2: the first moment or
// momentum; binding 3: AdamW's second moment) from their fp32 gradients (binding 0), and writes the weights the
// kernels read (binding 4, the activation type). Binding 5 is the step's control block, rewritten by the host
// before each step: UpdateControl, then UpdateTensorControl per tensor (its scalars formed in double on the host and
// rounded once, as the host optimizer forms them; per tensor because a tensor made trainable later has its own step
// count). offsets[k]: binding k's first element in its bound range.
struct UpdatePush {
    uint n;
    uint flags; // UPDATE_* bits
    uint tensor;
    uint pad0;
    uint offsets[6];
    uint pad1, pad2;
    float beta1, one_minus_beta1, beta2, one_minus_beta2, epsilon; // AdamW
    float momentum, weight_decay;                                  // SGD
    float pad3;
};
#define UPDATE_ADAMW 1u
#define UPDATE_WEIGHT_DECAY 2u
#define UPDATE_MOMENTUM 4u // SGD
#define UPDATE_NESTEROV 8u // SGD
struct UpdateControl {
    uint found_inf; // set by the scan of the gradients (nonfinite.comp): the update does nothing
    uint pad0;
    float multiplier; // 1 / the loss scale
    float lr;         // the step's rate (each tensor's scaled one is in its UpdateTensorControl)
    uint pad1, pad2, pad3, pad4;
};
#define UPDATE_CONTROL_WORDS 8 // the tensors' UpdateTensorControl follow
struct UpdateTensorControl {
    float decay;      // AdamW: 1 - lr * weight_decay
    float step_size;  // AdamW: lr / (1 - beta1^t), t the tensor's step; SGD: lr. lr is the tensor's own rate
                      // (the step's times its Model::set_learning_rate_scale), also in decay
    float bias2_sqrt; // AdamW: sqrt(1 - beta2^t)
    uint first;       // SGD: this step creates the tensor's momentum buffer
};
#define UPDATE_TENSOR_WORDS 4

// Rotary position embeddings (rotary.comp, src/kernels/rotary.cpp), transformers' rotate_half convention: x seen as
// rows × heads·head_size, row r at position r % positions; per head, element i < head_size / 2 pairs with
// i + head_size / 2 and the pair turns by the angle t·theta^(-2i / head_size). One invocation per pair.
struct RotaryPush {
    uint pairs;     // rows · heads · head_size / 2
    uint positions; // rows per sample (T)
    uint heads;
    uint half_size;        // head_size / 2
    float log2_theta;      // log2(theta) = log2_theta + log2_theta_lo, formed in double on the host and split
    float log2_theta_lo;   // so the shader can carry the exponent 2i/D·log2(theta) beyond fp32
    uint flags;            // ROTARY_FLAG_INVERSE, FLAG_ACCUMULATE
    uint offset0, offset1; // x (or dy), out (y or dx)
};
#define ROTARY_FLAG_INVERSE 1u // turn by -angle (the backward: the inverse rotation of dy)

#ifdef __cplusplus
} // namespace vktrain::kernels
#endif

#endif
