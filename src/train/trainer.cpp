#include "vktrain/trainer.hpp"
#include "runtime/context_access.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <thread>

#include "common/check.hpp"
#include "common/host_memory.hpp"
#include "graph/input_checks.hpp"
#include "graph/program.hpp"
#include "graph/resources.hpp"
#include "io/safetensors.hpp"
#include "runtime/device.hpp"
#include "train/checkpoint.hpp"
#include "train/gradients.hpp"
#include "train/loss_scaler.hpp"
#include "train/optimizer.hpp"
#include "train/device_update.hpp"
#include "train/pipeline.hpp"
#include "train/trainer_setup.hpp"
#include "train/outputs.hpp"
#include "train/weights_io.hpp"

namespace vktrain {

namespace {

std::vector<size_t> trainable_sizes(const graph::Layout& l) {
    std::vector<size_t> out;
    for (const auto& s : l.slots)
        if (s.grad_offset >= 0) out.push_back(size_t(s.count));
    return out;
}

} // namespace

struct Trainer::Impl {
    Impl(Context& ctx, const Model& m, const TrainerOptions& o)
        : device(vktrain::detail::ContextAccess::shared_device(ctx)),
          start_bytes(vktrain::detail::ContextAccess::device(ctx).allocated_bytes()), model(m), options(o),
          layout(graph::make_layout(m)),
          location(train::choose_location(vktrain::detail::ContextAccess::device(ctx), layout, o)),
          host_bytes(train::check_memory(vktrain::detail::ContextAccess::device(ctx), layout, o, location.where, 0)),
          res(vktrain::detail::ContextAccess::device(ctx), layout, o.precision), scaler(o.loss_scaler) {
        VKT_CHECK(o.batch_size > 0, "batch size must be positive");
        for (const Node& n : m.nodes())
            if (n.op == "batch_norm2d" && full_batches_only.empty()) full_batches_only = n.name;
        runtime::Device& dev = vktrain::detail::ContextAccess::device(ctx);
        if (!o.inference_only) {
            VKT_CHECK(layout.trainable_tensors > 0, "the model has no trainable parameter (use inference_only)");
            train = std::make_unique<graph::Program>(
                dev, m, layout, o.precision, o.batch_size, true, o.gemm_path, o.seed,
                location.where == UpdateLocation::host ? train::update_buckets(o, layout) : 1);
            optimizer = std::make_unique<train::Optimizer>(o.optimizer, trainable_sizes(layout));
            std::vector<float> decays;
            for (const auto& s : layout.slots)
                if (s.grad_offset >= 0)
                    decays.push_back(s.info.weight_decay >= 0 ? s.info.weight_decay : o.optimizer.weight_decay);
            optimizer->set_weight_decays(decays);
            VKT_CHECK(std::isfinite(o.max_grad_norm) && o.max_grad_norm >= 0.0f,
                      "max_grad_norm must be finite and >= 0 (0: no clipping), got ", o.max_grad_norm);
            check_schedule(o.lr_schedule, o.optimizer.learning_rate);
            base_lr = o.optimizer.learning_rate;
            optimizer->set_learning_rate(scheduled_learning_rate(o.lr_schedule, base_lr, 0));
        }
        eval = std::make_unique<graph::Program>(dev, m, layout, o.precision, o.batch_size, false, o.gemm_path, o.seed);
        const uint64_t arena = std::max(train ? train->plan().arena_bytes : 0, eval->plan().arena_bytes);
        train::check_memory(dev, layout, o, location.where, arena);
        res.ensure_arena(arena);
        std::vector<uint64_t> inputs = eval->input_bytes();
        uint64_t rows = eval->row_loss_bytes();
        if (train) {
            const auto t = train->input_bytes();
            for (size_t i = 0; i < inputs.size(); ++i) inputs[i] = std::max(inputs[i], t[i]);
            rows = std::max(rows, train->row_loss_bytes());
        }
        res.make_io(inputs, rows);
        if (train) train->record(res);
        eval->record(res);

        master.resize(layout.master_count);
        std::vector<float> state(layout.state_count);
        std::mt19937_64 rng(o.seed);
        counters.assign(layout.counter_count, 0.0f);
        for (const auto& s : layout.slots) {
            if (s.counter >= 0) continue;
            if (s.info.buffer) {
                train::init_values(state.data() + s.device_offset, s, rng);
                continue;
            }
            train::init_values(master.data() + s.master_offset, s, rng);
            if (s.grad_offset >= 0) params.push_back(master.data() + s.master_offset);
        }
        grad_ptrs.assign(params.size(), nullptr);
        if (train && train->buckets().size() > 1)
            for (const graph::GradBucket& b : train->buckets()) buckets.push_back(b.tensors);
        for (const auto& s : layout.slots)
            if (s.grad_offset >= 0) {
                pipeline_tensors.master_offsets.push_back(s.master_offset);
                pipeline_tensors.grad_offsets.push_back(size_t(s.grad_offset));
            }
        half_staging = res.trainable_half_staging();
        res.set_weights(master.data());
        res.write_state(state);
        if (train && location.where == UpdateLocation::device) {
            dev_update = std::make_unique<train::DeviceUpdate>(
                dev, layout, *optimizer, train->grad_buffer(), res.weights(),
                o.precision == Precision::mixed ? kernels::DType::f16 : kernels::DType::f32);
            dev_update->upload(master, *optimizer);
        }
        device_bytes = dev.allocated_bytes() - start_bytes;
    }

