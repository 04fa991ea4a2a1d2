#include "train/device_update.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/check.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/timing.hpp"
#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::train {

namespace {

uint32_t state_copies(const OptimizerOptions& o) {
    return o.kind == OptimizerKind::adamw ? 2u : o.momentum != 0.0f ? 1u : 0u;
}

} // namespace

uint64_t device_update_bytes(const graph::Layout& layout, const OptimizerOptions& options) {
    return layout.grad_count * 4 * (1 + state_copies(options)) + kernels::update_control_words(layout.slots.size()) * 4;
}

DeviceUpdate::DeviceUpdate(runtime::Device& device, const graph::Layout& layout, Optimizer& optimizer,
                           std::vector<float>& master, const runtime::Buffer& grads, const runtime::Buffer& weights,
                           kernels::DType weight_type)
    : m_device(device), m_optimizer(optimizer), m_master(master), m_grad_count(layout.grad_count),
      m_state_copies(state_copies(optimizer.options())), m_seq(device) {
    const uint64_t n = std::max<uint64_t>(layout.grad_count, 1);
    VKT_CHECK(n < (1ull << 31), "the device update takes at most 2^31 trainable parameters, the model has ", n);
    size_t k = 0;
    for (const graph::ParamSlot& slot : layout.slots) {
        if (slot.grad_offset < 0) continue;
        m_tensors.push_back({uint32_t(slot.grad_offset), uint32_t(slot.count), uint32_t(slot.device_offset),
                             optimizer.weight_decay(k++)});
        m_master_offsets.push_back(uint64_t(slot.master_offset));
    }
    m_master_buffer = runtime::Buffer(device, n * 4, runtime::MemoryKind::device, "device update: master weights");
    if (m_state_copies)
        m_state = runtime::Buffer(device, n * 4 * m_state_copies, runtime::MemoryKind::device, "device update: state");
    m_control = runtime::Buffer(device, kernels::update_control_words(m_tensors.size()) * 4,
                                runtime::MemoryKind::readback, "device update: control");
    kernels::UpdateBuffers b;
    b.grads = &grads;
    b.master = &m_master_buffer;
    b.state = m_state_copies ? &m_state : nullptr;
    b.weights = &weights;
    b.weight_type = weight_type;
    b.control = &m_control;
    b.state_stride = uint32_t(layout.grad_count);
    m_seq.begin();
    // The flag is cleared by the host (begin) and only ever set by the scan.
    kernels::record_gradient_scan(device, m_seq, grads, layout.grad_count, m_control);
    kernels::record_optimizer_update(device, m_seq, optimizer.options(), b, m_tensors);
    m_seq.end();
    upload();
}

uint64_t DeviceUpdate::device_bytes() const {
    return m_master_buffer.size() + (m_state.valid() ? m_state.size() : 0) + m_control.size();
}

// Host -> device: the trainable parts of the master vector and the optimizer's state, in the gradient layout.
void DeviceUpdate::upload() {
    const uint64_t n = m_grad_count;
    if (n == 0) return;
    std::vector<float> values(n * (1 + m_state_copies), 0.0f);
    for (size_t t = 0; t < m_tensors.size(); ++t)
        std::copy_n(m_master.data() + m_master_offsets[t], m_tensors[t].count, values.data() + m_tensors[t].offset);
    // state_tensors(): per tensor, momentum_buffer or exp_avg then exp_avg_sq.
    const NamedTensors state = m_optimizer.state_tensors();
    for (size_t t = 0, i = 0; t < m_tensors.size() && m_state_copies; ++t)
        for (uint32_t c = 0; c < m_state_copies; ++c, ++i)
            std::copy(state.at(i).second.begin(), state.at(i).second.end(),
                      values.data() + n * (1 + c) + m_tensors[t].offset);
    transfer(m_master_buffer, values.data(), n, true);
    if (m_state_copies) transfer(m_state, values.data() + n, n * m_state_copies, true);
}

