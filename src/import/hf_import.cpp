// Hugging Face folders in and out (include/vktrain/import.hpp): config.json and the safetensors file or shards are
// read through memory maps, every tensor is checked against the architecture's plan (hf_architecture.hpp) before a
// byte is written, and the weights file is then written tensor by tensor, so a 124M-parameter model never exists
// twice in host memory. The file records the original config.json and tensor names so export_hf can write the
// folder back in the layout it came from.
#include "vktrain/import.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "common/check.hpp"
#include "graph/ir.hpp"
#include "import/convert.hpp"
#include "import/hf_architecture.hpp"
#include "io/safetensors.hpp"
#include "io/temp_files.hpp"
#include "text/tokenizers.hpp"
#include "text/utf8.hpp"
#include "vktrain/tokenizer.hpp"
#include "vktrain/weights.hpp"

namespace vktrain {

namespace fs = std::filesystem;

namespace hf {

// Metadata keys of an imported file: the original config.json (verbatim) and the Hugging Face names of its weights
// in the source's order (a JSON array), which export_hf writes back.
constexpr const char* key_config = "vktrain_hf_config";
constexpr const char* key_names = "vktrain_hf_tensors";

const std::vector<Architecture>& architectures() {
    // One row per model_type.
    static const std::vector<Architecture> table = {
        {"gpt2", &gpt2_plan, &gpt2_config_for},
        {"llama", &llama_plan, &llama_config_for},
    };
    return table;
}

const Architecture* find_architecture(const std::string& model_type) {
    for (const Architecture& a : architectures())
        if (model_type == a.model_type) return &a;
    return nullptr;
}

namespace {

const io::Json* field(const PlanInput& in, const char* key) {
    const io::Json* v = in.config.find(key);
    return v == nullptr || v->is_null() ? nullptr : v;
}

std::string join(const std::vector<std::string>& words) {
    std::string s;
    for (size_t i = 0; i < words.size(); ++i) s += (i ? ", " : "") + words[i];
    return s;
}

} // namespace

int64_t config_int(const PlanInput& in, const char* key, std::optional<int64_t> fallback, int64_t min, int64_t max) {
    const io::Json* v = field(in, key);
    if (v == nullptr) {
        VKT_CHECK(fallback.has_value(), in.origin, ": field \"", key, "\" is missing");
        return *fallback;
    }
    VKT_CHECK(v->is_number() && std::floor(v->as_number()) == v->as_number(), in.origin, ": field \"", key,
              "\" must be an integer, got ", v->dump());
    const double x = v->as_number();
    VKT_CHECK(x >= double(min) && x <= double(max), in.origin, ": field \"", key, "\" is ", v->dump(), ", outside [",
              min, ", ", max, "]");
    return int64_t(x);
}

double config_real(const PlanInput& in, const char* key, double fallback) {
    const io::Json* v = field(in, key);
    if (v == nullptr) return fallback;
    VKT_CHECK(v->is_number(), in.origin, ": field \"", key, "\" must be a number, got ", v->dump());
    return v->as_number();
}

bool config_bool(const PlanInput& in, const char* key, bool fallback) {
    const io::Json* v = field(in, key);
    if (v == nullptr) return fallback;
    VKT_CHECK(v->is_bool(), in.origin, ": field \"", key, "\" must be true or false, got ", v->dump());
    return v->as_bool();
}

std::string config_string(const PlanInput& in, const char* key, const std::string& fallback) {
    const io::Json* v = field(in, key);
    if (v == nullptr) return fallback;
    VKT_CHECK(v->is_string(), in.origin, ": field \"", key, "\" must be a string, got ", v->dump());
    return v->as_string();
}

} // namespace hf

std::vector<std::string> import_architectures() {
    std::vector<std::string> names;
    for (const hf::Architecture& a : hf::architectures()) names.emplace_back(a.model_type);
    return names;
}

namespace {

using graph::shape_text;
using hf::join;
using hf::Plan;
using hf::TensorMap;
using import::check_values;
using import::floating;
using import::piece;
using import::release;

const hf::Architecture& architecture_of(const io::Json& config, const std::string& origin) {
    VKT_CHECK(config.is_object(), origin, ": not a JSON object");
    const io::Json* type = config.find("model_type");
    VKT_CHECK(type != nullptr, origin, ": field \"model_type\" is missing");
    VKT_CHECK(type->is_string(), origin, ": field \"model_type\" must be a string, got ", type->dump());
    const hf::Architecture* a = hf::find_architecture(type->as_string());
    VKT_CHECK(a != nullptr, origin, ": model_type \"", type->as_string(),
              "\" is not supported (supported: ", join(import_architectures()), ")");
    return *a;
}

// The folder's weights: model.safetensors, or the shards model.safetensors.index.json's weight_map names.
struct Source {
    std::vector<WeightsFile> files;
    std::unordered_map<std::string, const TensorView*> tensors; // by name
    std::vector<const TensorView*> order;                       // file by file, each in header order
};

Source open_source(const std::string& dir) {
    Source s;
    const std::string single = dir + "/model.safetensors";
    const std::string index = dir + "/model.safetensors.index.json";
    std::vector<std::string> paths;
    std::unordered_map<std::string, std::string> expected; // tensor -> shard file name (sharded folders)
    if (fs::exists(single)) {
        paths.push_back(single);
    } else if (fs::exists(index)) {
        const io::Json json = io::read_json_file(index);
        const io::Json* map = json.is_object() ? json.find("weight_map") : nullptr;
        VKT_CHECK(map != nullptr && map->is_object(), index, ": no \"weight_map\" object");
        std::vector<std::string> shards;
        for (const auto& [name, file] : map->as_object()) {
            VKT_CHECK(file.is_string(), index, ": weight_map[\"", name, "\"] must be a file name, got ", file.dump());
            const std::string& f = file.as_string();
            VKT_CHECK(!f.empty() && f.find('/') == std::string::npos && f != "." && f != "..", index, ": weight_map[\"",
                      name, "\"] names \"", f, "\", not a file in the folder");
            expected.emplace(name, f);
            if (std::find(shards.begin(), shards.end(), f) == shards.end()) shards.push_back(f);
        }
        VKT_CHECK(!shards.empty(), index, ": weight_map lists no tensors");
        for (const std::string& f : shards) paths.push_back(dir + "/" + f);
    } else {
        const bool bin = fs::exists(dir + "/pytorch_model.bin");
        VKT_FAIL(dir, ": no model.safetensors or model.safetensors.index.json",
                 bin ? " (pytorch_model.bin is a pickle, which vktrain does not read: convert it to safetensors)" : "");
    }
    s.files.reserve(paths.size());
    for (const std::string& p : paths) s.files.push_back(read_weights(p));
    for (const WeightsFile& f : s.files) {
        for (const TensorView& t : f.tensors()) {
            const std::string file_name = fs::path(f.path()).filename().string();
            if (!expected.empty()) {
                const auto e = expected.find(t.name);
                VKT_CHECK(e != expected.end(), f.path(), ": tensor '", t.name,
                          "' is not in model.safetensors.index.json's weight_map");
                VKT_CHECK(e->second == file_name, f.path(), ": tensor '", t.name,
                          "' is here, but model.safetensors.index.json puts it in ", e->second);
            }
            VKT_CHECK(s.tensors.emplace(t.name, &t).second, f.path(), ": tensor '", t.name, "' appears in two files");
            s.order.push_back(&t);
        }
    }
    for (const auto& [name, file] : expected)
        VKT_CHECK(s.tensors.count(name) != 0, dir, "/", file, ": no tensor '", name,
                  "' (model.safetensors.index.json lists it there)");
    return s;
}

bool all_mapped(const std::vector<const WeightsFile*>& files) {
    return std::all_of(files.begin(), files.end(), [](const WeightsFile* f) { return f->mapped(); });
}

// Checks every tensor of the source against the plan: nothing missing, nothing unknown, shapes and dtypes right,
// aliases equal to their targets. Returns the skipped buffers.
std::vector<std::string> check_source(const Source& s, const Plan& plan, const std::string& dir) {
    std::unordered_map<std::string, const TensorMap*> by_hf;
    for (const TensorMap& t : plan.tensors) by_hf.emplace(t.hf, &t);
    std::unordered_map<std::string, std::string> aliases;
    for (const hf::TensorAlias& a : plan.aliases) aliases.emplace(a.name, a.target);
    std::vector<std::string> skipped;
    for (const TensorView* t : s.order) {
        const auto found = by_hf.find(t->name);
        if (found == by_hf.end()) {
            if (plan.skippable && plan.skippable(t->name)) {
                skipped.push_back(t->name);
                continue;
            }
            const auto alias = aliases.find(t->name);
            VKT_CHECK(alias != aliases.end(), dir, ": unexpected tensor '", t->name, "' (not a weight of ", plan.what,
                      " with this config.json)");
            continue; // compared below, once its target is known to be right
        }
        const TensorMap& m = *found->second;
        VKT_CHECK(floating(t->type), dir, ": tensor '", t->name, "' is ", to_string(t->type),
                  " (weights must be F32, F16 or BF16)");
        VKT_CHECK(t->shape == m.hf_shape, dir, ": tensor '", t->name, "' has shape ", shape_text(t->shape),
                  ", config.json implies ", shape_text(m.hf_shape));
    }
    for (const TensorMap& m : plan.tensors)
        VKT_CHECK(s.tensors.count(m.hf) != 0, dir, ": missing tensor '", m.hf, "' (", plan.what,
                  " with this config.json)");
    for (const hf::TensorAlias& a : plan.aliases) {
        const auto it = s.tensors.find(a.name);
        if (it == s.tensors.end()) continue;
        const TensorView& x = *it->second;
        const TensorView& y = *s.tensors.at(a.target);
        VKT_CHECK(floating(x.type) && x.shape == y.shape, dir, ": tensor '", a.name, "' (", to_string(x.type), " ",
                  shape_text(x.shape), ") should be the same tensor as '", a.target, "' (tie_word_embeddings)");
        std::vector<float> u(piece), v(piece);
        for (uint64_t first = 0; first < x.elements(); first += piece) {
            const uint64_t n = std::min(piece, x.elements() - first);
            x.to_f32(u.data(), first, n);
            y.to_f32(v.data(), first, n);
            for (uint64_t i = 0; i < n; ++i)
                VKT_CHECK(u[i] == v[i], dir, ": tensor '", a.name, "' differs from '", a.target, "' at element ",
                          first + i, " but tie_word_embeddings is true (set it to false to import an untied head)");
        }
    }
    return skipped;
}

std::vector<float> transposed(const std::vector<float>& x, int64_t rows, int64_t cols) {
    std::vector<float> y(x.size());
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) y[size_t(c * rows + r)] = x[size_t(r * cols + c)];
    return y;
}

// The folder's tokenizer, serialised for the file's metadata, or empty when the folder has no tokenizer files.
std::string folder_tokenizer(const std::string& source, const io::Json& config, const std::string& config_path,
                             std::string& kind) {
    bool any = false;
    for (const char* name : {"tokenizer.model", "tokenizer.json", "vocab.json", "merges.txt"})
        any = any || fs::is_regular_file(source + "/" + name);
    if (!any) return {};
    const std::string hint = " (pass --no-tokenizer / ImportOptions::tokenizer = false to import without it)";
    std::unique_ptr<Tokenizer> t;
    try {
        t = load_tokenizer(source);
    } catch (const Error& e) {
        throw Error(std::string(e.what()) + hint);
    }
    if (const io::Json* v = config.find("vocab_size"); v != nullptr && v->is_number()) {
        const double vocab = v->as_number();
        VKT_CHECK(double(t->vocabulary_size()) <= vocab, source, ": the tokenizer has ", t->vocabulary_size(),
                  " tokens, more than ", config_path, "'s vocab_size ", vocab, hint);
    }
    kind = t->kind();
    return t->serialize();
}

// The files of a serialised tokenizer, as its Hugging Face folder holds them (name, bytes); none for characters.
std::vector<std::pair<std::string, std::string>> tokenizer_files(const std::string& serialized,
                                                                 const std::string& what) {
    const io::Json j = io::Json::parse(serialized, what);
    const io::Json* files = j.is_object() ? j.find("files") : nullptr;
    std::vector<std::pair<std::string, std::string>> out;
    if (files == nullptr) return out;
    VKT_CHECK(files->is_object(), what, ": \"files\" is not an object");
    const std::string suffix = ".base64";
    for (const auto& [name, text] : files->as_object()) {
        VKT_CHECK(text.is_string(), what, ": files.", name, " is not a string");
        VKT_CHECK(name.find('/') == std::string::npos && name.find("..") == std::string::npos && !name.empty(), what,
                  ": files names '", name, "', not a plain file name");
        if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
            out.emplace_back(name.substr(0, name.size() - suffix.size()),
                             text::base64_decode(text.as_string(), what + ": files." + name));
        else
            out.emplace_back(name, text.as_string());
    }
    return out;
}

std::string names_json(const std::vector<std::string>& names) {
    io::Json a = io::Json::array();
    for (const std::string& n : names) a.push_back(n);
    return a.dump(false);
}

} // namespace