    float scale() const { return options.precision == Precision::mixed ? scaler.scale() : 1.0f; }

    // Integer labels and embedding ids must be in range and float inputs finite: checked here so a bad one is a
    // clear error rather than a NaN loss or a skipped step.
    void check_inputs(const std::vector<const void*>& inputs, uint64_t count, bool allow_null) const {
        const auto ins = model.inputs();
        VKT_CHECK(inputs.size() == ins.size(), "the model takes ", ins.size(), " inputs, got ", inputs.size());
        for (size_t i = 0; i < ins.size(); ++i)
            VKT_CHECK(inputs[i] != nullptr || allow_null, "input '", model.nodes()[size_t(ins[i])].name, "' is null");
        graph::check_input_values(model, inputs, count);
    }

    void check_count(uint64_t count) const {
        VKT_CHECK(count >= 1 && count <= options.batch_size, "a step takes 1..", options.batch_size, " samples, got ",
                  count);
    }

    graph::Program& training() {
        VKT_CHECK(train != nullptr, "this trainer was made inference_only: it cannot train");
        return *train;
    }

    // Runs the training program on one batch; returns the mean loss.
    float run(const std::vector<const void*>& inputs, uint32_t count, float loss_scale) {
        graph::Program& p = prepare(inputs, count, loss_scale);
        p.run();
        return finished(count);
    }

    // The training program with this batch's inputs, ready to start.
    graph::Program& prepare(const std::vector<const void*>& inputs, uint32_t count, float loss_scale) {
        check_count(count);
        // Batch statistics over zero padding would be wrong statistics; refused rather than trained wrongly.
        VKT_CHECK(count == options.batch_size || full_batches_only.empty(), "batch_norm2d '", full_batches_only,
                  "' needs full batches of ", options.batch_size, " samples in training, got ", count,
                  " (drop the last partial batch, or use a batch size that divides the data)");
        check_inputs(inputs, count, false);
        graph::Program& p = training();
        p.set_inputs(inputs, count);
        res.set_step(count, loss_scale, uint32_t(steps));
        return p;
    }

    // After a training replay of `count` samples: its mean loss.
    float finished(uint32_t count) {
        for (float& c : counters) c += 1.0f;            // a training forward pass (BatchNorm's num_batches_tracked)
        const uint64_t divisor = train->loss_divisor(); // 0: an ignore_index left nothing, and every row's loss is 0
        return divisor ? float(train->loss_sum(count) / double(divisor)) : 0.0f;
    }

    void refresh_params() { // after the master vector was swapped
        size_t k = 0;
        for (const auto& s : layout.slots)
            if (s.grad_offset >= 0) params[k++] = master.data() + s.master_offset;
    }

    // The device update (TrainerOptions::update_location): the host's master weights and optimizer state are the
    // API's; whichever side changed last is copied to the other before it is used.
    void sync_host() {
        if (host_fresh) return;
        dev_update->download(master, *optimizer);
        host_fresh = true;
    }
    void sync_device() {
        if (device_fresh) return;
        dev_update->upload(master, *optimizer);
        device_fresh = true;
    }

