#include "io/safetensors.hpp"
#include "io/temp_files.hpp"

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "common/check.hpp"
#include "io/json.hpp"
#include "vktrain/weights.hpp"

namespace vktrain::io {

namespace {

// Offsets are stored as JSON numbers (doubles); beyond 2^53 they would silently lose precision.
constexpr uint64_t max_offset = uint64_t{1} << 53;

// Tensor data is converted through a buffer of this many elements rather than one allocation per tensor.
constexpr size_t chunk_elements = size_t{1} << 16;

uint32_t bits_from_float(float value) {
    uint32_t bits = 0;
    std::memcpy(&bits, &value, sizeof(bits));
    return bits;
}

// Product of the dimensions, or false when a dimension is negative or the product overflows.
bool element_count(const std::vector<int64_t>& shape, uint64_t& count) {
    count = 1;
    for (const int64_t dim : shape) {
        if (dim < 0) return false;
        const auto d = static_cast<uint64_t>(dim);
        if (d != 0 && count > UINT64_MAX / d) return false;
        count *= d;
    }
    return true;
}

std::string shape_string(const std::vector<int64_t>& shape) {
    std::string text = "[";
    for (size_t i = 0; i < shape.size(); ++i) text += (i > 0 ? ", " : "") + std::to_string(shape[i]);
    return text + "]";
}

} // namespace

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::vector<std::pair<std::string, std::string>>& metadata) {
    Json header = Json::object();
    Json::Object& members = header.as_object();
    if (!metadata.empty()) {
        Json meta = Json::object();
        std::unordered_set<std::string> keys;
        for (const auto& [key, value] : metadata) {
            VKT_CHECK(keys.insert(key).second, path, ": duplicate metadata key \"", key, "\"");
            meta.as_object().emplace_back(key, Json(value));
        }
        members.emplace_back("__metadata__", std::move(meta));
    }
    std::unordered_set<std::string> names;
    uint64_t offset = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
        const NamedTensor& tensor = tensors[i];
        VKT_CHECK(!tensor.name.empty(), path, ": tensor ", i, " has an empty name");
        VKT_CHECK(tensor.name != "__metadata__", path, ": \"__metadata__\" is reserved and cannot name a tensor");
        VKT_CHECK(names.insert(tensor.name).second, path, ": duplicate tensor name \"", tensor.name, "\"");
        uint64_t count = 0;
        VKT_CHECK(element_count(tensor.shape, count), path, ": tensor \"", tensor.name, "\": invalid shape ",
                  shape_string(tensor.shape));
        VKT_CHECK(count == tensor.data.size(), path, ": tensor \"", tensor.name, "\": shape ",
                  shape_string(tensor.shape), " needs ", count, " elements, data has ", tensor.data.size());
        const uint64_t end = offset + count * 4;
        VKT_CHECK(end <= max_offset, path, ": tensor data exceeds 2^53 bytes");
        Json entry = Json::object();
        entry["dtype"] = "F32";
        Json& shape = entry["shape"] = Json::array();
        for (const int64_t dim : tensor.shape) shape.push_back(dim);
        Json& offsets = entry["data_offsets"] = Json::array();
        offsets.push_back(offset);
        offsets.push_back(end);
        members.emplace_back(tensor.name, std::move(entry));
        offset = end;
    }
    std::string text = header.dump(false);
    text.append((8 - text.size() % 8) % 8, ' '); // keeps the data 8-byte aligned for memory-mapping readers

    AtomicFile file(path);
    unsigned char length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(uint64_t{text.size()} >> (8 * i));
    file.write(length, sizeof(length));
    file.write(text.data(), text.size());
    std::vector<unsigned char> buffer(chunk_elements * 4);
    for (const NamedTensor& tensor : tensors) {
        for (size_t done = 0; done < tensor.data.size();) {
            const size_t n = std::min(chunk_elements, tensor.data.size() - done);
            for (size_t i = 0; i < n; ++i) {
                const uint32_t bits = bits_from_float(tensor.data[done + i]);
                for (size_t b = 0; b < 4; ++b) buffer[4 * i + b] = static_cast<unsigned char>(bits >> (8 * b));
            }
            file.write(buffer.data(), n * 4);
            done += n;
        }
    }
    file.commit();
}

std::vector<NamedTensor> read_safetensors(const std::string& path,
                                          std::vector<std::pair<std::string, std::string>>* metadata) {
    const WeightsFile file = read_weights(path);
    if (metadata != nullptr) *metadata = file.metadata();
    std::vector<NamedTensor> tensors;
    tensors.reserve(file.tensors().size());
    for (const TensorView& t : file.tensors()) {
        VKT_CHECK(t.type == ElementType::f32 || t.type == ElementType::f16 || t.type == ElementType::bf16, path,
                  ": tensor \"", t.name, "\": unsupported dtype \"", to_string(t.type),
                  "\" (supported: F32, F16, BF16)");
        tensors.push_back({t.name, t.shape, t.to_f32()});
    }
    return tensors;
}

} // namespace vktrain::io