ImportResult import_hf(const std::string& source, const std::string& output, const ImportOptions& options) {
    VKT_CHECK(fs::is_directory(source), source,
              ": not a folder (expected a Hugging Face model folder with config.json)");
    const std::string config_path = source + "/config.json";
    VKT_CHECK(fs::exists(config_path), source, ": no config.json");
    const std::string config_text = text::read_text_file(config_path);
    const io::Json config = io::Json::parse(config_text, config_path);
    const hf::Architecture& arch = architecture_of(config, config_path);

    const Source src = open_source(source);
    const hf::PlanInput in{config, config_path, [&src](const std::string& n) { return src.tensors.count(n) != 0; }};
    Plan plan = arch.plan(in);
    ImportResult r;
    r.skipped = check_source(src, plan, source);
    for (const WeightsFile& f : src.files) r.source_files.push_back(f.path());

    // The file lists the model's tensors in parameters() order, as Trainer::save writes them.
    std::unordered_map<std::string, const TensorMap*> by_vktrain;
    for (const TensorMap& t : plan.tensors) by_vktrain.emplace(t.vktrain, &t);
    std::vector<io::TensorHeader> headers;
    std::vector<const TensorMap*> maps;
    for (const ParameterInfo& p : plan.model.parameters()) {
        if (!p.persistent) continue;
        const auto it = by_vktrain.find(p.name);
        VKT_CHECK(it != by_vktrain.end(), "import: the ", arch.model_type, " plan does not map tensor '", p.name, "'");
        headers.push_back({p.name, p.shape});
        maps.push_back(it->second);
    }
    std::vector<std::string> hf_names; // the source's order
    std::unordered_set<std::string> mapped;
    for (const TensorMap& t : plan.tensors) mapped.insert(t.hf);
    for (const TensorView* t : src.order)
        if (mapped.count(t->name)) hf_names.push_back(t->name);

    const std::string tokenizer =
        options.tokenizer ? folder_tokenizer(source, config, config_path, r.tokenizer) : std::string();
    std::vector<std::pair<std::string, std::string>> metadata{
        {"vktrain_model", plan.model.describe()},
        {"vktrain_graph", plan.model.to_json()},
        {"vktrain_precision", options.precision == Precision::mixed ? "mixed" : "fp32"},
        {"vktrain_steps", "0"},
        {hf::key_config, config_text},
        {hf::key_names, names_json(hf_names)},
    };
    if (!tokenizer.empty()) metadata.emplace_back(tokenizer_metadata_key, tokenizer);
    io::SafetensorsWriter writer(output, headers, metadata);
    const bool fp16 = options.precision == Precision::mixed;
    std::vector<const WeightsFile*> files;
    for (const WeightsFile& f : src.files) files.push_back(&f);
    const bool all_files_mapped = all_mapped(files);
    std::vector<float> buffer;
    for (const TensorMap* m : maps) {
        const TensorView& t = *src.tensors.at(m->hf);
        if (m->transpose) { // a 2-D weight of one layer: converted whole, then transposed
            std::vector<float> v = t.to_f32();
            check_values(v.data(), v.size(), 0, m->hf, source, fp16);
            v = transposed(v, m->hf_shape[0], m->hf_shape[1]);
            writer.write(v.data(), v.size());
        } else { // in pieces: an embedding table is the largest tensor
            buffer.resize(size_t(std::min(piece, t.elements())));
            for (uint64_t first = 0; first < t.elements(); first += piece) {
                const uint64_t n = std::min(piece, t.elements() - first);
                t.to_f32(buffer.data(), first, n);
                check_values(buffer.data(), n, first, m->hf, source, fp16);
                writer.write(buffer.data(), n);
                const uint64_t size = element_size(t.type);
                release(static_cast<const char*>(t.data) + first * size, n * size, all_files_mapped);
            }
        }
        release(t.data, t.bytes, all_files_mapped);
        r.tensors += 1;
    }
    writer.commit();
    r.model_type = arch.model_type;
    r.parameters = plan.model.parameter_count();
    r.model = std::move(plan.model);
    return r;
}

