// The device update strategy (train/update_strategy.hpp; TrainerOptions::update_location = device): fp32 master
// weights and optimizer state in device memory, updated by kernels::record_optimizer_update after a scan of the
// gradients for inf/NaN, so that a step moves no gradient down and no weight up. The host's master weights and
// Optimizer stay the API's: they are brought up to date from the device whenever the host reads them (sync_host) and
// written back before the next device step when the host changed them. Skips follow GradScaler exactly: the kernels
// write nothing when the scan found an inf or NaN, and the host then drops the step too.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/resources.hpp"
#include "kernels/optimizer_update.hpp"
#include "runtime/memory.hpp"
#include "runtime/sequence.hpp"
#include "train/optimizer.hpp"
#include "train/update_strategy.hpp"

namespace vktrain::train {

class DeviceUpdate final : public UpdateStrategy {
public:
    // grads: the training program's fp32 gradient buffer; weights: the buffer its kernels read (weight_type). The
    // device's copies are uploaded from `master` and `optimizer` here.
    DeviceUpdate(runtime::Device& device, const graph::Layout& layout, Optimizer& optimizer, std::vector<float>& master,
                 const runtime::Buffer& grads, const runtime::Buffer& weights, kernels::DType weight_type);

    // Writes the control block for the optimizer's next step (per tensor: its own step count, decay and bias
    // corrections), after uploading the master weights and state if the host's are newer.
    void begin(const StepScalars& scalars) override;
    void submitted() override;                       // queues the scan and the update behind the training replay
    void on_bucket(size_t, const float*) override {} // the gradients stay on the device
    GradientCheck check() override;                  // waits for the update; grad_norm is NaN (not formed)
    StepTiming finish(bool skip) override;           // host_seconds 0: the update ran on the device
    void abandon() override;
    void sync_host() override;
    void host_changed(bool trainable_only) override;

    uint64_t device_bytes() const; // the master weights, state and control block
    uint32_t dispatches() const override { return uint32_t(m_seq.dispatch_count()); }

private:
    // Which copy holds the latest trainable weights and optimizer state: the host's (the API's) or the device's.
    enum class Latest { both, host, device };

    void upload();
    void download();
    // count floats between `host` and the start of `buffer`.
    void transfer(const runtime::Buffer& buffer, float* host, uint64_t count, bool to_device);

    runtime::Device& m_device;
    Optimizer& m_optimizer;
    std::vector<float>& m_master;
    std::vector<kernels::UpdateTensor> m_tensors;
    std::vector<uint64_t> m_master_offsets; // per trainable tensor: where it lies in m_master
    uint64_t m_grad_count = 0;
    uint32_t m_state_copies = 0;
    runtime::Buffer m_master_buffer, m_state, m_control;
    runtime::Sequence m_seq;
    Latest m_latest = Latest::both;
    bool m_in_flight = false;
    float m_learning_rate = 0.0f;
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
