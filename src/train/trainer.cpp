#include "vktrain/trainer.hpp"

#include <algorithm>
#include <cmath>
#include <random>

#include "common/check.hpp"
#include "graph/program.hpp"
#include "io/safetensors.hpp"
#include "train/checkpoint.hpp"
#include "train/loss_scaler.hpp"
#include "train/optimizer.hpp"

namespace vktrain {

struct Trainer::Impl {
    Impl(Context& ctx, const Model& m, const TrainerOptions& o)
        : context(ctx), model(m), options(o), program(ctx.device(), m, o.precision, o.batch_size, o.gemm_path),
          scaler(o.loss_scaler), optimizer(o.optimizer, sizes(program)) {
        master.resize(program.param_count());
        init_weights();
        program.set_weights(master.data());
        for (const auto& s : program.params()) {
            params.push_back(master.data() + s.offset);
            grad_ptrs.push_back(nullptr);
        }
    }

    static std::vector<size_t> sizes(const graph::Program& p) {
        std::vector<size_t> out;
        for (const auto& s : p.params()) out.push_back(s.count);
        return out;
    }

    // PyTorch's nn.Linear default: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)); a fixed
    // generator and our own float mapping keep it identical on every platform.
    void init_weights() {
        std::mt19937_64 rng(options.seed);
        for (const auto& s : program.params()) {
            const double bound = 1.0 / std::sqrt(double(s.fan_in));
            for (uint64_t i = 0; i < s.count; ++i) {
                const double u = double(rng() >> 11) * 0x1.0p-53; // [0, 1)
                master[s.offset + i] = float((2.0 * u - 1.0) * bound);
            }
        }
    }

    float scale() const { return options.precision == Precision::mixed ? scaler.scale() : 1.0f; }

    void check_batch(const float* x, const int32_t* labels, uint32_t count) const {
        VKT_CHECK(x != nullptr && labels != nullptr, "null input or labels");
        VKT_CHECK(count >= 1 && count <= options.batch_size, "a step takes 1..", options.batch_size, " samples, got ",
                  count);
        const int32_t classes = int32_t(model.classes());
        for (uint32_t i = 0; i < count; ++i)
            VKT_CHECK(labels[i] >= 0 && labels[i] < classes, "label ", labels[i], " of sample ", i, " is outside [0, ",
                      classes, ")");
    }

    // Runs the step on the device; returns the mean loss.
    float run(const float* x, const int32_t* labels, uint32_t count, float loss_scale) {
        check_batch(x, labels, count);
        program.set_batch(x, labels, count, loss_scale);
        program.run_train();
        return float(program.loss_sum(count) / count);
    }

    // The master weights with `tensors` copied in, after checking that they are exactly this model's
    // parameters (names and shapes); `where` (a file, or empty) starts every message. Nothing changes on error.
    template <typename Tensor>
    std::vector<float> master_from(const std::vector<Tensor>& tensors, const std::string& where) const {
        const std::string prefix = where.empty() ? std::string() : where + ": ";
        const std::string name = model.describe();
        const auto& slots = program.params();
        std::vector<float> out = master;
        std::vector<bool> seen(slots.size(), false);
        for (const Tensor& t : tensors) {
            size_t i = 0;
            while (i < slots.size() && slots[i].name != t.name) ++i;
            VKT_CHECK(i < slots.size(), prefix, "tensor '", t.name, "' is not a parameter of model ", name);
            VKT_CHECK(!seen[i], prefix, "tensor '", t.name, "' appears twice");
            VKT_CHECK(t.shape == slots[i].shape && t.data.size() == slots[i].count, prefix, "tensor '", t.name,
                      "' has the wrong shape for model ", name);
            seen[i] = true;
            std::copy(t.data.begin(), t.data.end(), out.begin() + long(slots[i].offset));
        }
        for (size_t i = 0; i < slots.size(); ++i)
            VKT_CHECK(seen[i], prefix, "tensor '", slots[i].name, "' is missing (model ", name, ")");
        return out;
    }

    void set_master(const std::vector<float>& values) {
        std::copy(values.begin(), values.end(), master.begin()); // params point into master: keep its storage
        program.set_weights(master.data());
    }