void export_hf(const std::string& weights, const std::string& directory, const ExportOptions& options) {
    const WeightsFile file = read_weights(weights);
    const Model model = load_model(file);
    std::string config_text;
    const std::string* recorded = file.metadata_value(hf::key_config);
    const std::string origin = weights + " (recorded config.json)";
    io::Json config;
    if (recorded != nullptr) {
        config_text = *recorded;
        config = io::Json::parse(config_text, origin);
    } else {
        for (const hf::Architecture& a : hf::architectures()) {
            if (a.config_for == nullptr) continue;
            if (std::optional<io::Json> c = a.config_for(model)) {
                config = std::move(*c);
                break;
            }
        }
        VKT_CHECK(!config.is_null(), weights,
                  ": no Hugging Face config recorded (not written by `vktrain import`) and the model is not one "
                  "export can describe (a GPT built by Model::gpt, a Llama built by Model::llama)");
        config_text = config.dump(true) + "\n";
    }
    const hf::Architecture& arch = architecture_of(config, origin);
    std::vector<std::string> names; // the Hugging Face names in the order to write them
    if (const std::string* n = file.metadata_value(hf::key_names)) {
        const io::Json list = io::Json::parse(*n, weights + " (" + hf::key_names + ")");
        VKT_CHECK(list.is_array(), weights, ": metadata \"", hf::key_names, "\" is not a JSON array");
        for (const io::Json& x : list.as_array()) {
            VKT_CHECK(x.is_string(), weights, ": metadata \"", hf::key_names, "\" holds a non-string");
            names.push_back(x.as_string());
        }
    }
    const std::unordered_set<std::string> recorded_names(names.begin(), names.end());
    // Without recorded names, GPT2LMHeadModel's own ("transformer." prefixed).
    const hf::PlanInput in{config, origin, [&](const std::string& n) {
                               return names.empty() ? n.compare(0, 12, "transformer.") == 0
                                                    : recorded_names.count(n) != 0;
                           }};
    const Plan plan = arch.plan(in);
    std::unordered_map<std::string, const TensorMap*> by_hf;
    for (const TensorMap& t : plan.tensors) by_hf.emplace(t.hf, &t);
    if (names.empty()) {
        for (const TensorMap& t : plan.tensors) names.push_back(t.hf);
    } else {
        VKT_CHECK(names.size() == plan.tensors.size(), weights, ": metadata \"", hf::key_names, "\" lists ",
                  names.size(), " tensors, the recorded config.json's model has ", plan.tensors.size());
        for (const std::string& n : names)
            VKT_CHECK(by_hf.count(n) != 0, weights, ": metadata \"", hf::key_names, "\" names '", n,
                      "', not a weight of ", plan.what);
    }
    // The file's tensors must be the plan's, with vktrain's shapes (a model trained after import keeps them).
    std::vector<io::TensorHeader> headers;
    for (const std::string& n : names) {
        const TensorMap& m = *by_hf.at(n);
        const TensorView* t = file.find(m.vktrain);
        VKT_CHECK(t != nullptr, weights, ": no tensor '", m.vktrain, "' (", plan.what, " needs it for '", n, "')");
        std::vector<int64_t> want = m.hf_shape;
        if (m.transpose) std::swap(want[0], want[1]);
        VKT_CHECK(t->shape == want, weights, ": tensor '", m.vktrain, "' has shape ", shape_text(t->shape),
                  ", the config's model needs ", shape_text(want));
        VKT_CHECK(floating(t->type), weights, ": tensor '", m.vktrain, "' is ", to_string(t->type));
        headers.push_back({n, m.hf_shape});
    }

    std::error_code ec;
    if (!fs::is_directory(directory)) {
        fs::create_directory(directory, ec);
        VKT_CHECK(!ec, directory, ": cannot create the folder (", ec.message(), ")");
    }
    const std::string config_out = directory + "/config.json";
    const std::string weights_out = directory + "/model.safetensors";
    std::vector<std::pair<std::string, std::string>> tokenizer;
    if (const std::string* t = file.metadata_value(tokenizer_metadata_key))
        tokenizer = tokenizer_files(*t, weights + ": " + tokenizer_metadata_key);
    std::vector<std::string> outputs{config_out, weights_out};
    for (const auto& f : tokenizer) outputs.push_back(directory + "/" + f.first);
    if (!options.overwrite)
        for (const std::string& p : outputs)
            VKT_CHECK(!fs::exists(p), p, ": already exists (pass --force / ExportOptions::overwrite to replace it)");
    io::SafetensorsWriter writer(weights_out, headers, {{"format", "pt"}});
    const bool mapped = file.mapped();
    std::vector<float> buffer;
    for (const std::string& n : names) {
        const TensorMap& m = *by_hf.at(n);
        const TensorView& t = *file.find(m.vktrain);
        if (m.transpose || options.tensor_hook) { // the whole tensor at once
            std::vector<float> v = t.to_f32();
            if (options.tensor_hook) options.tensor_hook(m.vktrain, t.shape, v);
            if (m.transpose) v = transposed(v, m.hf_shape[1], m.hf_shape[0]);
            writer.write(v.data(), v.size());
        } else {
            buffer.resize(size_t(std::min(piece, t.elements())));
            for (uint64_t first = 0; first < t.elements(); first += piece) {
                const uint64_t count = std::min(piece, t.elements() - first);
                t.to_f32(buffer.data(), first, count);
                writer.write(buffer.data(), count);
                const uint64_t size = element_size(t.type);
                release(static_cast<const char*>(t.data) + first * size, count * size, mapped);
            }
        }
        release(t.data, t.bytes, mapped);
    }
    // Both files appear together or not at all: the config's temporary is removed if the weights fail to commit.
    io::AtomicFile config_file(config_out);
    config_file.write(config_text.data(), config_text.size());
    std::vector<std::unique_ptr<io::AtomicFile>> tokenizer_out;
    for (const auto& [name, bytes] : tokenizer) {
        tokenizer_out.push_back(std::make_unique<io::AtomicFile>(directory + "/" + name));
        tokenizer_out.back()->write(bytes.data(), bytes.size());
    }
    writer.commit();
    config_file.commit();
    for (const auto& f : tokenizer_out) f->commit();
}

} // namespace vktrain
