// Reading and writing the huggingface safetensors format: an 8-byte little-endian header length N, N bytes of
// JSON header {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}} padded with
// spaces to a multiple of 8, then the raw little-endian tensor data.
#pragma once

#include <cstdint>
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

// Reads every tensor (F32, F16 or BF16, converted to float) in header order, through vktrain::read_weights; metadata,
// when requested, receives the
// "__metadata__" entries in file order. Every inconsistency (header length, JSON, dtype, shape vs byte count,
// offsets out of range or overlapping, duplicate names) throws vktrain::Error naming the path.
std::vector<NamedTensor> read_safetensors(const std::string& path,
                                          std::vector<std::pair<std::string, std::string>>* metadata = nullptr);

} // namespace vktrain::io
