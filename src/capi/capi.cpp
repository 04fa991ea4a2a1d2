// The C API (include/vktrain/vktrain.h) over the C++ API: errors, the shared size idioms, contexts and devices.
// Models and the op listing are in capi_model.cpp, outputs and prediction in capi_outputs.cpp, trainers in
// capi_trainer.cpp, weights files, metadata and checkpoints in capi_weights.cpp.
#include <cstdlib>
#include <new>

#include "capi/capi_common.hpp"

struct vkt_device_list {
    std::vector<vktrain::DeviceInfo> devices;
};

namespace vktrain::capi {

namespace {
thread_local std::string g_error;
} // namespace

void set_error(const std::string& message) {
    g_error = message;
}

char* copy_out(const std::string& s) {
    char* p = static_cast<char*>(std::malloc(s.size() + 1));
    if (!p) throw std::bad_alloc();
    std::memcpy(p, s.c_str(), s.size() + 1);
    return p;
}

uint64_t times(uint64_t a, uint64_t b, const std::string& what) {
    uint64_t r = 0;
    if (__builtin_mul_overflow(a, b, &r) || r > uint64_t(SIZE_MAX))
        throw InvalidArgument(what + ": " + std::to_string(a) + " x " + std::to_string(b) + " does not fit in size_t");
    return r;
}

std::vector<const void*> inputs_of(const Model& m, const void* const* inputs, size_t input_count, const char* call) {
    const size_t expected = m.inputs().size();
    if (input_count != expected) {
        std::string names;
        for (int in : m.inputs()) names += (names.empty() ? "" : ", ") + m.nodes()[size_t(in)].name;
        throw InvalidArgument(std::string(call) + ": input_count is " + std::to_string(input_count) +
                              "; the model has " + std::to_string(expected) + " input(s) (" + names + ")");
    }
    if (!inputs && input_count) throw InvalidArgument(std::string(call) + ": inputs is null");
    return std::vector<const void*>(inputs, inputs + input_count);
}

void check_input_sizes(const Model& m, uint64_t count, const char* call) {
    for (const int in : m.inputs()) {
        const std::string what = std::string(call) + ": input '" + m.nodes()[size_t(in)].name + "'";
        times(times(count, m.input_elements(in), what + " elements"), 4, what + " bytes");
    }
}

void too_small(const char* call, uint64_t needed, size_t capacity, size_t* written, const char* written_name) {
    if (written) *written = size_t(needed);
    throw InvalidArgument(std::string(call) + ": " + std::to_string(needed) + " values do not fit a capacity of " +
                          std::to_string(capacity) + " (the size needed is in *" + written_name + ")");
}

void write_floats(const std::vector<float>& values, float* out, size_t capacity, size_t* written, const char* call) {
    if (values.size() > capacity) too_small(call, values.size(), capacity, written);
    if (!values.empty()) std::memcpy(&need(out, "out"), values.data(), values.size() * sizeof(float));
    if (written) *written = values.size();
}

void write_shape(const std::vector<int64_t>& shape, int64_t* dims, size_t capacity, size_t* rank, const char* call) {
    if (shape.size() > capacity) too_small(call, shape.size(), capacity, rank, "rank");
    if (!shape.empty()) std::memcpy(&need(dims, "dims"), shape.data(), shape.size() * sizeof(int64_t));
    if (rank) *rank = shape.size();
}

uint64_t elements_of(const std::vector<int64_t>& shape) {
    uint64_t n = 1;
    for (const int64_t d : shape) n *= uint64_t(d);
    return n;
}

namespace {

vkt_context_options context_defaults() {
    const ContextOptions d;
    vkt_context_options o{};
    o.struct_size = sizeof o;
    o.device_index = d.device_index;
    o.device_name = nullptr;
    o.validation = d.validation;
    o.allow_coopmat = d.allow_coopmat;
    o.allow_fp16 = d.allow_fp16;
    o.allow_unified_memory = d.allow_unified_memory;
    o.tune_gemm_tiles = d.tune_gemm_tiles;
    o.cache_dir = nullptr;
    o.log = nullptr;
    o.log_user_data = nullptr;
    o.log_level = vkt_log_level(int(d.log_level));
    return o;
}

ContextOptions context_options(const vkt_context_options* from) {
    const vkt_context_options o =
        read_versioned(from, context_defaults(), {VKT_CONTEXT_OPTIONS_SIZE_V1}, "vkt_context_options");
    if (o.log_level < VKT_LOG_DEBUG || o.log_level > VKT_LOG_ERROR)
        throw InvalidArgument("vkt_context_options.log_level must be VKT_LOG_DEBUG .. VKT_LOG_ERROR");
    ContextOptions c;
    c.device_index = o.device_index;
    if (o.device_name) c.device_name = o.device_name;
    c.validation = o.validation != 0;
    c.allow_coopmat = o.allow_coopmat != 0;
    c.allow_fp16 = o.allow_fp16 != 0;
    c.allow_unified_memory = o.allow_unified_memory != 0;
    c.tune_gemm_tiles = o.tune_gemm_tiles != 0;
    if (o.cache_dir) c.cache_dir = o.cache_dir;
    c.log_level = LogLevel(int(o.log_level));
    if (o.log) {
        const vkt_log_callback fn = o.log;
        void* user = o.log_user_data;
        c.log = [fn, user](LogLevel level, LogSource source, const std::string& message) {
            fn(user, vkt_log_level(int(level)), source == LogSource::validation ? VKT_LOG_VALIDATION : VKT_LOG_LIBRARY,
               message.c_str());
        };
    }
    return c;
}

vkt_device_info device_info(const DeviceInfo& d) {
    vkt_device_info o{};
    o.struct_size = sizeof o;
    o.index = d.index;
    copy_chars(o.name, d.name);
    copy_chars(o.type, d.type);
    copy_chars(o.driver_name, d.driver_name);
    copy_chars(o.driver_info, d.driver_info);
    copy_chars(o.api_version, d.api_version);
    o.vendor_id = d.vendor_id;
    o.device_id = d.device_id;
    o.driver_version = d.driver_version;
    o.shader_float16 = d.shader_float16;
    o.storage_buffer_16bit = d.storage_buffer_16bit;
    o.subgroup_size = d.subgroup_size;
    o.min_subgroup_size = d.min_subgroup_size;
    o.max_subgroup_size = d.max_subgroup_size;
    o.subgroup_size_control = d.subgroup_size_control;
    o.max_shared_memory = d.max_shared_memory;
    o.max_workgroup_invocations = d.max_workgroup_invocations;
    o.timestamps = d.timestamps;
    o.coopmat_extension = d.coopmat_extension;
    o.coopmat_feature = d.coopmat_feature;
    o.coopmat_shape_count = uint32_t(d.coopmat_shapes.size());
    o.device_memory_bytes = d.device_memory_bytes;
    o.unified_memory = d.unified_memory;
    return o;
}

void coopmat_shape(const DeviceInfo& d, uint32_t index, vkt_coopmat_shape* out) {
    if (index >= d.coopmat_shapes.size())
        throw InvalidArgument("coopmat shape " + std::to_string(index) + ": the device lists " +
                              std::to_string(d.coopmat_shapes.size()));
    const CoopMatShape& s = d.coopmat_shapes[index];
    vkt_coopmat_shape o{};
    o.struct_size = sizeof o;
    o.m = s.m;
    o.n = s.n;
    o.k = s.k;
    copy_chars(o.a_type, s.a_type);
    copy_chars(o.b_type, s.b_type);
    copy_chars(o.c_type, s.c_type);
    copy_chars(o.result_type, s.result_type);
    copy_chars(o.scope, s.scope);
    o.saturating = s.saturating;
    write_versioned(out, o, VKT_COOPMAT_SHAPE_SIZE_V1, "vkt_coopmat_shape");
}

} // namespace
} // namespace vktrain::capi

