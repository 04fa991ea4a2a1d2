// The Trainer's construction, its step and its forward passes. A step, top to bottom (Trainer::step below):
// the batch and the step's scalars go to the device, the weights the last update changed go up, the recorded training
// replay runs and hands its gradients to the update strategy bucket by bucket (train/update_strategy.hpp), the
// strategy checks them, StepState makes GradScaler's decision once, and the strategy commits or drops the update.
#include "vktrain/trainer.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <string>

#include "common/check.hpp"
#include "graph/input_checks.hpp"
#include "runtime/context_access.hpp"
#include "runtime/device.hpp"
#include "train/device_update.hpp"
#include "train/outputs.hpp"
#include "train/gradients.hpp"
#include "train/pipelined_update.hpp"
#include "train/trainer_impl.hpp"

namespace vktrain {

namespace train {

TrainableTensors trainable_tensors(const graph::Layout& l) {
    TrainableTensors t;
    for (const auto& s : l.slots)
        if (s.grad_offset >= 0) {
            t.master_offsets.push_back(size_t(s.master_offset));
            t.grad_offsets.push_back(size_t(s.grad_offset));
        }
    return t;
}

std::vector<size_t> trainable_sizes(const graph::Layout& l) {
    std::vector<size_t> out;
    for (const auto& s : l.slots)
        if (s.grad_offset >= 0) out.push_back(size_t(s.count));
    return out;
}

std::vector<std::string> trainable_names(const graph::Layout& l) {
    std::vector<std::string> out;
    for (const auto& s : l.slots)
        if (s.grad_offset >= 0) out.push_back(s.info.name);
    return out;
}

} // namespace train

using detail::ContextAccess;

Trainer::Impl::Impl(Context& ctx, const Model& m, const TrainerOptions& o)
    : device(ContextAccess::shared_device(ctx)), start_bytes(device->allocated_bytes()), model(m), options(o),
      layout(graph::make_layout(m)), location(train::choose_location(*device, layout, o)),
      host_bytes(train::check_memory(*device, layout, o, location.where, 0)), res(*device, layout, o.precision),
      state(o) {
    VKT_CHECK(o.batch_size > 0, "batch size must be positive");
    std::set<std::string> frozen_stats; // batch_norm2d nodes with frozen statistics (Model::freeze_batch_norm)
    for (const Node& n : m.nodes()) {
        if (n.op != "batch_norm2d") continue;
        const auto frozen = n.attrs.find("frozen_stats");
        if (frozen != n.attrs.end() && frozen->second != 0)
            frozen_stats.insert(n.name); // normalises each sample alone: padding changes nothing
        else if (full_batches_only.empty())
            full_batches_only = n.name;
    }
    counter_step.assign(layout.counter_count, 1.0f);
    for (const auto& s : layout.slots) // a frozen BatchNorm's num_batches_tracked stays, as with bn.eval() in PyTorch
        if (s.counter >= 0 && frozen_stats.count(s.info.name.substr(0, s.info.name.rfind('.'))) != 0)
            counter_step[size_t(s.counter)] = 0.0f;
    std::unique_ptr<graph::Program> training_program;
    std::unique_ptr<train::Optimizer> optimizer;
    if (!o.inference_only) {
        VKT_CHECK(layout.trainable_tensors > 0, "the model has no trainable parameter (use inference_only)");
        training_program = make_program(true);
        optimizer = make_optimizer(layout);
        optimizer->set_learning_rate(scheduled_learning_rate(o.lr_schedule, state.peak_learning_rate(), 0));
    }
    eval = make_program(false);
    const uint64_t arena =
        std::max(training_program ? training_program->plan().arena_bytes : 0, eval->plan().arena_bytes);
    train::check_memory(*device, layout, o, location.where, arena);
    res.ensure_arena(arena);
    // The two programs share the inputs' upload buffers and the per-row losses, made for the larger of each.
    std::vector<uint64_t> inputs = eval->input_bytes();
    uint64_t rows = eval->row_loss_bytes();
    if (training_program) {
        const auto t = training_program->input_bytes();
        for (size_t i = 0; i < inputs.size(); ++i) inputs[i] = std::max(inputs[i], t[i]);
        rows = std::max(rows, training_program->row_loss_bytes());
    }
    res.make_io(inputs, rows);
    eval->record(res);

    // Initial values: a fixed generator over the parameters in order, so a seed gives the same model everywhere
    // (frozen or not). A frozen parameter's values go straight to the device: the host keeps no copy.
    master.resize(layout.master_count);
    std::vector<float> buffers(layout.state_count), frozen;
    std::mt19937_64 rng(o.seed);
    counters.assign(layout.counter_count, 0.0f);
    for (const auto& s : layout.slots) {
        if (s.counter >= 0) continue;
        if (s.device_only()) {
            frozen.resize(s.count);
            train::init_values(frozen.data(), s, rng);
            res.write_device_only(s, frozen.data());
            continue;
        }
        train::init_values(s.info.buffer ? buffers.data() + s.device_offset : master.data() + s.master_offset, s, rng);
    }
    std::vector<float>().swap(frozen);
    res.set_weights(master.data());
    res.write_state(buffers);
    if (training_program) install(std::move(training_program), std::move(optimizer));
    device_bytes = device->allocated_bytes() - start_bytes;
}

std::unique_ptr<graph::Program> Trainer::Impl::make_program(bool training) const {
    const uint32_t buckets =
        training && location.where == UpdateLocation::host ? train::update_buckets(options, layout) : 1;
    const bool recompute = training && options.recompute == Recompute::blocks;
    auto program = std::make_unique<graph::Program>(*device, model, layout, options.precision, options.batch_size,
                                                    training, options.gemm_path, options.seed, buckets, recompute);
    if (recompute && program->ir().recomputed_blocks == 0)
        device->logger().warning_once("recompute-no-blocks",
                                      "recompute blocks: the model has no blocks to recompute (Model::set_block; the "
                                      "built-in GPT and Llama have them): training without recomputation");
    return program;
}

std::unique_ptr<train::Optimizer> Trainer::Impl::make_optimizer(const graph::Layout& l) const {
    auto o = std::make_unique<train::Optimizer>(options.optimizer, train::trainable_sizes(l));
    o->set_weight_decays(weight_decays(l));
    o->set_learning_rate_scales(learning_rate_scales(l));
    return o;
}

std::vector<float> Trainer::Impl::learning_rate_scales(const graph::Layout& l) const {
    std::vector<float> scales;
    for (const auto& s : l.slots)
        if (s.grad_offset >= 0) scales.push_back(s.info.lr_scale);
    return scales;
}

std::vector<float> Trainer::Impl::weight_decays(const graph::Layout& l) const {
    std::vector<float> decays;
    for (const auto& s : l.slots)
        if (s.grad_offset >= 0)
            decays.push_back(s.info.weight_decay >= 0 ? s.info.weight_decay : options.optimizer.weight_decay);
    return decays;
}

void Trainer::Impl::install(std::unique_ptr<graph::Program> program, std::unique_ptr<train::Optimizer> optimizer) {
    program->record(res);
    auto t = std::make_unique<Training>();
    t->program = std::move(program);
    t->optimizer = std::move(optimizer);
    const train::TrainableTensors tensors = train::trainable_tensors(layout);
    t->host = std::make_unique<train::HostUpdate>(*t->optimizer, master, res, tensors, options.max_grad_norm);
    if (location.where == UpdateLocation::device) {
        t->strategy = std::make_unique<train::DeviceUpdate>(
            *device, layout, *t->optimizer, master, t->program->grad_buffer(), res.weights(),
            options.precision == Precision::mixed ? kernels::DType::f16 : kernels::DType::f32);
    } else if (t->program->buckets().size() > 1) {
        std::vector<std::vector<size_t>> buckets;
        for (const graph::GradBucket& b : t->program->buckets()) buckets.push_back(b.tensors);
        t->strategy = std::make_unique<train::PipelinedUpdate>(*t->optimizer, std::move(buckets), tensors, master,
                                                               nullptr, res.trainable_half_staging(), &res);
    }
    train = std::move(t);
}

size_t Trainer::Impl::slot_of(const std::string& name, const std::string& prefix) const {
    for (size_t i = 0; i < layout.slots.size(); ++i)
        if (layout.slots[i].info.name == name) return i;
    VKT_FAIL(prefix, "tensor '", name, "' is not a parameter of model ", model.describe());
}

Parameter Trainer::Impl::read(const graph::ParamSlot& s) const {
    Parameter p{s.info.name, s.info.shape, {}};
    if (s.counter >= 0) {
        p.data.assign(1, counters[size_t(s.counter)]);
    } else if (s.info.buffer) {
        res.read_state(p.data, s.device_offset, s.count);
    } else if (s.device_only()) {
        p.data.resize(s.count);
        res.read_device_only(s, p.data.data());
    } else {
        const float* src = master.data() + s.master_offset;
        p.data.assign(src, src + s.count);
    }
    return p;
}

Trainer::Impl::Training& Trainer::Impl::training() {
    VKT_CHECK(train != nullptr, "this trainer was made inference_only: it cannot train");
    return *train;
}

// Integer labels and embedding ids must be in range and float inputs finite: checked here so a bad one is a clear
// error rather than a NaN loss or a skipped step.
void Trainer::Impl::check_inputs(const std::vector<const void*>& inputs, uint64_t count, bool allow_null) const {
    const auto ins = model.inputs();
    VKT_CHECK(inputs.size() == ins.size(), "the model takes ", ins.size(), " inputs, got ", inputs.size());
    for (size_t i = 0; i < ins.size(); ++i)
        VKT_CHECK(inputs[i] != nullptr || allow_null, "input '", model.nodes()[size_t(ins[i])].name, "' is null");
    graph::check_input_values(model, inputs, count);
}

void Trainer::Impl::check_count(uint64_t count) const {
    VKT_CHECK(count >= 1 && count <= options.batch_size, "a step takes 1..", options.batch_size, " samples, got ",
              count);
}

graph::Program& Trainer::Impl::prepare(const MicroBatch& b, float loss_scale) {
    check_count(b.count);
    // Batch statistics over zero padding would be wrong statistics; refused rather than trained wrongly.
    VKT_CHECK(b.count == options.batch_size || full_batches_only.empty(), "batch_norm2d '", full_batches_only,
              "' needs full batches of ", options.batch_size, " samples in training, got ", b.count,
              " (drop the last partial batch, or use a batch size that divides the data)");
    check_inputs(b.inputs, b.count, false);
    graph::Program& p = *training().program;
    p.set_inputs(b.inputs, b.count);
    res.set_step(b.count, loss_scale, uint32_t(state.steps()));
    return p;
}

namespace {
// After an exception during a replay: the device may still use the buffers, so wait for it; the first error is the
// one to report.
void finish_quietly(graph::Program& p) {
    try {
        p.finish();
    } catch (...) {
    }
}
} // namespace

float Trainer::Impl::run(const MicroBatch& b, float loss_scale) {
    graph::Program& p = prepare(b, loss_scale);
    upload_weights(); // a no-op unless the weights changed since the last replay
    p.run();
    return finished(b.count);
}

float Trainer::Impl::finished(uint32_t count) {
    for (size_t i = 0; i < counters.size(); ++i)
        counters[i] += counter_step[i]; // a training forward pass (BatchNorm's num_batches_tracked)
    const graph::Program& p = *train->program;
    const uint64_t divisor = p.loss_divisor(); // 0: an ignore_index left nothing, and every row's loss is 0
    return divisor ? float(p.loss_sum(count) / double(divisor)) : 0.0f;
}

Trainer::Impl::Guard::Guard(const Impl& m, const char* what) : m_impl(m) {
    const std::thread::id me = std::this_thread::get_id();
    std::thread::id none{};
    if (m.owner.load() == me) return;
    if (!m.owner.compare_exchange_strong(none, me))
        throw Error(std::string("Trainer::") + what +
                    ": this Trainer is in use by another thread; a Trainer is used from one thread at a time "
                    "(serialise the calls, or give each thread its own Trainer)");
    m_outer = true;
}

Trainer::Impl::Guard::~Guard() {
    if (m_outer) m_impl.owner.store(std::thread::id{});
}

Trainer::Trainer(Context& context, const Model& model, const TrainerOptions& options)
    : m_impl(std::make_unique<Impl>(context, model, options)) {}

Trainer::~Trainer() = default;

StepResult Trainer::step(const std::vector<const void*>& inputs, uint32_t count) {
    return step(std::vector<MicroBatch>{MicroBatch{inputs, count}});
}

StepResult Trainer::step(const float* x, const int32_t* labels, uint32_t count) {
    return step(std::vector<const void*>{x, labels}, count);
}

StepResult Trainer::step(const std::vector<MicroBatch>& micro_batches) {
    Impl& m = *m_impl;
    const Impl::Guard guard(m, "step");
    Impl::Training& t = m.training();
    VKT_CHECK(!micro_batches.empty(), "a step needs at least one micro-batch");
    for (const MicroBatch& b : micro_batches) m.check_count(b.count);
    const train::StepScalars s = m.state.begin(); // this step's loss scale, 1 / scale and scheduled learning rate
    StepResult r;
    r.loss_scale = s.loss_scale;
    r.learning_rate = s.learning_rate;
    train::UpdateStrategy* update = &t.update();
    if (micro_batches.size() == 1) {
        const MicroBatch& b = micro_batches[0];
        graph::Program& p = m.prepare(b, s.loss_scale); // the batch and the step parameters, written for the device
        m.upload_weights(); // what the last update changed goes up now, before the replay reads it
        update->begin(s);
        p.start();
        try {
            update->submitted();
            for (size_t k = 0; k < p.buckets().size(); ++k) {
                p.wait_bucket(k); // the device goes on with the rest of the backward pass meanwhile
                update->on_bucket(k, p.grads());
            }
        } catch (...) {
            finish_quietly(p);
            update->abandon();
            throw;
        }
        p.finish();
        r.loss = m.finished(b.count);
    } else {
        // Gradient accumulation: every micro-batch's gradients are summed on the host (fp32, each mean weighted by its
        // share of the samples, or with a cross-entropy ignore_index of the positions not ignored; an inf/NaN in any of
        // them stays non-finite in the sum) and updated there, whatever the strategy, after a strategy's own copy of
        // the weights (the device update's) came home.
        t.update().sync_host();
        update = t.host.get();
        update->begin(s);
        std::vector<uint64_t> weights; // Program::loss_weight
        uint64_t weight_total = 0;
        for (const MicroBatch& b : micro_batches)
            weight_total += weights.emplace_back(t.program->loss_weight(b.inputs, b.count));
        t.accumulated.assign(m.layout.grad_count, 0.0f);
        double loss = 0.0;
        for (size_t i = 0; i < micro_batches.size(); ++i) {
            const MicroBatch& b = micro_batches[i];
            loss += double(m.run(b, s.loss_scale)) * double(weights[i]); // uploads the weights before the first
            train::accumulate_scaled(t.accumulated.data(), t.program->grads(), m.layout.grad_count,
                                     weight_total ? float(double(weights[i]) / double(weight_total)) : 0.0f);
        }
        r.loss = weight_total ? float(loss / double(weight_total)) : 0.0f;
        update->on_bucket(0, t.accumulated.data());
    }
    const train::GradientCheck check = update->check();       // an inf/NaN among the unscaled gradients? and their norm
    r.skipped = m.state.conclude(check);                      // GradScaler's decision and the step counters, once
    const train::StepTiming time = update->finish(r.skipped); // commit the update, or drop it
    if (update != &t.update() && !r.skipped) t.update().host_changed(true);
    r.grad_norm = r.skipped ? std::numeric_limits<float>::infinity() : check.grad_norm;
    r.host_ms = float(time.host_seconds * 1e3);
    r.overlapped_ms = float(time.overlapped_seconds * 1e3);
    return r;
}

float Trainer::compute_gradients(const std::vector<const void*>& inputs, uint32_t count,
                                 std::vector<std::vector<float>>& grads) {
    Impl& m = *m_impl;
    const Impl::Guard guard(m, "compute_gradients");
    const float scale = m.state.loss_scale();
    const float loss = m.run(MicroBatch{inputs, count}, scale);
    const float* g = m.train->program->grads();
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
    graph::Program& p = *m.training().program;
    // The current loss scale, read only: the scaler sees no step, so nothing but device scratch changes (BatchNorm
    // running statistics do move, as in any training-mode forward pass).
    p.set_inputs(inputs, count);
    m.res.set_step(count, m.state.loss_scale(), uint32_t(m.state.steps()));
    for (size_t i = 0; i < m.counters.size(); ++i) m.counters[i] += m.counter_step[i]; // a training forward pass
    m.upload_weights();
    StepProfile profile = p.profile();
    profile.dispatches += m.training().update().dispatches(); // the update step() would run after the replay
    return profile;
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

void Trainer::set_learning_rate(float learning_rate) {
    Impl& m = *m_impl;
    const Impl::Guard guard(*m_impl, "set_learning_rate");
    Impl::Training& t = m.training();
    check_schedule(m.options.lr_schedule, learning_rate);
    t.optimizer->set_learning_rate(scheduled_learning_rate(m.options.lr_schedule, learning_rate, m.state.steps()));
    m.state.set_peak_learning_rate(learning_rate);
}

float Trainer::learning_rate() const {
    return m_impl->train ? m_impl->train->optimizer->learning_rate() : 0.0f;
}

const Model& Trainer::model() const {
    return m_impl->model;
}
const TrainerOptions& Trainer::options() const {
    return m_impl->options;
}
float Trainer::loss_scale() const {
    return m_impl->state.loss_scale();
}
uint64_t Trainer::steps() const {
    return m_impl->state.steps();
}
uint64_t Trainer::skipped_steps() const {
    return m_impl->state.skipped();
}
UpdateLocation Trainer::update_location() const {
    return m_impl->location.where;
}
const std::string& Trainer::update_location_reason() const {
    return m_impl->location.reason;
}
uint32_t Trainer::update_buckets() const {
    return m_impl->train ? uint32_t(m_impl->train->program->buckets().size()) : 1u;
}
const std::vector<GemmReport>& Trainer::gemm_paths() const {
    return m_impl->train ? m_impl->train->program->gemm_reports() : m_impl->eval->gemm_reports();
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
    const graph::Program& p = m.train ? *m.train->program : *m.eval;
    if (m.train) r.train_plan_bytes = p.plan().arena_bytes;
    r.unplanned_bytes = p.plan().unplanned_bytes;
    r.in_place = p.plan().in_place;
    r.total_bytes = m.device_bytes;
    r.host_master_bytes = m.master.capacity() * 4;
    r.host_staging_bytes = m.res.staging_bytes();
    if (m.train) {
        r.host_master_bytes += m.train->update().host_bytes();
        r.host_optimizer_bytes = m.train->optimizer->state_bytes();
        r.host_gradient_bytes = m.train->program->grad_readback_bytes() + m.train->accumulated.capacity() * 4;
    }
    r.trainable_parameters = m.layout.master_count;
    r.frozen_parameters = m.layout.frozen_count;
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
