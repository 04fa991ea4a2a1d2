#include "graph/input_checks.hpp"

#include <string>

#include "common/check.hpp"

namespace vktrain::graph {

void check_index_inputs(const Model& model, const std::vector<const void*>& inputs, uint64_t count) {
    const auto ins = model.inputs();
    VKT_CHECK(inputs.size() == ins.size(), "the model takes ", ins.size(), " inputs, got ", inputs.size());
    const auto& nodes = model.nodes();
    // Each indexed input: the valid range [0, limit) and what the index is called in messages.
    const auto check = [&](int input, int64_t limit, const char* what, const std::string& user) {
        for (size_t i = 0; i < ins.size(); ++i) {
            if (ins[i] != input || inputs[i] == nullptr) continue;
            const auto* v = static_cast<const int32_t*>(inputs[i]);
            const uint64_t n = count * model.input_elements(input);
            for (uint64_t k = 0; k < n; ++k)
                VKT_CHECK(v[k] >= 0 && v[k] < limit, "input '", nodes[size_t(input)].name, "': ", what, " ", v[k],
                          " at index ", k, " is outside [0, ", limit, ")", user);
        }
    };
    const int loss = model.loss();
    if (loss >= 0 && nodes[size_t(loss)].op == "cross_entropy")
        check(nodes[size_t(loss)].inputs[1], int64_t(model.classes()), "label", "");
    for (const Node& n : nodes)
        if (n.op == "embedding")
            check(n.inputs[0], int64_t(n.attrs.at("num_embeddings")), "id", " (embedding '" + n.name + "')");
}

} // namespace vktrain::graph
