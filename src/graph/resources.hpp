// What the training and evaluation programs of one model share on the device: the parameters' device copy
// (fp16 in mixed precision, fp32 otherwise) with its upload staging, the fp32 state buffers (BatchNorm running
// statistics), the per-step scalars, and the activation arena (sized for the larger of the two plans).
// Trainable weights are staged from the host's fp32 masters and uploaded only when the host changed them. Frozen
// weights live only here, on the device, in the storage precision: the host keeps no master and no staging for them;
// they are written (write_device_only) and read (read_device_only) through transient buffers when the API asks.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "graph/ir.hpp"
#include "runtime/memory.hpp"
#include "runtime/sequence.hpp"
#include "vktrain/options.hpp"

namespace vktrain::runtime {
class Device;
}

namespace vktrain::graph {

struct ParamSlot {
    ParameterInfo info;
    uint64_t count = 0;
    // Elements into the host's flat fp32 master array: trainable parameters only (-1: a frozen parameter, which lives
    // only on the device, or a buffer). Equal to grad_offset: the masters and the gradients share one layout.
    int64_t master_offset = -1;
    uint64_t device_offset = 0; // elements into the weights buffer (parameters) or the state buffer (buffers)
    int64_t grad_offset = -1;   // elements into the gradients buffer (trainable parameters), else -1
    int64_t counter = -1;       // index into the host's counters (ParameterInfo::counter), else -1

    bool device_only() const { return counter < 0 && !info.buffer && grad_offset < 0; } // a frozen parameter
};

struct Layout {
    std::vector<ParamSlot> slots; // Model::parameters() order
    // weight_count: every parameter's elements on the device; master_count (== grad_count): the trainable ones, the
    // only ones with a host master.
    uint64_t weight_count = 0, master_count = 0, state_count = 0, grad_count = 0, counter_count = 0;
    uint64_t frozen_count = 0; // elements of frozen parameters (device only)
    uint32_t trainable_tensors = 0;
};

Layout make_layout(const Model& model);

class Resources {
public:
    Resources(runtime::Device& device, const Layout& layout, Precision precision);
    // The trainable set changed (Trainer::set_trainable): the same parameters at the same device offsets, other ones
    // trained (the staging is sized again for the new masters). Call it with nothing waiting for upload
    // (upload_if_changed() first), then set_weights() with the new masters.
    void set_layout(const Layout& layout);

    runtime::Device& device() const { return m_device; }
    const Layout& layout() const { return m_layout; }
    bool fp16() const { return m_fp16; }
    bool unified() const { return m_unified; } // weights written in place, gradients read in place

    // Host master weights (trainable parameters, Layout::master_offset) -> staging; the device copy is refreshed
    // before the next replay that reads it. On unified memory the host writes the device's own copy: only between
    // replays, or (the bucketed update, graph/buckets.hpp) for tensors the replay in flight is done with.
    void set_weights(const float* master);
    void set_trainable_weights(const float* master) { set_weights(master); } // (the same: the host holds no other)
    // A frozen parameter's values written straight to the device's copy (converted to the storage precision) and
    // read back from it (converted to fp32), through transient buffers of at most 64 MiB: no replay may be running.
    void write_device_only(const ParamSlot& s, const float* values);
    void read_device_only(const ParamSlot& s, float* out) const;
    // fp16 weights (mixed precision): where each trainable parameter's fp16 copy is staged, in slot order, so that
    // the optimizer writes it in the same pass as the update; then trainable_weights_staged() instead of
    // set_trainable_weights(). Empty in fp32.
    std::vector<uint16_t*> trainable_half_staging();
    void trainable_weights_staged();
    // Brings the device's copy up to date before a replay that reads it (the trainer calls it, visibly, before each
    // replay): submits the copy when weights were set since the last upload (none on unified memory).
    void upload_if_changed();
    void read_state(std::vector<float>& out) const;
    void read_state(std::vector<float>& out, uint64_t offset, uint64_t count) const; // `count` values from `offset`
    void write_state(const std::vector<float>& values);
    void set_step(uint32_t n_valid, float loss_scale, uint32_t step);
    void set_loss_terms(uint32_t terms); // StepParams::loss_terms (set_step zeroes it)
    void ensure_arena(uint64_t bytes);
    // Host-visible buffers both programs share (they never run at once): one upload buffer per model input and
    // the per-row losses. Made once, before any program records, at the larger program's sizes.
    void make_io(const std::vector<uint64_t>& input_bytes, uint64_t row_loss_bytes);
    runtime::Buffer& input(size_t i) { return m_inputs.at(i); }
    const runtime::Buffer& row_loss() const { return m_row_loss; }

    const runtime::Buffer& weights() const { return m_weights; }
    uint64_t staging_bytes() const { return m_weights_staging.valid() ? m_weights_staging.size() : 0; }
    const runtime::Buffer& state() const { return m_state; }
    const runtime::Buffer& arena() const { return m_arena; }
    const runtime::Buffer& step_params() const { return m_step_params; }
    // Weight refreshes so far (tests): copies, or on unified memory writes in place; and their bytes.
    uint64_t uploads() const { return m_uploads; }
    uint64_t uploaded_bytes() const { return m_uploaded_bytes; }

private:
    runtime::Buffer& host_weights() { return m_unified ? m_weights : m_weights_staging; }
    void record_trainable_upload(); // the staging and copies of the trainable parameters (m_layout), and their bytes
    // Where a trainable parameter's values lie in host_weights(): its device offset on unified memory, else its
    // master offset (the staging holds the trainable parameters only).
    uint64_t staged_at(const ParamSlot& p) const { return m_unified ? p.device_offset : uint64_t(p.master_offset); }

    runtime::Device& m_device;
    Layout m_layout;
    bool m_fp16, m_unified;
    runtime::Buffer m_weights, m_weights_staging, m_state, m_state_io, m_step_params, m_arena, m_row_loss;
    std::vector<runtime::Buffer> m_inputs;
    std::unique_ptr<runtime::Sequence> m_upload;
    uint64_t m_trainable_bytes = 0;
    bool m_dirty = false;
    uint64_t m_uploads = 0, m_uploaded_bytes = 0;
};

} // namespace vktrain::graph