// Through a staging buffer of at most 16 MiB, piece by piece: the device's peak stays what training needs.
void DeviceUpdate::transfer(const runtime::Buffer& buffer, float* host, uint64_t count, bool to_device) {
    const uint64_t piece = std::min<uint64_t>(count, (16ull << 20) / 4);
    runtime::Buffer staging(m_device, piece * 4,
                            to_device ? runtime::MemoryKind::upload : runtime::MemoryKind::readback,
                            "device update: staging");
    runtime::Sequence s(m_device);
    for (uint64_t at = 0; at < count; at += piece) {
        const uint64_t n = std::min(piece, count - at);
        if (to_device) staging.write(host + at, n * 4);
        s.begin();
        if (to_device)
            s.copy(staging, buffer, n * 4, 0, at * 4);
        else
            s.copy(buffer, staging, n * 4, at * 4, 0);
        s.end();
        s.submit_and_wait();
        if (!to_device) staging.read(host + at, n * 4);
    }
}

// Device -> host: the same, into the master vector and the optimizer (whose step counts and learning rate the host
// keeps).
void DeviceUpdate::download() {
    const uint64_t n = m_grad_count;
    if (n == 0) return;
    std::vector<float> values(n * (1 + m_state_copies));
    transfer(m_master_buffer, values.data(), n, false);
    if (m_state_copies) transfer(m_state, values.data() + n, n * m_state_copies, false);
    NamedTensors state = m_optimizer.state_tensors();
    for (size_t t = 0, i = 0; t < m_tensors.size() && m_state_copies; ++t)
        for (uint32_t c = 0; c < m_state_copies; ++c, ++i) {
            const float* src = values.data() + n * (1 + c) + m_tensors[t].offset;
            std::copy(src, src + m_tensors[t].count, state.at(i).second.begin());
        }
    // Validates before it changes anything.
    m_optimizer.load_state(m_optimizer.step_count(), state, {}, m_optimizer.tensor_steps());
    for (size_t t = 0; t < m_tensors.size(); ++t)
        std::copy_n(values.data() + m_tensors[t].offset, m_tensors[t].count, m_master.data() + m_master_offsets[t]);
}

void DeviceUpdate::sync_host() {
    if (m_latest != Latest::device) return;
    download();
    m_latest = Latest::both;
}

void DeviceUpdate::host_changed(bool) {
    VKT_CHECK(m_latest != Latest::device, "internal: the host changed weights older than the device's");
    m_latest = Latest::host;
}

void DeviceUpdate::begin(const StepScalars& scalars) {
    if (m_latest == Latest::host) {
        upload();
        m_latest = Latest::both;
    }
    m_learning_rate = scalars.learning_rate;
    const OptimizerOptions& o = m_optimizer.options();
    std::vector<uint32_t> words(kernels::update_control_words(m_tensors.size()), 0u);
    kernels::UpdateControl c{};
    c.found_inf = 0;
    c.multiplier = scalars.multiplier;
    c.lr = scalars.learning_rate;
    std::memcpy(words.data(), &c, sizeof c);
    for (size_t i = 0; i < m_tensors.size(); ++i) {
        // As the host optimizer forms them: in double, rounded once; t is the tensor's own next step.
        const int64_t t = m_optimizer.tensor_steps()[i] + 1;
        const double bias1 = 1.0 - std::pow(double(o.beta1), double(t));
        const double bias2 = 1.0 - std::pow(double(o.beta2), double(t));
        // The tensor's own rate (Model::set_learning_rate_scale), as the host optimizer forms it.
        const double lr = m_optimizer.tensor_learning_rate(i, scalars.learning_rate);
        const bool adamw = o.kind == OptimizerKind::adamw;
        kernels::UpdateTensorControl tc{};
        tc.decay = float(1.0 - lr * double(m_tensors[i].weight_decay));
        tc.step_size = float(adamw ? lr / bias1 : lr);
        tc.bias2_sqrt = float(std::sqrt(bias2));
        tc.first = t == 1 ? 1u : 0u;
        std::memcpy(&words[UPDATE_CONTROL_WORDS + UPDATE_TENSOR_WORDS * i], &tc, sizeof tc);
    }
    m_control.write(words.data(), words.size() * 4);
}

void DeviceUpdate::submitted() {
    m_seq.submit();
    m_in_flight = true;
}

