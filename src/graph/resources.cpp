#include "graph/resources.hpp"

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "common/check.hpp"
#include "common/half.hpp"
#include "kernels/loss.hpp"
#include "runtime/device.hpp"

namespace vktrain::graph {

using runtime::Buffer;
using runtime::MemoryKind;

Layout make_layout(const Model& model) {
    Layout l;
    for (const ParameterInfo& p : model.parameters()) {
        ParamSlot s;
        s.info = p;
        s.count = element_count(p.shape);
        if (p.counter) {
            s.counter = int64_t(l.counter_count++);
        } else if (p.buffer) {
            s.device_offset = l.state_count;
            l.state_count += s.count;
        } else {
            s.device_offset = l.weight_count;
            l.weight_count += s.count;
            if (p.trainable) {
                s.master_offset = int64_t(l.master_count);
                s.grad_offset = int64_t(l.grad_count);
                l.master_count += s.count;
                l.grad_count += s.count;
                ++l.trainable_tensors;
            } else {
                l.frozen_count += s.count;
            }
        }
        l.slots.push_back(std::move(s));
    }
    return l;
}

Resources::Resources(runtime::Device& device, const Layout& layout, Precision precision)
    : m_device(device), m_layout(layout), m_fp16(precision == Precision::mixed),
      m_unified(device.unified_memory_enabled()) {
    const uint64_t esz = m_fp16 ? 2 : 4;
    const uint64_t n = std::max<uint64_t>(layout.weight_count, 1);
    const uint64_t s = std::max<uint64_t>(layout.state_count, 1);
    m_step_params = Buffer(device, sizeof(kernels::StepParams), MemoryKind::upload, "step parameters");
    if (m_unified) { // the host writes weights and reads state where the device uses them: no staging copies
        m_weights = Buffer(device, n * esz, MemoryKind::shared, "weights");
        m_state = Buffer(device, s * 4, MemoryKind::shared, "state");
        record_trainable_upload();
        return;
    }
    m_state = Buffer(device, s * 4, MemoryKind::device, "state");
    m_state_io = Buffer(device, s * 4, MemoryKind::readback, "state transfer");
    m_weights = Buffer(device, n * esz, MemoryKind::device, "weights");
    record_trainable_upload();
}

void Resources::record_trainable_upload() {
    const uint64_t esz = m_fp16 ? 2 : 4;
    m_trainable_bytes = m_layout.master_count * esz;
    if (m_unified) return;
    const uint64_t bytes = std::max<uint64_t>(m_trainable_bytes, 4);
    if (!m_weights_staging.valid() || m_weights_staging.size() != bytes) {
        m_upload.reset();
        m_weights_staging = Buffer(m_device, bytes, MemoryKind::upload, "weights staging (trainable)");
    }
    m_upload = std::make_unique<runtime::Sequence>(m_device);
    m_upload->begin();
    for (const ParamSlot& p : m_layout.slots)
        if (p.master_offset >= 0)
            m_upload->copy(m_weights_staging, m_weights, p.count * esz, staged_at(p) * esz, p.device_offset * esz);
    m_upload->end();
}

void Resources::set_layout(const Layout& layout) {
    VKT_CHECK(!m_dirty, "internal: the trainable set changed with weights waiting for upload");
    VKT_CHECK(layout.slots.size() == m_layout.slots.size() && layout.weight_count == m_layout.weight_count &&
                  layout.state_count == m_layout.state_count,
              "internal: another model's layout");
    m_layout = layout;
    record_trainable_upload();
}

void Resources::set_weights(const float* master) {
    for (const ParamSlot& p : m_layout.slots) {
        if (p.master_offset < 0) continue;
        const float* src = master + p.master_offset;
        if (m_fp16)
            floats_to_halves(src, static_cast<uint16_t*>(host_weights().mapped()) + staged_at(p), p.count);
        else
            std::memcpy(static_cast<float*>(host_weights().mapped()) + staged_at(p), src, p.count * 4);
    }
    if (m_layout.master_count > 0) host_weights().flush(0, host_weights().size());
    m_dirty = true;
}

std::vector<uint16_t*> Resources::trainable_half_staging() {
    std::vector<uint16_t*> out;
    if (!m_fp16) return out;
    for (const ParamSlot& p : m_layout.slots)
        if (p.master_offset >= 0) out.push_back(static_cast<uint16_t*>(host_weights().mapped()) + staged_at(p));
    return out;
}

void Resources::trainable_weights_staged() {
    host_weights().flush(0, host_weights().size());
    m_dirty = true;
}

void Resources::upload_if_changed() {
    if (!m_dirty) return;
    if (!m_unified) m_upload->submit_and_wait();
    m_uploaded_bytes += m_trainable_bytes;
    m_dirty = false;
    ++m_uploads;
}

namespace {
constexpr uint64_t transfer_chunk = uint64_t(64) << 20; // bytes: bounds the transient host memory of a transfer
} // namespace

void Resources::write_device_only(const ParamSlot& p, const float* values) {
    VKT_CHECK(p.device_only(), "internal: '", p.info.name, "' is not a frozen parameter");
    const uint64_t esz = m_fp16 ? 2 : 4;
    const uint64_t per = transfer_chunk / esz;
    Buffer chunk;
    for (uint64_t done = 0; done < p.count; done += per) {
        const uint64_t n = std::min(per, p.count - done);
        const uint64_t at = (p.device_offset + done) * esz;
        Buffer& dst = m_unified ? m_weights : chunk;
        if (!m_unified && !chunk.valid())
            chunk = Buffer(m_device, std::min(p.count, per) * esz, MemoryKind::upload, "frozen weights transfer");
        uint8_t* mapped = static_cast<uint8_t*>(dst.mapped()) + (m_unified ? at : 0);
        if (m_fp16)
            floats_to_halves(values + done, reinterpret_cast<uint16_t*>(mapped), n);
        else
            std::memcpy(mapped, values + done, n * 4);
        dst.flush(m_unified ? at : 0, n * esz);
        if (!m_unified) {
            runtime::Sequence seq(m_device);
            seq.begin();
            seq.copy(chunk, m_weights, n * esz, 0, at);
            seq.end();
            seq.submit_and_wait();
        }
    }
    m_uploaded_bytes += p.count * esz;
    ++m_uploads;
}

void Resources::read_device_only(const ParamSlot& p, float* out) const {
    VKT_CHECK(p.device_only(), "internal: '", p.info.name, "' is not a frozen parameter");
    const uint64_t esz = m_fp16 ? 2 : 4;
    const uint64_t per = transfer_chunk / esz;
    Buffer chunk;
    std::vector<uint16_t> halves;
    for (uint64_t done = 0; done < p.count; done += per) {
        const uint64_t n = std::min(per, p.count - done);
        const uint64_t at = (p.device_offset + done) * esz;
        const Buffer* src = &m_weights;
        if (!m_unified) {
            if (!chunk.valid())
                chunk = Buffer(m_device, std::min(p.count, per) * esz, MemoryKind::readback, "frozen weights transfer");
            runtime::Sequence seq(m_device);
            seq.begin();
            seq.copy(m_weights, chunk, n * esz, at, 0);
            seq.end();
            seq.submit_and_wait();
            src = &chunk;
        }
        const uint64_t from = m_unified ? at : 0;
        if (m_fp16) {
            halves.resize(n);
            src->read(halves.data(), n * 2, from);
            halves_to_floats(halves.data(), out + done, n);
        } else {
            src->read(out + done, n * 4, from);
        }
    }
}

void Resources::read_state(std::vector<float>& out) const {
    out.assign(m_layout.state_count, 0.0f);
    if (m_layout.state_count == 0) return;
    if (m_unified) { // every sequence's end() made the device's writes visible to the host
        m_state.read(out.data(), m_layout.state_count * 4);
        return;
    }
    runtime::Sequence seq(m_device);
    seq.begin();
    seq.copy(m_state, m_state_io, m_layout.state_count * 4);
    seq.end();
    seq.submit_and_wait();
    m_state_io.read(out.data(), m_layout.state_count * 4);
}

void Resources::read_state(std::vector<float>& out, uint64_t offset, uint64_t count) const {
    VKT_CHECK(offset + count <= m_layout.state_count, "internal: state range beyond ", m_layout.state_count);
    out.assign(count, 0.0f);
    if (count == 0) return;
    if (m_unified) {
        m_state.read(out.data(), count * 4, offset * 4);
        return;
    }
    runtime::Sequence seq(m_device);
    seq.begin();
    seq.copy(m_state, m_state_io, count * 4, offset * 4, 0);
    seq.end();
    seq.submit_and_wait();
    m_state_io.read(out.data(), count * 4);
}

void Resources::write_state(const std::vector<float>& values) {
    VKT_CHECK(values.size() == m_layout.state_count, "internal: state of ", values.size(), " values, expected ",
              m_layout.state_count);
    if (values.empty()) return;
    if (m_unified) { // seen by the next submission
        m_state.write(values.data(), values.size() * 4);
        return;
    }
    m_state_io.write(values.data(), values.size() * 4);
    runtime::Sequence seq(m_device);
    seq.begin();
    seq.copy(m_state_io, m_state, values.size() * 4);
    seq.end();
    seq.submit_and_wait();
}

void Resources::set_step(uint32_t n_valid, float loss_scale, uint32_t step) {
    kernels::StepParams p{n_valid, loss_scale, step, 0};
    m_step_params.write(&p, sizeof p);
}

void Resources::set_loss_terms(uint32_t terms) {
    m_step_params.write(&terms, sizeof terms, offsetof(kernels::StepParams, loss_terms));
}

void Resources::make_io(const std::vector<uint64_t>& input_bytes, uint64_t row_loss_bytes) {
    VKT_CHECK(m_inputs.empty(), "internal: program inputs made twice");
    for (uint64_t b : input_bytes)
        m_inputs.emplace_back(m_device, std::max<uint64_t>(b, 4), runtime::MemoryKind::upload, "input staging");
    m_row_loss = Buffer(m_device, std::max<uint64_t>(row_loss_bytes, 4), MemoryKind::readback, "row losses");
}

void Resources::ensure_arena(uint64_t bytes) {
    bytes = std::max<uint64_t>(bytes, 16);
    if (m_arena.valid() && m_arena.size() >= bytes) return;
    m_arena = Buffer(m_device, bytes, MemoryKind::device, "activation arena");
}

} // namespace vktrain::graph
