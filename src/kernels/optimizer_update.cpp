#include "kernels/optimizer_update.hpp"

#include <algorithm>
#include <string>

#include "common/check.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/launch.hpp"
#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::kernels {

static_assert(sizeof(UpdatePush) == 20 * 4, "UpdatePush layout must match shaders/push_constants.h");
static_assert(sizeof(UpdateControl) == UPDATE_CONTROL_WORDS * 4, "UpdateControl must fill UPDATE_CONTROL_WORDS");
static_assert(sizeof(UpdateTensorControl) == UPDATE_TENSOR_WORDS * 4, "UpdateTensorControl must fill its words");

namespace {

// Elements per dispatch: every binding must stay within maxStorageBufferRange (operand() may start a range up to
// 4096 bytes before the first element, for alignment).
uint64_t piece_elements(const runtime::Device& device) {
    const uint64_t range = device.caps().max_storage_buffer_range;
    const uint64_t by_range = range > 8192 ? (range - 8192) / 4 : 1;
    return std::max<uint64_t>(1, std::min<uint64_t>(by_range, k_max_elements - 4096));
}

} // namespace

uint64_t update_control_words(size_t tensors) {
    return UPDATE_CONTROL_WORDS + uint64_t(UPDATE_TENSOR_WORDS) * tensors;
}

void record_gradient_scan(runtime::Device& device, runtime::Sequence& seq, const runtime::Buffer& grads, uint64_t count,
                          const runtime::Buffer& flag) {
    const uint64_t piece = piece_elements(device);
    for (uint64_t at = 0; at < count; at += piece) {
        const uint64_t n = std::min(piece, count - at);
        record_nonfinite_scan(device, seq, MatRef{&grads, DType::f32, 1, uint32_t(n), at}, flag);
    }
}

void record_optimizer_update(runtime::Device& device, runtime::Sequence& seq, const OptimizerOptions& options,
                             const UpdateBuffers& b, const std::vector<UpdateTensor>& tensors) {
    VKT_CHECK(b.grads && b.master && b.weights && b.control && b.grads->valid() && b.master->valid() &&
                  b.weights->valid() && b.control->valid(),
              "optimizer_update: missing buffer");
    const bool adamw = options.kind == OptimizerKind::adamw;
    const bool momentum = !adamw && options.momentum != 0.0f;
    const uint32_t state_copies = adamw ? 2 : momentum ? 1 : 0;
    VKT_CHECK(state_copies == 0 || (b.state && b.state->valid()), "optimizer_update: missing state buffer");
    const uint64_t esz = b.weight_type == DType::f16 ? 2 : 4;
    const uint64_t control_words = update_control_words(tensors.size());
    VKT_CHECK(b.control->size() >= control_words * 4, "optimizer_update: the control block is too small for ",
              tensors.size(), " tensors");
    for (const UpdateTensor& t : tensors) {
        const uint64_t end = uint64_t(t.offset) + t.count;
        VKT_CHECK(end * 4 <= b.grads->size() && end * 4 <= b.master->size() &&
                      (uint64_t(t.weight_offset) + t.count) * esz <= b.weights->size(),
                  "optimizer_update: a tensor of ", t.count, " elements at ", t.offset, " overruns its buffers");
        VKT_CHECK(state_copies == 0 || (uint64_t(b.state_stride) * (state_copies - 1) + end) * 4 <= b.state->size(),
                  "optimizer_update: the state buffer is too small");
    }
    const std::string variant = b.weight_type == DType::f16 ? "optimizer_update_f16" : "optimizer_update_f32";
    const uint64_t piece = piece_elements(device);
    const MatRef control{b.control, DType::f32, 1, uint32_t(control_words), 0};
    const runtime::Access rw = runtime::Access::read_write;
    for (size_t i = 0; i < tensors.size(); ++i) {
        const UpdateTensor& t = tensors[i];
        for (uint64_t at = 0; at < t.count; at += piece) {
            const uint32_t n = uint32_t(std::min<uint64_t>(piece, t.count - at));
            const uint64_t o = t.offset + at;
            const MatRef g{b.grads, DType::f32, 1, n, o}, m{b.master, DType::f32, 1, n, o};
            const MatRef w{b.weights, b.weight_type, 1, n, t.weight_offset + at};
            const MatRef s1 = state_copies ? MatRef{b.state, DType::f32, 1, n, o} : g;
            const MatRef s2 = state_copies > 1 ? MatRef{b.state, DType::f32, 1, n, b.state_stride + o} : g;
            UpdatePush pc{};
            pc.n = n;
            pc.flags = (adamw ? UPDATE_ADAMW : 0u) | (t.weight_decay != 0.0f ? UPDATE_WEIGHT_DECAY : 0u) |
                       (momentum ? UPDATE_MOMENTUM : 0u) | (momentum && options.nesterov ? UPDATE_NESTEROV : 0u);
            pc.tensor = uint32_t(i);
            pc.beta1 = options.beta1;
            pc.one_minus_beta1 = float(1.0 - double(options.beta1));
            pc.beta2 = options.beta2;
            pc.one_minus_beta2 = float(1.0 - double(options.beta2));
            pc.epsilon = options.epsilon;
            pc.momentum = options.momentum;
            pc.weight_decay = t.weight_decay;
            // Absent state binds the gradients again, read only (the shader never touches it then).
            dispatch_operands(device, seq, variant, pc,
                              {{&g, runtime::Access::read},
                               {&m, rw},
                               {&s1, state_copies ? rw : runtime::Access::read},
                               {&s2, state_copies > 1 ? rw : runtime::Access::read},
                               {&w, runtime::Access::write},
                               {&control, runtime::Access::read}},
                              element_groups(device, n));
        }
    }
}

} // namespace vktrain::kernels
