// A Model compiled for one device, precision, batch size and mode (training or evaluation): the Ir (forward and
// derived backward), a GEMM path per GEMM site, a memory plan, and the recorded command buffer replayed every
// step. Buffers shared with the other mode's program (weights, state, arena) live in Resources; a program owns
// only its inputs' upload buffers, its host outputs and (training) the fp32 gradients and their readback.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "graph/buckets.hpp"
#include "graph/exec.hpp"
#include "graph/ir.hpp"
#include "graph/planner.hpp"
#include "graph/resources.hpp"
#include "runtime/sequence.hpp"
#include "vktrain/trainer.hpp"

namespace vktrain::graph {

class Program {
public:
    // Lowers, chooses GEMM paths and plans memory; allocates nothing yet (see record()).
    // recompute (training): activation recomputation (graph/recompute.hpp; Ir::recomputed_blocks says whether the
    // model had blocks to recompute).
    // max_buckets (training): the gradients come back in up to this many buckets (graph/buckets.hpp), each as soon
    // as the device has finished it.
    Program(runtime::Device& device, const Model& model, const Layout& layout, Precision precision, uint32_t batch,
            bool training, GemmPath requested, uint64_t seed = 0, size_t max_buckets = 1, bool recompute = false);
    ~Program();
    Program(const Program&) = delete;
    Program& operator=(const Program&) = delete;

    const Ir& ir() const { return m_ir; }
    const MemoryPlan& plan() const { return m_plan; }
    const std::vector<GemmReport>& gemm_reports() const { return m_reports; }

    // Allocates this program's own buffers (the arena must already hold plan().arena_bytes) and records.
    void record(Resources& resources);
    // What this program needs of the shared host-visible buffers (Resources::make_io).
    std::vector<uint64_t> input_bytes() const;
    uint64_t row_loss_bytes() const;

    // inputs[i]: count samples of model input i (fp32 or int32 as declared); the rest of the batch is zeroed.
    void set_inputs(const std::vector<const void*>& inputs, uint32_t count);
    void run(); // start() then finish()
    // A replay in parts (the caller uploads changed weights first: Resources::upload_if_changed): start() submits it;
    // after wait_bucket(b) the gradients of buckets()[b] are readable through grads() (and its weights may change)
    // while the device computes the rest; finish() waits for the whole replay (destroying the program also does). Every
    // start() needs its finish().
    void start();
    void wait_bucket(size_t bucket);
    void finish();
    const std::vector<GradBucket>& buckets() const { return m_buckets; } // training: at least one
    StepProfile profile();
    // Compute dispatches one replay (run()) records; the profiling replay records the same ones.
    uint32_t dispatches() const;

    double loss_sum(uint32_t count) const; // sum of the per-row losses of the first `count` samples
    uint32_t loss_terms_per_sample() const { return m_ir.loss_terms_per_sample; } // the mean's divisor per sample
    // What the mean loss of `count` samples of `inputs` divides by: count · loss_terms_per_sample(), or with a
    // cross-entropy ignore_index the positions whose label is not ignored (possibly 0; 0 for null labels too).
    uint64_t loss_divisor(const std::vector<const void*>& inputs, uint32_t count) const;
    uint64_t loss_divisor() const { return m_loss_divisor; } // of the batch set_inputs() last set
    // A micro-batch's weight in a step's mean: its sample count, or with an ignore_index its loss_divisor.
    uint64_t loss_weight(const std::vector<const void*>& inputs, uint32_t count) const {
        return m_ignore_labels < 0 ? count : loss_divisor(inputs, count);
    }
    const float* grads() const;                                    // training: fp32, Layout::grad_count elements
    const runtime::Buffer& grad_buffer() const { return m_grads; } // where the backward pass writes them
    // Host-visible bytes of the gradients' readback (0 without one: evaluation, unified memory).
    uint64_t grad_readback_bytes() const { return m_grads_readback.valid() ? m_grads_readback.size() : 0; }
    // Evaluation: the outputs it reads back (Ir::outputs: [0] the default output, then the named ones), as fp32.
    uint64_t output_elements_per_sample(size_t output) const;
    void read_output(size_t output, float* out, uint32_t count) const;

private:
    struct Hooks {
        std::function<void()> start;
        std::function<void(const std::string&)> after_op;
    };
    void choose_paths(GemmPath requested, Precision precision);
    void record_into(runtime::Sequence& seq, const Hooks& hooks);
    void read_back(runtime::Sequence& seq, const GradBucket& bucket);

    runtime::Device& m_device;
    const Layout& m_layout;
    Ir m_ir;
    bool m_fp16;
    MemoryPlan m_plan;
    Exec m_exec;
    std::vector<GemmReport> m_reports;
    std::vector<GradBucket> m_buckets;
    Resources* m_res = nullptr;
    runtime::Buffer m_grads, m_grads_readback;
    std::vector<runtime::Buffer> m_outputs; // evaluation: one readback per Ir::outputs entry (invalid for -1)
    std::unique_ptr<runtime::Sequence> m_seq, m_profile;
    std::vector<std::string> m_profile_ops;
    int m_ignore_labels = -1; // with a cross-entropy ignore_index: the model input holding the labels
    int32_t m_ignore_index = 0;
    uint64_t m_loss_divisor = 0;
};

} // namespace vktrain::graph
