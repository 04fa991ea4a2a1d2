// Pieces every importer and exporter shares (hf_import.cpp for Hugging Face folders, torchvision.cpp for
// torchvision state_dicts): which dtypes are weights, the value checks with their one-line messages, and dropping a
// converted range of a memory-mapped source from the resident set so an import's peak memory stays far below one
// copy of the weights.
#pragma once

#include <cstdint>
#include <string>

#include "vktrain/weights.hpp"

namespace vktrain::import {

constexpr uint64_t piece = uint64_t{1} << 20; // elements converted at a time where no transpose is needed

bool floating(ElementType t); // F32, F16 or BF16

// v[0, count) are the elements [first, first + count) of the tensor `name` of `source`: each must be finite and, when
// fp16 (mixed precision's device storage), within fp16's range. Throws naming the tensor, the element and the value.
void check_values(const float* v, uint64_t count, uint64_t first, const std::string& name, const std::string& source,
                  bool fp16);

// Drops a converted range's whole pages from this process's resident set (a read-only, file-backed mapping: a later
// read faults them back in). A file read into memory (mapped false) is left alone.
void release(const void* data, uint64_t bytes, bool mapped);

} // namespace vktrain::import
