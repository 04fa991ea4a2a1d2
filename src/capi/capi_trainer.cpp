// The C API's trainers: options (a versioned struct over TrainerOptions), steps, evaluation, gradients and profiles
// (sizes checked before anything is read), parameters by name, trainability at run time and the optimizer state.
// Prediction is in capi_outputs.cpp; weights and checkpoints in capi_weights.cpp.
#include <cmath>
#include <stdexcept>

#include "capi/capi_common.hpp"
#include "io/json.hpp"
#include "train/outputs.hpp"

namespace vktrain::capi {
namespace {

vkt_trainer_options trainer_defaults() {
    const TrainerOptions d;
    vkt_trainer_options o{};
    o.struct_size = sizeof o;
    o.precision = d.precision == Precision::fp32 ? VKT_PRECISION_FP32 : VKT_PRECISION_MIXED;
    o.batch_size = d.batch_size;
    o.optimizer = d.optimizer.kind == OptimizerKind::sgd ? VKT_SGD : VKT_ADAMW;
    o.learning_rate = d.optimizer.learning_rate;
    o.weight_decay = d.optimizer.weight_decay;
    o.momentum = d.optimizer.momentum;
    o.max_grad_norm = d.max_grad_norm;
    o.seed = d.seed;
    o.inference_only = d.inference_only;
    o.nesterov = d.optimizer.nesterov;
    o.beta1 = d.optimizer.beta1;
    o.beta2 = d.optimizer.beta2;
    o.epsilon = d.optimizer.epsilon;
    o.loss_scaling = d.loss_scaler.enabled;
    o.init_scale = d.loss_scaler.init_scale;
    o.growth_factor = d.loss_scaler.growth_factor;
    o.backoff_factor = d.loss_scaler.backoff_factor;
    o.growth_interval = d.loss_scaler.growth_interval;
    o.gemm_path = vkt_gemm_path(int(d.gemm_path));
    o.lr_schedule = d.lr_schedule.kind == LrScheduleKind::warmup_cosine ? VKT_LR_WARMUP_COSINE : VKT_LR_CONSTANT;
    o.warmup_steps = d.lr_schedule.warmup_steps;
    o.total_steps = d.lr_schedule.total_steps;
    o.min_learning_rate = d.lr_schedule.min_learning_rate;
    o.update_buckets = d.update_buckets;
    o.update_location = vkt_update_location(int(d.update_location));
    o.recompute = d.recompute == Recompute::blocks ? VKT_RECOMPUTE_BLOCKS : VKT_RECOMPUTE_NONE;
    return o;
}

TrainerOptions trainer_options(const vkt_trainer_options* from) {
    const vkt_trainer_options o =
        read_versioned(&need(from, "options"), trainer_defaults(),
                       {VKT_TRAINER_OPTIONS_SIZE_V1, VKT_TRAINER_OPTIONS_SIZE_V2}, "vkt_trainer_options");
    if (o.precision != VKT_PRECISION_MIXED && o.precision != VKT_PRECISION_FP32)
        throw InvalidArgument("precision must be VKT_PRECISION_MIXED or VKT_PRECISION_FP32");
    if (o.optimizer != VKT_ADAMW && o.optimizer != VKT_SGD)
        throw InvalidArgument("optimizer must be VKT_ADAMW or VKT_SGD");
    if (o.gemm_path < VKT_GEMM_AUTO || o.gemm_path > VKT_GEMM_FP32)
        throw InvalidArgument("gemm_path must be VKT_GEMM_AUTO .. VKT_GEMM_FP32");
    if (o.lr_schedule != VKT_LR_CONSTANT && o.lr_schedule != VKT_LR_WARMUP_COSINE)
        throw InvalidArgument("lr_schedule must be VKT_LR_CONSTANT or VKT_LR_WARMUP_COSINE");
    if (o.update_location < VKT_UPDATE_AUTOMATIC || o.update_location > VKT_UPDATE_DEVICE)
        throw InvalidArgument("update_location must be VKT_UPDATE_AUTOMATIC .. VKT_UPDATE_DEVICE");
    if (o.recompute != VKT_RECOMPUTE_NONE && o.recompute != VKT_RECOMPUTE_BLOCKS)
        throw InvalidArgument("recompute must be VKT_RECOMPUTE_NONE or VKT_RECOMPUTE_BLOCKS");
    TrainerOptions t;
    t.precision = o.precision == VKT_PRECISION_FP32 ? Precision::fp32 : Precision::mixed;
    t.batch_size = o.batch_size;
    t.optimizer.kind = o.optimizer == VKT_SGD ? OptimizerKind::sgd : OptimizerKind::adamw;
    t.optimizer.learning_rate = o.learning_rate;
    t.optimizer.weight_decay = o.weight_decay;
    t.optimizer.momentum = o.momentum;
    t.optimizer.nesterov = o.nesterov != 0;
    t.optimizer.beta1 = o.beta1;
    t.optimizer.beta2 = o.beta2;
    t.optimizer.epsilon = o.epsilon;
    t.max_grad_norm = o.max_grad_norm;
    t.seed = o.seed;
    t.inference_only = o.inference_only != 0;
    t.loss_scaler.enabled = o.loss_scaling != 0;
    t.loss_scaler.init_scale = o.init_scale;
    t.loss_scaler.growth_factor = o.growth_factor;
    t.loss_scaler.backoff_factor = o.backoff_factor;
    t.loss_scaler.growth_interval = o.growth_interval;
    t.gemm_path = GemmPath(int(o.gemm_path));
    t.lr_schedule.kind =
        o.lr_schedule == VKT_LR_WARMUP_COSINE ? LrScheduleKind::warmup_cosine : LrScheduleKind::constant;
    t.lr_schedule.warmup_steps = o.warmup_steps;
    t.lr_schedule.total_steps = o.total_steps;
    t.lr_schedule.min_learning_rate = o.min_learning_rate;
    t.update_buckets = o.update_buckets;
    t.update_location = UpdateLocation(int(o.update_location));
    t.recompute = o.recompute == VKT_RECOMPUTE_BLOCKS ? Recompute::blocks : Recompute::none;
    return t;
}

vkt_trainer_options trainer_options_out(const TrainerOptions& t) {
    vkt_trainer_options o = trainer_defaults();
    o.precision = t.precision == Precision::fp32 ? VKT_PRECISION_FP32 : VKT_PRECISION_MIXED;
    o.batch_size = t.batch_size;
    o.optimizer = t.optimizer.kind == OptimizerKind::sgd ? VKT_SGD : VKT_ADAMW;
    o.learning_rate = t.optimizer.learning_rate;
    o.weight_decay = t.optimizer.weight_decay;
    o.momentum = t.optimizer.momentum;
    o.max_grad_norm = t.max_grad_norm;
    o.seed = t.seed;
    o.inference_only = t.inference_only;
    o.nesterov = t.optimizer.nesterov;
    o.beta1 = t.optimizer.beta1;
    o.beta2 = t.optimizer.beta2;
    o.epsilon = t.optimizer.epsilon;
    o.loss_scaling = t.loss_scaler.enabled;
    o.init_scale = t.loss_scaler.init_scale;
    o.growth_factor = t.loss_scaler.growth_factor;
    o.backoff_factor = t.loss_scaler.backoff_factor;
    o.growth_interval = t.loss_scaler.growth_interval;
    o.gemm_path = vkt_gemm_path(int(t.gemm_path));
    o.lr_schedule = t.lr_schedule.kind == LrScheduleKind::warmup_cosine ? VKT_LR_WARMUP_COSINE : VKT_LR_CONSTANT;
    o.warmup_steps = t.lr_schedule.warmup_steps;
    o.total_steps = t.lr_schedule.total_steps;
    o.min_learning_rate = t.lr_schedule.min_learning_rate;
    o.update_buckets = t.update_buckets;
    o.update_location = vkt_update_location(int(t.update_location));
    o.recompute = t.recompute == Recompute::blocks ? VKT_RECOMPUTE_BLOCKS : VKT_RECOMPUTE_NONE;
    return o;
}

void write_result(vkt_step_result* out, const StepResult& r) {
    if (!out) return;
    vkt_step_result s{};
    s.struct_size = sizeof s;
    s.loss = r.loss;
    s.loss_scale = r.loss_scale;
    s.skipped = r.skipped ? 1 : 0;
    s.grad_norm = r.grad_norm;
    s.learning_rate = r.learning_rate;
    s.host_ms = r.host_ms;
    s.overlapped_ms = r.overlapped_ms;
    write_versioned(out, s, VKT_STEP_RESULT_SIZE_V1, "vkt_step_result");
}

// A result struct is checked before the step runs, so a bad struct_size does not cost (or lose) a step.
void check_result(const vkt_step_result* out) {
    if (out && out->struct_size < VKT_STEP_RESULT_SIZE_V1)
        throw InvalidArgument("vkt_step_result->struct_size is " + std::to_string(out->struct_size) +
                              "; set it to sizeof(vkt_step_result)");
}

// A parameter's or buffer's element count, by name (vktrain::Error for an unknown name, as Trainer::parameter).
uint64_t parameter_elements(const Model& m, const std::string& name) {
    for (const ParameterInfo& p : m.parameters())
        if (p.name == name) return elements_of(p.shape);
    throw Error("the model has no parameter or buffer named '" + name + "'");
}

} // namespace
} // namespace vktrain::capi

