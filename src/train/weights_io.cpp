// A weights file's values for a model (parameters_for, which Trainer::load uses), the architecture it records
// (load_model), and which of a trainer's tensors a weights file holds (persistent_only, for Trainer::save).
#include "train/weights_io.hpp"

#include <unordered_map>
#include <cmath>
#include <cstdio>

#include "common/check.hpp"
#include "graph/ir.hpp"
#include "train/checkpoint.hpp"

namespace vktrain {

Model load_model(const WeightsFile& file) {
    const std::string* graph = file.metadata_value("vktrain_graph");
    VKT_CHECK(graph != nullptr, file.path(),
              ": the file records no model architecture (written by an earlier vktrain, or not by vktrain)");
    try {
        return Model::from_json(*graph);
    } catch (const Error& e) {
        throw Error(file.path() + ": " + e.what());
    }
}

Model load_model(const std::string& path) {
    return load_model(read_weights(path));
}

std::vector<Parameter> parameters_for(const Model& model, const WeightsFile& file) {
    const std::string& path = file.path();
    const std::vector<ParameterInfo> infos = model.parameters();
    std::vector<Parameter> out(infos.size());
    std::vector<bool> seen(infos.size(), false);
    std::unordered_map<std::string, size_t> index; // name -> infos[i] (a deep model has tens of thousands of tensors)
    for (size_t i = 0; i < infos.size(); ++i) index.emplace(infos[i].name, i);
    for (const TensorView& t : file.tensors()) {
        if (train::is_optimizer_tensor(t.name)) continue; // a checkpoint's optimizer state is not weights
        const auto found = index.find(t.name);
        VKT_CHECK(found != index.end(), path, ": tensor '", t.name, "' is not a parameter or buffer of the model");
        const size_t i = found->second;
        VKT_CHECK(!seen[i], path, ": tensor '", t.name, "' appears twice");
        VKT_CHECK(t.shape == infos[i].shape, path, ": tensor '", t.name, "' has shape ", graph::shape_text(t.shape),
                  ", the model's is ", graph::shape_text(infos[i].shape));
        std::vector<float> data = t.to_f32();
        for (size_t k = 0; k < data.size(); ++k) {
            if (std::isfinite(data[k]) && (!infos[i].counter || data[k] >= 0.0f)) continue;
            char value[32];
            std::snprintf(value, sizeof value, "%.9g", double(data[k]));
            VKT_FAIL(path, ": tensor '", t.name, "' holds ", value, " at element ", k,
                     " (weights and buffers must be finite, counters >= 0)");
        }
        seen[i] = true;
        out[i] = {t.name, t.shape, std::move(data)};
    }
    for (size_t i = 0; i < infos.size(); ++i) {
        if (seen[i]) continue;
        VKT_CHECK(!infos[i].persistent, path, ": tensor '", infos[i].name, "' is missing");
        out[i] = {infos[i].name, infos[i].shape, std::vector<float>(graph::element_count(infos[i].shape), 0.0f)};
    }
    return out;
}

namespace train {

std::vector<Parameter> persistent_only(const Model& model, std::vector<Parameter> all) {
    const std::vector<ParameterInfo> infos = model.parameters();
    VKT_CHECK(infos.size() == all.size(), "internal: ", all.size(), " tensors for ", infos.size(), " parameters");
    std::vector<Parameter> out;
    for (size_t i = 0; i < all.size(); ++i)
        if (infos[i].persistent) out.push_back(std::move(all[i]));
    return out;
}

} // namespace train

} // namespace vktrain
