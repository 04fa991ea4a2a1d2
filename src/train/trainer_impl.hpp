// Trainer's private state, shared by the files that implement the public class: trainer.cpp (construction, the step,
// forward passes), trainer_values.cpp (parameters, weights files, checkpoints) and trainer_trainable.cpp (which
// parameters train). The step's update lives in its strategy (train/update_strategy.hpp), the scalars it carries from
// step to step in train::StepState.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/check.hpp"
#include "graph/program.hpp"
#include "graph/resources.hpp"
#include "train/host_update.hpp"
#include "train/optimizer.hpp"
#include "train/step_state.hpp"
#include "train/trainer_setup.hpp"
#include "train/update_strategy.hpp"
#include "vktrain/trainer.hpp"

namespace vktrain {

struct Trainer::Impl {
    Impl(Context& context, const Model& model, const TrainerOptions& options);

    // What depends on which parameters are trainable: rebuilt by Trainer::set_trainable. Absent when inference_only.
    struct Training {
        std::unique_ptr<graph::Program> program;
        std::unique_ptr<train::Optimizer> optimizer;
        std::unique_ptr<train::HostUpdate> host;         // gradient accumulation, clipping, and the plain step
        std::unique_ptr<train::UpdateStrategy> strategy; // the pipelined or device update; null: `host`
        std::vector<float> accumulated;                  // gradient accumulation over micro-batches (fp32)

        train::UpdateStrategy& update() { return strategy ? *strategy : *host; }
    };

    // The training program and its optimizer (made for `layout`) put to work: the program recorded, the update
    // strategies made. The optimizer's learning rate and state are the caller's.
    void install(std::unique_ptr<graph::Program> program, std::unique_ptr<train::Optimizer> optimizer);
    std::unique_ptr<graph::Program> make_program(bool training) const;
    // A fresh optimizer for `layout`'s trainable tensors, with their weight decays.
    std::unique_ptr<train::Optimizer> make_optimizer(const graph::Layout& l) const;
    std::vector<float> weight_decays(const graph::Layout& l) const;        // per trainable tensor (parameter groups)
    std::vector<float> learning_rate_scales(const graph::Layout& l) const; // likewise

    Training& training();
    void check_inputs(const std::vector<const void*>& inputs, uint64_t count, bool allow_null) const;
    void check_count(uint64_t count) const;
    // The training program with this batch's inputs and step parameters, ready to start.
    graph::Program& prepare(const MicroBatch& batch, float loss_scale);
    // The device's copy of the weights brought up to date before a replay reads it: copied up when the host changed
    // them since the last replay (not on unified memory, where the host wrote the device's own copy).
    void upload_weights() { res.upload_if_changed(); }
    // One replay of the training program, without an update (gradient accumulation, compute_gradients); returns
    // the mean loss.
    float run(const MicroBatch& batch, float loss_scale);
    float finished(uint32_t count); // after a training replay of `count` samples: its mean loss

    // The host's masters and optimizer state brought up to date from a strategy's own copy (the device update's).
    void sync_host() const {
        if (train) train->update().sync_host();
    }
    // The slot of parameter or buffer `name`; `prefix` (a file and ": ", or empty) starts the message.
    size_t slot_of(const std::string& name, const std::string& prefix) const;
    Parameter read(const graph::ParamSlot& s) const; // one parameter or buffer (the caller syncs the host first)
    // The slot each tensor goes to, after checking names (known, once each; all of them when `every`), shapes and
    // values; `where` (a file or a call, or empty) starts every message. Nothing changes, so a bad tensor anywhere
    // leaves the trainer as it was.
    template <typename Tensor>
    std::vector<size_t> check_values(const std::vector<Tensor>& tensors, const std::string& where, bool every) const;
    // Writes checked tensors into the masters (and the device's copy), the state buffers and the counters.
    template <typename Tensor>
    void set_values(const std::vector<Tensor>& tensors, const std::vector<size_t>& slots);

    // Chunks of up to batch_size samples through the evaluation program; `each` sees every chunk's start and size.
    template <typename F>
    void forward_chunks(const std::vector<const void*>& inputs, uint64_t count, F each);

    // One thread at a time: every call that touches the device or the training state holds this for its duration.
    // A call from a second thread while one runs throws instead of silently sharing staging buffers and state;
    // nested calls on the owning thread (step(x, labels) -> step(inputs)) pass.
    class Guard {
    public:
        Guard(const Impl& m, const char* what);
        ~Guard();
        Guard(const Guard&) = delete;
        Guard& operator=(const Guard&) = delete;

    private:
        const Impl& m_impl;
        bool m_outer = false;
    };
    mutable std::atomic<std::thread::id> owner{};

