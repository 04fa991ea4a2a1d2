#include "graph/program.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/half.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/gemm_autotune.hpp"
#include "runtime/device.hpp"

namespace vktrain::graph {

using kernels::DType;
using kernels::MatRef;
using runtime::Buffer;
using runtime::MemoryKind;

namespace {

kernels::Activation activation_of(OpKind k) {
    return k == OpKind::gelu ? kernels::Activation::gelu : kernels::Activation::relu;
}

// A GEMM site of the step: its label, shape and transposes.
struct Site {
    std::string label;
    kernels::GemmShape shape;
};

std::vector<Site> gemm_sites(const Model& model, uint32_t batch, DType act) {
    std::vector<Site> sites;
    const auto& nodes = model.nodes();
    for (const Node& n : nodes) {
        if (n.kind != OpKind::linear) continue;
        const uint32_t in = nodes[n.input].features, out = n.features;
        sites.push_back({n.name + ".forward", {false, true, batch, out, in, act}});
        sites.push_back({n.name + ".weight_grad", {true, false, out, in, batch, DType::f32}});
        if (n.input != 0) sites.push_back({n.name + ".input_grad", {false, false, batch, in, out, act}});
    }
    return sites;
}

// The backward pass writes each value's gradient once, so every value but the input must feed exactly one
// op (the output feeds the loss). Branches would need gradient accumulation, and a value that feeds
// nothing would get no gradient at all: both are refused rather than trained wrongly.
void check_chain(const Model& model) {
    const auto& nodes = model.nodes();
    std::vector<int> uses(nodes.size(), 0);
    for (const Node& n : nodes)
        if (n.input >= 0) ++uses[n.input];
    uses[model.output()] += 1;
    for (size_t i = 1; i < nodes.size(); ++i) {
        const std::string what = nodes[i].name.empty() ? "node " + std::to_string(i) : nodes[i].name;
        VKT_CHECK(uses[i] == 1, what, " feeds ", uses[i], " ops; vktrain trains chains of ops for now (every value ",
                  "but the input used exactly once)");
    }
}

} // namespace

Program::Program(runtime::Device& device, const Model& model, Precision precision, uint32_t batch, GemmPath requested)
    : m_device(device), m_model(model), m_precision(precision),
      m_dtype(precision == Precision::mixed ? DType::f16 : DType::f32), m_batch(batch) {
    VKT_CHECK(batch > 0, "batch size must be positive");
    VKT_CHECK(model.output() >= 0, "the model has no loss head (call softmax_cross_entropy)");
    check_chain(model);
    if (precision == Precision::mixed)
        VKT_CHECK(device.fp16_enabled(), "mixed precision needs 16-bit storage, which '", device.caps().info.name,
                  "' lacks (or fp16 was disabled); use precision fp32");
    // Paths first: auto-selection times GEMMs on scratch buffers, freed before ours are allocated, so the
    // device's peak is the larger of the two rather than their sum.
    choose_gemm_paths(requested);
    const uint64_t before = device.allocated_bytes();
    const auto& nodes = model.nodes();

    // Op labels: a node's own name, else its kind and a per-kind counter ("relu0", "relu1", "gelu0", ...).
    std::map<std::string, int> unnamed;
    for (const Node& n : nodes) {
        if (!n.name.empty()) {
            m_node_labels.push_back(n.name);
            continue;
        }
        const std::string kind = n.kind == OpKind::relu ? "relu" : n.kind == OpKind::gelu ? "gelu" : "op";
        m_node_labels.push_back(kind + std::to_string(unnamed[kind]++));
    }

    // Parameters: one flat array, tensors in declaration order.
    m_weight_slot.assign(nodes.size(), -1);
    m_bias_slot.assign(nodes.size(), -1);
    for (size_t i = 0; i < nodes.size(); ++i) {
        const Node& n = nodes[i];
        if (n.kind != OpKind::linear) continue;
        const uint32_t in = nodes[n.input].features;
        m_weight_slot[i] = int(m_params.size());
        m_params.push_back(
            {n.name + ".weight", {int64_t(n.features), int64_t(in)}, in, m_param_count, uint64_t(n.features) * in});
        m_param_count += uint64_t(n.features) * in;
        if (n.bias) {
            m_bias_slot[i] = int(m_params.size());
            m_params.push_back({n.name + ".bias", {int64_t(n.features)}, in, m_param_count, n.features});
            m_param_count += n.features;
        }
    }
    VKT_CHECK(m_param_count > 0 && m_param_count < (1ull << 32), "parameter count ", m_param_count,
              " is outside what one buffer addresses");

    const uint32_t esz = kernels::dtype_size(m_dtype);
    m_weights = Buffer(device, m_param_count * esz, MemoryKind::device, "weights");
    m_weights_staging = Buffer(device, m_param_count * esz, MemoryKind::upload, "weights staging");
    m_grads = Buffer(device, m_param_count * 4, MemoryKind::device, "gradients");
    m_grads_readback = Buffer(device, m_param_count * 4, MemoryKind::readback, "gradients readback");
    for (size_t i = 0; i < nodes.size(); ++i) {
        const uint64_t bytes = uint64_t(batch) * nodes[i].features * esz;
        m_acts.emplace_back(device, bytes, MemoryKind::device, "activation");
        // The input needs no gradient; every other value does.
        m_grads_act.push_back(i == 0 ? Buffer() : Buffer(device, bytes, MemoryKind::device, "activation gradient"));
    }
    const uint32_t classes = model.classes();
    m_x_staging = Buffer(device, uint64_t(batch) * model.input_features() * 4, MemoryKind::upload, "input staging");
    m_labels = Buffer(device, uint64_t(batch) * 4, MemoryKind::upload, "labels");
    m_step_params = Buffer(device, sizeof(kernels::StepParams), MemoryKind::upload, "step parameters");
    m_row_loss = Buffer(device, uint64_t(batch) * 4, MemoryKind::readback, "row losses");
    m_flag = Buffer(device, 16, MemoryKind::readback, "non-finite flag");
    m_logits = Buffer(device, uint64_t(batch) * classes * 4, MemoryKind::readback, "logits readback");

    m_train = std::make_unique<runtime::Sequence>(device);
    m_forward = std::make_unique<runtime::Sequence>(device);
    record_train(*m_train);
    record_forward(*m_forward);
    m_device_bytes = device.allocated_bytes() - before;
}

Program::~Program() = default;

void Program::choose_gemm_paths(GemmPath requested) {
    for (const Site& s : gemm_sites(m_model, m_batch, m_dtype)) {
        GemmReport r;
        r.site = s.label;
        r.shape = s.shape.key();
        if (m_precision == Precision::fp32) {
            r.path = GemmPath::fp32;
            r.reason = "precision fp32";
        } else {
            const kernels::GemmChoice c = kernels::choose_gemm_path(m_device, requested, s.shape);
            r.path = c.path;
            r.reason = c.reason;
        }
        m_gemm_path[s.label] = r.path;
        m_gemm_reports.push_back(r);
    }
}

MatRef Program::act(int node) const {
    return MatRef{&m_acts[node], m_dtype, m_batch, m_model.nodes()[node].features, 0};
}

MatRef Program::grad(int node) const {
    return MatRef{&m_grads_act[node], m_dtype, m_batch, m_model.nodes()[node].features, 0};
}

MatRef Program::param(const ParamSlot& slot, uint32_t rows, uint32_t cols) const {
    return MatRef{&m_weights, m_dtype, rows, cols, uint32_t(slot.offset)};
}

MatRef Program::param_grad(const ParamSlot& slot, uint32_t rows, uint32_t cols) const {
    return MatRef{&m_grads, DType::f32, rows, cols, uint32_t(slot.offset)};
}

void Program::gemm(runtime::Sequence& seq, const std::string& site, const MatRef& a, bool trans_a, const MatRef& b,
                   bool trans_b, const MatRef& c) {
    kernels::record_gemm(m_device, seq, m_gemm_path.at(site), a, trans_a, b, trans_b, c);
}

std::string Program::gemm_label(const std::string& site) const {
    return site + " (gemm " + to_string(m_gemm_path.at(site)) + ")";
}

std::string Program::node_label(size_t node) const {
    return m_node_labels.at(node);
}

void Program::record_forward(runtime::Sequence& seq) {
    const auto& nodes = m_model.nodes();
    seq.begin();
    record_forward_ops(seq, {});
    const int out = m_model.output();
    kernels::record_cast(m_device, seq, act(out), MatRef{&m_logits, DType::f32, m_batch, nodes[out].features, 0});
    seq.end();
}

// The forward ops shared by the forward-only and the training sequences: weights in, input cast, every node.
void Program::record_forward_ops(runtime::Sequence& seq, const RecordHooks& hooks) {
    const auto done = [&](const std::string& op) {
        if (hooks.after_op) hooks.after_op(op);
    };
    const auto& nodes = m_model.nodes();
    seq.copy(m_weights_staging, m_weights, m_weights.size());
    done("upload");
    kernels::record_cast(m_device, seq, MatRef{&m_x_staging, DType::f32, m_batch, nodes[0].features, 0}, act(0));
    done(node_label(0) + ".cast");
    for (size_t i = 1; i < nodes.size(); ++i) {
        const Node& n = nodes[i];
        const uint32_t in = nodes[n.input].features;
        const std::string label = node_label(i);
        switch (n.kind) {
        case OpKind::linear: {
            gemm(seq, n.name + ".forward", act(n.input), false, param(m_params[m_weight_slot[i]], n.features, in), true,
                 act(int(i)));
            done(gemm_label(n.name + ".forward"));
            if (m_bias_slot[i] >= 0) {
                kernels::record_bias_add(m_device, seq, act(int(i)), param(m_params[m_bias_slot[i]], 1, n.features));
                done(label + ".bias_add");
            }
            break;
        }
        case OpKind::relu:
        case OpKind::gelu:
            kernels::record_activation(m_device, seq, activation_of(n.kind), act(n.input), act(int(i)));
            done(label + ".forward");
            break;
        case OpKind::input: VKT_FAIL("input node inside the graph");
        }
    }
}

// The one recording of the training step: the replayed sequence (no hooks) and the profiling one (a timestamp
// at the start and after every op) both come from here, so they always run the same ops.
void Program::record_train(runtime::Sequence& seq, const RecordHooks& hooks) {
    const auto done = [&](const std::string& op) {
        if (hooks.after_op) hooks.after_op(op);
    };
    const auto& nodes = m_model.nodes();
    seq.begin();
    if (hooks.start) hooks.start();
    seq.fill(m_flag, 0); // timed with the weight upload: both are transfers before the forward pass
    record_forward_ops(seq, hooks);
    const int out = m_model.output();
    kernels::record_softmax_xent(m_device, seq, act(out), m_labels, m_step_params, m_row_loss, grad(out));
    done("softmax_xent");
    for (size_t i = nodes.size() - 1; i >= 1; --i) {
        const Node& n = nodes[i];
        const uint32_t in = nodes[n.input].features;
        const std::string label = node_label(i);
        switch (n.kind) {
        case OpKind::linear: {
            const ParamSlot& w = m_params[m_weight_slot[i]];
            // dW = dYᵀ·X (out×in, fp32), db = column sums of dY, dX = dY·W.
            gemm(seq, n.name + ".weight_grad", grad(int(i)), true, act(n.input), false, param_grad(w, n.features, in));
            done(gemm_label(n.name + ".weight_grad"));
            if (m_bias_slot[i] >= 0) {
                kernels::record_bias_grad(m_device, seq, grad(int(i)),
                                          param_grad(m_params[m_bias_slot[i]], 1, n.features));
                done(label + ".bias_grad");
            }
            if (n.input != 0) {
                gemm(seq, n.name + ".input_grad", grad(int(i)), false, param(w, n.features, in), false, grad(n.input));
                done(gemm_label(n.name + ".input_grad"));
            }
            break;
        }
        case OpKind::relu:
        case OpKind::gelu:
            kernels::record_activation_backward(m_device, seq, activation_of(n.kind), act(n.input), grad(int(i)),
                                                grad(n.input));
            done(label + ".backward");
            break;
        case OpKind::input: break;
        }
    }
    kernels::record_nonfinite_scan(m_device, seq, MatRef{&m_grads, DType::f32, 1, uint32_t(m_param_count), 0}, m_flag);
    done("gradient_scan");
    seq.copy(m_grads, m_grads_readback, m_param_count * 4);
    done("readback");
    seq.end();
}

// Sequence::timestamp() puts a full barrier before each timestamp, so in the profiling replay every op waits
// for the one before it to finish and ops never overlap. The per-op times (and their sum, the total) are
// therefore slightly pessimistic compared with run_train(), where independent ops may overlap and barriers
// only separate real hazards.
StepProfile Program::profile_train() {
    const bool gpu = m_device.caps().info.timestamps;
    const bool fresh = !m_profile;
    if (fresh) {
        // A linear layer records at most 5 ops (forward GEMM, bias add, weight-grad GEMM, bias grad, input-grad
        // GEMM), other nodes fewer; the rest of the step has 4 (upload, softmax_xent, gradient_scan, readback).
        const auto max_timestamps = uint32_t(5 * m_model.nodes().size() + 8);
        auto seq = std::make_unique<runtime::Sequence>(m_device, max_timestamps);
        // Timestamp indices are consecutive from 0: the start is 0, op i ends at i + 1.
        std::vector<std::string> ops;
        RecordHooks hooks;
        hooks.start = [&] { seq->timestamp(); };
        hooks.after_op = [&](const std::string& op) {
            seq->timestamp();
            ops.push_back(op);
        };
        record_train(*seq, hooks);
        m_profile = std::move(seq);
        m_profile_ops = std::move(ops);
    }
    // The first replay of a new command buffer may pay lazy driver work; it is not what a step costs.
    if (fresh) m_profile->submit_and_wait();
    const auto start = std::chrono::steady_clock::now();
    m_profile->submit_and_wait();
    const double host_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();

    StepProfile p;
    p.gpu_timestamps = gpu;
    const auto n = uint32_t(m_profile_ops.size());
    for (uint32_t i = 0; i < n; ++i)
        p.ops.push_back({m_profile_ops[i], gpu ? m_profile->elapsed_ns(i, i + 1) / 1000.0 : 0.0});
    p.total_microseconds = gpu ? m_profile->elapsed_ns(0, n) / 1000.0 : host_us;
    return p;
}

void Program::set_weights(const float* master) {
    if (m_dtype == DType::f16) {
        auto* dst = static_cast<uint16_t*>(m_weights_staging.mapped());
        floats_to_halves(master, dst, m_param_count);
    } else {
        std::memcpy(m_weights_staging.mapped(), master, m_param_count * 4);
    }
    m_weights_staging.flush(0, m_weights_staging.size());
}

void Program::set_batch(const float* x, const int32_t* labels, uint32_t count, float loss_scale) {
    VKT_CHECK(count >= 1 && count <= m_batch, "batch of ", count, " samples; this trainer takes 1..", m_batch);
    const uint64_t features = m_model.input_features();
    auto* xs = static_cast<float*>(m_x_staging.mapped());
    std::memcpy(xs, x, uint64_t(count) * features * 4);
    // Padding rows are zero: they flow through the forward pass harmlessly and get zero gradient.
    std::fill(xs + uint64_t(count) * features, xs + uint64_t(m_batch) * features, 0.0f);
    m_x_staging.flush(0, m_x_staging.size());
    auto* ls = static_cast<int32_t*>(m_labels.mapped());
    if (labels)
        std::memcpy(ls, labels, uint64_t(count) * 4);
    else
        std::fill(ls, ls + count, 0);
    std::fill(ls + count, ls + m_batch, 0);
    m_labels.flush(0, m_labels.size());
    kernels::StepParams p{count, loss_scale, 0, 0};
    m_step_params.write(&p, sizeof p);
}

void Program::run_train() {
    m_train->submit_and_wait();
}
void Program::run_forward() {
    m_forward->submit_and_wait();
}

double Program::loss_sum(uint32_t count) const {
    std::vector<float> rows(count);
    m_row_loss.read(rows.data(), uint64_t(count) * 4);
    double sum = 0;
    for (float r : rows) sum += r;
    return sum;
}

bool Program::nonfinite() const {
    uint32_t flag = 0;
    m_flag.read(&flag, 4);
    return flag != 0;
}

const float* Program::grads() const {
    m_grads_readback.invalidate(0, m_grads_readback.size());
    return static_cast<const float*>(m_grads_readback.mapped());
}

void Program::read_logits(float* out, uint32_t count) const {
    m_logits.read(out, uint64_t(count) * m_model.classes() * 4);
}

} // namespace vktrain::graph
