#include "train/outputs.hpp"

#include "common/check.hpp"

namespace vktrain::train {

size_t output_index(const Model& model, const std::string& name) {
    const int value = model.output(name); // throws for an unknown name, or no default output
    if (name.empty()) return 0;
    const auto& outputs = model.outputs();
    for (size_t i = 0; i < outputs.size(); ++i)
        if (outputs[i].first == name) return i + 1;
    VKT_FAIL("internal: output '", name, "' (value ", value, ") is not listed");
}

std::vector<size_t> all_outputs(const Model& model) {
    std::vector<size_t> out;
    bool listed = false;
    const int prediction = model.loss() >= 0 ? model.output() : -1;
    for (const auto& [name, value] : model.outputs()) listed = listed || value == prediction;
    if (prediction >= 0 && !listed) out.push_back(0);
    for (size_t i = 0; i < model.outputs().size(); ++i) out.push_back(i + 1);
    return out;
}

size_t output_values(uint64_t count, uint64_t per, const char* what) {
    uint64_t values = 0;
    VKT_CHECK(!__builtin_mul_overflow(count, per, &values) && values <= std::vector<float>().max_size(), what, ": ",
              count, " samples of ", per, " values do not fit in memory");
    return size_t(values);
}

} // namespace vktrain::train