    StepResult device_step(const MicroBatch& b, StepResult r, float inv) {
        sync_device();
        graph::Program& p = prepare(b.inputs, b.count, r.loss_scale);
        dev_update->prepare(*optimizer, inv, r.learning_rate);
        p.start();
        try {
            dev_update->submit();
        } catch (...) {
            p.finish();
            throw;
        }
        p.finish();
        dev_update->wait();
        r.loss = finished(b.count);
        const bool found_inf = dev_update->found_inf();
        r.skipped = options.precision == Precision::mixed && scaler.enabled() ? scaler.update(found_inf) : found_inf;
        ++steps; // host_ms stays 0: the update ran on the device
        if (r.skipped) {
            ++skipped;
            r.grad_norm = std::numeric_limits<float>::infinity();
            return r;
        }
        optimizer->advance(r.learning_rate);
        host_fresh = false;
        r.grad_norm = std::numeric_limits<float>::quiet_NaN(); // not formed on the device
        return r;
    }

    // A step of one micro-batch through the bucketed pipeline (train/pipeline.hpp): the same result, bit for bit,
    // as the plain path in Trainer::step.
    StepResult pipelined_step(const MicroBatch& b, StepResult r, float inv) {
        graph::Program& p = prepare(b.inputs, b.count, r.loss_scale);
        if (master_next.size() != master.size()) master_next = master; // frozen weights and buffers equal in both
        train::PipelinedStep s;
        p.start();
        try {
            s = train::pipelined_step(
                *optimizer, buckets,
                [&](size_t k) {
                    p.wait_bucket(k);
                    return p.grads();
                },
                pipeline_tensors, master, master_next, inv, r.learning_rate, half_staging);
        } catch (...) {
            try { // the device may still read the weights: wait, then restore its copy from the unchanged master
                p.finish();
                optimizer->discard();
                res.set_weights(master.data());
            } catch (...) {
            }
            throw;
        }
        p.finish();
        refresh_params();
        r.loss = finished(b.count);
        r.host_ms = float(s.host_seconds * 1e3);
        r.overlapped_ms = float(s.overlapped_seconds * 1e3);
        const bool found_inf = !s.committed;
        r.skipped = options.precision == Precision::mixed && scaler.enabled() ? scaler.update(found_inf) : found_inf;
        ++steps;
        if (r.skipped) {
            ++skipped;
            r.grad_norm = std::numeric_limits<float>::infinity();
            return r;
        }
        r.grad_norm = train::l2_norm_of(s.sum_squares);
        if (half_staging.empty())
            res.set_trainable_weights(master.data());
        else
            res.trainable_weights_staged();
        return r;
    }

    // Chunks of up to batch_size samples through the evaluation program; `each` sees every chunk's size.
    template <typename F>
    void forward_chunks(const std::vector<const void*>& inputs, uint64_t count, F each) {
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
            res.set_step(n, 1.0f, uint32_t(steps));
            eval->run();
            each(start, n);
        }
    }

    // The master weights and buffers with `tensors` copied in, after checking they are exactly this model's
    // parameters and buffers (names and shapes); `where` (a file, or empty) starts every message. Nothing changes
    // on error.
    struct Values {
        std::vector<float> master, state, counters;
    };
    template <typename Tensor>
    Values values_from(const std::vector<Tensor>& tensors, const std::string& where) const {
        const std::string prefix = where.empty() ? std::string() : where + ": ";
        const std::string name = model.describe();
        std::vector<float> out = master, state, counts = counters;
        res.read_state(state);
        std::vector<bool> seen(layout.slots.size(), false);
        for (const Tensor& t : tensors) {
            size_t i = 0;
            while (i < layout.slots.size() && layout.slots[i].info.name != t.name) ++i;
            VKT_CHECK(i < layout.slots.size(), prefix, "tensor '", t.name, "' is not a parameter of model ", name);
            const graph::ParamSlot& s = layout.slots[i];
            VKT_CHECK(!seen[i], prefix, "tensor '", t.name, "' appears twice");
            VKT_CHECK(t.shape == s.info.shape && t.data.size() == s.count, prefix, "tensor '", t.name,
                      "' has the wrong shape for model ", name);
            for (size_t k = 0; k < t.data.size(); ++k)
                VKT_CHECK(std::isfinite(t.data[k]) && (s.counter < 0 || t.data[k] >= 0.0f), prefix, "tensor '", t.name,
                          "' holds ", t.data[k], " at element ", k, " (weights and buffers must be finite)");
            seen[i] = true;
            float* dst = s.counter >= 0  ? counts.data() + s.counter
                         : s.info.buffer ? state.data() + s.device_offset
                                         : out.data() + s.master_offset;
            std::copy(t.data.begin(), t.data.end(), dst);
        }
        for (size_t i = 0; i < layout.slots.size(); ++i)
            VKT_CHECK(seen[i], prefix, "tensor '", layout.slots[i].info.name, "' is missing (model ", name, ")");
        return {out, state, counts};
    }

