// The C API (include/vktrain/vktrain.h) over the C++ API: every entry point catches everything, keeps the message
// per thread and returns a status.
#include "vktrain/vktrain.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>

#include "vktrain/vktrain.hpp"

struct vkt_context {
    vktrain::Context context;
    std::string name;
};
struct vkt_model {
    vktrain::Model model;
};
struct vkt_trainer {
    vktrain::Trainer trainer;
};

namespace {

thread_local std::string g_error;

struct InvalidArgument : std::exception {
    std::string message;
    explicit InvalidArgument(std::string m) : message(std::move(m)) {}
};

// Runs f, turning every exception into a status and this thread's message.
template <typename F>
vkt_status guarded(F&& f) {
    try {
        f();
        return VKT_OK;
    } catch (const InvalidArgument& e) {
        g_error = e.message;
        return VKT_INVALID_ARGUMENT;
    } catch (const std::bad_alloc&) {
        g_error = "out of memory";
        return VKT_OUT_OF_MEMORY;
    } catch (const std::exception& e) {
        g_error = e.what();
        return VKT_ERROR;
    } catch (...) {
        g_error = "unknown error";
        return VKT_ERROR;
    }
}

template <typename T>
T& need(T* p, const char* what) {
    if (!p) throw InvalidArgument(std::string(what) + " is null");
    return *p;
}

const char* text(const char* p, const char* what) {
    if (!p) throw InvalidArgument(std::string(what) + " is null");
    return p;
}

void set(int32_t* out, int value) {
    if (out) *out = int32_t(value);
}

std::vector<const void*> inputs_of(const void* const* inputs, size_t count) {
    if (!inputs && count) throw InvalidArgument("inputs is null");
    return std::vector<const void*>(inputs, inputs + count);
}

// a · b, refused as an invalid argument when it does not fit 64 bits (or size_t): sizes computed from a caller's
// count must not wrap around into a small buffer.
uint64_t times(uint64_t a, uint64_t b, const std::string& what) {
    uint64_t r = 0;
    if (__builtin_mul_overflow(a, b, &r) || r > uint64_t(SIZE_MAX))
        throw InvalidArgument(what + ": " + std::to_string(a) + " x " + std::to_string(b) + " does not fit in size_t");
    return r;
}

// Every input of `count` samples has a byte size that fits: checked before anything reads the caller's buffers.
void check_input_sizes(const vktrain::Trainer& t, uint64_t count, const char* call) {
    const vktrain::Model& m = t.model();
    for (const int in : m.inputs()) {
        const std::string what = std::string(call) + ": input '" + m.nodes()[size_t(in)].name + "'";
        times(times(count, m.input_elements(in), what + " elements"), 4, what + " bytes");
    }
}

} // namespace

