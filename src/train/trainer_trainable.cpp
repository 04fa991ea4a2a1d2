// Trainer::set_trainable: which parameters train, changed between steps. The training program is compiled again for
// the new set (frozen tensors get no gradient, readback or update); the weights, buffers, activation arena and input
// buffers stay where they are, and the optimizer keeps the state of every tensor that stays trainable. The host's
// masters are made again for the new set: a frozen tensor's master is dropped (its values live on the device), an
// unfrozen one's is read from the device's copy (fp16 in mixed precision: the fp32 master starts from those values).
#include <algorithm>

#include "common/check.hpp"
#include "runtime/device.hpp"
#include "train/trainer_impl.hpp"

namespace vktrain {

void Trainer::set_trainable(const std::string& pattern, bool trainable) {
    Impl& m = *m_impl;
    const Impl::Guard guard(m, "set_trainable");
    VKT_CHECK(m.train != nullptr, "set_trainable: this trainer was made inference_only: it has no training program");
    Model next = m.model;
    next.set_trainable(pattern, trainable); // throws, naming the pattern, when no parameter matches
    const graph::Layout next_layout = graph::make_layout(next);
    bool same = true;
    for (size_t i = 0; i < m.layout.slots.size(); ++i)
        same = same && (m.layout.slots[i].grad_offset >= 0) == (next_layout.slots[i].grad_offset >= 0);
    if (same) { // nothing to rebuild; the model records the call all the same
        m.model = std::move(next);
        return;
    }
    VKT_CHECK(next_layout.trainable_tensors > 0, "set_trainable: freezing '", pattern,
              "' would leave no trainable parameter (predict and evaluate need none)");

    m.sync_host();      // the device update's newer weights and state come home first
    m.upload_weights(); // what the old set's last update staged goes up before the upload copies change
    // The optimizer over the new set, by name: state kept for tensors that stay trainable, fresh for the others.
    const std::vector<std::string> old_names = train::trainable_names(m.layout);
    std::vector<int64_t> from;
    for (const std::string& n : train::trainable_names(next_layout)) {
        const auto it = std::find(old_names.begin(), old_names.end(), n);
        from.push_back(it == old_names.end() ? -1 : int64_t(it - old_names.begin()));
    }
    auto optimizer = std::make_unique<train::Optimizer>(m.train->optimizer->regrouped(
        train::trainable_sizes(next_layout), from, m.weight_decays(next_layout), m.learning_rate_scales(next_layout)));
    // The masters of the new set: kept for tensors that stay trainable, read from the device for unfrozen ones.
    std::vector<float> next_master(next_layout.master_count);
    for (size_t i = 0; i < next_layout.slots.size(); ++i) {
        const graph::ParamSlot& now = m.layout.slots[i];
        const graph::ParamSlot& next_slot = next_layout.slots[i];
        if (next_slot.master_offset < 0) continue;
        float* dst = next_master.data() + next_slot.master_offset;
        if (now.master_offset >= 0)
            std::copy_n(m.master.data() + now.master_offset, now.count, dst);
        else
            m.res.read_device_only(now, dst);
    }

    // The old training program and strategies go first, so that their gradient buffers are free before the new ones
    // are allocated; should the new set not fit, the old one (which did) is put back.
    const uint64_t before = m.device->allocated_bytes();
    const uint64_t eval_arena = m.eval->plan().arena_bytes; // evaluation trains nothing: its plan stays
    Model old_model = m.model;
    const graph::Layout old_layout = m.layout;
    std::unique_ptr<train::Optimizer> old_optimizer = std::move(m.train->optimizer);
    std::vector<float> old_master = m.master;
    m.train.reset();
    const auto use = [&](Model model, const graph::Layout& layout, std::unique_ptr<train::Optimizer> o,
                         std::vector<float> master) {
        m.model = std::move(model);
        m.layout = layout; // in place: the evaluation program refers to it (its device offsets do not change)
        m.res.set_layout(m.layout);
        m.master = std::move(master);
        m.res.set_weights(m.master.data());
        auto program = m.make_program(true);
        const uint64_t arena = std::max(program->plan().arena_bytes, eval_arena);
        train::check_memory(*m.device, m.layout, m.options, m.location.where, arena);
        if (!m.eval || arena > m.res.arena().size()) { // a new arena: the evaluation program is recorded against it
            m.eval.reset();
            m.res.ensure_arena(arena);
            m.eval = m.make_program(false);
            m.eval->record(m.res);
        }
        m.install(std::move(program), std::move(o));
    };
    try {
        use(std::move(next), next_layout, std::move(optimizer), std::move(next_master));
    } catch (...) {
        m.train.reset();
        m.res.upload_if_changed();
        use(std::move(old_model), old_layout, std::move(old_optimizer), std::move(old_master));
        throw;
    }
    m.device_bytes = uint64_t(int64_t(m.device_bytes) + int64_t(m.device->allocated_bytes()) - int64_t(before));
}

} // namespace vktrain