    void set_values(const Values& v) {
        if (dev_update) { // the device's optimizer state is kept; the weights are the host's from now on
            sync_host();
            device_fresh = false;
        }
        std::copy(v.master.begin(), v.master.end(), master.begin()); // params point into master: keep its storage
        if (!master_next.empty()) std::copy(v.master.begin(), v.master.end(), master_next.begin());
        res.set_weights(master.data());
        res.write_state(v.state);
        counters = v.counters;
    }

    // One thread at a time: every call that touches the device or the training state holds this for its duration.
    // A call from a second thread while one runs throws instead of silently sharing staging buffers and state;
    // nested calls on the owning thread (step(x, labels) -> step(inputs)) pass.
    class Guard {
    public:
        Guard(const Impl& m, const char* what) : m_impl(m) {
            const std::thread::id me = std::this_thread::get_id();
            std::thread::id none{};
            if (m.owner.load() == me) return;
            if (!m.owner.compare_exchange_strong(none, me))
                throw Error(std::string("Trainer::") + what +
                            ": this Trainer is in use by another thread; a Trainer is used from one thread at a time "
                            "(serialise the calls, or give each thread its own Trainer)");
            m_outer = true;
        }
        ~Guard() {
            if (m_outer) m_impl.owner.store(std::thread::id{});
        }
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
    Model model;
    TrainerOptions options;
    graph::Layout layout;
    train::Location location; // where the optimizer runs
    uint64_t host_bytes;      // checked before anything is allocated (check_memory)
    graph::Resources res;
    std::unique_ptr<graph::Program> train, eval;
    train::LossScaler scaler;
    std::unique_ptr<train::Optimizer> optimizer;
    std::vector<float> master;
    std::unique_ptr<train::DeviceUpdate> dev_update; // update_location device
    bool host_fresh = true, device_fresh = true;     // the device update: which copies hold the latest values
    std::vector<float> master_next;                  // the pipeline's second bank (allocated by its first step)
    std::vector<std::vector<size_t>> buckets;        // the pipeline's gradient buckets (empty: no pipeline)
    train::PipelineTensors pipeline_tensors;
    std::vector<float> counters;   // ParameterInfo::counter buffers, counted on the host
    std::string full_batches_only; // a node whose batch statistics refuse partial batches (its name), or empty
    std::vector<float*> params;
    std::vector<const float*> grad_ptrs;
    std::vector<uint16_t*> half_staging; // mixed precision: where the optimizer writes the fp16 weights (else empty)
    std::vector<float> accumulated;      // gradient accumulation over micro-batches (fp32)
    float base_lr = 0.0f;                // the peak learning rate the schedule scales
    uint64_t steps = 0, skipped = 0;
    uint64_t device_bytes = 0;
};

Trainer::Trainer(Context& context, const Model& model, const TrainerOptions& options)
    : m_impl(std::make_unique<Impl>(context, model, options)) {}

Trainer::~Trainer() = default;

StepResult Trainer::step(const std::vector<const void*>& inputs, uint32_t count) {
    return step(std::vector<MicroBatch>{MicroBatch{inputs, count}});
}

StepResult Trainer::step(const std::vector<MicroBatch>& micro_batches) {
    Impl& m = *m_impl;
    const Impl::Guard guard(m, "step");
    m.training();
    VKT_CHECK(!micro_batches.empty(), "a step needs at least one micro-batch");
    for (const MicroBatch& b : micro_batches) m.check_count(b.count);
    StepResult r;
    r.loss_scale = m.scale();
    r.learning_rate = scheduled_learning_rate(m.options.lr_schedule, m.base_lr, m.steps);
    // 1 / the scale this step's gradients carry, as GradScaler.unscale_ multiplies (scaler.step runs before
    // scaler.update: a step that grew the scale is unscaled by the scale it used); clipping multiplies the unscaled
    // gradients once more.
    const float inv = m.options.precision == Precision::mixed && r.loss_scale != 1.0f
                          ? train::LossScaler::reciprocal(r.loss_scale)
                          : 1.0f;
    if (micro_batches.size() == 1 && m.dev_update) return m.device_step(micro_batches[0], r, inv);
    if (micro_batches.size() == 1 && !m.buckets.empty()) return m.pipelined_step(micro_batches[0], r, inv);
    if (m.dev_update) { // several micro-batches: accumulated and updated on the host
        m.sync_host();
        m.device_fresh = false;
    }
    const float* g = nullptr;
    double loss = 0.0;
    if (micro_batches.size() == 1) {
        loss = m.run(micro_batches[0].inputs, micro_batches[0].count, r.loss_scale);
        g = m.train->grads();
    } else {
        // fp32 sums of the (scaled) gradients, each micro-batch's mean weighted by its share of the samples (with a
        // cross-entropy ignore_index: of the positions not ignored), so the step is that of one batch of them all (an
        // inf/NaN in any of them stays non-finite in the sum).
        std::vector<uint64_t> weights; // Program::loss_weight
        uint64_t weight_total = 0;
        for (const MicroBatch& b : micro_batches)
            weight_total += weights.emplace_back(m.train->loss_weight(b.inputs, b.count));
        m.accumulated.assign(m.layout.grad_count, 0.0f);
        for (size_t i = 0; i < micro_batches.size(); ++i) {
            const MicroBatch& b = micro_batches[i];
            loss += double(m.run(b.inputs, b.count, r.loss_scale)) * double(weights[i]);
            train::accumulate_scaled(m.accumulated.data(), m.train->grads(), m.layout.grad_count,
                                     weight_total ? float(double(weights[i]) / double(weight_total)) : 0.0f);
        }
        loss = weight_total ? loss / double(weight_total) : 0.0;
        g = m.accumulated.data();
    }
    r.loss = float(loss);
    size_t k = 0;
    for (const auto& s : m.layout.slots)
        if (s.grad_offset >= 0) m.grad_ptrs[k++] = g + s.grad_offset;
    const auto host_start = std::chrono::steady_clock::now();
    // The inf/NaN check reads every unscaled gradient once, in the pass that sums the squares for the norm (the host
    // reads them all for the update anyway, so a device-side scan would only add a pass).
    const double sum_squares = train::global_sum_squares(m.grad_ptrs, m.optimizer->param_sizes(), inv);
    const bool found_inf = !std::isfinite(sum_squares);
    // Mixed precision follows GradScaler: skip and back off on inf/NaN. In fp32 (no scaler) a non-finite gradient is
    // skipped too rather than written into the master weights.
    r.skipped = m.options.precision == Precision::mixed && m.scaler.enabled() ? m.scaler.update(found_inf) : found_inf;
    ++m.steps;
    const auto host_ms = [&] {
        return float(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - host_start).count());
    };
    if (r.skipped) {
        ++m.skipped;
        r.grad_norm = std::numeric_limits<float>::infinity();
        r.host_ms = host_ms();
        return r;
    }
    r.grad_norm = train::l2_norm_of(sum_squares);
    float clip = 1.0f;
    if (m.options.max_grad_norm > 0.0f) clip = train::clip_coefficient(r.grad_norm, m.options.max_grad_norm);
    m.optimizer->set_learning_rate(r.learning_rate);
    // Mixed precision: the update also writes the fp16 copy the device reads, chunk by chunk while it is in cache.
    m.optimizer->step(m.params, m.grad_ptrs, inv, clip, m.half_staging);
    if (m.half_staging.empty())
        m.res.set_trainable_weights(m.master.data());
    else
        m.res.trainable_weights_staged();
    r.host_ms = host_ms();
    return r;
}