    Context& context;
    Model model;
    TrainerOptions options;
    graph::Program program;
    train::LossScaler scaler;
    train::Optimizer optimizer;
    std::vector<float> master;
    std::vector<float*> params;
    std::vector<const float*> grad_ptrs;
    uint64_t steps = 0, skipped = 0;
};

Trainer::Trainer(Context& context, const Model& model, const TrainerOptions& options)
    : m_impl(std::make_unique<Impl>(context, model, options)) {}

Trainer::~Trainer() = default;

StepResult Trainer::step(const float* x, const int32_t* labels, uint32_t count) {
    Impl& m = *m_impl;
    StepResult r;
    r.loss_scale = m.scale();
    r.loss = m.run(x, labels, count, r.loss_scale);
    const bool found_inf = m.program.nonfinite();
    // Mixed precision follows GradScaler: skip and back off on inf/NaN. In fp32 (no scaler) a non-finite
    // gradient is skipped too rather than written into the master weights.
    r.skipped = m.options.precision == Precision::mixed && m.scaler.enabled() ? m.scaler.update(found_inf) : found_inf;
    ++m.steps;
    if (r.skipped) {
        ++m.skipped;
        return r;
    }
    const float* g = m.program.grads();
    for (size_t i = 0; i < m.program.params().size(); ++i) m.grad_ptrs[i] = g + m.program.params()[i].offset;
    const float inv = m.options.precision == Precision::mixed ? m.scaler.inv_scale() : 1.0f;
    m.optimizer.step(m.params, m.grad_ptrs, r.loss_scale == 1.0f ? 1.0f : inv);
    m.program.set_weights(m.master.data());
    return r;
}

float Trainer::compute_gradients(const float* x, const int32_t* labels, uint32_t count,
                                 std::vector<std::vector<float>>& grads) {
    Impl& m = *m_impl;
    const float scale = m.scale();
    const float loss = m.run(x, labels, count, scale);
    const float* g = m.program.grads();
    grads.clear();
    for (const auto& s : m.program.params()) {
        std::vector<float> v(g + s.offset, g + s.offset + s.count);
        for (float& e : v) e /= scale;
        grads.push_back(std::move(v));
    }
    return loss;
}

StepProfile Trainer::profile_step(const float* x, const int32_t* labels, uint32_t count) {
    Impl& m = *m_impl;
    m.check_batch(x, labels, count);
    // The current loss scale, read only: the scaler sees no step, so nothing but device scratch changes.
    m.program.set_batch(x, labels, count, m.scale());
    return m.program.profile_train();
}

std::vector<float> Trainer::predict(const float* x, uint64_t count) {
    Impl& m = *m_impl;
    VKT_CHECK(x != nullptr || count == 0, "null input");
    const uint32_t classes = m.model.classes(), features = m.model.input_features();
    std::vector<float> logits(count * classes);
    for (uint64_t start = 0; start < count; start += m.options.batch_size) {
        const uint32_t n = uint32_t(std::min<uint64_t>(m.options.batch_size, count - start));
        m.program.set_batch(x + start * features, nullptr, n, 1.0f);
        m.program.run_forward();
        m.program.read_logits(logits.data() + start * classes, n);
    }
    return logits;
}

EvalResult Trainer::evaluate(const float* x, const int32_t* labels, uint64_t count) {
    const uint32_t classes = m_impl->model.classes();
    const std::vector<float> logits = predict(x, count);
    EvalResult r;
    r.count = count;
    uint64_t correct = 0;
    double loss = 0;
    for (uint64_t i = 0; i < count; ++i) {
        const float* row = logits.data() + i * classes;
        VKT_CHECK(labels[i] >= 0 && uint32_t(labels[i]) < classes, "label ", labels[i], " of sample ", i,
                  " is outside [0, ", classes, ")");
        uint32_t best = 0;
        double mx = row[0];
        for (uint32_t c = 1; c < classes; ++c)
            if (row[c] > row[best]) best = c;
        for (uint32_t c = 1; c < classes; ++c) mx = std::max(mx, double(row[c]));
        double sum = 0;
        for (uint32_t c = 0; c < classes; ++c) sum += std::exp(double(row[c]) - mx);
        loss += std::log(sum) + mx - row[labels[i]];
        correct += best == uint32_t(labels[i]);
    }
    r.accuracy = count ? double(correct) / double(count) : 0.0;
    r.loss = count ? loss / double(count) : 0.0;
    return r;
}

std::vector<Parameter> Trainer::parameters() const {
    std::vector<Parameter> out;
    for (const auto& s : m_impl->program.params())
        out.push_back({s.name, s.shape,
                       std::vector<float>(m_impl->master.begin() + long(s.offset),
                                          m_impl->master.begin() + long(s.offset + s.count))});
    return out;
}

void Trainer::set_learning_rate(float learning_rate) {
    m_impl->optimizer.set_learning_rate(learning_rate);
}

float Trainer::learning_rate() const {
    return m_impl->optimizer.learning_rate();
}

std::vector<std::pair<std::string, std::vector<float>>> Trainer::optimizer_state() const {
    return m_impl->optimizer.state_tensors();
}

void Trainer::set_parameters(const std::vector<Parameter>& params) {
    m_impl->set_master(m_impl->master_from(params, ""));
}

void Trainer::save(const std::string& path) const {
    std::vector<io::NamedTensor> tensors;
    for (auto& p : parameters()) tensors.push_back({p.name, p.shape, std::move(p.data)});
    io::write_safetensors(path, tensors,
                          {{"vktrain_model", m_impl->model.describe()},
                           {"vktrain_precision", m_impl->options.precision == Precision::mixed ? "mixed" : "fp32"},
                           {"vktrain_steps", std::to_string(m_impl->steps)}});
}

void Trainer::load(const std::string& path) {
    std::vector<io::NamedTensor> weights = io::read_safetensors(path);
    // A full checkpoint's optimizer state is not weights.
    weights.erase(std::remove_if(weights.begin(), weights.end(),
                                 [](const io::NamedTensor& t) { return train::is_optimizer_tensor(t.name); }),
                  weights.end());
    m_impl->set_master(m_impl->master_from(weights, path));
}

void Trainer::save_checkpoint(const std::string& path, const CheckpointMetadata& extra) const {
    const Impl& m = *m_impl;
    train::Checkpoint c;
    c.model = m.model.describe();
    c.precision = m.options.precision;
    c.optimizer = m.options.optimizer.kind;
    c.optimizer_steps = m.optimizer.step_count();
    c.learning_rate = m.optimizer.learning_rate();
    c.scaler = m.scaler.get_state();
    c.steps = m.steps;
    c.skipped = m.skipped;
    for (auto& p : parameters()) c.parameters.push_back({p.name, p.shape, std::move(p.data)});
    const auto& slots = m.program.params();
    for (auto& [name, data] : m.optimizer.state_tensors()) {
        // "<kind>.<i>": shaped like parameter i, as PyTorch's state_dict would hold it.
        const size_t index = std::stoul(name.substr(name.rfind('.') + 1));
        c.optimizer_state.push_back({name, slots.at(index).shape, std::move(data)});
    }
    c.extra = extra;
    train::write_checkpoint(path, c);
}

CheckpointMetadata Trainer::load_checkpoint(const std::string& path) {
    Impl& m = *m_impl;
    const train::Checkpoint c = train::read_checkpoint(path);
    const std::string model = m.model.describe();
    VKT_CHECK(c.model == model, path, ": checkpoint is for model ", c.model, ", this trainer has ", model);
    const auto kind = [](OptimizerKind k) { return k == OptimizerKind::sgd ? "sgd" : "adamw"; };
    VKT_CHECK(c.optimizer == m.options.optimizer.kind, path, ": checkpoint holds ", kind(c.optimizer),
              " optimizer state, this trainer uses ", kind(m.options.optimizer.kind));

    // Everything is validated into copies first, so a bad file leaves the trainer as it was.
    const auto& slots = m.program.params();
    const std::vector<float> master = m.master_from(c.parameters, path);

    train::NamedTensors state;
    for (const io::NamedTensor& t : c.optimizer_state) {
        const size_t dot = t.name.rfind('.');
        const std::string index = dot == std::string::npos ? std::string() : t.name.substr(dot + 1);
        const bool numeric =
            !index.empty() && index.size() < 10 && index.find_first_not_of("0123456789") == std::string::npos;
        VKT_CHECK(numeric && std::stoul(index) < slots.size(), path, ": unexpected tensor '",
                  train::optimizer_tensor_prefix, t.name, "' for a model with ", slots.size(), " parameter tensors");
        VKT_CHECK(t.shape == slots[std::stoul(index)].shape, path, ": tensor '", train::optimizer_tensor_prefix, t.name,
                  "' has the wrong shape for model ", model);
        state.emplace_back(t.name, t.data);
    }
    train::Optimizer optimizer = m.optimizer;
    train::LossScaler scaler = m.scaler;
    try {
        optimizer.load_state(c.optimizer_steps, state);
        optimizer.set_learning_rate(c.learning_rate);
        scaler.set_state(c.scaler);
    } catch (const Error& e) {
        throw Error(path + ": " + e.what());
    }

    m.set_master(master);
    m.optimizer = std::move(optimizer);
    m.scaler = scaler;
    m.steps = c.steps;
    m.skipped = c.skipped;
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
const std::vector<GemmReport>& Trainer::gemm_paths() const {
    return m_impl->program.gemm_reports();
}
uint64_t Trainer::device_bytes() const {
    return m_impl->program.device_bytes();
}

std::string Trainer::gemm_path_summary() const {
    const auto& r = gemm_paths();
    if (r.empty()) return "none";
    for (const auto& g : r)
        if (g.path != r.front().path) return "mixed";
    return to_string(r.front().path);
}

} // namespace vktrain
