// A Model compiled for one device, precision and batch size: every buffer allocated once, the backward
// pass derived from the forward graph, and two command buffers recorded once (the training step and a
// forward-only pass) that are replayed with new inputs. Host-visible staging carries the batch in, and
// only the scalars, the fp32 gradients and (for inference) the logits come back.
#pragma once

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

    double loss_sum(uint32_t count) const;              // sum of the per-row losses of the last training replay
    bool nonfinite() const;                             // any inf/NaN in the last step's gradients
    const float* grads() const;                         // fp32, param_count() elements (valid after run_train)
    void read_logits(float* out, uint32_t count) const; // count×classes fp32 (after run_forward)

private:
    void choose_gemm_paths(GemmPath requested);
    void gemm(runtime::Sequence& seq, const std::string& site, const kernels::MatRef& a, bool trans_a,
              const kernels::MatRef& b, bool trans_b, const kernels::MatRef& c);
    void record_forward(runtime::Sequence& seq);
    void record_train(runtime::Sequence& seq);
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
    std::unique_ptr<runtime::Sequence> m_train, m_forward;
};

} // namespace vktrain::graph
