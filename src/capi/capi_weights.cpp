// The C API's files: weights files read without copying (read_weights: tensors as views, converted to fp32 on
// request, the metadata, the recorded model), metadata handles, and a trainer's weights and checkpoints.
#include "capi/capi_common.hpp"
#include "vktrain/lora.hpp"
#include "io/json.hpp"

namespace vktrain::capi {
namespace {

CheckpointMetadata metadata_of(const char* const* keys, const char* const* values, size_t count) {
    if (count && (!keys || !values)) throw InvalidArgument("metadata keys or values is null");
    CheckpointMetadata md;
    for (size_t i = 0; i < count; ++i)
        md.emplace_back(text(keys[i], "metadata key"), text(values[i], "metadata value"));
    return md;
}

const TensorView& tensor_at(const vkt_weights* w, size_t index) {
    const std::vector<TensorView>& tensors = need(w, "weights").file.tensors();
    if (index >= tensors.size())
        throw InvalidArgument("tensor " + std::to_string(index) + ": " + need(w, "weights").file.path() + " has " +
                              std::to_string(tensors.size()));
    return tensors[index];
}

vkt_element_type element_type(ElementType t) {
    switch (t) {
    case ElementType::f64: return VKT_ELEMENT_F64;
    case ElementType::f32: return VKT_ELEMENT_F32;
    case ElementType::f16: return VKT_ELEMENT_F16;
    case ElementType::bf16: return VKT_ELEMENT_BF16;
    case ElementType::i64: return VKT_ELEMENT_I64;
    case ElementType::i32: return VKT_ELEMENT_I32;
    case ElementType::i16: return VKT_ELEMENT_I16;
    case ElementType::i8: return VKT_ELEMENT_I8;
    case ElementType::u8: return VKT_ELEMENT_U8;
    case ElementType::boolean: return VKT_ELEMENT_BOOL;
    }
    throw Error("internal: an element type without a C name");
}

io::Json names_json(const std::vector<std::string>& names) {
    io::Json list = io::Json::array();
    for (const std::string& n : names) list.push_back(n);
    return list;
}

} // namespace
} // namespace vktrain::capi

using namespace vktrain::capi;

