#include "graph/program.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <unordered_map>

#include "graph/registry.hpp"
#include "kernels/depthwise_conv.hpp"
#include "kernels/elementwise.hpp"
#include "runtime/device.hpp"

namespace vktrain::graph {

using kernels::DType;
using kernels::MatRef;
using runtime::Buffer;
using runtime::MemoryKind;

// ---- Exec ----

runtime::Sequence& Exec::seq() const {
    VKT_CHECK(m_seq != nullptr, "internal: recording while GEMM sites are collected");
    return *m_seq;
}

DType Exec::dtype(int v) const {
    switch (value(v).storage) {
    case Storage::act: return m_act;
    case Storage::f32: return DType::f32;
    case Storage::i32: return DType::f32; // same size; kernels that take integers bind the buffer directly
    }
    return DType::f32;
}

MatRef Exec::mat(int v, uint64_t rows, uint64_t cols) const {
    const IrValue& val = value(v);
    VKT_CHECK(rows * cols == val.elements(), "internal: ", val.label, " ", shape_text(val.shape), " viewed as ", rows,
              "x", cols);
    VKT_CHECK(rows < (1ull << 32) && cols < (1ull << 32), val.label, " ", shape_text(val.shape),
              " has a dimension beyond 2^32 elements");
    const Location& l = m_loc.at(size_t(v));
    VKT_CHECK(l.buffer != nullptr, "internal: ", val.label, " has no storage");
    return MatRef{l.buffer, dtype(v), uint32_t(rows), uint32_t(cols), l.offset};
}

MatRef Exec::rows(int v) const {
    const IrValue& val = value(v);
    const uint64_t cols = val.shape.empty() ? 1 : uint64_t(val.shape.back());
    return mat(v, cols ? val.elements() / cols : 0, cols);
}

MatRef Exec::batch(int v) const {
    const IrValue& val = value(v);
    const uint64_t rows = val.shape.empty() ? 1 : uint64_t(val.shape.front());
    return mat(v, rows, rows ? val.elements() / rows : 0);
}

void Exec::declare_gemm(const std::string& site, const kernels::GemmShape& shape) {
    Site s;
    s.gemm = shape;
    m_sites[site] = s;
}

void Exec::declare_conv(const std::string& site, const kernels::ConvProblem& problem) {
    Site s;
    s.is_conv = true;
    s.conv = problem;
    m_sites[site] = s;
}

void Exec::conv(const std::string& site, kernels::ConvDirection direction, const kernels::Conv2dShape& shape,
                const MatRef& in0, const MatRef& in1, const MatRef& out, bool accumulate) {
    kernels::record_conv2d(m_device, seq(), path(site), direction, shape, in0, in1, out, accumulate, tile(site));
}

uint32_t Exec::tile(const std::string& site) const {
    const auto it = m_tiles.find(site);
    return it == m_tiles.end() ? 0 : it->second; // 0: the default tiles (tuning off)
}

GemmPath Exec::path(const std::string& site) const {
    auto it = m_paths.find(site);
    VKT_CHECK(it != m_paths.end(), "internal: GEMM site '", site, "' was not declared");
    return it->second;
}

void Exec::gemm(const std::string& site, const MatRef& a, bool trans_a, const MatRef& b, bool trans_b, const MatRef& c,
                bool accumulate) {
    kernels::record_gemm(m_device, seq(), path(site), a, trans_a, b, trans_b, c, accumulate, tile(site));
}

void Exec::gemm(const std::string& site, const kernels::GemmDesc& desc) {
    kernels::record_gemm_strided(m_device, seq(), path(site), desc, tile(site));
}

// ---- Program ----

Program::Program(runtime::Device& device, const Model& model, const Layout& layout, Precision precision, uint32_t batch,
                 bool training, GemmPath requested, uint64_t seed, size_t max_buckets, bool recompute)
    : m_device(device), m_layout(layout),
      m_ir(build_ir(model, batch, training, seed, device.fused_attention_min_score_bytes(), recompute,
                    device.fusion_enabled())),
      m_fp16(precision == Precision::mixed), m_exec(device, m_ir, m_fp16 ? DType::f16 : DType::f32) {
    if (m_fp16)
        VKT_CHECK(device.fp16_enabled(), "mixed precision needs 16-bit storage, which '", device.caps().info.name,
                  "' lacks (or fp16 was disabled); use precision fp32");
    for (const IrNode& n : m_ir.nodes)
        if (n.op->sites) n.op->sites(m_exec, n);
    // Paths first: auto-selection times GEMMs on scratch buffers, freed before ours are allocated, so the
    // device's peak is the larger of the two rather than their sum.
    choose_paths(requested, precision);
    const uint64_t align = std::max<uint64_t>(device.caps().min_storage_buffer_offset_alignment, 64);
    m_plan = plan_memory(m_ir, m_fp16, align);
    if (m_ir.training) m_buckets = plan_buckets(m_ir, m_layout, max_buckets);
    if (m_ir.loss_node >= 0) { // the host counts the positions a cross-entropy ignore_index leaves
        const IrNode& loss = m_ir.nodes[size_t(m_ir.loss_node)];
        const std::optional<int32_t> ignore =
            loss.op->name == "cross_entropy" ? optional_attr<int32_t>(loss, "ignore_index") : std::nullopt;
        if (ignore) {
            for (size_t i = 0; i < m_ir.inputs.size(); ++i)
                if (m_ir.inputs[i] == loss.in[1]) m_ignore_labels = int(i);
            VKT_CHECK(m_ignore_labels >= 0, "internal: the labels of '", loss.name, "' are not a model input");
            m_ignore_index = *ignore;
        }
    }
}

uint64_t Program::loss_divisor(const std::vector<const void*>& inputs, uint32_t count) const {
    const uint64_t rows = uint64_t(count) * m_ir.loss_rows_per_sample;
    if (m_ignore_labels < 0) return uint64_t(count) * m_ir.loss_terms_per_sample;
    const auto* labels = static_cast<const int32_t*>(inputs.at(size_t(m_ignore_labels)));
    if (labels == nullptr) return 0; // refused by the caller's input checks, or (predict) not needed
    uint64_t n = 0;
    for (uint64_t r = 0; r < rows; ++r) n += labels[r] != m_ignore_index ? 1 : 0;
    return n;
}

Program::~Program() = default;

void Program::choose_paths(GemmPath requested, Precision precision) {
    // A deep model repeats a few shapes many times: each distinct shape is chosen once (the choice reads and may
    // write the device's cache files) and its sites share the result.
    struct Choice {
        GemmReport report; // without its site
        uint32_t tile = 0;
    };
    std::unordered_map<std::string, Choice> by_shape;
    for (const auto& [site, shape] : m_exec.sites()) {
        const std::string key = shape.key();
        auto it = by_shape.find(key);
        if (it == by_shape.end()) {
            Choice choice;
            GemmReport& r = choice.report;
            r.shape = key;
            if (precision == Precision::fp32) {
                r.path = GemmPath::fp32;
                r.reason = "precision fp32";
            } else {
                const kernels::GemmChoice c = shape.is_conv
                                                  ? kernels::choose_conv_path(m_device, requested, shape.conv)
                                                  : kernels::choose_gemm_path(m_device, requested, shape.gemm);
                r.path = c.path;
                r.reason = c.reason;
            }
            if (shape.is_conv) {
                if (const auto dw = kernels::plan_depthwise(m_device, shape.conv.direction, shape.conv.shape)) {
                    r.tiles = dw->name();
                    r.tile_reason = "groups = channels: the depthwise kernel, not a GEMM per group";
                } else if (m_device.tune_tiles_enabled()) {
                    kernels::ConvProblem problem = shape.conv;
                    if (r.path == GemmPath::fp32) problem.out = kernels::DType::f32;
                    const kernels::TileChoice t = kernels::choose_conv_tile(m_device, r.path, problem);
                    choice.tile = t.tile;
                    r.tiles = t.name;
                    r.tile_reason = t.reason;
                } else {
                    r.tiles =
                        kernels::conv_configs(m_device, r.path, shape.conv.direction, shape.conv.shape, shape.conv.out)
                            .front()
                            .tile_name();
                    r.tile_reason = "the default (tuning off)";
                }
            } else {
                if (m_device.tune_tiles_enabled()) {
                    const kernels::TileChoice t = kernels::choose_gemm_tile(m_device, r.path, shape.gemm);
                    choice.tile = t.tile;
                    r.tiles = t.name;
                    r.tile_reason = t.reason;
                } else {
                    r.tiles = kernels::gemm_shape_configs(m_device, r.path, shape.gemm).front().tile_name();
                    r.tile_reason = "the default (tuning off)";
                }
            }
            it = by_shape.emplace(key, std::move(choice)).first;
        }
        GemmReport r = it->second.report;
        r.site = site;
        m_exec.paths()[site] = r.path;
        if (m_device.tune_tiles_enabled()) m_exec.tiles()[site] = it->second.tile;
        m_reports.push_back(std::move(r));
    }
    // Schedule order reads better than alphabetical: a site is "<node label>" or "<node label>:<part>".
    std::unordered_map<std::string, size_t> node_of; // node label -> schedule position
    for (size_t i = 0; i < m_ir.nodes.size(); ++i) node_of.emplace(m_ir.nodes[i].label, i);
    std::vector<std::pair<size_t, size_t>> order; // (schedule position, report)
    for (size_t i = 0; i < m_reports.size(); ++i) {
        const std::string& site = m_reports[i].site;
        auto it = node_of.find(site);
        if (it == node_of.end()) it = node_of.find(site.substr(0, site.find(':')));
        order.emplace_back(it == node_of.end() ? m_ir.nodes.size() : it->second, i);
    }
    std::sort(order.begin(), order.end());
    std::vector<GemmReport> ordered;
    ordered.reserve(order.size());
    for (const auto& [position, i] : order) ordered.push_back(std::move(m_reports[i]));
    m_reports = std::move(ordered);
}

void Program::record(Resources& res) {
    m_res = &res;
    VKT_CHECK(res.arena().valid() && res.arena().size() >= m_plan.arena_bytes, "internal: arena too small");
    std::vector<Location> loc(m_ir.values.size());
    for (size_t i = 0; i < m_ir.inputs.size(); ++i) {
        const IrValue& v = m_ir.values[size_t(m_ir.inputs[i])];
        VKT_CHECK(res.input(i).size() >= v.elements() * 4, "internal: input staging too small");
        loc[size_t(m_ir.inputs[i])] = {&res.input(i), 0};
    }
    VKT_CHECK(m_ir.row_loss < 0 || res.row_loss().size() >= m_ir.values[size_t(m_ir.row_loss)].elements() * 4,
              "internal: row-loss buffer too small");
    if (m_ir.training) {
        const uint64_t g = std::max<uint64_t>(m_layout.grad_count, 1);
        if (res.unified()) { // the host reads the gradients where the backward pass wrote them
            m_grads = Buffer(m_device, g * 4, MemoryKind::shared, "gradients");
        } else {
            m_grads = Buffer(m_device, g * 4, MemoryKind::device, "gradients");
            m_grads_readback = Buffer(m_device, g * 4, MemoryKind::readback, "gradients readback");
        }
    } else {
        for (int v : m_ir.outputs)
            m_outputs.push_back(v < 0 ? Buffer()
                                      : Buffer(m_device, std::max<uint64_t>(m_ir.values[size_t(v)].elements() * 4, 4),
                                               MemoryKind::readback, "output readback"));
    }
    const uint64_t esz_act = m_fp16 ? 2 : 4;
    const std::vector<int> roots = storage_roots(m_ir);
    for (size_t i = 0; i < m_ir.values.size(); ++i) {
        const IrValue& v = m_ir.values[i];
        const int root = roots[i];
        const IrValue& r = m_ir.values[size_t(root)];
        if (in_arena(r)) {
            if (m_plan.offset[size_t(root)] < 0) continue; // never used
            const uint64_t esz = r.storage == Storage::act ? esz_act : 4;
            loc[i] = {&res.arena(), uint64_t(m_plan.offset[size_t(root)]) / esz};
            continue;
        }
        switch (v.role) {
        case Role::param: loc[i] = {&res.weights(), m_layout.slots.at(size_t(v.param)).device_offset}; break;
        case Role::state: loc[i] = {&res.state(), m_layout.slots.at(size_t(v.param)).device_offset}; break;
        case Role::param_grad: loc[i] = {&m_grads, uint64_t(m_layout.slots.at(size_t(v.param)).grad_offset)}; break;
        case Role::host_out: loc[i] = {&res.row_loss(), 0}; break;
        default:
            if (root != int(i)) loc[i] = loc[size_t(root)];
            break;
        }
    }
    m_exec.bind(std::move(loc), &res.step_params());

    if (m_ir.training) {
        // Every gradient is written by its first contribution each step; those no node writes (parameters that do
        // not reach the loss) keep these zeros.
        runtime::Sequence zero(m_device);
        zero.begin();
        zero.fill(m_grads, 0);
        zero.end();
        zero.submit_and_wait();
    }
    m_seq = std::make_unique<runtime::Sequence>(m_device);
    record_into(*m_seq, {});
}

std::vector<uint64_t> Program::input_bytes() const {
    std::vector<uint64_t> out;
    for (int v : m_ir.inputs) out.push_back(m_ir.values[size_t(v)].elements() * 4);
    return out;
}

uint64_t Program::row_loss_bytes() const {
    return m_ir.row_loss < 0 ? 0 : m_ir.values[size_t(m_ir.row_loss)].elements() * 4;
}

void Program::record_into(runtime::Sequence& seq, const Hooks& hooks) {
    const auto done = [&](const std::string& op) {
        if (hooks.after_op) hooks.after_op(op);
    };
    m_exec.set_sequence(&seq);
    seq.begin();
    if (hooks.start) hooks.start();
    // The replay is split after the node that completes each bucket but the last (not when profiling, whose
    // timestamps already serialise every op): the host reads that bucket while the device goes on.
    const bool split = m_buckets.size() > 1 && !hooks.after_op;
    size_t next = 0; // the next bucket to complete
    const auto close_buckets = [&](int node) {
        while (split && next + 1 < m_buckets.size() && m_buckets[next].after_node <= node) {
            read_back(seq, m_buckets[next++]);
            seq.split();
        }
    };
    close_buckets(-1);
    for (size_t i = 0; i < m_ir.nodes.size(); ++i) {
        const IrNode& n = m_ir.nodes[i];
        if (n.op->record && !n.fused) { // fused: computed by another node's kernel
            n.op->record(m_exec, n);
            // A recomputed copy shares its forward node's label (hence its GEMM site); the profile tells them apart.
            const std::string shown = n.recomputed ? n.label + ".recomputed" : n.label;
            auto it = m_exec.paths().find(n.label);
            if (it == m_exec.paths().end()) {
                done(shown);
            } else {
                const auto site = m_exec.sites().find(n.label);
                const bool depthwise =
                    site != m_exec.sites().end() && site->second.is_conv &&
                    kernels::uses_depthwise_kernel(m_device, site->second.conv.direction, site->second.conv.shape);
                done(shown + (depthwise ? " (depthwise " : " (gemm ") + to_string(it->second) + ")");
            }
        }
        close_buckets(int(i));
    }
    if (m_ir.training) {
        // The host checks the gradients for inf/NaN as it reads them (Trainer::step).
        if (m_layout.grad_count > 0 && m_grads_readback.valid()) {
            if (split) {
                read_back(seq, m_buckets.back());
            } else {
                seq.copy(m_grads, m_grads_readback, m_layout.grad_count * 4);
            }
            done("readback");
        }
    } else {
        for (size_t k = 0; k < m_ir.outputs.size(); ++k) {
            if (m_ir.outputs[k] < 0) continue;
            const MatRef p = m_exec.batch(m_ir.outputs[k]);
            kernels::record_cast(m_device, seq, p, MatRef{&m_outputs[k], DType::f32, p.rows, p.cols, 0});
        }
        done("prediction.readback");
    }
    seq.end();
    m_exec.set_sequence(nullptr);
}

void Program::set_inputs(const std::vector<const void*>& inputs, uint32_t count) {
    VKT_CHECK(inputs.size() == m_ir.inputs.size(), "the model takes ", m_ir.inputs.size(), " inputs, got ",
              inputs.size());
    VKT_CHECK(count >= 1 && count <= m_ir.batch, "batch of ", count, " samples; this trainer takes 1..", m_ir.batch);
    for (size_t i = 0; i < inputs.size(); ++i) {
        const IrValue& v = m_ir.values[size_t(m_ir.inputs[i])];
        VKT_CHECK(inputs[i] != nullptr, "input '", v.label, "' is null");
        const uint64_t per = v.elements() / m_ir.batch;
        runtime::Buffer& staging = m_res->input(i);
        auto* dst = static_cast<uint8_t*>(staging.mapped());
        std::memcpy(dst, inputs[i], uint64_t(count) * per * 4);
        // Padding samples are zero: they flow through harmlessly and the losses ignore them.
        std::memset(dst + uint64_t(count) * per * 4, 0, uint64_t(m_ir.batch - count) * per * 4);
        staging.flush(0, staging.size());
    }
    m_loss_divisor = loss_divisor(inputs, count);
}

// One copy per run of tensors contiguous in the gradient buffer (on unified memory the host reads in place).
void Program::read_back(runtime::Sequence& seq, const GradBucket& bucket) {
    if (!m_grads_readback.valid()) return;
    std::vector<std::pair<uint64_t, uint64_t>> ranges; // [begin, end) in elements
    size_t k = 0;
    for (const ParamSlot& s : m_layout.slots) {
        if (s.grad_offset < 0) continue;
        if (std::binary_search(bucket.tensors.begin(), bucket.tensors.end(), k++)) {
            const uint64_t lo = uint64_t(s.grad_offset), hi = lo + s.count;
            if (!ranges.empty() && ranges.back().second == lo)
                ranges.back().second = hi;
            else
                ranges.emplace_back(lo, hi);
        }
    }
    for (const auto& [lo, hi] : ranges) seq.copy(m_grads, m_grads_readback, (hi - lo) * 4, lo * 4, lo * 4);
}

void Program::run() {
    start();
    finish();
}

// The weights' upload is the trainer's (Resources::upload_if_changed, before each replay), where a reader sees it.
void Program::start() {
    m_res->set_loss_terms(uint32_t(m_loss_divisor)); // after the trainer's set_step, which clears it
    m_seq->submit();
}

void Program::wait_bucket(size_t bucket) {
    VKT_CHECK(bucket < m_buckets.size(), "internal: bucket ", bucket, " of ", m_buckets.size());
    m_seq->wait_segment(uint32_t(std::min<size_t>(bucket, m_seq->segments() - 1)));
}

void Program::finish() {
    m_seq->wait();
}

// Sequence::timestamp() puts a full barrier before each timestamp, so in the profiling replay every op waits for
// the one before it and ops never overlap; the per-op times are slightly pessimistic compared with run().
StepProfile Program::profile() {
    const bool gpu = m_device.caps().info.timestamps;
    const bool fresh = !m_profile;
    if (fresh) {
        auto seq = std::make_unique<runtime::Sequence>(m_device, uint32_t(m_ir.nodes.size() + 8));
        std::vector<std::string> ops;
        Hooks hooks;
        hooks.start = [&] { seq->timestamp(); };
        hooks.after_op = [&](const std::string& op) {
            seq->timestamp();
            ops.push_back(op);
        };
        record_into(*seq, hooks);
        m_profile = std::move(seq);
        m_profile_ops = std::move(ops);
    }
    m_res->set_loss_terms(uint32_t(m_loss_divisor));
    if (fresh) m_profile->submit_and_wait(); // first-use driver work is not what a step costs
    const auto start = std::chrono::steady_clock::now();
    m_profile->submit_and_wait();
    const double host_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
    StepProfile p;
    p.gpu_timestamps = gpu;
    const auto n = uint32_t(m_profile_ops.size());
    for (uint32_t i = 0; i < n; ++i)
        p.ops.push_back({m_profile_ops[i], gpu ? m_profile->elapsed_ns(i, i + 1) / 1000.0 : 0.0});
    p.total_microseconds = gpu ? m_profile->elapsed_ns(0, n) / 1000.0 : host_us;
    p.dispatches = dispatches();
    return p;
}

uint32_t Program::dispatches() const {
    return m_seq ? uint32_t(m_seq->dispatch_count()) : 0u;
}

double Program::loss_sum(uint32_t count) const {
    VKT_CHECK(m_ir.row_loss >= 0, "the model has no loss (call cross_entropy or mse_loss)");
    const uint64_t rows = uint64_t(count) * m_ir.loss_rows_per_sample;
    std::vector<float> r(rows);
    m_res->row_loss().read(r.data(), rows * 4);
    double sum = 0;
    for (float x : r) sum += x;
    return sum;
}

const float* Program::grads() const {
    const Buffer& b = m_grads_readback.valid() ? m_grads_readback : m_grads;
    b.invalidate(0, b.size());
    return static_cast<const float*>(b.mapped());
}

uint64_t Program::output_elements_per_sample(size_t output) const {
    const int v = m_ir.outputs.at(output);
    VKT_CHECK(v >= 0, "internal: output ", output, " is not computed");
    return m_ir.values[size_t(v)].elements() / m_ir.batch;
}

void Program::read_output(size_t output, float* out, uint32_t count) const {
    m_outputs.at(output).read(out, uint64_t(count) * output_elements_per_sample(output) * 4);
}

} // namespace vktrain::graph
