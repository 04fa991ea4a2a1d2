// Full training checkpoints (train/checkpoint.hpp) of a Trainer: the optimizer state is keyed by parameter name, so a
// checkpoint loads into a trainer whose trainable parameters differ (Trainer::set_trainable, staged unfreezing): state
// of tensors trainable in both is restored, newly trainable ones start fresh, now-frozen ones are dropped, and the
// caller is told. Files of the earlier index-keyed format are read through the trainable list of the model they record.
#include <algorithm>
#include <map>

#include "common/check.hpp"
#include "runtime/device.hpp"
#include "train/checkpoint.hpp"
#include "train/trainer_impl.hpp"

namespace vktrain {

namespace {

// The optimizer's state kinds ("exp_avg", "exp_avg_sq"; "momentum_buffer"; none), as Optimizer names them.
std::vector<std::string> state_kinds(const OptimizerOptions& options) {
    std::vector<std::string> kinds;
    for (const auto& [name, values] : train::Optimizer(options, {1}).state_tensors({"x"}))
        kinds.push_back(name.substr(0, name.size() - 2));
    return kinds;
}

// The trainable parameters, in order, that a version 1 checkpoint's index-keyed state ("exp_avg.0") refers to: those
// of the model it records, or this trainer's when it records none (or one this build cannot read).
std::vector<std::string> indexed_trainable(const train::Checkpoint& c, const graph::Layout& here) {
    if (!c.graph.empty()) {
        try {
            std::vector<std::string> names;
            for (const ParameterInfo& p : Model::from_json(c.graph).parameters())
                if (p.trainable && !p.buffer) names.push_back(p.name);
            return names;
        } catch (const Error&) {
        }
    }
    return train::trainable_names(here);
}

// A version 1 checkpoint in version 2 terms: state keyed by parameter name, every tensor at the optimizer's steps.
void name_indexed_state(train::Checkpoint& c, const graph::Layout& here, const std::string& path) {
    const std::vector<std::string> names = indexed_trainable(c, here);
    for (const std::string& n : names) c.trainable.emplace_back(n, c.optimizer_steps);
    for (io::NamedTensor& t : c.optimizer_state) {
        const size_t dot = t.name.rfind('.');
        const std::string index = dot == std::string::npos ? std::string() : t.name.substr(dot + 1);
        const bool numeric =
            !index.empty() && index.size() < 10 && index.find_first_not_of("0123456789") == std::string::npos;
        VKT_CHECK(numeric && std::stoul(index) < names.size(), path, ": unexpected tensor '",
                  train::optimizer_tensor_prefix, t.name, "' for a model with ", names.size(),
                  " trainable parameter tensors");
        t.name = t.name.substr(0, dot + 1) + names[std::stoul(index)];
    }
}

std::string joined(const std::vector<std::string>& names) {
    std::string out;
    for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
}

} // namespace

void Trainer::save_checkpoint(const std::string& path, const CheckpointMetadata& extra, bool trainable_only) const {
    const Impl& m = *m_impl;
    const Impl::Guard guard(m, "save_checkpoint");
    VKT_CHECK(m.train != nullptr, "this trainer was made inference_only: it has no training state to save");
    m.sync_host();
    const train::Optimizer& o = *m.train->optimizer;
    train::Checkpoint c;
    c.model = m.model.describe();
    c.graph = m.model.to_json();
    c.precision = m.options.precision;
    c.optimizer = m.options.optimizer.kind;
    c.optimizer_steps = o.step_count();
    c.learning_rate = o.learning_rate();
    c.peak_learning_rate = m.state.peak_learning_rate();
    c.scaler = m.state.scaler().get_state();
    c.steps = m.state.steps();
    c.skipped = m.state.skipped();
    c.trainable_only = trainable_only;
    if (trainable_only) {
        for (const auto& s : m.layout.slots)
            if (!s.device_only()) { // trainable parameters, buffers and counters: the frozen ones are not read back
                Parameter p = m.read(s);
                c.parameters.push_back({p.name, p.shape, std::move(p.data)});
            }
    } else {
        for (auto& p : parameters()) c.parameters.push_back({p.name, p.shape, std::move(p.data)});
    }
    const std::vector<std::string> names = train::trainable_names(m.layout);
    std::vector<std::vector<int64_t>> shapes;
    for (const auto& s : m.layout.slots)
        if (s.grad_offset >= 0) shapes.push_back(s.info.shape);
    train::NamedTensors state = o.state_tensors(names);
    const size_t per_tensor = names.empty() ? 0 : state.size() / names.size(); // state_tensors: tensor by tensor
    for (size_t i = 0; i < state.size(); ++i)
        c.optimizer_state.push_back({state[i].first, shapes.at(i / per_tensor), std::move(state[i].second)});
    for (size_t i = 0; i < names.size(); ++i) c.trainable.emplace_back(names[i], o.tensor_steps()[i]);
    c.extra = extra;
    train::write_checkpoint(path, c);
}

CheckpointMetadata Trainer::load_checkpoint(const std::string& path, OptimizerStateLoad* what) {
    Impl& m = *m_impl;
    const Impl::Guard guard(m, "load_checkpoint");
    VKT_CHECK(m.train != nullptr, "this trainer was made inference_only: use load() for weights");
    train::Checkpoint c = train::read_checkpoint(path);
    const std::string model = m.model.describe();
    VKT_CHECK(c.model == model, path, ": checkpoint is for model ", c.model, ", this trainer has ", model);
    const auto kind = [](OptimizerKind k) { return k == OptimizerKind::sgd ? "sgd" : "adamw"; };
    VKT_CHECK(c.optimizer == m.options.optimizer.kind, path, ": checkpoint holds ", kind(c.optimizer),
              " optimizer state, this trainer uses ", kind(m.options.optimizer.kind));
    if (c.indexed_state) name_indexed_state(c, m.layout, path);

    // Everything is validated into copies first, so a bad file leaves the trainer as it was.
    const std::string at = path + ": ";
    // A trainable-only checkpoint leaves the frozen parameters as they are; its trainable ones must all be there.
    const std::vector<size_t> slots = m.check_values(c.parameters, path, !c.trainable_only);
    if (c.trainable_only) {
        std::vector<bool> present(m.layout.slots.size(), false);
        for (size_t i : slots) present[i] = true;
        for (size_t i = 0; i < m.layout.slots.size(); ++i)
            VKT_CHECK(present[i] || m.layout.slots[i].device_only(), at, "tensor '", m.layout.slots[i].info.name,
                      "' is missing (a checkpoint of the trainable parameters holds every one this trainer trains)");
    }
    std::map<std::string, int64_t> file_steps; // the checkpoint's trainable parameters
    for (const auto& [name, steps] : c.trainable) {
        VKT_CHECK(!m.layout.slots[m.slot_of(name, at)].info.buffer, at, "'", name,
                  "' is listed as trainable but is a buffer");
        file_steps[name] = steps;
    }
    const std::vector<std::string> kinds = state_kinds(m.options.optimizer);
    std::map<std::string, const io::NamedTensor*> file_state;
    for (const io::NamedTensor& t : c.optimizer_state) {
        std::string param;
        for (const std::string& k : kinds)
            if (t.name.compare(0, k.size() + 1, k + ".") == 0 && file_steps.count(t.name.substr(k.size() + 1)))
                param = t.name.substr(k.size() + 1);
        VKT_CHECK(!param.empty(), at, "unexpected tensor '", train::optimizer_tensor_prefix, t.name,
                  "' (no state of this optimizer for a parameter the checkpoint trains)");
        VKT_CHECK(t.shape == m.layout.slots[m.slot_of(param, at)].info.shape, at, "tensor '",
                  train::optimizer_tensor_prefix, t.name, "' has the wrong shape for model ", model);
        file_state[t.name] = &t;
    }
    for (const auto& [name, steps] : c.trainable)
        for (const std::string& k : kinds)
            VKT_CHECK(file_state.count(k + "." + name), at, "missing tensor '", train::optimizer_tensor_prefix, k, ".",
                      name, "'");

    // This trainer's state: restored where the checkpoint trained the tensor too, fresh where it did not.
    OptimizerStateLoad load;
    const std::vector<std::string> names = train::trainable_names(m.layout);
    const std::vector<size_t> sizes = train::trainable_sizes(m.layout);
    train::NamedTensors state;
    std::vector<int64_t> steps;
    for (size_t i = 0; i < names.size(); ++i) {
        const auto it = file_steps.find(names[i]);
        (it != file_steps.end() ? load.restored : load.fresh).push_back(names[i]);
        steps.push_back(it != file_steps.end() ? it->second : 0);
        for (const std::string& k : kinds)
            state.emplace_back(k + "." + names[i], it != file_steps.end() ? file_state.at(k + "." + names[i])->data
                                                                          : std::vector<float>(sizes[i], 0.0f));
    }
    for (const auto& [name, unused] : c.trainable)
        if (std::find(names.begin(), names.end(), name) == names.end()) load.dropped.push_back(name);
    train::Optimizer optimizer = *m.train->optimizer;
    train::LossScaler scaler = m.state.scaler();
    try {
        optimizer.load_state(c.optimizer_steps, state, names, steps);
        optimizer.set_learning_rate(c.learning_rate);
        scaler.set_state(c.scaler);
    } catch (const Error& e) {
        throw Error(path + ": " + e.what());
    }

    m.set_values(c.parameters, slots);
    *m.train->optimizer = std::move(optimizer);
    m.state.restore(scaler, c.steps, c.skipped, c.peak_learning_rate);
    if (!load.fresh.empty() || !load.dropped.empty())
        m.device->logger().warning(
            "load_checkpoint: " + path +
            ": the checkpoint trains other parameters than this trainer: optimizer state "
            "restored for " +
            std::to_string(load.restored.size()) + " tensors" +
            (load.fresh.empty() ? "" : "; fresh for " + joined(load.fresh) + " (trainable here only)") +
            (load.dropped.empty() ? "" : "; dropped for " + joined(load.dropped) + " (frozen here)"));
    if (what) *what = std::move(load);
    return c.extra;
}

} // namespace vktrain