using namespace vktrain::capi;

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

vkt_status vkt_context_options_default(vkt_context_options* o, size_t struct_size) {
    return guarded(
        [&] { fill_default(o, struct_size, context_defaults(), VKT_CONTEXT_OPTIONS_SIZE_V1, "vkt_context_options"); });
}

vkt_status vkt_context_create(const vkt_context_options* options, vkt_context** out) {
    return guarded([&] {
        need(out, "out");
        *out = nullptr;
        auto c = std::make_unique<vkt_context>(vkt_context{vktrain::Context(context_options(options)), {}});
        c->name = c->context.device_info().name;
        *out = c.release();
    });
}

void vkt_context_destroy(vkt_context* context) {
    delete context;
}

const char* vkt_context_device_name(const vkt_context* context) {
    return context ? context->name.c_str() : nullptr;
}

vkt_status vkt_context_device_info(const vkt_context* context, vkt_device_info* out) {
    return guarded([&] {
        write_versioned(out, device_info(need(context, "context").context.device_info()), VKT_DEVICE_INFO_SIZE_V1,
                        "vkt_device_info");
    });
}

vkt_status vkt_context_coopmat_shape(const vkt_context* context, uint32_t index, vkt_coopmat_shape* out) {
    return guarded([&] { coopmat_shape(need(context, "context").context.device_info(), index, out); });
}

vkt_status vkt_context_capabilities_get(const vkt_context* context, vkt_context_capabilities* out) {
    return guarded([&] {
        const vktrain::Context& c = need(context, "context").context;
        vkt_context_capabilities o{};
        o.struct_size = sizeof o;
        o.coopmat = c.coopmat_available();
        o.fp16 = c.fp16_available();
        o.unified_memory = c.unified_memory_available();
        o.allocated_bytes = c.allocated_bytes();
        o.peak_allocated_bytes = c.peak_allocated_bytes();
        write_versioned(out, o, VKT_CONTEXT_CAPABILITIES_SIZE_V1, "vkt_context_capabilities");
    });
}

vkt_status vkt_list_devices(const vkt_context_options* options, vkt_device_list** out) {
    return guarded([&] {
        need(out, "out");
        *out = nullptr;
        *out = new vkt_device_list{vktrain::list_devices(context_options(options))};
    });
}

vkt_status vkt_device_list_count(const vkt_device_list* list, size_t* count) {
    return guarded([&] { need(count, "count") = need(list, "list").devices.size(); });
}

vkt_status vkt_device_list_get(const vkt_device_list* list, size_t index, vkt_device_info* out) {
    return guarded([&] {
        const auto& devices = need(list, "list").devices;
        if (index >= devices.size())
            throw InvalidArgument("device " + std::to_string(index) + ": the list has " +
                                  std::to_string(devices.size()));
        write_versioned(out, device_info(devices[index]), VKT_DEVICE_INFO_SIZE_V1, "vkt_device_info");
    });
}

vkt_status vkt_device_list_coopmat_shape(const vkt_device_list* list, size_t device, uint32_t index,
                                         vkt_coopmat_shape* out) {
    return guarded([&] {
        const auto& devices = need(list, "list").devices;
        if (device >= devices.size())
            throw InvalidArgument("device " + std::to_string(device) + ": the list has " +
                                  std::to_string(devices.size()));
        coopmat_shape(devices[device], index, out);
    });
}

void vkt_device_list_destroy(vkt_device_list* list) {
    delete list;
}

} // extern "C"
