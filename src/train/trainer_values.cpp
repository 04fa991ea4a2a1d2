// The Trainer's values as the API sees them: parameters one at a time or all, the optimizer state, weights files
// (checkpoints: trainer_checkpoint.cpp). The host's fp32 masters and Optimizer are the API's view; a strategy with
// copies of its own (the device update) syncs them first (UpdateStrategy::sync_host) and learns of every write
// (host_changed).
#include <algorithm>

#include "common/check.hpp"
#include "io/safetensors.hpp"
#include "train/checkpoint.hpp"
#include "train/trainer_impl.hpp"
#include "train/weights_io.hpp"
#include "vktrain/weights.hpp"

namespace vktrain {

std::vector<Parameter> Trainer::parameters() const {
    const Impl& m = *m_impl;
    const Impl::Guard guard(m, "parameters");
    m.sync_host();
    std::vector<float> state;
    m.res.read_state(state);
    std::vector<Parameter> out;
    for (const auto& s : m.layout.slots) {
        if (s.device_only()) { // frozen: read back from the device, in fp32
            out.push_back(m.read(s));
            continue;
        }
        const float* src = s.counter >= 0  ? m.counters.data() + s.counter
                           : s.info.buffer ? state.data() + s.device_offset
                                           : m.master.data() + s.master_offset;
        out.push_back({s.info.name, s.info.shape, std::vector<float>(src, src + s.count)});
    }
    return out;
}

Parameter Trainer::parameter(const std::string& name) const {
    const Impl& m = *m_impl;
    const Impl::Guard guard(m, "parameter");
    const graph::ParamSlot& s = m.layout.slots[m.slot_of(name, "parameter: ")];
    if (s.grad_offset >= 0) m.sync_host(); // only trainable values can be newer on the device
    return m.read(s);
}

void Trainer::set_parameters(const std::vector<Parameter>& params) {
    Impl& m = *m_impl;
    const Impl::Guard guard(m, "set_parameters");
    m.set_values(params, m.check_values(params, "set_parameters", false));
}

void Trainer::set_parameter(const std::string& name, const std::vector<float>& values) {
    Impl& m = *m_impl;
    const Impl::Guard guard(m, "set_parameter");
    const graph::ParamSlot& s = m.layout.slots[m.slot_of(name, "set_parameter: ")];
    VKT_CHECK(values.size() == s.count, "set_parameter: tensor '", name, "' has ", s.count, " elements (shape ",
              graph::shape_text(s.info.shape), "), got ", values.size());
    const std::vector<Parameter> one{{name, s.info.shape, values}};
    m.set_values(one, m.check_values(one, "set_parameter", false));
}

std::vector<std::pair<std::string, std::vector<float>>> Trainer::optimizer_state() const {
    const Impl& m = *m_impl;
    const Impl::Guard guard(m, "optimizer_state");
    if (!m.train) return {};
    m.sync_host();
    return m.train->optimizer->state_tensors(train::trainable_names(m.layout));
}

void Trainer::save(const std::string& path) const {
    save(path, {});
}

void Trainer::save(const std::string& path, const CheckpointMetadata& extra) const {
    const Impl::Guard guard(*m_impl, "save");
    std::vector<io::NamedTensor> tensors; // weights and persistent buffers (not a decoder's caches)
    for (auto& p : train::persistent_only(m_impl->model, parameters()))
        tensors.push_back({p.name, p.shape, std::move(p.data)});
    CheckpointMetadata metadata{{"vktrain_model", m_impl->model.describe()},
                                {"vktrain_graph", m_impl->model.to_json()},
                                {"vktrain_precision", m_impl->options.precision == Precision::mixed ? "mixed" : "fp32"},
                                {"vktrain_steps", std::to_string(m_impl->state.steps())}};
    for (const auto& [k, v] : extra) {
        for (const auto& [own, unused] : metadata)
            VKT_CHECK(k != own, "save: metadata key '", k, "' is the format's own");
        metadata.emplace_back(k, v);
    }
    io::write_safetensors(path, tensors, metadata);
}

void Trainer::load(const std::string& path) {
    Impl& m = *m_impl;
    const Impl::Guard guard(m, "load");
    // Checked against the model; a checkpoint's optimizer state is skipped and caches (buffers that are not
    // persistent) start from zeros.
    const std::vector<Parameter> weights = parameters_for(m.model, read_weights(path));
    m.set_values(weights, m.check_values(weights, path, true));
}

} // namespace vktrain
