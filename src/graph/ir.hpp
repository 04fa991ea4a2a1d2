// The graph as compiled for one batch size and mode: every value with its full shape (batch first), its
// storage class and its role, and the schedule of nodes (forward, then the backward derived by autodiff).
// Model (the public builder) is lowered into this form by build_ir(); Program plans memory for it and
// records it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "vktrain/model.hpp"

namespace vktrain::graph {

using Shape = std::vector<int64_t>;
uint64_t element_count(const Shape& shape);
std::string shape_text(const Shape& shape); // "[128, 32, 28, 28]"

struct OpDef;

// act: the precision's activation type (fp16 in mixed, fp32 otherwise); f32 and i32 are fixed.
enum class Storage { act, f32, i32 };

enum class Role {
    input,      // a model input: i32 ones are read from their upload buffer, real ones cast into the arena
    value,      // an activation (arena)
    gradient,   // an activation gradient (arena)
    scratch,    // a temporary or saved statistic (arena)
    param,      // a parameter's device copy (weights buffer)
    param_grad, // a trainable parameter's fp32 gradient (gradients buffer, read back)
    state,      // a buffer such as BatchNorm running statistics (state buffer, fp32, kept on the device)
    host_out,   // written by the device and read by the host (per-row losses, predictions)
};

struct IrValue {
    Shape shape;
    Storage storage = Storage::act;
    Role role = Role::value;
    int param = -1;    // param / param_grad / state: index into Ir::params
    int view_of = -1;  // a reshape of another value: same storage, no kernel
    std::string label; // for messages and plans: "conv0", "conv0.grad", "conv0.weight"
    uint64_t elements() const { return element_count(shape); }
};

struct IrParam {
    ParameterInfo info;
    int value = -1; // its Role::param or Role::state value
    int grad = -1;  // its Role::param_grad value (trainable parameters of the training graph)
};

struct IrNode {
    const OpDef* op = nullptr;
    // Whose attribute declarations `attrs` follows (attr<T>() checks reads against them): the forward op whose
    // attributes a backward node inherited; nullptr: op itself.
    const OpDef* attrs_of = nullptr;
    std::string name;    // the model node's name ("conv0"); backward nodes keep their forward node's name
    std::string label;   // profile label: "conv0.forward", "conv0.weight_grad", ...
    std::vector<int> in; // values read
    std::vector<int> out;
    std::map<std::string, double> attrs;
    Shape shape_attr;
    bool accumulate = false; // out[0] += result (a gradient reached twice), else out[0] = result
    bool backward = false;   // part of the derived backward pass
    int block = -1;          // forward nodes: the model node's Node::block (-1: none)
    // A second copy of a forward node, run inside the backward pass (graph/recompute.hpp): same op, name, label and
    // attributes (so the same kernel, GEMM path and dropout mask), reading the saved block input, writing fresh values.
    bool recomputed = false;
    // Fusions (graph/fusion.hpp; not inherited by the backward nodes derived from this one):
    bool fused = false;         // computed by another node's kernel: records nothing itself
    bool relu_epilogue = false; // linear: applies the ReLU that follows it in its GEMM epilogue
    // kernels::GemmGelu (0: none). linear: the GELU that follows it, in its GEMM epilogue: out[0] is then the
    // pre-activation and out[1] the GELU's output (or, with one output, the GELU's output alone: nothing reads the
    // pre-activation). linear_input_grad: the GELU backward of the input-gradient it writes, in = {dY, W, pre}.
    int gelu_epilogue = 0;
    // layer_norm / rms_norm: the residual add before it (x = a + b) computed by its kernel: in = {x, [weight, [bias]],
    // a, b}, and out.back() is x, written as well.
    bool residual_add = false;
};

struct Ir {
    bool training = false;
    uint32_t batch = 0;
    uint64_t seed = 0; // dropout masks
    // Attention nodes whose head size the fused kernels take and whose unfused score matrix (batch · heads · T² · 4
    // bytes) is at least this large run fused; UINT64_MAX: none (ContextOptions::allow_fused_attention off).
    uint64_t fused_attention_min_bytes = UINT64_MAX;
    bool fuse = true; // the passes of graph/fusion.hpp run (ContextOptions::allow_fusion)
    // Training recomputes blocks (graph/recompute.hpp), which runs after the fusions: they then keep within a block
    // what recomputation treats as one (see fuse_after_autodiff).
    bool recompute = false;
    std::vector<IrValue> values;
    std::vector<IrNode> nodes;          // schedule order
    std::vector<IrParam> params;        // model parameters and buffers, in Model::parameters() order
    std::vector<int> inputs;            // per model input (declaration order): its value
    int loss_node = -1;                 // index into nodes
    int row_loss = -1;                  // the loss's per-row values (host_out)
    uint32_t loss_rows_per_sample = 1;  // per-row losses per sample (positions of a per-token loss)
    uint32_t loss_terms_per_sample = 1; // what the mean divides by per sample (MSE: every element)
    int prediction = -1;                // the default output (Model::output()), or -1 when the model has none
    // What evaluation reads back for predict(): [0] the default output (-1: none), then the named outputs in
    // Model::outputs() order. The memory planner keeps them alive to the end of the forward pass.
    std::vector<int> outputs;
    size_t forward_nodes = 0; // nodes [0, forward_nodes) are the forward pass (and the loss)
    // Activation recomputation (graph/recompute.hpp): the blocks whose activations are recomputed in the backward
    // pass, and the forward nodes copied there.
    uint32_t recomputed_blocks = 0;
    uint32_t recomputed_nodes = 0;

    int add_value(IrValue v);
};

// Lowers `model` for `batch` samples. training: batch statistics, dropout on, and the backward pass derived
// (see autodiff.cpp); otherwise the forward pass in evaluation mode.
// fused_attention_min_bytes: Ir::fused_attention_min_bytes (the default: no attention node fused).
// recompute (training): recompute each block's activations in the backward pass (graph/recompute.hpp).
// fuse: Ir::fuse (ContextOptions::allow_fusion).
Ir build_ir(const Model& model, uint32_t batch, bool training, uint64_t seed = 0,
            uint64_t fused_attention_min_bytes = UINT64_MAX, bool recompute = false, bool fuse = true);

} // namespace vktrain::graph