using namespace vktrain::capi;

extern "C" {

vkt_status vkt_trainer_options_default(vkt_trainer_options* o, size_t struct_size) {
    return guarded([&] {
        fill_default(o, struct_size, trainer_defaults(), {VKT_TRAINER_OPTIONS_SIZE_V1}, "vkt_trainer_options");
    });
}

vkt_status vkt_trainer_create(vkt_context* context, const vkt_model* model, const vkt_trainer_options* options,
                              vkt_trainer** out) {
    return guarded([&] {
        need(out, "out");
        *out = nullptr;
        const vktrain::TrainerOptions o = trainer_options(options);
        std::unique_ptr<vkt_trainer> t(
            new vkt_trainer{vktrain::Trainer(need(context, "context").context, need(model, "model").model, o), {}, {}});
        const vktrain::Model& m = t->trainer.model();
        for (const size_t k : vktrain::train::all_outputs(m))
            t->output_names.push_back(k == 0 ? std::string() : m.outputs()[k - 1].first);
        *out = t.release();
    });
}

void vkt_trainer_destroy(vkt_trainer* trainer) {
    delete trainer;
}

vkt_status vkt_trainer_get_options(const vkt_trainer* t, vkt_trainer_options* out) {
    return guarded([&] {
        write_versioned(out, trainer_options_out(need(t, "trainer").trainer.options()), VKT_TRAINER_OPTIONS_SIZE_V1,
                        "vkt_trainer_options");
    });
}

vkt_status vkt_trainer_model(const vkt_trainer* t, vkt_model** out) {
    return guarded([&] {
        need(out, "out");
        *out = nullptr;
        *out = new vkt_model{need(t, "trainer").trainer.model(), {}, false};
    });
}

vkt_status vkt_trainer_info_get(vkt_trainer* t, vkt_trainer_info* out) {
    return guarded([&] {
        vkt_trainer& h = need(t, "trainer");
        const vktrain::Trainer& tr = h.trainer;
        h.gemm_path_summary = tr.gemm_path_summary();
        const vktrain::MemoryReport mem = tr.memory();
        vkt_trainer_info i{};
        i.struct_size = sizeof i;
        i.loss_scale = tr.loss_scale();
        i.learning_rate = tr.learning_rate();
        i.steps = tr.steps();
        i.skipped_steps = tr.skipped_steps();
        i.update_buckets = tr.update_buckets();
        i.update_location = vkt_update_location(int(tr.update_location()));
        i.update_location_reason = tr.update_location_reason().c_str();
        i.gemm_path_summary = h.gemm_path_summary.c_str();
        i.device_bytes = tr.device_bytes();
        i.arena_bytes = mem.arena_bytes;
        i.train_plan_bytes = mem.train_plan_bytes;
        i.eval_plan_bytes = mem.eval_plan_bytes;
        i.unplanned_bytes = mem.unplanned_bytes;
        i.in_place = mem.in_place;
        i.weight_uploads = tr.weight_uploads();
        i.weight_upload_bytes = tr.weight_upload_bytes();
        write_versioned(out, i, VKT_TRAINER_INFO_SIZE_V1, "vkt_trainer_info");
    });
}

vkt_status vkt_trainer_gemm_paths_json(const vkt_trainer* t, char** out) {
    return guarded([&] {
        need(out, "out");
        vktrain::io::Json list = vktrain::io::Json::array();
        for (const vktrain::GemmReport& g : need(t, "trainer").trainer.gemm_paths()) {
            vktrain::io::Json j = vktrain::io::Json::object();
            j["site"] = g.site;
            j["shape"] = g.shape;
            j["path"] = vktrain::to_string(g.path);
            j["reason"] = g.reason;
            j["tiles"] = g.tiles;
            j["tile_reason"] = g.tile_reason;
            list.push_back(j);
        }
        *out = copy_out(list.dump());
    });
}

vkt_status vkt_trainer_step(vkt_trainer* t, const void* const* inputs, size_t input_count, uint32_t count,
                            vkt_step_result* out) {
    return guarded([&] {
        vktrain::Trainer& trainer = need(t, "trainer").trainer;
        const auto in = inputs_of(trainer.model(), inputs, input_count, "step");
        check_input_sizes(trainer.model(), count, "step");
        check_result(out);
        write_result(out, trainer.step(in, count));
    });
}

vkt_status vkt_trainer_step_micro_batches(vkt_trainer* t, const void* const* const* inputs, size_t input_count,
                                          const uint32_t* counts, size_t micro_batch_count, vkt_step_result* out) {
    return guarded([&] {
        vktrain::Trainer& trainer = need(t, "trainer").trainer;
        if (micro_batch_count && (!inputs || !counts)) throw InvalidArgument("step: inputs or counts is null");
        std::vector<vktrain::MicroBatch> micro;
        for (size_t j = 0; j < micro_batch_count; ++j) {
            check_input_sizes(trainer.model(), counts[j], "step");
            micro.push_back({inputs_of(trainer.model(), inputs[j], input_count, "step"), counts[j]});
        }
        check_result(out);
        write_result(out, trainer.step(micro));
    });
}

vkt_status vkt_trainer_evaluate(vkt_trainer* t, const void* const* inputs, size_t input_count, uint64_t count,
                                double* loss) {
    return guarded([&] {
        vktrain::Trainer& trainer = need(t, "trainer").trainer;
        const auto in = inputs_of(trainer.model(), inputs, input_count, "evaluate");
        check_input_sizes(trainer.model(), count, "evaluate");
        need(loss, "loss") = trainer.evaluate(in, count).loss;
    });
}

vkt_status vkt_trainer_compute_gradients(vkt_trainer* t, const void* const* inputs, size_t input_count, uint32_t count,
                                         float* loss, float* out, size_t capacity, size_t* written) {
    return guarded([&] {
        vktrain::Trainer& trainer = need(t, "trainer").trainer;
        const auto in = inputs_of(trainer.model(), inputs, input_count, "compute_gradients");
        check_input_sizes(trainer.model(), count, "compute_gradients");
        uint64_t needed = 0;
        for (const vktrain::ParameterInfo& p : trainer.model().parameters())
            if (p.trainable && !p.buffer) needed += elements_of(p.shape);
        if (needed > capacity) too_small("compute_gradients", needed, capacity, written);
        std::vector<std::vector<float>> grads;
        const float l = trainer.compute_gradients(in, count, grads);
        std::vector<float> all;
        all.reserve(size_t(needed));
        for (const auto& g : grads) all.insert(all.end(), g.begin(), g.end());
        write_floats(all, out, capacity, written, "compute_gradients");
        if (loss) *loss = l;
    });
}

vkt_status vkt_trainer_profile_step(vkt_trainer* t, const void* const* inputs, size_t input_count, uint32_t count,
                                    char** out) {
    return guarded([&] {
        vktrain::Trainer& trainer = need(t, "trainer").trainer;
        need(out, "out");
        const auto in = inputs_of(trainer.model(), inputs, input_count, "profile_step");
        check_input_sizes(trainer.model(), count, "profile_step");
        const vktrain::StepProfile p = trainer.profile_step(in, count);
        vktrain::io::Json ops = vktrain::io::Json::array();
        for (const vktrain::OpTiming& o : p.ops) {
            vktrain::io::Json j = vktrain::io::Json::object();
            j["name"] = o.name;
            j["microseconds"] = o.microseconds;
            ops.push_back(j);
        }
        vktrain::io::Json root = vktrain::io::Json::object();
        root["ops"] = ops;
        root["total_microseconds"] = p.total_microseconds;
        root["gpu_timestamps"] = p.gpu_timestamps;
        root["dispatches"] = p.dispatches;
        *out = copy_out(root.dump());
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

vkt_status vkt_trainer_parameter(vkt_trainer* t, const char* name, float* out, size_t capacity, size_t* written) {
    return guarded([&] {
        vktrain::Trainer& trainer = need(t, "trainer").trainer;
        const std::string n = text(name, "name");
        // The size first, so that asking for it (capacity 0) reads nothing back from the device.
        const uint64_t needed = parameter_elements(trainer.model(), n);
        if (needed > capacity) too_small("vkt_trainer_parameter", needed, capacity, written);
        write_floats(trainer.parameter(n).data, out, capacity, written, "vkt_trainer_parameter");
    });
}

vkt_status vkt_trainer_set_parameter(vkt_trainer* t, const char* name, const float* values, size_t count) {
    return guarded([&] {
        vktrain::Trainer& trainer = need(t, "trainer").trainer;
        const std::string n = text(name, "name");
        const uint64_t elements = parameter_elements(trainer.model(), n);
        if (count != elements)
            throw InvalidArgument("vkt_trainer_set_parameter: '" + n + "' has " + std::to_string(elements) +
                                  " values, count is " + std::to_string(count));
        if (count) need(values, "values");
        trainer.set_parameter(n, std::vector<float>(values, values + count));
    });
}

vkt_status vkt_trainer_set_trainable(vkt_trainer* t, const char* pattern, int32_t trainable) {
    return guarded([&] { need(t, "trainer").trainer.set_trainable(text(pattern, "pattern"), trainable != 0); });
}

vkt_status vkt_trainer_optimizer_state_names(const vkt_trainer* t, char** out) {
    return guarded([&] {
        need(out, "out");
        vktrain::io::Json names = vktrain::io::Json::array();
        for (const auto& [name, values] : need(t, "trainer").trainer.optimizer_state()) names.push_back(name);
        *out = copy_out(names.dump());
    });
}

vkt_status vkt_trainer_optimizer_state(const vkt_trainer* t, const char* name, float* out, size_t capacity,
                                       size_t* written) {
    return guarded([&] {
        const std::string n = text(name, "name");
        for (const auto& [state, values] : need(t, "trainer").trainer.optimizer_state())
            if (state == n) return write_floats(values, out, capacity, written, "vkt_trainer_optimizer_state");
        throw vktrain::Error("the optimizer has no state named '" + n + "'");
    });
}

} // extern "C"
