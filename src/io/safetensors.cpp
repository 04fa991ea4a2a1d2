#include "io/safetensors.hpp"
#include "io/temp_files.hpp"

#include <algorithm>
#include <cmath>
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

SafetensorsWriter::SafetensorsWriter(const std::string& path, const std::vector<TensorHeader>& tensors,
                                     const std::vector<std::pair<std::string, std::string>>& metadata)
    : m_path(path) {
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
    uint64_t offset = 0, elements = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
        const TensorHeader& tensor = tensors[i];
        VKT_CHECK(!tensor.name.empty(), path, ": tensor ", i, " has an empty name");
        VKT_CHECK(tensor.name != "__metadata__", path, ": \"__metadata__\" is reserved and cannot name a tensor");
        VKT_CHECK(names.insert(tensor.name).second, path, ": duplicate tensor name \"", tensor.name, "\"");
        uint64_t count = 0;
        VKT_CHECK(element_count(tensor.shape, count) && count <= max_offset / 8, path, ": tensor \"", tensor.name,
                  "\": invalid shape ", shape_string(tensor.shape));
        const uint64_t end = offset + count * (tensor.int64 ? 8 : 4);
        VKT_CHECK(end <= max_offset, path, ": tensor data exceeds 2^53 bytes");
        if (tensor.int64) {
            m_int64.emplace_back(elements, elements + count);
            m_int64_names.push_back(tensor.name);
        }
        elements += count;
        Json entry = Json::object();
        entry["dtype"] = tensor.int64 ? "I64" : "F32";
        Json& shape = entry["shape"] = Json::array();
        for (const int64_t dim : tensor.shape) shape.push_back(dim);
        Json& offsets = entry["data_offsets"] = Json::array();
        offsets.push_back(offset);
        offsets.push_back(end);
        members.emplace_back(tensor.name, std::move(entry));
        offset = end;
    }
    m_total = elements;
    std::string text = header.dump(false);
    text.append((8 - text.size() % 8) % 8, ' '); // keeps the data 8-byte aligned for memory-mapping readers

    m_file = std::make_unique<AtomicFile>(path);
    unsigned char length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(uint64_t{text.size()} >> (8 * i));
    m_file->write(length, sizeof(length));
    m_file->write(text.data(), text.size());
    m_buffer.resize(chunk_elements * 8);
}

SafetensorsWriter::~SafetensorsWriter() = default;

void SafetensorsWriter::write(const float* values, uint64_t count) {
    VKT_CHECK(count <= m_total - m_written, m_path, ": ", m_written + count, " values written, the tensors hold ",
              m_total);
    for (uint64_t done = 0; done < count;) {
        // The I64 tensor holding element m_written + done, if any, and where the run of one dtype ends.
        const uint64_t at = m_written + done;
        const auto range = std::find_if(m_int64.begin(), m_int64.end(), [at](const auto& r) { return r.second > at; });
        const bool int64 = range != m_int64.end() && range->first <= at;
        const uint64_t run_end = int64 ? range->second : range != m_int64.end() ? range->first : m_total;
        const size_t n = size_t(std::min<uint64_t>({chunk_elements, count - done, run_end - at}));
        for (size_t i = 0; i < n; ++i) {
            const float v = values[done + i];
            if (int64) {
                VKT_CHECK(v == std::floor(v) && std::fabs(v) < 9.2e18f, m_path, ": tensor \"",
                          m_int64_names[size_t(range - m_int64.begin())], "\" is I64, got the value ", v);
                const auto bits = static_cast<uint64_t>(static_cast<int64_t>(v));
                for (size_t b = 0; b < 8; ++b) m_buffer[8 * i + b] = static_cast<unsigned char>(bits >> (8 * b));
            } else {
                const uint32_t bits = bits_from_float(v);
                for (size_t b = 0; b < 4; ++b) m_buffer[4 * i + b] = static_cast<unsigned char>(bits >> (8 * b));
            }
        }
        m_file->write(m_buffer.data(), n * (int64 ? 8 : 4));
        done += n;
    }
    m_written += count;
}

void SafetensorsWriter::commit() {
    VKT_CHECK(m_written == m_total, m_path, ": only ", m_written, " of the tensors' ", m_total, " values were written");
    m_file->commit();
}

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::vector<std::pair<std::string, std::string>>& metadata) {
    std::vector<TensorHeader> headers;
    headers.reserve(tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
        const NamedTensor& tensor = tensors[i];
        uint64_t count = 0;
        VKT_CHECK(element_count(tensor.shape, count), path, ": tensor \"", tensor.name, "\": invalid shape ",
                  shape_string(tensor.shape));
        VKT_CHECK(count == tensor.data.size(), path, ": tensor \"", tensor.name, "\": shape ",
                  shape_string(tensor.shape), " needs ", count, " elements, data has ", tensor.data.size());
        headers.push_back({tensor.name, tensor.shape});
    }
    SafetensorsWriter writer(path, headers, metadata);
    for (const NamedTensor& tensor : tensors) writer.write(tensor.data.data(), tensor.data.size());
    writer.commit();
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