StepResult Trainer::step(const float* x, const int32_t* labels, uint32_t count) {
    return step(std::vector<const void*>{x, labels}, count);
}

float Trainer::compute_gradients(const std::vector<const void*>& inputs, uint32_t count,
                                 std::vector<std::vector<float>>& grads) {
    Impl& m = *m_impl;
    const Impl::Guard guard(m, "compute_gradients");
    const float scale = m.scale();
    const float loss = m.run(inputs, count, scale);
    const float* g = m.train->grads();
    grads.clear();
    for (const auto& s : m.layout.slots) {
        if (s.grad_offset < 0) continue;
        std::vector<float> v(g + s.grad_offset, g + s.grad_offset + s.count);
        for (float& e : v) e /= scale;
        grads.push_back(std::move(v));
    }
    return loss;
}

float Trainer::compute_gradients(const float* x, const int32_t* labels, uint32_t count,
                                 std::vector<std::vector<float>>& grads) {
    return compute_gradients(std::vector<const void*>{x, labels}, count, grads);
}

StepProfile Trainer::profile_step(const std::vector<const void*>& inputs, uint32_t count) {
    Impl& m = *m_impl;
    const Impl::Guard guard(m, "profile_step");
    m.check_count(count);
    m.check_inputs(inputs, count, false);
    graph::Program& p = m.training();
    // The current loss scale, read only: the scaler sees no step, so nothing but device scratch changes (BatchNorm
    // running statistics do move, as in any training-mode forward pass).
    p.set_inputs(inputs, count);
    m.res.set_step(count, m.scale(), uint32_t(m.steps));
    for (float& c : m.counters) c += 1.0f; // a training forward pass, as in PyTorch
    return p.profile();
}