extern "C" {

// ---- weights files ----

vkt_status vkt_weights_open(const char* path, vkt_weights** out) {
    return guarded([&] {
        need(out, "out");
        *out = nullptr;
        *out = new vkt_weights{vktrain::read_weights(text(path, "path"))};
    });
}

void vkt_weights_destroy(vkt_weights* w) {
    delete w;
}

vkt_status vkt_weights_mapped(const vkt_weights* w, int32_t* mapped) {
    return guarded([&] { need(mapped, "mapped") = need(w, "weights").file.mapped() ? 1 : 0; });
}

vkt_status vkt_weights_tensor_count(const vkt_weights* w, size_t* count) {
    return guarded([&] { need(count, "count") = need(w, "weights").file.tensors().size(); });
}

vkt_status vkt_weights_tensor(const vkt_weights* w, size_t index, vkt_tensor_info* out) {
    return guarded([&] {
        const vktrain::TensorView& t = tensor_at(w, index);
        vkt_tensor_info i{};
        i.struct_size = sizeof i;
        i.name = t.name.c_str();
        i.type = element_type(t.type);
        i.type_name = vktrain::to_string(t.type);
        i.rank = t.shape.size();
        i.elements = t.elements();
        i.bytes = t.bytes;
        i.data = t.data;
        write_versioned(out, i, VKT_TENSOR_INFO_SIZE_V1, "vkt_tensor_info");
    });
}

vkt_status vkt_weights_tensor_shape(const vkt_weights* w, size_t index, int64_t* dims, size_t capacity, size_t* rank) {
    return guarded([&] { write_shape(tensor_at(w, index).shape, dims, capacity, rank, "vkt_weights_tensor_shape"); });
}

vkt_status vkt_weights_find(const vkt_weights* w, const char* name, size_t* index) {
    return guarded([&] {
        const vktrain::WeightsFile& f = need(w, "weights").file;
        need(index, "index");
        const vktrain::TensorView& t = f.tensor(text(name, "name")); // throws "<path>: no tensor '<name>'"
        *index = size_t(&t - f.tensors().data());
    });
}

vkt_status vkt_weights_tensor_f32(const vkt_weights* w, size_t index, float* out, size_t capacity, size_t* written) {
    return guarded([&] {
        const vktrain::TensorView& t = tensor_at(w, index);
        const uint64_t n = t.elements();
        if (n > capacity) too_small("vkt_weights_tensor_f32", n, capacity, written);
        t.to_f32(&need(out, "out"), 0, n); // straight into the caller's buffer: no copy of our own
        if (written) *written = size_t(n);
    });
}

vkt_status vkt_weights_tensor_f32_range(const vkt_weights* w, size_t index, uint64_t first, uint64_t count,
                                        float* out) {
    return guarded([&] {
        const vktrain::TensorView& t = tensor_at(w, index);
        const uint64_t n = t.elements();
        if (first > n || count > n - first)
            throw InvalidArgument("vkt_weights_tensor_f32_range: elements [" + std::to_string(first) + ", " +
                                  std::to_string(first) + " + " + std::to_string(count) + ") are outside tensor '" +
                                  t.name + "' of " + std::to_string(n));
        if (count) t.to_f32(&need(out, "out"), first, count);
    });
}

vkt_status vkt_weights_metadata(const vkt_weights* w, vkt_metadata** out) {
    return guarded([&] {
        need(out, "out");
        *out = nullptr;
        auto md = std::make_unique<vkt_metadata>();
        md->entries = need(w, "weights").file.metadata();
        *out = md.release();
    });
}

vkt_status vkt_weights_model(const vkt_weights* w, vkt_model** out) {
    return guarded([&] {
        need(out, "out");
        *out = nullptr;
        *out = new vkt_model{vktrain::load_model(need(w, "weights").file), {}, false};
    });
}

// ---- metadata ----

vkt_status vkt_read_metadata(const char* path, vkt_metadata** out) {
    return guarded([&] {
        need(out, "out");
        *out = nullptr;
        auto md = std::make_unique<vkt_metadata>();
        md->entries = vktrain::read_weights(text(path, "path")).metadata(); // mapped: the tensors are not read
        *out = md.release();
    });
}

vkt_status vkt_metadata_count(const vkt_metadata* md, size_t* count) {
    return guarded([&] { need(count, "count") = need(md, "metadata").entries.size(); });
}

vkt_status vkt_metadata_entry(const vkt_metadata* md, size_t index, const char** key, const char** value) {
    return guarded([&] {
        const auto& entries = need(md, "metadata").entries;
        if (index >= entries.size())
            throw InvalidArgument("metadata entry " + std::to_string(index) + ": there are " +
                                  std::to_string(entries.size()));
        if (key) *key = entries[index].first.c_str();
        if (value) *value = entries[index].second.c_str();
    });
}

vkt_status vkt_metadata_get(const vkt_metadata* md, const char* key, const char** value) {
    return guarded([&] {
        const std::string k = text(key, "key");
        need(value, "value");
        for (const auto& [name, v] : need(md, "metadata").entries)
            if (name == k) {
                *value = v.c_str();
                return;
            }
        throw vktrain::Error("metadata has no entry '" + k + "'");
    });
}

void vkt_metadata_destroy(vkt_metadata* md) {
    delete md;
}

// ---- a trainer's weights and checkpoints ----

vkt_status vkt_trainer_save(const vkt_trainer* t, const char* path) {
    return guarded([&] { need(t, "trainer").trainer.save(text(path, "path")); });
}

vkt_status vkt_trainer_save_with_metadata(const vkt_trainer* t, const char* path, const char* const* keys,
                                          const char* const* values, size_t count) {
    return guarded([&] { need(t, "trainer").trainer.save(text(path, "path"), metadata_of(keys, values, count)); });
}

vkt_status vkt_trainer_load_lora_adapter(vkt_trainer* t, const char* directory) {
    return guarded([&] { vktrain::load_lora_adapter(need(t, "trainer").trainer, text(directory, "directory")); });
}

vkt_status vkt_trainer_save_lora_adapter(const vkt_trainer* t, const char* directory, const char* base) {
    return guarded([&] {
        vktrain::save_lora_adapter(need(t, "trainer").trainer, text(directory, "directory"), base ? base : "");
    });
}

vkt_status vkt_trainer_load(vkt_trainer* t, const char* path) {
    return guarded([&] { need(t, "trainer").trainer.load(text(path, "path")); });
}

vkt_status vkt_trainer_save_checkpoint(const vkt_trainer* t, const char* path) {
    return guarded([&] { need(t, "trainer").trainer.save_checkpoint(text(path, "path")); });
}

vkt_status vkt_trainer_save_checkpoint_with_metadata(const vkt_trainer* t, const char* path, const char* const* keys,
                                                     const char* const* values, size_t count) {
    return guarded(
        [&] { need(t, "trainer").trainer.save_checkpoint(text(path, "path"), metadata_of(keys, values, count)); });
}

vkt_status vkt_trainer_load_checkpoint(vkt_trainer* t, const char* path) {
    return guarded([&] { (void)need(t, "trainer").trainer.load_checkpoint(text(path, "path")); });
}

vkt_status vkt_trainer_load_checkpoint_with_metadata(vkt_trainer* t, const char* path, vkt_metadata** out) {
    return guarded([&] {
        need(out, "out");
        *out = nullptr;
        auto md = std::make_unique<vkt_metadata>();
        md->entries = need(t, "trainer").trainer.load_checkpoint(text(path, "path"));
        *out = md.release();
    });
}

vkt_status vkt_trainer_load_checkpoint_report(vkt_trainer* t, const char* path, vkt_metadata** extra,
                                              char** optimizer_state_load) {
    return guarded([&] {
        if (extra) *extra = nullptr;
        if (optimizer_state_load) *optimizer_state_load = nullptr;
        auto md = std::make_unique<vkt_metadata>();
        vktrain::OptimizerStateLoad load;
        md->entries = need(t, "trainer").trainer.load_checkpoint(text(path, "path"), &load);
        // The report is the last thing that can fail: after it the caller owns both outputs, before it neither.
        if (optimizer_state_load) {
            vktrain::io::Json j = vktrain::io::Json::object();
            j["restored"] = names_json(load.restored);
            j["fresh"] = names_json(load.fresh);
            j["dropped"] = names_json(load.dropped);
            *optimizer_state_load = copy_out(j.dump());
        }
        if (extra) *extra = md.release();
    });
}

} // extern "C"
