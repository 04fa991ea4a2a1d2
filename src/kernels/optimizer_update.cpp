#include "kernels/optimizer_update.hpp"

#include "common/check.hpp"
#include "kernels/launch.hpp"
#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::kernels {

static_assert(sizeof(UpdatePush) == 16 * 4, "UpdatePush layout must match shaders/push_constants.h");
static_assert(sizeof(UpdateControl) == UPDATE_CONTROL_WORDS * 4, "UpdateControl must fill UPDATE_CONTROL_WORDS");

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
    VKT_CHECK(b.control->size() >= (UPDATE_CONTROL_WORDS + tensors.size()) * 4,
              "optimizer_update: the control block is too small for ", tensors.size(), " tensors");
    for (const UpdateTensor& t : tensors) {
        const uint64_t end = uint64_t(t.offset) + t.count;
        VKT_CHECK(end * 4 <= b.grads->size() && end * 4 <= b.master->size() &&
                      uint64_t(t.weight_offset + uint64_t(t.count)) * esz <= b.weights->size(),
                  "optimizer_update: a tensor of ", t.count, " elements at ", t.offset, " overruns its buffers");
        VKT_CHECK(state_copies == 0 || (uint64_t(b.state_stride) * (state_copies - 1) + end) * 4 <= b.state->size(),
                  "optimizer_update: the state buffer is too small");
        VKT_CHECK(end < k_max_elements && uint64_t(b.state_stride) + end < k_max_elements,
                  "optimizer_update: more than 2^31 elements");
    }
    const runtime::Kernel& k = kernel(
        device, b.weight_type == DType::f16 ? "optimizer_update_f16" : "optimizer_update_f32", 5, sizeof(UpdatePush));
    // Bound whole: offsets are element indices in the push constants. A buffer without state binds the master
    // buffer in its place (never written: no tensor has state then).
    const runtime::Buffer& state = state_copies ? *b.state : *b.master;
    for (size_t i = 0; i < tensors.size(); ++i) {
        const UpdateTensor& t = tensors[i];
        if (t.count == 0) continue;
        UpdatePush pc{};
        pc.n = t.count;
        pc.flags = (adamw ? UPDATE_ADAMW : 0u) | (t.weight_decay != 0.0f ? UPDATE_WEIGHT_DECAY : 0u) |
                   (momentum ? UPDATE_MOMENTUM : 0u) | (momentum && options.nesterov ? UPDATE_NESTEROV : 0u);
        pc.tensor = uint32_t(i);
        pc.offset = t.offset;
        pc.state_stride = b.state_stride;
        pc.weight_offset = t.weight_offset;
        pc.beta1 = options.beta1;
        pc.one_minus_beta1 = float(1.0 - double(options.beta1));
        pc.beta2 = options.beta2;
        pc.one_minus_beta2 = float(1.0 - double(options.beta2));
        pc.epsilon = options.epsilon;
        pc.momentum = options.momentum;
        pc.weight_decay = t.weight_decay;
        const runtime::Access rw = runtime::Access::read_write;
        seq.dispatch(k,
                     {{b.grads, runtime::Access::read},
                      {b.master, rw},
                      {&state, state_copies ? rw : runtime::Access::read},
                      {b.weights, runtime::Access::write},
                      {b.control, runtime::Access::read}},
                     &pc, sizeof(pc), element_groups(device, t.count));
    }
}

} // namespace vktrain::kernels