StepProfile Trainer::profile_step(const float* x, const int32_t* labels, uint32_t count) {
    return profile_step(std::vector<const void*>{x, labels}, count);
}

std::vector<float> Trainer::predict(const std::vector<const void*>& inputs, uint64_t count) {
    return predict(inputs, count, std::string());
}

std::vector<float> Trainer::predict(const std::vector<const void*>& inputs, uint64_t count, const std::string& output) {
    Impl& m = *m_impl;
    const Impl::Guard guard(m, "predict");
    const size_t k = train::output_index(m.model, output);
    const uint64_t per = m.eval->output_elements_per_sample(k);
    std::vector<float> out(train::output_values(count, per, "predict"));
    m.forward_chunks(inputs, count,
                     [&](uint64_t start, uint32_t n) { m.eval->read_output(k, out.data() + start * per, n); });
    return out;
}

std::vector<Prediction> Trainer::predict_all(const std::vector<const void*>& inputs, uint64_t count) {
    Impl& m = *m_impl;
    const Impl::Guard guard(m, "predict_all");
    std::vector<Prediction> out;
    const std::vector<size_t> which = train::all_outputs(m.model);
    for (size_t k : which) {
        const std::string name = k == 0 ? std::string() : m.model.outputs()[k - 1].first;
        std::vector<int64_t> shape{int64_t(count)};
        for (int64_t d : m.model.shape(m.model.output(name))) shape.push_back(d);
        const uint64_t per = m.eval->output_elements_per_sample(k);
        out.push_back({name, shape, std::vector<float>(train::output_values(count, per, "predict_all"))});
    }
    m.forward_chunks(inputs, count, [&](uint64_t start, uint32_t n) {
        for (size_t i = 0; i < which.size(); ++i)
            m.eval->read_output(which[i], out[i].data.data() + start * m.eval->output_elements_per_sample(which[i]), n);
    });
    return out;
}

std::vector<int64_t> Trainer::output_shape(const std::string& output) const {
    return m_impl->model.shape(m_impl->model.output(output));
}

std::vector<float> Trainer::predict(const float* x, uint64_t count) {
    VKT_CHECK(x != nullptr || count == 0, "null input");
    std::vector<const void*> inputs(m_impl->model.inputs().size(), nullptr);
    inputs.at(0) = x;
    return predict(inputs, count);
}

EvalResult Trainer::evaluate(const std::vector<const void*>& inputs, uint64_t count) {
    Impl& m = *m_impl;
    const Impl::Guard guard(m, "evaluate");
    VKT_CHECK(m.model.loss() >= 0, "evaluate: the model has no loss (use predict)");
    for (const void* p : inputs) VKT_CHECK(p != nullptr || count == 0, "evaluate: null input");
    EvalResult r;
    r.count = count;
    double sum = 0;
    uint64_t divisor = 0; // count · positions, or with a cross-entropy ignore_index the positions not ignored
    m.forward_chunks(inputs, count, [&](uint64_t, uint32_t n) {
        sum += m.eval->loss_sum(n);
        divisor += m.eval->loss_divisor();
    });
    r.loss = divisor ? sum / double(divisor) : 0.0;
    return r;
}

