// PEFT adapter folders (vktrain/lora.hpp): adapter_config.json and adapter_model.safetensors in and out, and the merge
// of an adapter into its base for export.
#include "vktrain/lora.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "common/check.hpp"
#include "io/json.hpp"
#include "io/safetensors.hpp"
#include "vktrain/trainer.hpp"

namespace vktrain {

namespace fs = std::filesystem;

namespace {

constexpr const char* k_prefix = "base_model.model.";

std::string config_path(const std::string& directory) {
    return directory + "/adapter_config.json";
}
std::string weights_path(const std::string& directory) {
    return directory + "/adapter_model.safetensors";
}

bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// PEFT's check_target_module_exists for a list of names: the key equals a target or ends with "." + target.
bool peft_matches(const std::vector<std::string>& targets, const std::string& module) {
    for (const std::string& t : targets)
        if (module == t || ends_with(module, "." + t)) return true;
    return false;
}

// A float as the shortest decimal that reads back as it (0.05f is written 0.05, not 0.05000000074505806).
double shortest_decimal(float v) {
    for (int digits = 1; digits < 10; ++digits) {
        char text[32];
        std::snprintf(text, sizeof text, "%.*g", digits, double(v));
        const double d = std::strtod(text, nullptr);
        if (float(d) == v) return d;
    }
    return double(v);
}

bool conv1d_name(const std::string& module) {
    return ends_with(module, ".c_attn") || ends_with(module, ".c_proj") || ends_with(module, ".c_fc");
}

// The adapter's tensors by vktrain name ("<module>.lora_A.weight"), from the file's PEFT keys.
std::map<std::string, io::NamedTensor> adapter_tensors(const std::string& directory) {
    const std::string path = weights_path(directory);
    VKT_CHECK(fs::is_regular_file(path), path,
              ": no such file (a PEFT adapter folder holds adapter_model.safetensors)");
    std::map<std::string, io::NamedTensor> out;
    for (io::NamedTensor& t : io::read_safetensors(path)) {
        std::string name = t.name.rfind(k_prefix, 0) == 0 ? t.name.substr(std::string(k_prefix).size()) : t.name;
        VKT_CHECK(ends_with(name, ".lora_A.weight") || ends_with(name, ".lora_B.weight"), path, ": tensor '", t.name,
                  "' is not a LoRA weight (expected <module>.lora_A.weight or .lora_B.weight)");
        VKT_CHECK(t.shape.size() == 2, path, ": tensor '", t.name, "' is not a matrix");
        for (float v : t.data) VKT_CHECK(std::isfinite(v), path, ": tensor '", t.name, "' holds ", v);
        t.name = name;
        out.emplace(name, std::move(t));
    }
    return out;
}

} // namespace

LoraAdapterConfig read_lora_adapter_config(const std::string& directory) {
    const std::string path = config_path(directory);
    VKT_CHECK(fs::is_regular_file(path), path, ": no such file (a PEFT adapter folder holds adapter_config.json)");
    const io::Json j = io::read_json_file(path);
    try {
        VKT_CHECK(j.is_object(), "not a JSON object");
        const io::Json* type = j.find("peft_type");
        VKT_CHECK(type && type->is_string() && type->as_string() == "LORA", "peft_type must be \"LORA\"");
        LoraAdapterConfig c;
        const double r = j.at("r").as_number();
        VKT_CHECK(r >= 1 && r <= 65536 && r == std::floor(r), "r must be a whole number in 1..65536, got ", r);
        c.options.r = uint32_t(r);
        const io::Json* alpha = j.find("lora_alpha");
        c.options.alpha = alpha && !alpha->is_null() ? float(alpha->as_number()) : 8.0f; // PEFT's default
        const io::Json* dropout = j.find("lora_dropout");
        c.options.dropout = dropout && !dropout->is_null() ? float(dropout->as_number()) : 0.0f;
        VKT_CHECK(std::isfinite(c.options.alpha) && c.options.alpha > 0, "lora_alpha must be positive");
        VKT_CHECK(c.options.dropout >= 0 && c.options.dropout < 1, "lora_dropout must be in [0, 1)");
        const io::Json& targets = j.at("target_modules");
        if (targets.is_string()) {
            c.target_modules.push_back(targets.as_string());
        } else {
            for (const io::Json& t : targets.as_array()) c.target_modules.push_back(t.as_string());
        }
        VKT_CHECK(!c.target_modules.empty(), "target_modules is empty");
        if (const io::Json* b = j.find("base_model_name_or_path"); b && b->is_string())
            c.base_model_name_or_path = b->as_string();
        if (const io::Json* f = j.find("fan_in_fan_out"); f && !f->is_null()) c.fan_in_fan_out = f->as_bool();
        if (const io::Json* t = j.find("task_type"); t && t->is_string()) c.task_type = t->as_string();
        if (const io::Json* b = j.find("bias"); b && !b->is_null())
            VKT_CHECK(b->as_string() == "none", "bias \"", b->as_string(), "\" is not supported (only \"none\")");
        for (const char* key : {"rank_pattern", "alpha_pattern"})
            if (const io::Json* p = j.find(key); p && !p->is_null())
                VKT_CHECK(p->is_object() && p->size() == 0, key,
                          " is not supported (one r and alpha for every module)");
        for (const char* key : {"use_dora", "use_rslora"})
            if (const io::Json* p = j.find(key); p && !p->is_null()) VKT_CHECK(!p->as_bool(), key, " is not supported");
        if (const io::Json* m = j.find("modules_to_save"); m && !m->is_null())
            VKT_CHECK(m->is_array() && m->size() == 0, "modules_to_save is not supported");
        return c;
    } catch (const Error& e) {
        throw Error(path + ": " + e.what());
    }
}

std::vector<std::string> add_lora(Model& model, const LoraAdapterConfig& config) {
    std::vector<std::string> modules;
    for (const Node& n : model.nodes())
        if (n.op == "linear" && !ends_with(n.name, ".lora_A") && !ends_with(n.name, ".lora_B") &&
            peft_matches(config.target_modules, n.name))
            modules.push_back(n.name);
    std::string targets;
    for (const std::string& t : config.target_modules) targets += (targets.empty() ? "" : ", ") + t;
    VKT_CHECK(!modules.empty(), "add_lora: no linear layer of the model matches the adapter's target_modules (",
              targets, ")");
    Model next = model;
    for (const std::string& m : modules) next.add_lora(m, config.options);
    model = std::move(next);
    return modules;
}

void save_lora_adapter(const Trainer& trainer, const std::string& directory, const std::string& base) {
    const std::vector<LoraModule> modules = trainer.model().lora_modules();
    VKT_CHECK(!modules.empty(), "save_lora_adapter: the model has no LoRA adapter (Model::add_lora)");
    const LoraOptions& o = modules.front().options;
    for (const LoraModule& m : modules)
        VKT_CHECK(m.options.r == o.r && m.options.alpha == o.alpha && m.options.dropout == o.dropout,
                  "save_lora_adapter: module '", m.module, "' has r ", m.options.r, ", alpha ", m.options.alpha,
                  ", dropout ", m.options.dropout, " but '", modules.front().module, "' has r ", o.r, ", alpha ",
                  o.alpha, ", dropout ", o.dropout, " (one PEFT config holds one of each)");
    std::error_code ec;
    if (!fs::is_directory(directory)) {
        fs::create_directory(directory, ec);
        VKT_CHECK(!ec, directory, ": cannot create the folder (", ec.message(), ")");
    }
    std::vector<io::NamedTensor> tensors;
    io::Json targets = io::Json::array();
    bool conv1d = true;
    for (const LoraModule& m : modules) {
        for (const char* part : {".lora_A.weight", ".lora_B.weight"}) {
            Parameter p = trainer.parameter(m.module + part);
            tensors.push_back({k_prefix + p.name, p.shape, std::move(p.data)});
        }
        targets.push_back(m.module);
        conv1d = conv1d && conv1d_name(m.module);
    }
    io::Json c = io::Json::object();
    c["alpha_pattern"] = io::Json::object();
    c["base_model_name_or_path"] = base.empty() ? io::Json(nullptr) : io::Json(base);
    c["bias"] = "none";
    c["fan_in_fan_out"] = conv1d;
    c["inference_mode"] = true;
    c["init_lora_weights"] = true;
    c["lora_alpha"] = shortest_decimal(o.alpha);
    c["lora_dropout"] = shortest_decimal(o.dropout);
    c["modules_to_save"] = nullptr;
    c["peft_type"] = "LORA";
    c["r"] = o.r;
    c["rank_pattern"] = io::Json::object();
    c["target_modules"] = targets;
    c["task_type"] = "CAUSAL_LM";
    c["use_dora"] = false;
    c["use_rslora"] = false;
    io::write_safetensors(weights_path(directory), tensors, {{"format", "pt"}});
    io::write_json_file(config_path(directory), c);
}

void load_lora_adapter(Trainer& trainer, const std::string& directory) {
    const LoraAdapterConfig config = read_lora_adapter_config(directory);
    std::map<std::string, io::NamedTensor> tensors = adapter_tensors(directory);
    const std::string path = weights_path(directory);
    const std::vector<LoraModule> modules = trainer.model().lora_modules();
    VKT_CHECK(!modules.empty(), path, ": the model has no LoRA adapter to load it into (add_lora first)");
    std::vector<Parameter> values;
    for (const LoraModule& m : modules) {
        VKT_CHECK(m.options.r == config.options.r && m.options.alpha == config.options.alpha, config_path(directory),
                  ": r ", config.options.r, " and lora_alpha ", config.options.alpha, " differ from module '", m.module,
                  "' (r ", m.options.r, ", alpha ", m.options.alpha, ")");
        const std::vector<std::pair<std::string, std::vector<int64_t>>> want{
            {m.module + ".lora_A.weight", {int64_t(m.options.r), int64_t(m.in)}},
            {m.module + ".lora_B.weight", {int64_t(m.out), int64_t(m.options.r)}}};
        for (const auto& [name, shape] : want) {
            auto it = tensors.find(name);
            VKT_CHECK(it != tensors.end(), path, ": tensor '", k_prefix, name, "' is missing");
            VKT_CHECK(it->second.shape == shape, path, ": tensor '", k_prefix, name, "' has shape [",
                      it->second.shape[0], ", ", it->second.shape[1], "], the model needs [", shape[0], ", ", shape[1],
                      "]");
            values.push_back({name, shape, std::move(it->second.data)});
            tensors.erase(it);
        }
    }
    VKT_CHECK(tensors.empty(), path, ": tensor '", k_prefix, tensors.empty() ? "" : tensors.begin()->first,
              "' belongs to no adapter of the model");
    trainer.set_parameters(values);
}

void merge_lora_weight(std::vector<float>& w, const std::vector<float>& a, const std::vector<float>& b, uint32_t out,
                       uint32_t in, uint32_t r, double scaling) {
    VKT_CHECK(w.size() == uint64_t(out) * in && a.size() == uint64_t(r) * in && b.size() == uint64_t(out) * r,
              "merge_lora_weight: sizes ", w.size(), ", ", a.size(), ", ", b.size(), " do not fit out ", out, ", in ",
              in, ", r ", r);
    for (uint32_t o = 0; o < out; ++o)
        for (uint32_t i = 0; i < in; ++i) {
            double d = 0.0;
            for (uint32_t k = 0; k < r; ++k) d += double(b[uint64_t(o) * r + k]) * a[uint64_t(k) * in + i];
            float& x = w[uint64_t(o) * in + i];
            x = float(double(x) + scaling * d);
        }
}

std::function<void(const std::string&, const std::vector<int64_t>&, std::vector<float>&)>
lora_merge_hook(const std::string& directory, const Model& base) {
    const LoraAdapterConfig config = read_lora_adapter_config(directory);
    std::map<std::string, io::NamedTensor> tensors = adapter_tensors(directory);
    const std::string path = weights_path(directory);
    struct Merge {
        std::vector<float> a, b;
        uint32_t out, in;
    };
    auto merges = std::make_shared<std::map<std::string, Merge>>();
    const uint32_t r = config.options.r;
    for (const ParameterInfo& p : base.parameters()) {
        if (!ends_with(p.name, ".weight") || p.shape.size() != 2) continue;
        const std::string module = p.name.substr(0, p.name.size() - 7);
        const auto a = tensors.find(module + ".lora_A.weight");
        const auto b = tensors.find(module + ".lora_B.weight");
        if (a == tensors.end() && b == tensors.end()) continue;
        VKT_CHECK(a != tensors.end() && b != tensors.end(), path, ": module '", module,
                  "' has only one of lora_A, lora_B");
        const auto out = p.shape[0], in = p.shape[1];
        VKT_CHECK(a->second.shape == (std::vector<int64_t>{r, in}) && b->second.shape == (std::vector<int64_t>{out, r}),
                  path, ": the adapter of '", module, "' does not fit its base weight [", out, ", ", in, "] with r ",
                  r);
        (*merges)[p.name] = Merge{std::move(a->second.data), std::move(b->second.data), uint32_t(out), uint32_t(in)};
        tensors.erase(a);
        tensors.erase(module + ".lora_B.weight");
    }
    VKT_CHECK(tensors.empty(), path, ": tensor '", k_prefix, tensors.empty() ? "" : tensors.begin()->first,
              "' adapts no linear weight of the base model");
    const double scaling = double(config.options.alpha) / r;
    return [merges, r, scaling](const std::string& name, const std::vector<int64_t>&, std::vector<float>& values) {
        const auto it = merges->find(name);
        if (it == merges->end()) return;
        merge_lora_weight(values, it->second.a, it->second.b, it->second.out, it->second.in, r, scaling);
    };
}

std::vector<Parameter> merge_lora_parameters(const Model& model, std::vector<Parameter> parameters) {
    const std::vector<LoraModule> modules = model.lora_modules();
    if (modules.empty()) return parameters;
    std::map<std::string, size_t> index;
    for (size_t i = 0; i < parameters.size(); ++i) index[parameters[i].name] = i;
    const auto find = [&](const std::string& name, const std::vector<int64_t>& shape) -> std::vector<float>& {
        const auto it = index.find(name);
        VKT_CHECK(it != index.end(), "merge_lora_parameters: no tensor '", name, "'");
        Parameter& p = parameters[it->second];
        VKT_CHECK(p.shape == shape && p.data.size() == uint64_t(shape[0]) * uint64_t(shape[1]),
                  "merge_lora_parameters: tensor '", name, "' is not of shape [", shape[0], ", ", shape[1], "]");
        return p.data;
    };
    std::set<std::string> adapters;
    for (const LoraModule& m : modules) {
        const uint32_t r = m.options.r;
        const std::string a = m.module + ".lora_A.weight", b = m.module + ".lora_B.weight";
        merge_lora_weight(find(m.module + ".weight", {m.out, m.in}), find(a, {r, m.in}), find(b, {m.out, r}), m.out,
                          m.in, r, double(m.options.alpha) / r);
        adapters.insert({a, b});
    }
    std::vector<Parameter> out;
    out.reserve(parameters.size() - adapters.size());
    for (Parameter& p : parameters)
        if (!adapters.count(p.name)) out.push_back(std::move(p));
    return out;
}

} // namespace vktrain