    // Declared first, destroyed last: the device outlives every buffer of this trainer even when the Context that
    // made it is destroyed first (the trainer keeps working).
    std::shared_ptr<runtime::Device> device;
    uint64_t start_bytes; // device memory before this trainer allocated anything
    Model model;          // the trainer's own copy (Trainer::set_trainable changes it, Model::set_trainable does not)
    TrainerOptions options;
    graph::Layout layout;
    train::Location location; // where the optimizer runs
    uint64_t host_bytes;      // checked before anything is allocated (check_memory)
    graph::Resources res;
    train::StepState state;
    std::unique_ptr<graph::Program> eval;
    std::unique_ptr<Training> train; // null: inference_only
    std::vector<float> master;       // fp32 master weights of the trainable parameters (Layout::master_offset)
    std::vector<float> counters;     // ParameterInfo::counter buffers, counted on the host
    std::vector<float> counter_step; // what a training forward pass adds to each: 0 for a frozen BatchNorm's, else 1
    std::string full_batches_only;   // a node whose batch statistics refuse partial batches (its name), or empty
    uint64_t device_bytes = 0;
};

template <typename F>
void Trainer::Impl::forward_chunks(const std::vector<const void*>& inputs, uint64_t count, F each) {
    check_inputs(inputs, count, true);
    const auto ins = model.inputs();
    std::vector<std::vector<uint8_t>> zeros(ins.size());
    for (uint64_t start = 0; start < count; start += options.batch_size) {
        const uint32_t n = uint32_t(std::min<uint64_t>(options.batch_size, count - start));
        std::vector<const void*> chunk;
        for (size_t i = 0; i < ins.size(); ++i) {
            const uint64_t bytes = model.input_elements(ins[i]) * 4;
            if (inputs[i] == nullptr) { // a full batch of zeros, made once
                if (zeros[i].empty()) zeros[i].assign(bytes * options.batch_size, 0);
                chunk.push_back(zeros[i].data());
            } else {
                chunk.push_back(static_cast<const uint8_t*>(inputs[i]) + start * bytes);
            }
        }
        eval->set_inputs(chunk, n);
        res.set_step(n, 1.0f, uint32_t(state.steps()));
        upload_weights();
        eval->run();
        each(start, n);
    }
}

template <typename Tensor>
std::vector<size_t> Trainer::Impl::check_values(const std::vector<Tensor>& tensors, const std::string& where,
                                                bool every) const {
    const std::string prefix = where.empty() ? std::string() : where + ": ";
    std::vector<size_t> slots;
    std::vector<bool> seen(layout.slots.size(), false);
    for (const Tensor& t : tensors) {
        const size_t i = slot_of(t.name, prefix);
        const graph::ParamSlot& s = layout.slots[i];
        VKT_CHECK(!seen[i], prefix, "tensor '", t.name, "' appears twice");
        VKT_CHECK(t.shape == s.info.shape && t.data.size() == s.count, prefix, "tensor '", t.name,
                  "' has the wrong shape for model ", model.describe());
        for (size_t k = 0; k < t.data.size(); ++k)
            VKT_CHECK(std::isfinite(t.data[k]) && (s.counter < 0 || t.data[k] >= 0.0f), prefix, "tensor '", t.name,
                      "' holds ", t.data[k], " at element ", k, " (weights and buffers must be finite)");
        seen[i] = true;
        slots.push_back(i);
    }
    for (size_t i = 0; i < layout.slots.size() && every; ++i)
        VKT_CHECK(seen[i], prefix, "tensor '", layout.slots[i].info.name, "' is missing (model ", model.describe(),
                  ")");
    return slots;
}

template <typename Tensor>
void Trainer::Impl::set_values(const std::vector<Tensor>& tensors, const std::vector<size_t>& slots) {
    sync_host(); // the device update's newer state is kept; its weights are the host's from now on
    bool weights = false, buffers = false;
    std::vector<float> values;
    for (size_t k = 0; k < tensors.size(); ++k) {
        const graph::ParamSlot& s = layout.slots[slots[k]];
        const std::vector<float>& v = tensors[k].data;
        if (s.counter >= 0) {
            counters[size_t(s.counter)] = v.at(0);
        } else if (s.info.buffer) {
            if (!buffers) res.read_state(values);
            buffers = true;
            std::copy(v.begin(), v.end(), values.begin() + long(s.device_offset));
        } else if (s.device_only()) { // frozen: straight to the device's copy, no host master
            res.write_device_only(s, v.data());
        } else {
            weights = true;
            std::copy(v.begin(), v.end(), master.begin() + long(s.master_offset));
        }
    }
    if (buffers) res.write_state(values);
    if (!weights) return;
    res.set_weights(master.data());
    if (train) train->update().host_changed(false);
}

namespace train {
// The trainable tensors of a layout (Layout::slots with a gradient, in order): offsets, sizes and names.
TrainableTensors trainable_tensors(const graph::Layout& l);
std::vector<size_t> trainable_sizes(const graph::Layout& l);
std::vector<std::string> trainable_names(const graph::Layout& l);
} // namespace train

} // namespace vktrain
