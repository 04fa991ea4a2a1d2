// The C API's outputs: a model's default and named outputs (Model::output), and a trainer's prediction of one output
// by name or of every output from one forward pass. Sizes are checked before any input is read or any work runs.
#include <stdexcept>

#include "capi/capi_common.hpp"

namespace vktrain::capi {
namespace {

const Model& model_of(const vkt_model* m) {
    return need(m, "model").model;
}

std::string name_or_default(const char* name) {
    return name ? std::string(name) : std::string();
}

// The floats `count` samples of `output` take, refused as an invalid argument when they do not fit in memory.
uint64_t output_values(const Model& m, const std::string& output, uint64_t count, const char* call) {
    const uint64_t values = times(count, m.input_elements(m.output(output)), std::string(call) + ": output values");
    times(values, sizeof(float), std::string(call) + ": output bytes");
    return values;
}

void predict_into(vkt_trainer* t, const std::string& output, const void* const* inputs, size_t input_count,
                  uint64_t count, float* out, size_t capacity, size_t* written, const char* call) {
    Trainer& trainer = need(t, "trainer").trainer;
    const auto in = inputs_of(trainer.model(), inputs, input_count, call);
    check_input_sizes(trainer.model(), count, call);
    // Refused before any work: the output (an unknown name), its size, and that it fits the caller's buffer.
    const uint64_t values = output_values(trainer.model(), output, count, call);
    if (values > capacity) too_small(call, values, capacity, written);
    const std::vector<float> p = trainer.predict(in, count, output);
    if (p.size() != values)
        throw std::runtime_error(std::string(call) + ": " + std::to_string(p.size()) + " values, expected " +
                                 std::to_string(values));
    write_floats(p, out, capacity, written, call);
}

} // namespace
} // namespace vktrain::capi

using namespace vktrain::capi;

extern "C" {

// ---- a model's outputs ----

vkt_status vkt_model_output(const vkt_model* m, int32_t* value) {
    return guarded([&] { need(value, "value") = model_of(m).output(); });
}

vkt_status vkt_model_output_shape(const vkt_model* m, int64_t* dims, size_t capacity, size_t* rank) {
    return guarded([&] {
        const vktrain::Model& g = model_of(m);
        write_shape(g.shape(g.output()), dims, capacity, rank, "vkt_model_output_shape");
    });
}

vkt_status vkt_model_mark_output(vkt_model* m, int32_t value, const char* name) {
    return guarded([&] {
        vkt_model& h = need(m, "model");
        h.model.output(value, text(name, "name"));
        h.parameters_current = false;
    });
}

vkt_status vkt_model_output_count(const vkt_model* m, size_t* count) {
    return guarded([&] { need(count, "count") = model_of(m).outputs().size(); });
}

vkt_status vkt_model_output_entry(const vkt_model* m, size_t index, const char** name, int32_t* value) {
    return guarded([&] {
        const auto& outputs = model_of(m).outputs();
        if (index >= outputs.size())
            throw InvalidArgument("output " + std::to_string(index) + ": the model has " +
                                  std::to_string(outputs.size()) + " named output(s)");
        if (name) *name = outputs[index].first.c_str();
        set(value, outputs[index].second);
    });
}

vkt_status vkt_model_find_output(const vkt_model* m, const char* name, int32_t* value) {
    return guarded([&] {
        need(value, "value");
        *value = model_of(m).output(name_or_default(name));
    });
}

// ---- a trainer's predictions ----

vkt_status vkt_trainer_predict(vkt_trainer* t, const void* const* inputs, size_t input_count, uint64_t count,
                               float* out, size_t capacity, size_t* written) {
    return guarded([&] { predict_into(t, "", inputs, input_count, count, out, capacity, written, "predict"); });
}

vkt_status vkt_trainer_predict_output(vkt_trainer* t, const char* output, const void* const* inputs, size_t input_count,
                                      uint64_t count, float* out, size_t capacity, size_t* written) {
    return guarded([&] {
        predict_into(t, name_or_default(output), inputs, input_count, count, out, capacity, written,
                     "vkt_trainer_predict_output");
    });
}

vkt_status vkt_trainer_output_shape(const vkt_trainer* t, const char* output, int64_t* dims, size_t capacity,
                                    size_t* rank) {
    return guarded([&] {
        write_shape(need(t, "trainer").trainer.output_shape(name_or_default(output)), dims, capacity, rank,
                    "vkt_trainer_output_shape");
    });
}

vkt_status vkt_trainer_output_count(const vkt_trainer* t, size_t* count) {
    return guarded([&] { need(count, "count") = need(t, "trainer").output_names.size(); });
}

vkt_status vkt_trainer_output_name(const vkt_trainer* t, size_t index, const char** name) {
    return guarded([&] {
        const std::vector<std::string>& names = need(t, "trainer").output_names;
        need(name, "name");
        if (index >= names.size())
            throw InvalidArgument("output " + std::to_string(index) + ": predict_all writes " +
                                  std::to_string(names.size()) + " output(s)");
        *name = names[index].c_str();
    });
}

vkt_status vkt_trainer_predict_all(vkt_trainer* t, const void* const* inputs, size_t input_count, uint64_t count,
                                   float* out, size_t capacity, size_t* written) {
    return guarded([&] {
        const char* call = "vkt_trainer_predict_all";
        vkt_trainer& h = need(t, "trainer");
        const vktrain::Model& m = h.trainer.model();
        const auto in = inputs_of(m, inputs, input_count, call);
        check_input_sizes(m, count, call);
        uint64_t needed = 0;
        for (const std::string& name : h.output_names) {
            const uint64_t values = output_values(m, name, count, call);
            if (__builtin_add_overflow(needed, values, &needed) || needed > SIZE_MAX / sizeof(float))
                throw InvalidArgument(std::string(call) + ": the outputs of " + std::to_string(count) +
                                      " samples do not fit in size_t");
        }
        if (needed > capacity) too_small(call, needed, capacity, written);
        if (needed) need(out, "out");
        const std::vector<vktrain::Prediction> all = h.trainer.predict_all(in, count);
        uint64_t got = 0;
        for (const vktrain::Prediction& p : all) got += p.data.size();
        if (got != needed || all.size() != h.output_names.size())
            throw std::runtime_error(std::string(call) + ": " + std::to_string(got) + " values, expected " +
                                     std::to_string(needed));
        for (const vktrain::Prediction& p : all) {
            if (!p.data.empty()) std::memcpy(out, p.data.data(), p.data.size() * sizeof(float));
            out += p.data.size();
        }
        if (written) *written = size_t(needed);
    });
}

} // extern "C"