GradientCheck DeviceUpdate::check() {
    VKT_CHECK(m_in_flight, "internal: device update checked before it was submitted");
    m_seq.wait();
    m_in_flight = false;
    uint32_t flag = 0;
    m_control.read(&flag, 4);
    GradientCheck r;
    r.found_inf = flag != 0;
    r.grad_norm = r.found_inf ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
    return r;
}

StepTiming DeviceUpdate::finish(bool skip) {
    if (!skip) {
        m_optimizer.advance(m_learning_rate);
        m_latest = Latest::device; // the host's masters and state are a step behind until sync_host
    }
    return {};
}

void DeviceUpdate::abandon() {
    if (!m_in_flight) return;
    m_in_flight = false;
    try {
        m_seq.wait();
    } catch (...) { // the step's own error is the one to report
    }
}

UpdateTiming time_update_locations(runtime::Device& device, const OptimizerOptions& options, uint64_t parameters,
                                   bool fp16) {
    UpdateTiming r;
    const uint64_t n = std::clamp<uint64_t>(parameters, 1, 1ull << 20);
    const double scale = double(std::max<uint64_t>(parameters, 1)) / double(n);
    const uint32_t copies = state_copies(options);
    const uint64_t esz = fp16 ? 2 : 4;
    {
        runtime::Buffer grads(device, n * 4, runtime::MemoryKind::device, "update timing: gradients");
        runtime::Buffer master(device, n * 4, runtime::MemoryKind::device, "update timing: master");
        runtime::Buffer state(device, n * 4 * std::max(copies, 1u), runtime::MemoryKind::device,
                              "update timing: state");
        runtime::Buffer weights(device, n * esz, runtime::MemoryKind::device, "update timing: weights");
        runtime::Buffer control(device, kernels::update_control_words(1) * 4, runtime::MemoryKind::readback,
                                "update timing: control");
        // UpdateControl {found_inf 0, multiplier 1, lr 1e-3}, then one tensor {decay 1, step_size 1e-3 (SGD: the
        // tensor's lr), bias2_sqrt 1, first 0}.
        const float words[UPDATE_CONTROL_WORDS + UPDATE_TENSOR_WORDS] = {0.0f, 0.0f, 1.0f, 1e-3f, 0.0f, 0.0f,
                                                                         0.0f, 0.0f, 1.0f, 1e-3f, 1.0f, 0.0f};
        control.write(words, sizeof words);
        kernels::UpdateBuffers b{
            &grads,   &master,    copies ? &state : nullptr, &weights, fp16 ? kernels::DType::f16 : kernels::DType::f32,
            &control, uint32_t(n)};
        const double device_us = kernels::time_recorded(
            device, {&grads, &master, &state, &weights}, 1,
            [&](runtime::Sequence& s) {
                kernels::record_gradient_scan(device, s, grads, n, control);
                kernels::record_optimizer_update(device, s, options, b, {{0, uint32_t(n), 0, options.weight_decay}});
            },
            2);
        r.device_us = device_us * scale;
        if (!device.unified_memory_enabled()) { // the host path moves the gradients down and the weights up
            runtime::Buffer down(device, n * 4, runtime::MemoryKind::readback, "update timing: readback");
            runtime::Buffer up(device, n * esz, runtime::MemoryKind::upload, "update timing: upload");
            const double copy_us = kernels::time_recorded(
                device, {}, 1,
                [&](runtime::Sequence& s) {
                    s.copy(grads, down, n * 4);
                    s.copy(up, weights, n * esz);
                },
                2);
            r.host_us += copy_us * scale;
        }
    }
    Optimizer host(options, {size_t(n)});
    std::vector<float> p(n, 0.5f), g(n, 0.25f);
    std::vector<uint16_t> halves(fp16 ? n : 0);
    const std::vector<uint16_t*> h = fp16 ? std::vector<uint16_t*>{halves.data()} : std::vector<uint16_t*>{};
    double best = 1e300;
    for (int i = 0; i < 3; ++i) {
        const auto start = std::chrono::steady_clock::now();
        host.step({p.data()}, {g.data()}, 1.0f, 1.0f, h);
        best =
            std::min(best, std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
    }
    r.host_us += best * scale;
    return r;
}

} // namespace vktrain::train
