#include "io/safetensors.hpp"
#include "io/temp_files.hpp"

#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <unordered_set>

#include "common/check.hpp"
#include "io/json.hpp"

namespace vktrain::io {

namespace {

// Same limit as the reference implementation: a larger header is far more likely corruption than a real file.
constexpr uint64_t max_header_size = 100'000'000;

// Offsets are stored as JSON numbers (doubles); beyond 2^53 they would silently lose precision.
constexpr uint64_t max_offset = uint64_t{1} << 53;

// Tensor data is converted through a buffer of this many elements rather than one allocation per tensor.
constexpr size_t chunk_elements = size_t{1} << 16;

float float_from_bits(uint32_t bits) {
    float value = 0.0f;
    std::memcpy(&value, &bits, sizeof(value));
    return value;
}

uint32_t bits_from_float(float value) {
    uint32_t bits = 0;
    std::memcpy(&bits, &value, sizeof(bits));
    return bits;
}

// IEEE binary16 -> binary32, exact for every input (NaN payloads kept, subnormals normalized).
float half_to_float(uint16_t half) {
    const uint32_t sign = uint32_t{half & 0x8000u} << 16;
    const uint32_t exponent = (half >> 10) & 0x1Fu;
    const uint32_t mantissa = half & 0x3FFu;
    if (exponent == 0x1F) return float_from_bits(sign | 0x7F800000u | (mantissa << 13));
    if (exponent != 0) return float_from_bits(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13));
    // Zero or subnormal: mantissa * 2^-24, exact in float since mantissa has at most 10 bits.
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
    return sign != 0 ? -magnitude : magnitude;
}

enum class DType { f32, f16, bf16 };

size_t dtype_size(DType dtype) {
    return dtype == DType::f32 ? 4 : 2;
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

class File {
public:
    File(const std::string& path, const char* mode) : m_file(std::fopen(path.c_str(), mode)) {}
    ~File() {
        if (m_file != nullptr) std::fclose(m_file);
    }
    File(const File&) = delete;
    File& operator=(const File&) = delete;
    std::FILE* get() const { return m_file; }
    // Closes now so the caller can check the result (buffered writes can fail here).
    bool close() {
        std::FILE* file = m_file;
        m_file = nullptr;
        return std::fclose(file) == 0;
    }

private:
    std::FILE* m_file;
};

struct TensorEntry {
    std::string name;
    DType dtype = DType::f32;
    std::vector<int64_t> shape;
    uint64_t count = 0;
    uint64_t begin = 0;
    uint64_t end = 0;
};

// A non-negative integer from the header, with a message naming the file and field on failure.
uint64_t header_offset(const Json& value, const std::string& path, const std::string& what) {
    VKT_CHECK(value.is_number(), path, ": ", what, " is a JSON ", to_string(value.type()), ", expected an integer");
    const double number = value.as_number();
    VKT_CHECK(number >= 0 && number == std::trunc(number) && number <= static_cast<double>(max_offset), path, ": ",
              what, " is ", value.dump(), ", expected a non-negative integer");
    return static_cast<uint64_t>(number);
}

TensorEntry parse_entry(const std::string& path, const std::string& name, const Json& value, uint64_t data_size) {
    const std::string where = "tensor \"" + name + "\"";
    VKT_CHECK(value.is_object(), path, ": ", where, ": header entry is a JSON ", to_string(value.type()),
              ", expected an object");
    TensorEntry entry;
    entry.name = name;

    const Json* dtype = value.find("dtype");
    VKT_CHECK(dtype != nullptr && dtype->is_string(), path, ": ", where, ": missing or non-string \"dtype\"");
    const std::string& dtype_name = dtype->as_string();
    if (dtype_name == "F32") {
        entry.dtype = DType::f32;
    } else if (dtype_name == "F16") {
        entry.dtype = DType::f16;
    } else if (dtype_name == "BF16") {
        entry.dtype = DType::bf16;
    } else {
        VKT_FAIL(path, ": ", where, ": unsupported dtype \"", dtype_name, "\" (supported: F32, F16, BF16)");
    }

    const Json* shape = value.find("shape");
    VKT_CHECK(shape != nullptr && shape->is_array(), path, ": ", where, ": missing or non-array \"shape\"");
    for (const Json& dim : shape->as_array()) {
        entry.shape.push_back(static_cast<int64_t>(header_offset(dim, path, where + " shape dimension")));
    }
    VKT_CHECK(element_count(entry.shape, entry.count), path, ": ", where, ": shape ", shape_string(entry.shape),
              " overflows");

    const Json* offsets = value.find("data_offsets");
    VKT_CHECK(offsets != nullptr && offsets->is_array() && offsets->size() == 2, path, ": ", where,
              ": \"data_offsets\" must be an array of two integers");
    entry.begin = header_offset(offsets->at(size_t{0}), path, where + " data_offsets[0]");
    entry.end = header_offset(offsets->at(size_t{1}), path, where + " data_offsets[1]");
    VKT_CHECK(entry.begin <= entry.end, path, ": ", where, ": data_offsets [", entry.begin, ", ", entry.end,
              "] are reversed");
    VKT_CHECK(entry.end <= data_size, path, ": ", where, ": data_offsets [", entry.begin, ", ", entry.end,
              "] out of range of the ", data_size, "-byte data section");
    const uint64_t bytes = entry.end - entry.begin;
    VKT_CHECK(entry.count <= UINT64_MAX / dtype_size(entry.dtype) && bytes == entry.count * dtype_size(entry.dtype),
              path, ": ", where, ": ", bytes, " bytes of data do not match shape ", shape_string(entry.shape), " of ",
              dtype_name);
    return entry;
}

void read_tensor_data(std::FILE* file, const std::string& path, uint64_t data_start, const TensorEntry& entry,
                      std::vector<float>& out) {
    out.resize(entry.count);
    if (entry.count == 0) return;
    VKT_CHECK(::fseeko(file, static_cast<off_t>(data_start + entry.begin), SEEK_SET) == 0, path,
              ": seek failed: ", std::strerror(errno));
    const size_t element_size = dtype_size(entry.dtype);
    std::vector<unsigned char> buffer(chunk_elements * 4);
    for (size_t done = 0; done < entry.count;) {
        const size_t n = std::min(chunk_elements, static_cast<size_t>(entry.count - done));
        VKT_CHECK(std::fread(buffer.data(), element_size, n, file) == n, path, ": tensor \"", entry.name,
                  "\": ", std::ferror(file) != 0 ? "read error" : "unexpected end of file");
        // Assembling values from little-endian bytes keeps this independent of the host's byte order.
        const unsigned char* b = buffer.data();
        for (size_t i = 0; i < n; ++i, b += element_size) {
            if (entry.dtype == DType::f32) {
                out[done + i] =
                    float_from_bits(uint32_t{b[0]} | uint32_t{b[1]} << 8 | uint32_t{b[2]} << 16 | uint32_t{b[3]} << 24);
            } else {
                const auto half = static_cast<uint16_t>(b[0] | b[1] << 8);
                out[done + i] = entry.dtype == DType::f16 ? half_to_float(half) : float_from_bits(uint32_t{half} << 16);
            }
        }
        done += n;
    }
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
    File file(path, "rb");
    VKT_CHECK(file.get() != nullptr, path, ": cannot open: ", std::strerror(errno));
    std::error_code ec;
    const uint64_t file_size = std::filesystem::file_size(path, ec);
    VKT_CHECK(!ec, path, ": cannot determine file size: ", ec.message());
    VKT_CHECK(file_size >= 8, path, ": not a safetensors file: file size ", file_size,
              " is smaller than the 8-byte header length");

    unsigned char length_bytes[8];
    VKT_CHECK(std::fread(length_bytes, 1, 8, file.get()) == 8, path, ": read error");
    uint64_t header_size = 0;
    for (int i = 0; i < 8; ++i) header_size |= uint64_t{length_bytes[i]} << (8 * i);
    VKT_CHECK(header_size <= file_size - 8, path, ": not a safetensors file: header length ", header_size,
              " exceeds file size ", file_size);
    VKT_CHECK(header_size <= max_header_size, path, ": not a safetensors file: header length ", header_size,
              " exceeds the ", max_header_size, "-byte limit");

    std::string text(header_size, '\0');
    VKT_CHECK(std::fread(text.data(), 1, text.size(), file.get()) == text.size(), path, ": read error in header");
    const Json header = Json::parse(text, path + ": safetensors header"); // rejects duplicate names too
    VKT_CHECK(header.is_object(), path, ": safetensors header is a JSON ", to_string(header.type()),
              ", expected an object");

    const uint64_t data_start = 8 + header_size;
    const uint64_t data_size = file_size - data_start;
    std::vector<TensorEntry> entries;
    if (metadata != nullptr) metadata->clear();
    for (const auto& [name, value] : header.as_object()) {
        if (name == "__metadata__") {
            VKT_CHECK(value.is_object(), path, ": \"__metadata__\" is a JSON ", to_string(value.type()),
                      ", expected an object");
            for (const auto& [key, item] : value.as_object()) {
                VKT_CHECK(item.is_string(), path, ": metadata \"", key, "\" is a JSON ", to_string(item.type()),
                          ", expected a string");
                if (metadata != nullptr) metadata->emplace_back(key, item.as_string());
            }
            continue;
        }
        entries.push_back(parse_entry(path, name, value, data_size));
    }

    // Overlapping tensors would alias each other's bytes; empty tensors occupy nothing and cannot overlap.
    std::vector<const TensorEntry*> sorted;
    for (const TensorEntry& entry : entries) {
        if (entry.begin != entry.end) sorted.push_back(&entry);
    }
    std::sort(sorted.begin(), sorted.end(),
              [](const TensorEntry* a, const TensorEntry* b) { return a->begin < b->begin; });
    for (size_t i = 1; i < sorted.size(); ++i) {
        VKT_CHECK(sorted[i]->begin >= sorted[i - 1]->end, path, ": tensors \"", sorted[i - 1]->name, "\" and \"",
                  sorted[i]->name, "\" have overlapping data_offsets");
    }

    std::vector<NamedTensor> tensors(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
        tensors[i].name = entries[i].name;
        tensors[i].shape = entries[i].shape;
        read_tensor_data(file.get(), path, data_start, entries[i], tensors[i].data);
    }
    return tensors;
}

} // namespace vktrain::io