EvalResult Trainer::evaluate(const float* x, const int32_t* labels, uint64_t count) {
    return evaluate(std::vector<const void*>{x, labels}, count);
}

std::vector<Parameter> Trainer::parameters() const {
    const Impl& m = *m_impl;
    const Impl::Guard guard(m, "parameters");
    m_impl->sync_host();
    std::vector<float> state;
    m.res.read_state(state);
    std::vector<Parameter> out;
    for (const auto& s : m.layout.slots) {
        const float* src = s.counter >= 0  ? m.counters.data() + s.counter
                           : s.info.buffer ? state.data() + s.device_offset
                                           : m.master.data() + s.master_offset;
        out.push_back({s.info.name, s.info.shape, std::vector<float>(src, src + s.count)});
    }
    return out;
}

void Trainer::set_learning_rate(float learning_rate) {
    Impl& m = *m_impl;
    const Impl::Guard guard(*m_impl, "set_learning_rate");
    m.training();
    check_schedule(m.options.lr_schedule, learning_rate);
    m.optimizer->set_learning_rate(scheduled_learning_rate(m.options.lr_schedule, learning_rate, m.steps));
    m.base_lr = learning_rate;
}

float Trainer::learning_rate() const {
    return m_impl->optimizer ? m_impl->optimizer->learning_rate() : 0.0f;
}

std::vector<std::pair<std::string, std::vector<float>>> Trainer::optimizer_state() const {
    const Impl::Guard guard(*m_impl, "optimizer_state");
    m_impl->sync_host();
    return m_impl->optimizer ? m_impl->optimizer->state_tensors() : decltype(optimizer_state()){};
}

void Trainer::set_parameters(const std::vector<Parameter>& params) {
    const Impl::Guard guard(*m_impl, "set_parameters");
    m_impl->set_values(m_impl->values_from(params, ""));
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
                                {"vktrain_steps", std::to_string(m_impl->steps)}};
    for (const auto& [k, v] : extra) {
        for (const auto& [own, unused] : metadata)
            VKT_CHECK(k != own, "save: metadata key '", k, "' is the format's own");
        metadata.emplace_back(k, v);
    }
    io::write_safetensors(path, tensors, metadata);
}

void Trainer::load(const std::string& path) {
    const Impl::Guard guard(*m_impl, "load");
    // Checked against the model; a checkpoint's optimizer state is skipped and caches (buffers that are not
    // persistent) start from zeros.
    m_impl->set_values(m_impl->values_from(parameters_for(m_impl->model, read_weights(path)), path));
}

namespace {
// Shapes of the optimizer state tensors: "<kind>.<i>" is shaped like trainable parameter i.
std::vector<const graph::ParamSlot*> trainable_slots(const graph::Layout& l) {
    std::vector<const graph::ParamSlot*> out;
    for (const auto& s : l.slots)
        if (s.grad_offset >= 0) out.push_back(&s);
    return out;
}
} // namespace

void Trainer::save_checkpoint(const std::string& path, const CheckpointMetadata& extra) const {
    const Impl::Guard guard(*m_impl, "save_checkpoint");
    m_impl->sync_host();
    const Impl& m = *m_impl;
    VKT_CHECK(m.optimizer != nullptr, "this trainer was made inference_only: it has no training state to save");
    train::Checkpoint c;
    c.model = m.model.describe();
    c.graph = m.model.to_json();
    c.precision = m.options.precision;
    c.optimizer = m.options.optimizer.kind;
    c.optimizer_steps = m.optimizer->step_count();
    c.learning_rate = m.optimizer->learning_rate();
    c.peak_learning_rate = m.base_lr;
    c.scaler = m.scaler.get_state();
    c.steps = m.steps;
    c.skipped = m.skipped;
    for (auto& p : parameters()) c.parameters.push_back({p.name, p.shape, std::move(p.data)});
    const auto slots = trainable_slots(m.layout);
    for (auto& [name, data] : m.optimizer->state_tensors()) {
        const size_t index = std::stoul(name.substr(name.rfind('.') + 1));
        c.optimizer_state.push_back({name, slots.at(index)->info.shape, std::move(data)});
    }
    c.extra = extra;
    train::write_checkpoint(path, c);
}

