// Reading and writing the huggingface safetensors format: an 8-byte little-endian header length N, N bytes of
// JSON header {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}} padded with
// spaces to a multiple of 8, then the raw little-endian tensor data.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace vktrain::io {

struct NamedTensor {
    std::string name;
    std::vector<int64_t> shape; // empty: a 0-d scalar holding one element
    std::vector<float> data;    // product(shape) elements, row-major
};

// Writes F32 tensors contiguously in the given order. Names must be non-empty, unique and not "__metadata__";
// data.size() must equal product(shape). The file is written as "<path>.tmp-<pid>" and renamed over path, so an
// existing file is never left half-written. Errors throw vktrain::Error naming the path.
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::vector<std::pair<std::string, std::string>>& metadata = {});

// One tensor of a file written piece by piece: its name and shape. Values are F32, or with int64 I64 (PyTorch's
// integer buffers, such as BatchNorm's num_batches_tracked): write() still takes floats, which must then be integers.
struct TensorHeader {
    std::string name;
    std::vector<int64_t> shape;
    bool int64 = false;
};

class AtomicFile;

// Writes an F32 safetensors file tensor by tensor: the header (every name and shape, checked as write_safetensors
// checks them) goes out first, then the values through write() in tensor order and in pieces of any size, so a
// converter holds one tensor (or one piece of one) at a time. Nothing appears at `path` until commit(), which fails
// unless exactly every value was written; a writer destroyed uncommitted leaves no file. Move-only in spirit.
class SafetensorsWriter {
public:
    SafetensorsWriter(const std::string& path, const std::vector<TensorHeader>& tensors,
                      const std::vector<std::pair<std::string, std::string>>& metadata = {});
    ~SafetensorsWriter();
    SafetensorsWriter(const SafetensorsWriter&) = delete;
    SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

    void write(const float* values, uint64_t count);
    void commit();

private:
    std::string m_path;
    std::unique_ptr<AtomicFile> m_file;
    uint64_t m_total = 0, m_written = 0; // elements
    std::vector<unsigned char> m_buffer;
    // The I64 tensors' element ranges [first, end) in write order (none in an all-F32 file).
    std::vector<std::pair<uint64_t, uint64_t>> m_int64;
    std::vector<std::string> m_int64_names;
};

// Reads every tensor (F32, F16 or BF16, converted to float) in header order, through vktrain::read_weights; metadata,
// when requested, receives the
// "__metadata__" entries in file order. Every inconsistency (header length, JSON, dtype, shape vs byte count,
// offsets out of range or overlapping, duplicate names) throws vktrain::Error naming the path.
std::vector<NamedTensor> read_safetensors(const std::string& path,
                                          std::vector<std::pair<std::string, std::string>>* metadata = nullptr);

} // namespace vktrain::io