extern "C" {

const char* vkt_last_error(void) {
    return g_error.c_str();
}

void vkt_free(void* p) {
    std::free(p);
}

const char* vkt_version(void) {
    return "0.1.0";
}

void vkt_context_options_default(vkt_context_options* o) {
    if (!o) return;
    o->device_index = -1;
    o->device_name = nullptr;
    o->validation = 0;
    o->allow_coopmat = 1;
}

vkt_status vkt_context_create(const vkt_context_options* options, vkt_context** out) {
    return guarded([&] {
        need(out, "out");
        *out = nullptr;
        vktrain::ContextOptions o;
        if (options) {
            o.device_index = options->device_index;
            if (options->device_name) o.device_name = options->device_name;
            o.validation = options->validation != 0;
            o.allow_coopmat = options->allow_coopmat != 0;
        }
        auto* c = new vkt_context{vktrain::Context(o), {}};
        c->name = c->context.device_info().name;
        *out = c;
    });
}

void vkt_context_destroy(vkt_context* context) {
    delete context;
}

const char* vkt_context_device_name(const vkt_context* context) {
    return context ? context->name.c_str() : nullptr;
}

vkt_status vkt_model_create(vkt_model** out) {
    return guarded([&] {
        need(out, "out");
        *out = new vkt_model{};
    });
}

void vkt_model_destroy(vkt_model* model) {
    delete model;
}

vkt_status vkt_model_input(vkt_model* m, const char* name, const int64_t* shape, size_t rank, vkt_dtype type,
                           int32_t* out) {
    return guarded([&] {
        need(m, "model");
        text(name, "name");
        if (rank && !shape) throw InvalidArgument("shape is null");
        if (type != VKT_F32 && type != VKT_I32) throw InvalidArgument("type must be VKT_F32 or VKT_I32");
        set(out, m->model.input(name, std::vector<int64_t>(shape, shape + rank),
                                type == VKT_I32 ? vktrain::DataType::i32 : vktrain::DataType::f32));
    });
}

vkt_status vkt_model_linear(vkt_model* m, int32_t x, uint32_t out_features, int32_t bias, int32_t* out) {
    return guarded([&] { set(out, need(m, "model").model.linear(x, out_features, bias != 0)); });
}

vkt_status vkt_model_unary(vkt_model* m, const char* op, int32_t x, int32_t* out) {
    return guarded([&] {
        vktrain::Model& g = need(m, "model").model;
        const std::string name = text(op, "op");
        int v;
        if (name == "relu")
            v = g.relu(x);
        else if (name == "gelu")
            v = g.gelu(x);
        else if (name == "gelu_tanh")
            v = g.gelu_tanh(x);
        else if (name == "silu")
            v = g.silu(x);
        else if (name == "softmax")
            v = g.softmax(x);
        else if (name == "flatten")
            v = g.flatten(x);
        else
            throw InvalidArgument("unknown unary op '" + name + "' (relu, gelu, gelu_tanh, silu, softmax, flatten)");
        set(out, v);
    });
}

vkt_status vkt_model_add(vkt_model* m, int32_t a, int32_t b, int32_t* out) {
    return guarded([&] { set(out, need(m, "model").model.add(a, b)); });
}

vkt_status vkt_model_conv2d(vkt_model* m, int32_t x, uint32_t out_channels, uint32_t kernel, uint32_t stride,
                            uint32_t padding, int32_t* out) {
    return guarded([&] {
        set(out,
            need(m, "model").model.conv2d(x, out_channels, vktrain::Conv2dOptions::square(kernel, stride, padding)));
    });
}

vkt_status vkt_model_max_pool2d(vkt_model* m, int32_t x, uint32_t kernel, int32_t* out) {
    return guarded([&] { set(out, need(m, "model").model.max_pool2d(x, vktrain::Pool2dOptions::square(kernel))); });
}

vkt_status vkt_model_layer_norm(vkt_model* m, int32_t x, float eps, int32_t* out) {
    return guarded([&] { set(out, need(m, "model").model.layer_norm(x, eps)); });
}

vkt_status vkt_model_embedding(vkt_model* m, int32_t ids, uint32_t num_embeddings, uint32_t dim, int32_t* out) {
    return guarded([&] { set(out, need(m, "model").model.embedding(ids, num_embeddings, dim)); });
}

vkt_status vkt_model_self_attention(vkt_model* m, int32_t qkv, uint32_t heads, int32_t causal, int32_t* out) {
    return guarded([&] { set(out, need(m, "model").model.self_attention(qkv, heads, causal != 0)); });
}

vkt_status vkt_model_cross_entropy(vkt_model* m, int32_t logits, int32_t labels, int32_t* out) {
    return guarded([&] { set(out, need(m, "model").model.cross_entropy(logits, labels)); });
}

vkt_status vkt_model_mse_loss(vkt_model* m, int32_t pred, int32_t target, int32_t* out) {
    return guarded([&] { set(out, need(m, "model").model.mse_loss(pred, target)); });
}

vkt_status vkt_model_set_trainable(vkt_model* m, const char* name_or_prefix, int32_t trainable) {
    return guarded([&] { need(m, "model").model.set_trainable(text(name_or_prefix, "name"), trainable != 0); });
}

vkt_status vkt_model_to_json(const vkt_model* m, char** out) {
    return guarded([&] {
        need(out, "out");
        const std::string json = need(m, "model").model.to_json();
        char* s = static_cast<char*>(std::malloc(json.size() + 1));
        if (!s) throw std::bad_alloc();
        std::memcpy(s, json.c_str(), json.size() + 1);
        *out = s;
    });
}

vkt_status vkt_model_from_json(const char* json, vkt_model** out) {
    return guarded([&] {
        need(out, "out");
        *out = new vkt_model{vktrain::Model::from_json(text(json, "json"))};
    });
}

vkt_status vkt_load_model(const char* weights_path, vkt_model** out) {
    return guarded([&] {
        need(out, "out");
        *out = new vkt_model{vktrain::load_model(text(weights_path, "path"))};
    });
}

vkt_status vkt_model_parameter_count(const vkt_model* m, uint64_t* out) {
    return guarded([&] { need(out, "out") = need(m, "model").model.parameter_count(); });
}

void vkt_trainer_options_default(vkt_trainer_options* o) {
    if (!o) return;
    const vktrain::TrainerOptions d;
    o->precision = VKT_PRECISION_MIXED;
    o->batch_size = d.batch_size;
    o->optimizer = VKT_ADAMW;
    o->learning_rate = d.optimizer.learning_rate;
    o->weight_decay = d.optimizer.weight_decay;
    o->momentum = d.optimizer.momentum;
    o->max_grad_norm = d.max_grad_norm;
    o->seed = d.seed;
    o->inference_only = 0;
}

vkt_status vkt_trainer_create(vkt_context* context, const vkt_model* model, const vkt_trainer_options* options,
                              vkt_trainer** out) {
    return guarded([&] {
        need(out, "out");
        *out = nullptr;
        const vkt_trainer_options& o = need(options, "options");
        if (o.precision != VKT_PRECISION_MIXED && o.precision != VKT_PRECISION_FP32)
            throw InvalidArgument("precision must be VKT_PRECISION_MIXED or VKT_PRECISION_FP32");
        if (o.optimizer != VKT_ADAMW && o.optimizer != VKT_SGD)
            throw InvalidArgument("optimizer must be VKT_ADAMW or VKT_SGD");
        vktrain::TrainerOptions t;
        t.precision = o.precision == VKT_PRECISION_FP32 ? vktrain::Precision::fp32 : vktrain::Precision::mixed;
        t.batch_size = o.batch_size;
        t.optimizer.kind = o.optimizer == VKT_SGD ? vktrain::OptimizerKind::sgd : vktrain::OptimizerKind::adamw;
        t.optimizer.learning_rate = o.learning_rate;
        t.optimizer.weight_decay = o.weight_decay;
        t.optimizer.momentum = o.momentum;
        t.max_grad_norm = o.max_grad_norm;
        t.seed = o.seed;
        t.inference_only = o.inference_only != 0;
        *out = new vkt_trainer{vktrain::Trainer(need(context, "context").context, need(model, "model").model, t)};
    });
}

void vkt_trainer_destroy(vkt_trainer* trainer) {
    delete trainer;
}

vkt_status vkt_trainer_step(vkt_trainer* t, const void* const* inputs, size_t input_count, uint32_t count,
                            vkt_step_result* out) {
    return guarded([&] {
        vktrain::Trainer& trainer = need(t, "trainer").trainer;
        check_input_sizes(trainer, count, "step");
        const vktrain::StepResult r = trainer.step(inputs_of(inputs, input_count), count);
        if (out) *out = vkt_step_result{r.loss, r.loss_scale, r.skipped ? 1 : 0, r.grad_norm, r.learning_rate};
    });
}

vkt_status vkt_trainer_evaluate(vkt_trainer* t, const void* const* inputs, size_t input_count, uint64_t count,
                                double* loss) {
    return guarded([&] {
        vktrain::Trainer& trainer = need(t, "trainer").trainer;
        check_input_sizes(trainer, count, "evaluate");
        need(loss, "loss") = trainer.evaluate(inputs_of(inputs, input_count), count).loss;
    });
}

vkt_status vkt_trainer_predict(vkt_trainer* t, const void* const* inputs, size_t input_count, uint64_t count,
                               float* out, size_t capacity, size_t* written) {
    return guarded([&] {
        vktrain::Trainer& trainer = need(t, "trainer").trainer;
        check_input_sizes(trainer, count, "predict");
        // Refused before any work: the output size, and that it fits the caller's buffer.
        const vktrain::Model& m = trainer.model();
        const uint64_t values = times(count, m.input_elements(m.output()), "predict: output values");
        times(values, sizeof(float), "predict: output bytes");
        if (values > capacity)
            throw InvalidArgument("predict: " + std::to_string(values) + " values do not fit a capacity of " +
                                  std::to_string(capacity));
        const std::vector<float> p = trainer.predict(inputs_of(inputs, input_count), count);
        if (p.size() != values)
            throw std::runtime_error("predict: " + std::to_string(p.size()) + " values, expected " +
                                     std::to_string(values));
        if (!p.empty()) std::memcpy(&need(out, "out"), p.data(), p.size() * sizeof(float));
        if (written) *written = p.size();
    });
}

vkt_status vkt_trainer_set_learning_rate(vkt_trainer* t, float learning_rate) {
    return guarded([&] { need(t, "trainer").trainer.set_learning_rate(learning_rate); });
}

vkt_status vkt_trainer_steps(const vkt_trainer* t, uint64_t* steps, uint64_t* skipped) {
    return guarded([&] {
        const vktrain::Trainer& tr = need(t, "trainer").trainer;
        if (steps) *steps = tr.steps();
        if (skipped) *skipped = tr.skipped_steps();
    });
}

vkt_status vkt_trainer_save(const vkt_trainer* t, const char* path) {
    return guarded([&] { need(t, "trainer").trainer.save(text(path, "path")); });
}

vkt_status vkt_trainer_load(vkt_trainer* t, const char* path) {
    return guarded([&] { need(t, "trainer").trainer.load(text(path, "path")); });
}

vkt_status vkt_trainer_save_checkpoint(const vkt_trainer* t, const char* path) {
    return guarded([&] { need(t, "trainer").trainer.save_checkpoint(text(path, "path")); });
}

vkt_status vkt_trainer_load_checkpoint(vkt_trainer* t, const char* path) {
    return guarded([&] { need(t, "trainer").trainer.load_checkpoint(text(path, "path")); });
}

} // extern "C"
