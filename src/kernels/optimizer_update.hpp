// The optimizer on the device (shaders/optimizer_update.comp): AdamW and SGD on fp32 master weights kept in device
// memory, for GPUs whose host cannot keep up with the update and the transfers around it
// (TrainerOptions::update_location). Every operation rounds as the host optimizer's does.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/tensor.hpp"
#include "runtime/sequence.hpp"
#include "vktrain/options.hpp"

namespace vktrain::runtime {
class Device;
}

namespace vktrain::kernels {

// One trainable tensor: `count` elements at `offset` in the gradient, master and state buffers, its weights at
// `weight_offset` in the weights buffer.
struct UpdateTensor {
    uint32_t offset = 0, count = 0, weight_offset = 0;
    float weight_decay = 0.0f;
};

struct UpdateBuffers {
    const runtime::Buffer* grads = nullptr;   // fp32
    const runtime::Buffer* master = nullptr;  // fp32, the gradient layout
    const runtime::Buffer* state = nullptr;   // fp32: AdamW 2 x, SGD with momentum 1 x the gradient count
    const runtime::Buffer* weights = nullptr; // weight_type
    DType weight_type = DType::f32;
    const runtime::Buffer* control = nullptr; // UpdateControl + UpdateTensorControl per tensor (push_constants.h)
    uint32_t state_stride = 0;                // the gradient count
};

// The control block's size in 32-bit words for `tensors` tensors.
uint64_t update_control_words(size_t tensors);

// Sets the flag (UpdateControl::found_inf, word 0 of `flag`) when any of the first `count` gradients is inf or NaN, in
// pieces that each fit one binding.
void record_gradient_scan(runtime::Device& device, runtime::Sequence& seq, const runtime::Buffer& grads, uint64_t count,
                          const runtime::Buffer& flag);

// Records one dispatch per tensor (per piece of one beyond a binding's range); the step's scalars are read from the
// control block at run time, so the recording is replayed every step. Throws vktrain::Error on buffers too small for
// the tensors.
void record_optimizer_update(runtime::Device& device, runtime::Sequence& seq, const OptimizerOptions& options,
                             const UpdateBuffers& buffers, const std::vector<UpdateTensor>& tensors);

} // namespace vktrain::kernels