CheckpointMetadata Trainer::load_checkpoint(const std::string& path) {
    const Impl::Guard guard(*m_impl, "load_checkpoint");
    Impl& m = *m_impl;
    VKT_CHECK(m.optimizer != nullptr, "this trainer was made inference_only: use load() for weights");
    const train::Checkpoint c = train::read_checkpoint(path);
    const std::string model = m.model.describe();
    VKT_CHECK(c.model == model, path, ": checkpoint is for model ", c.model, ", this trainer has ", model);
    const auto kind = [](OptimizerKind k) { return k == OptimizerKind::sgd ? "sgd" : "adamw"; };
    VKT_CHECK(c.optimizer == m.options.optimizer.kind, path, ": checkpoint holds ", kind(c.optimizer),
              " optimizer state, this trainer uses ", kind(m.options.optimizer.kind));

    // Everything is validated into copies first, so a bad file leaves the trainer as it was.
    const auto slots = trainable_slots(m.layout);
    const auto values = m.values_from(c.parameters, path);
    train::NamedTensors state;
    for (const io::NamedTensor& t : c.optimizer_state) {
        const size_t dot = t.name.rfind('.');
        const std::string index = dot == std::string::npos ? std::string() : t.name.substr(dot + 1);
        const bool numeric =
            !index.empty() && index.size() < 10 && index.find_first_not_of("0123456789") == std::string::npos;
        VKT_CHECK(numeric && std::stoul(index) < slots.size(), path, ": unexpected tensor '",
                  train::optimizer_tensor_prefix, t.name, "' for a model with ", slots.size(),
                  " trainable parameter tensors");
        VKT_CHECK(t.shape == slots[std::stoul(index)]->info.shape, path, ": tensor '", train::optimizer_tensor_prefix,
                  t.name, "' has the wrong shape for model ", model);
        state.emplace_back(t.name, t.data);
    }
    train::Optimizer optimizer = *m.optimizer;
    train::LossScaler scaler = m.scaler;
    try {
        optimizer.load_state(c.optimizer_steps, state);
        optimizer.set_learning_rate(c.learning_rate);
        scaler.set_state(c.scaler);
    } catch (const Error& e) {
        throw Error(path + ": " + e.what());
    }

    m.set_values(values);
    *m.optimizer = std::move(optimizer);
    m.scaler = scaler;
    m.steps = c.steps;
    m.skipped = c.skipped;
    m.base_lr = c.peak_learning_rate;
    return c.extra;
}

const Model& Trainer::model() const {
    return m_impl->model;
}
const TrainerOptions& Trainer::options() const {
    return m_impl->options;
}
float Trainer::loss_scale() const {
    return m_impl->scale();
}
uint64_t Trainer::steps() const {
    return m_impl->steps;
}
uint64_t Trainer::skipped_steps() const {
    return m_impl->skipped;
}
UpdateLocation Trainer::update_location() const {
    return m_impl->location.where;
}
const std::string& Trainer::update_location_reason() const {
    return m_impl->location.reason;
}
uint32_t Trainer::update_buckets() const {
    return m_impl->buckets.empty() ? 1u : uint32_t(m_impl->buckets.size());
}
const std::vector<GemmReport>& Trainer::gemm_paths() const {
    return m_impl->train ? m_impl->train->gemm_reports() : m_impl->eval->gemm_reports();
}
uint64_t Trainer::device_bytes() const {
    return m_impl->device_bytes;
}
uint64_t Trainer::weight_uploads() const {
    return m_impl->res.uploads();
}
uint64_t Trainer::weight_upload_bytes() const {
    return m_impl->res.uploaded_bytes();
}

MemoryReport Trainer::memory() const {
    const Impl& m = *m_impl;
    MemoryReport r;
    r.arena_bytes = m.res.arena().size();
    r.eval_plan_bytes = m.eval->plan().arena_bytes;
    if (m.train) {
        r.train_plan_bytes = m.train->plan().arena_bytes;
        r.unplanned_bytes = m.train->plan().unplanned_bytes;
        r.in_place = m.train->plan().in_place;
    } else {
        r.unplanned_bytes = m.eval->plan().unplanned_bytes;
        r.in_place = m.eval->plan().in_place;
    }
    r.total_bytes = m.device_bytes;
    return r;
}

std::string Trainer::gemm_path_summary() const {
    const auto& r = gemm_paths();
    if (r.empty()) return "none";
    for (const auto& g : r)
        if (g.path != r.front().path) return "mixed";
    return to_string(r.front().path);
}

} // namespace vktrain
