// The optimizer step on the device (TrainerOptions::update_location): fp32 master weights and optimizer state in
// device memory, updated by kernels::record_optimizer_update after a scan of the gradients for inf/NaN, so that a
// step moves no gradient down and no weight up. The host's master weights and Optimizer stay the API's: they are
// brought up to date from the device whenever the host reads them (download) and written back when the host changed
// them (upload). Skips follow GradScaler exactly: the kernels write nothing when the scan found an inf or NaN.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/resources.hpp"
#include "kernels/optimizer_update.hpp"
#include "runtime/memory.hpp"
#include "runtime/sequence.hpp"
#include "train/optimizer.hpp"

namespace vktrain::train {

class DeviceUpdate {
public:
    // grads: the training program's fp32 gradient buffer; weights: the buffer its kernels read (weight_type).
    DeviceUpdate(runtime::Device& device, const graph::Layout& layout, const Optimizer& optimizer,
                 const runtime::Buffer& grads, const runtime::Buffer& weights, kernels::DType weight_type);

    // Host -> device: the trainable parts of `master` (Layout::master_offset) and the optimizer's state.
    void upload(const std::vector<float>& master, const Optimizer& optimizer);
    // Device -> host: the same, into `master` and `optimizer` (whose step count and learning rate the trainer keeps).
    void download(std::vector<float>& master, Optimizer& optimizer);

    // One step: the control block for step optimizer.step_count() + 1 at `learning_rate`, gradients multiplied by
    // `multiplier`; then submit() after the training replay was submitted, and wait().
    void prepare(const Optimizer& optimizer, float multiplier, float learning_rate);
    void submit() { m_seq.submit(); }
    void wait() { m_seq.wait(); }
    bool found_inf() const; // after wait(): the step was skipped on the device

    uint64_t device_bytes() const; // the master weights, state and control block

private:
    // count floats between `host` and the start of `buffer`.
    void transfer(const runtime::Buffer& buffer, float* host, uint64_t count, bool to_device);

    runtime::Device& m_device;
    const graph::Layout& m_layout;
    std::vector<kernels::UpdateTensor> m_tensors;
    std::vector<size_t> m_slots; // per trainable tensor: its Layout slot
    uint32_t m_state_copies = 0;
    runtime::Buffer m_master, m_state, m_control;
    runtime::Sequence m_seq;
};

// The bytes of device memory a DeviceUpdate takes for `layout` (for the memory check before allocation).
uint64_t device_update_bytes(const graph::Layout& layout, const OptimizerOptions& options);

// Microseconds per million parameters of the device update and of the host's (its update plus, without unified
// memory, the gradient readback and weight upload), each measured now on `elements` parameters (scratch buffers).
struct UpdateTiming {
    double device_us = 0.0, host_us = 0.0; // for the model's trainable parameter count
    std::string reason;
};
UpdateTiming time_update_locations(runtime::Device& device, const OptimizerOptions& options, uint64_t parameters,
                                   bool fp16);

} // namespace vktrain::train
