// Weight files read without copying them: a safetensors file (vktrain's own, Hugging Face's, a converted
// torchvision checkpoint) is memory-mapped, and each tensor is a view of its bytes in the mapping, with its
// metadata. Nothing is converted until asked, so an importer can stream a large file to the device tensor by
// tensor (or chunk by chunk) with one fp32 buffer of its own at a time.
//
//   vktrain::WeightsFile f = vktrain::read_weights("model.safetensors");
//   for (const vktrain::TensorView& t : f.tensors()) { ... t.name, t.type, t.shape, t.to_f32() ... }
//   const std::string* vocab = f.metadata_value("vktrain_vocabulary"); // what Trainer::save(path, extra) stored
//   vktrain::Model m = vktrain::load_model(f);                        // the architecture vktrain recorded
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "vktrain/model.hpp"
#include "vktrain/trainer.hpp"

namespace vktrain {

// Element types of a safetensors file, by its names: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL.
enum class ElementType { f64, f32, f16, bf16, i64, i32, i16, i8, u8, boolean };
const char* to_string(ElementType type); // the file's name for it: "F32", "BF16", "I64", ...
uint32_t element_size(ElementType type); // bytes per element

// One tensor of a WeightsFile: a view of its bytes, valid while the WeightsFile lives (moves included).
struct TensorView {
    std::string name;
    ElementType type = ElementType::f32;
    std::vector<int64_t> shape; // empty: a 0-d scalar holding one element
    // elements() values of `type`, little-endian and row-major, inside the file's mapping. Not necessarily aligned
    // for the type (safetensors does not require it): read them through to_f32 or memcpy.
    const void* data = nullptr;
    uint64_t bytes = 0; // elements() * element_size(type)

    uint64_t elements() const;
    // The values as fp32. Floating types convert exactly (f64 rounds to nearest); integers round to the nearest float
    // (exact up to 2^24 in magnitude); booleans are 0 or 1.
    std::vector<float> to_f32() const;
    // Elements [first, first + count) into out[0, count) (throws when the range is outside the tensor): for
    // converting a large tensor in pieces.
    void to_f32(float* out, uint64_t first, uint64_t count) const;
};

// A weights file, mapped read-only (or, where the file cannot be mapped, e.g. a pipe, read into memory once).
// Move-only. The file must not be truncated while it is mapped (as for any memory map, reading a removed page is a
// SIGBUS); replacing it through a rename, as Trainer::save does, is safe.
class WeightsFile {
public:
    WeightsFile(WeightsFile&&) noexcept;
    WeightsFile& operator=(WeightsFile&&) noexcept;
    ~WeightsFile();
    WeightsFile(const WeightsFile&) = delete;
    WeightsFile& operator=(const WeightsFile&) = delete;

    const std::string& path() const;
    const std::vector<TensorView>& tensors() const;          // in the header's order
    const TensorView* find(const std::string& name) const;   // nullptr when the file has no such tensor
    const TensorView& tensor(const std::string& name) const; // throws vktrain::Error "<path>: no tensor '<name>'"
    // The "__metadata__" entries in file order: the architecture ("vktrain_graph"), precision and step count that
    // Trainer::save writes, the extra entries given to Trainer::save(path, extra) or save_checkpoint, or a foreign
    // writer's ("format": "pt").
    const CheckpointMetadata& metadata() const;
    const std::string* metadata_value(const std::string& key) const; // nullptr when absent
    bool mapped() const; // false: read into memory (the file could not be mapped)

private:
    struct Impl;
    explicit WeightsFile(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
    friend WeightsFile read_weights(const std::string& path);
};

// Opens and checks a safetensors file: header length, JSON, every tensor's dtype, shape and data offsets (in range,
// matching the shape, not overlapping), duplicate names. Throws vktrain::Error "<path>: <problem>" (one line).
WeightsFile read_weights(const std::string& path);

// The architecture vktrain recorded in the file (Trainer::save, save_checkpoint): as load_model(path), without
// reading the file again.
Model load_model(const WeightsFile& file);

// The file's values for `model`'s parameters and buffers, in Model::parameters() order, checked as Trainer::load
// checks them: every tensor is one of the model's (by name, at most once, with its shape, finite values, counters
// >= 0) and none is missing. A checkpoint's optimizer state ("optimizer.*") is skipped, and buffers that are not
// persistent (ParameterInfo::persistent: a decoder's key/value caches) need not be in the file: absent ones are
// zero-filled. Throws vktrain::Error "<path>: tensor '<name>' ..." (one line).
std::vector<Parameter> parameters_for(const Model& model, const WeightsFile& file);

} // namespace vktrain
