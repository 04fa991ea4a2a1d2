// What every file of the C API shares: the handles behind the opaque types, the error contract (guarded: every
// exception becomes a status and this thread's message, by the rule in vktrain.h) and the versioned-struct copies.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "vktrain/vktrain.h"
#include "vktrain/vktrain.hpp"
#include "vktrain/weights.hpp"

struct vkt_context {
    vktrain::Context context;
    std::string name;
};
struct vkt_model {
    vktrain::Model model;
    // What const char* outputs point into (vkt_model_parameter): rebuilt on demand, valid until the model changes.
    mutable std::vector<vktrain::ParameterInfo> parameters;
    mutable bool parameters_current = false;
};
struct vkt_trainer {
    vktrain::Trainer trainer;
    std::string gemm_path_summary; // vkt_trainer_info::gemm_path_summary points here
    // What vkt_trainer_predict_all writes, in order ("": the default output); vkt_trainer_output_name points here.
    // A trainer's outputs never change, so this is filled once, when it is made.
    std::vector<std::string> output_names;
};
struct vkt_metadata {
    std::vector<std::pair<std::string, std::string>> entries;
};
struct vkt_weights {
    vktrain::WeightsFile file;
};

namespace vktrain::capi {

// VKT_INVALID_ARGUMENT: the call breaks the header's contract (vktrain.h, STATUS CODES).
struct InvalidArgument : std::exception {
    std::string message;
    explicit InvalidArgument(std::string m) : message(std::move(m)) {}
    const char* what() const noexcept override { return message.c_str(); }
};

void set_error(const std::string& message);

// Runs f, turning every exception into a status and this thread's message.
template <typename F>
vkt_status guarded(F&& f) noexcept {
    try {
        f();
        return VKT_OK;
    } catch (const InvalidArgument& e) {
        set_error(e.message);
        return VKT_INVALID_ARGUMENT;
    } catch (const std::bad_alloc&) {
        set_error("out of memory");
        return VKT_OUT_OF_MEMORY;
    } catch (const std::exception& e) {
        set_error(e.what());
        return VKT_ERROR;
    } catch (...) {
        set_error("unknown error");
        return VKT_ERROR;
    }
}

template <typename T>
T& need(T* p, const char* what) {
    if (!p) throw InvalidArgument(std::string(what) + " is null");
    return *p;
}

inline const char* text(const char* p, const char* what) {
    if (!p) throw InvalidArgument(std::string(what) + " is null");
    return p;
}

inline void set(int32_t* out, int value) {
    if (out) *out = int32_t(value);
}

// A string for a char** output (free with vkt_free).
char* copy_out(const std::string& s);
// A fixed char array of a result struct, truncated to fit and always terminated.
template <size_t N>
void copy_chars(char (&to)[N], const std::string& from) {
    const size_t n = std::min(from.size(), N - 1);
    std::memcpy(to, from.data(), n);
    to[n] = '\0';
}

// a · b, refused as an invalid argument when it does not fit 64 bits (or size_t): sizes computed from a caller's
// count must not wrap around into a small buffer.
uint64_t times(uint64_t a, uint64_t b, const std::string& what);

// The inputs of a call on model `m`: one pointer per model input (input_count must be their number).
std::vector<const void*> inputs_of(const Model& m, const void* const* inputs, size_t input_count, const char* call);
// Every input of `count` samples has a byte size that fits: checked before anything reads the caller's buffers.
void check_input_sizes(const Model& m, uint64_t count, const char* call);

// A size output: `needed` values do not fit `capacity`; the size goes to *written (the call's size output, named in
// the message as `written_name`), then VKT_INVALID_ARGUMENT.
[[noreturn]] void too_small(const char* call, uint64_t needed, size_t capacity, size_t* written,
                            const char* written_name = "written");
// Copies `values` to the caller's buffer, or reports the size needed (vktrain.h: STATUS CODES).
void write_floats(const std::vector<float>& values, float* out, size_t capacity, size_t* written, const char* call);
// A shape into the caller's dims (capacity entries), its rank to *rank; a short buffer as too_small.
void write_shape(const std::vector<int64_t>& shape, int64_t* dims, size_t capacity, size_t* rank, const char* call);
// The product of a shape's dimensions (1 for a scalar).
uint64_t elements_of(const std::vector<int64_t>& shape);

// ---- versioned structs (vktrain.h, VERSIONED STRUCTS) ----

// An option struct from the caller: `defaults` with the fields of the newest version its struct_size covers copied
// over them. `versions` lists where each version's fields end (offsetof + sizeof of its last field), oldest first; the
// current version ends at sizeof(S). A struct of an earlier version is rounded down to that version's end, not
// copied to its struct_size: the compiler's padding after its last field holds garbage, not a later field.
template <typename S>
S read_versioned(const S* from, const S& defaults, std::initializer_list<size_t> versions, const char* what) {
    S s = defaults;
    if (!from) return s;
    const size_t first = *versions.begin();
    if (from->struct_size < first)
        throw InvalidArgument(std::string(what) + ".struct_size is " + std::to_string(from->struct_size) +
                              "; set it with its *_default function (at least " + std::to_string(first) + " bytes)");
    size_t covered = from->struct_size >= sizeof(S) ? sizeof(S) : 0;
    for (size_t end : versions)
        if (end <= from->struct_size) covered = std::max(covered, end);
    std::memcpy(&s, from, covered);
    s.struct_size = uint32_t(sizeof(S));
    return s;
}

// Writes `value` into the caller's struct, only the fields its struct_size covers (struct_size is kept).
template <typename S>
void write_versioned(S* to, const S& value, size_t first_version, const char* what) {
    need(to, what);
    const uint32_t size = to->struct_size;
    if (size < first_version)
        throw InvalidArgument(std::string(what) + "->struct_size is " + std::to_string(size) + "; set it to sizeof(" +
                              what + ") (at least " + std::to_string(first_version) + ")");
    std::memcpy(to, &value, std::min<size_t>(size, sizeof(S)));
    to->struct_size = size;
}

// A *_default function: the defaults of the fields within struct_size, and struct_size set.
template <typename S>
void fill_default(S* to, size_t struct_size, const S& value, size_t first_version, const char* what) {
    need(to, what);
    if (struct_size < first_version)
        throw InvalidArgument(std::string(what) + ": struct_size " + std::to_string(struct_size) +
                              " is smaller than its first version (" + std::to_string(first_version) + " bytes)");
    std::memcpy(to, &value, std::min(struct_size, sizeof(S)));
    to->struct_size = uint32_t(std::min<size_t>(struct_size, UINT32_MAX));
}

} // namespace vktrain::capi
