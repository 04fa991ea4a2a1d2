// A Model compiled for one device, precision and batch size: every buffer allocated once, the backward
// pass derived from the forward graph, and two command buffers recorded once (the training step and a
// forward-only pass) that are replayed with new inputs. Host-visible staging carries the batch in, and
// only the scalars, the fp32 gradients and (for inference) the logits come back. A third command buffer,
// recorded on first use, replays the training step with a timestamp after every op (profiling).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/gemm.hpp"
#include "kernels/loss.hpp"
#include "runtime/sequence.hpp"
#include "vktrain/model.hpp"
#include "vktrain/options.hpp"
#include "vktrain/trainer.hpp"

namespace vktrain::graph {

struct ParamSlot {
    std::string name;
    std::vector<int64_t> shape;
    uint32_t fan_in = 0;
    uint64_t offset = 0; // in elements, in the flat parameter (and gradient) arrays
    uint64_t count = 0;
};

class Program {
public:
    Program(runtime::Device& device, const Model& model, Precision precision, uint32_t batch, GemmPath requested);
    ~Program();
    Program(const Program&) = delete;
    Program& operator=(const Program&) = delete;

    uint32_t batch() const { return m_batch; }
    const std::vector<ParamSlot>& params() const { return m_params; }
    uint64_t param_count() const { return m_param_count; }
    const std::vector<GemmReport>& gemm_reports() const { return m_gemm_reports; }
    uint64_t device_bytes() const { return m_device_bytes; }

    // Host -> device (through staging; takes effect at the next replay).
    void set_weights(const float* master);
    void set_batch(const float* x, const int32_t* labels, uint32_t count, float loss_scale);

    void run_train();   // forward, loss, backward, gradient scan, gradients to the host
    void run_forward(); // forward only, logits to the host
    // The training step's device work once more, timed per op (see profile_train in program.cpp). Leaves the
    // same results behind as run_train().
    StepProfile profile_train();

    double loss_sum(uint32_t count) const;              // sum of the per-row losses of the last training replay
    bool nonfinite() const;                             // any inf/NaN in the last step's gradients
    const float* grads() const;                         // fp32, param_count() elements (valid after run_train)
    void read_logits(float* out, uint32_t count) const; // count×classes fp32 (after run_forward)

private:
    // Called while the training step is recorded: `start` right after begin(), `after_op` after every op with
    // its name ("linear0.forward (gemm fp32)", "relu0.backward", ...). Profiling puts a timestamp in both.
    struct RecordHooks {
        std::function<void()> start;
        std::function<void(const std::string& op)> after_op;
    };

    void choose_gemm_paths(GemmPath requested);
    void gemm(runtime::Sequence& seq, const std::string& site, const kernels::MatRef& a, bool trans_a,
              const kernels::MatRef& b, bool trans_b, const kernels::MatRef& c);
    std::string gemm_label(const std::string& site) const; // "linear0.forward (gemm tiled-fp16)"
    std::string node_label(size_t node) const;             // the node's name, else "relu0", "gelu1", ...
    void record_forward(runtime::Sequence& seq);           // the forward-only sequence
    void record_forward_ops(runtime::Sequence& seq, const RecordHooks& hooks);
    void record_train(runtime::Sequence& seq, const RecordHooks& hooks = {});
    kernels::MatRef act(int node) const;
    kernels::MatRef grad(int node) const;
    kernels::MatRef param(const ParamSlot& slot, uint32_t rows, uint32_t cols) const;
    kernels::MatRef param_grad(const ParamSlot& slot, uint32_t rows, uint32_t cols) const;

    runtime::Device& m_device;
    Model m_model;
    Precision m_precision;
    kernels::DType m_dtype; // activations, activation gradients and device weights
    uint32_t m_batch;
    std::vector<ParamSlot> m_params;
    std::vector<int> m_weight_slot, m_bias_slot; // per node: index into m_params or -1
    uint64_t m_param_count = 0;
    std::map<std::string, GemmPath> m_gemm_path; // per GEMM site ("linear0.forward", ...)
    std::vector<GemmReport> m_gemm_reports;
    uint64_t m_device_bytes = 0;

    std::vector<runtime::Buffer> m_acts, m_grads_act; // per node
    runtime::Buffer m_weights, m_weights_staging, m_grads, m_grads_readback;
    runtime::Buffer m_x_staging, m_labels, m_step_params, m_row_loss, m_flag, m_logits;
    std::vector<std::string> m_node_labels;
    std::unique_ptr<runtime::Sequence> m_train, m_forward;
    std::unique_ptr<runtime::Sequence> m_profile; // recorded by the first profile_train()
    std::vector<std::string> m_profile_ops;       // op i ran between timestamps i and i + 1
};

} // namespace vktrain::graph
