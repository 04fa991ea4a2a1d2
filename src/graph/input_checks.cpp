#include "graph/input_checks.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "common/check.hpp"
#include "graph/registry.hpp"

namespace vktrain::graph {

namespace {

// The index of the first inf or NaN of v[0, n), or n. The scan ORs whole blocks (it vectorises) and looks for the
// culprit only in a block that has one: a clean batch costs one pass.
uint64_t first_non_finite(const float* v, uint64_t n) {
    constexpr uint64_t block = 4096;
    for (uint64_t start = 0; start < n; start += block) {
        const uint64_t end = std::min(n, start + block);
        uint32_t any = 0;
        for (uint64_t k = start; k < end; ++k) {
            uint32_t bits;
            std::memcpy(&bits, v + k, sizeof bits);
            any |= uint32_t((bits & 0x7F800000u) == 0x7F800000u); // exponent all ones: inf or NaN
        }
        if (!any) continue;
        for (uint64_t k = start; k < end; ++k)
            if (!std::isfinite(v[k])) return k;
    }
    return n;
}

} // namespace

void check_input_values(const Model& model, const std::vector<const void*>& inputs, uint64_t count) {
    const auto ins = model.inputs();
    VKT_CHECK(inputs.size() == ins.size(), "the model takes ", ins.size(), " inputs, got ", inputs.size());
    const auto& nodes = model.nodes();
    // Sizes first: every later loop (and the copy to the device) relies on count × elements not wrapping around.
    for (size_t i = 0; i < ins.size(); ++i) {
        uint64_t n = 0, bytes = 0;
        const uint64_t per = model.input_elements(ins[i]);
        VKT_CHECK(!__builtin_mul_overflow(count, per, &n) && !__builtin_mul_overflow(n, uint64_t(4), &bytes) &&
                      bytes <= uint64_t(SIZE_MAX),
                  "input '", nodes[size_t(ins[i])].name, "': ", count, " samples of ", per,
                  " elements do not fit in memory");
    }
    // Float inputs must be finite: an inf or NaN would make the loss non-finite, and the step would be skipped (and
    // the loss scale halved) as if the gradients had overflowed.
    for (size_t i = 0; i < ins.size(); ++i) {
        const Node& node = nodes[size_t(ins[i])];
        if (node.type != DataType::f32 || inputs[i] == nullptr) continue;
        const uint64_t per = model.input_elements(ins[i]), n = count * per;
        const auto* v = static_cast<const float*>(inputs[i]);
        const uint64_t k = first_non_finite(v, n);
        VKT_CHECK(k == n, "input '", node.name, "': value ", v[k < n ? k : 0], " at index ", k, " (sample ", k / per,
                  ", element ", k % per, ") is not finite");
    }
    // Each indexed input: the valid range [0, limit) and what the index is called in messages.
    // `ignored`: a value allowed besides the range (cross-entropy's ignore_index).
    const auto check = [&](int input, int64_t limit, const char* what, const std::string& user,
                           std::optional<int32_t> ignored = std::nullopt) {
        for (size_t i = 0; i < ins.size(); ++i) {
            if (ins[i] != input || inputs[i] == nullptr) continue;
            const auto* v = static_cast<const int32_t*>(inputs[i]);
            const uint64_t n = count * model.input_elements(input);
            for (uint64_t k = 0; k < n; ++k)
                VKT_CHECK((v[k] >= 0 && v[k] < limit) || v[k] == ignored, "input '", nodes[size_t(input)].name,
                          "': ", what, " ", v[k], " at index ", k, " is outside [0, ", limit, ")", user);
        }
    };
    const int loss = model.loss();
    if (loss >= 0 && nodes[size_t(loss)].op == "cross_entropy") {
        const Node& n = nodes[size_t(loss)];
        const std::optional<int32_t> ignored = optional_attr<int32_t>(n, "ignore_index");
        check(n.inputs[1], int64_t(model.classes()), "label", ignored ? " and is not the ignore_index" : "", ignored);
    }
    for (const Node& n : nodes) {
        if (n.op == "embedding")
            check(n.inputs[0], attr<int64_t>(n, "num_embeddings"), "id", " (embedding '" + n.name + "')");
        // A decoder's position (its last input) indexes the rows of the key/value caches.
        if (n.op == "cached_attention" || n.op == "cached_rotary_attention")
            check(n.inputs.back(), attr<int64_t>(n, "max_positions"), "position", " (the cache of '" + n.name + "')");
    }
}

} // namespace vktrain::graph
