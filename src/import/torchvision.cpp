// torchvision state_dicts in and out (include/vktrain/import.hpp): a safetensors file of a torchvision model's
// state_dict() becomes a vktrain weights file of the matching graph (Model::resnet, Model::mobilenet: their names
// are torchvision's), checked tensor by tensor against the architecture before a byte is written and then streamed
// from the mapping as the Hugging Face import does (import/convert.hpp); and back to a state_dict file that
// load_state_dict(strict=True) takes, num_batches_tracked as I64 again.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "common/check.hpp"
#include "graph/ir.hpp"
#include "import/convert.hpp"
#include "io/safetensors.hpp"
#include "vktrain/import.hpp"
#include "vktrain/weights.hpp"

namespace vktrain {

namespace {

namespace fs = std::filesystem;
using graph::shape_text;
using import::check_values;
using import::floating;
using import::piece;
using import::release;

// The metadata key naming the torchvision architecture a file was imported as (export_torchvision writes it back).
constexpr const char* key_arch = "vktrain_torchvision";

struct Arch {
    const char* name;
    uint32_t resnet_depth;      // 0: not a ResNet
    MobilenetVariant mobilenet; // when resnet_depth is 0
    const char* head;           // the classifier's module, which --classes replaces
};

const std::vector<Arch>& archs() {
    static const std::vector<Arch> table = {
        {"resnet18", 18, MobilenetVariant::v2, "fc"},
        {"resnet34", 34, MobilenetVariant::v2, "fc"},
        {"resnet50", 50, MobilenetVariant::v2, "fc"},
        {"resnet101", 101, MobilenetVariant::v2, "fc"},
        {"resnet152", 152, MobilenetVariant::v2, "fc"},
        {"mobilenet_v2", 0, MobilenetVariant::v2, "classifier.1"},
        {"mobilenet_v3_small", 0, MobilenetVariant::v3_small, "classifier.3"},
        {"mobilenet_v3_large", 0, MobilenetVariant::v3_large, "classifier.3"},
    };
    return table;
}

std::string arch_list() {
    std::string s;
    for (const Arch& a : archs()) s += (s.empty() ? "" : ", ") + std::string(a.name);
    return s;
}

const Arch& find_arch(const std::string& name) {
    for (const Arch& a : archs())
        if (name == a.name) return a;
    VKT_FAIL("torchvision architecture '", name, "' is not supported (supported: ", arch_list(), ")");
}

// The torchvision architecture the file's names describe (an --arch value, or a description of a family vktrain does
// not import), or "" when they describe none: a file of another architecture is then refused in one line naming
// both, not with its first unexpected tensor.
std::string architecture_of_file(const WeightsFile& f) {
    if (f.find("conv1.weight") == nullptr) {
        if (f.find("features.18.0.weight") && f.find("features.1.conv.0.0.weight")) return "mobilenet_v2";
        if (f.find("features.1.block.0.0.weight"))
            return f.find("features.16.0.weight") ? "mobilenet_v3_large" : "mobilenet_v3_small";
        return "";
    }
    uint32_t blocks[4] = {0, 0, 0, 0};
    for (uint32_t s = 0; s < 4; ++s)
        while (f.find("layer" + std::to_string(s + 1) + "." + std::to_string(blocks[s]) + ".conv1.weight")) ++blocks[s];
    const bool bottleneck = f.find("layer1.0.conv3.weight") != nullptr;
    const uint32_t table[][5] = {
        {18, 2, 2, 2, 2}, {34, 3, 4, 6, 3}, {50, 3, 4, 6, 3}, {101, 3, 4, 23, 3}, {152, 3, 8, 36, 3}};
    for (const auto& t : table)
        if ((t[0] >= 50) == bottleneck && std::equal(blocks, blocks + 4, t + 1)) return "resnet" + std::to_string(t[0]);
    return "";
}

bool known_arch(const std::string& name) {
    return std::any_of(archs().begin(), archs().end(), [&](const Arch& a) { return name == a.name; });
}

// The model `arch` names, for `classes` outputs and inputs of height x width.
Model build(const Arch& arch, uint32_t classes, uint32_t height, uint32_t width) {
    if (arch.resnet_depth != 0) {
        ResnetOptions o;
        o.depth = arch.resnet_depth;
        o.classes = classes;
        o.height = height;
        o.width = width;
        return Model::resnet(o);
    }
    MobilenetOptions o;
    o.variant = arch.mobilenet;
    o.classes = classes;
    o.height = height;
    o.width = width;
    return Model::mobilenet(o);
}

// The architecture's graph is exactly the builder's (else throws, naming the node).
void check_graph(const Arch& arch, const Model& model) {
    if (arch.resnet_depth != 0) {
        VKT_CHECK(resnet_options(model).depth == arch.resnet_depth, "a ResNet-", resnet_options(model).depth);
    } else {
        VKT_CHECK(mobilenet_options(model).variant == arch.mobilenet, "another MobileNet");
    }
}

// The classifier's parameters, which --classes replaces.
bool head_tensor(const Arch& arch, const std::string& name) {
    const std::string head = arch.head;
    return name == head + ".weight" || name == head + ".bias";
}

// A counter (num_batches_tracked) as the file holds it: an integer in [0, 2^24], which vktrain's F32 counters keep
// exactly.
void check_counter(const TensorView& t, const std::string& path) {
    VKT_CHECK(t.type == ElementType::i64 || t.type == ElementType::i32 || floating(t.type), path, ": tensor '", t.name,
              "' is ", to_string(t.type), " (a batch counter: I64, as PyTorch saves it)");
    VKT_CHECK(t.shape.empty() || (t.shape.size() == 1 && t.shape[0] == 1), path, ": tensor '", t.name, "' has shape ",
              shape_text(t.shape), ", a batch counter is a scalar []");
    double v = 0.0;
    if (t.type == ElementType::i64) {
        int64_t x = 0;
        std::memcpy(&x, t.data, 8);
        v = double(x);
    } else {
        v = double(t.to_f32()[0]);
    }
    VKT_CHECK(v >= 0.0 && v <= double(1 << 24) && v == std::floor(v), path, ": tensor '", t.name, "' holds ", v,
              " (a batch counter: an integer in [0, 2^24])");
}

} // namespace

std::vector<std::string> torchvision_architectures() {
    std::vector<std::string> names;
    for (const Arch& a : archs()) names.emplace_back(a.name);
    return names;
}

ImportResult import_torchvision(const std::string& source, const std::string& output,
                                const TorchvisionImportOptions& options) {
    const Arch& arch = find_arch(options.arch);
    VKT_CHECK(fs::is_regular_file(source), source,
              ": not a file (expected a safetensors file of a torchvision state_dict)");
    const WeightsFile file = read_weights(source);
    const std::string seen = architecture_of_file(file);
    VKT_CHECK(seen.empty() || seen == arch.name, source, ": the tensors are those of ",
              known_arch(seen) ? "torchvision's " : "", seen, ", not of ", arch.name, " (pass --arch ",
              known_arch(seen) ? seen : "NAME", ")");
    const bool fresh_head = options.classes != 0;
    uint32_t classes = options.classes;
    if (!fresh_head) {
        const std::string head = std::string(arch.head) + ".weight";
        const TensorView* fc = file.find(head);
        VKT_CHECK(fc != nullptr, source, ": missing tensor '", head, "' (torchvision ", arch.name,
                  "; pass --classes N / TorchvisionImportOptions::classes for a new head)");
        VKT_CHECK(fc->shape.size() == 2 && fc->shape[0] >= 1 && fc->shape[0] <= INT32_MAX, source, ": tensor '", head,
                  "' has shape ", shape_text(fc->shape), ", expected [classes, features]");
        classes = uint32_t(fc->shape[0]);
    }
    Model model = build(arch, classes, options.height, options.width);

    // Every tensor of the file must be one of the model's (the replaced head's are skipped), with its shape and a
    // floating dtype (counters: integers); every persistent tensor of the model must be there.
    const std::vector<ParameterInfo> infos = model.parameters();
    std::unordered_map<std::string, const ParameterInfo*> by_name;
    for (const ParameterInfo& p : infos)
        if (p.persistent) by_name.emplace(p.name, &p);
    ImportResult r;
    for (const TensorView& t : file.tensors()) {
        if (fresh_head && head_tensor(arch, t.name)) {
            r.skipped.push_back(t.name);
            continue;
        }
        const auto it = by_name.find(t.name);
        VKT_CHECK(it != by_name.end(), source, ": unexpected tensor '", t.name, "' (not in torchvision's ", arch.name,
                  ")");
        const ParameterInfo& p = *it->second;
        if (p.counter) {
            check_counter(t, source);
            continue;
        }
        VKT_CHECK(floating(t.type), source, ": tensor '", t.name, "' is ", to_string(t.type),
                  " (weights must be F32, F16 or BF16)");
        VKT_CHECK(t.shape == p.shape, source, ": tensor '", t.name, "' has shape ", shape_text(t.shape), ", ",
                  arch.name, fresh_head || !head_tensor(arch, t.name) ? "" : " with this head", " has ",
                  shape_text(p.shape));
    }
    for (const ParameterInfo& p : infos)
        VKT_CHECK(!p.persistent || (fresh_head && head_tensor(arch, p.name)) || file.find(p.name) != nullptr, source,
                  ": missing tensor '", p.name, "' (torchvision ", arch.name, ")");

    std::vector<io::TensorHeader> headers;
    for (const ParameterInfo& p : infos)
        if (p.persistent) headers.push_back({p.name, p.shape});
    const std::vector<std::pair<std::string, std::string>> metadata{
        {"vktrain_model", model.describe()},
        {"vktrain_graph", model.to_json()},
        {"vktrain_precision", options.precision == Precision::mixed ? "mixed" : "fp32"},
        {"vktrain_steps", "0"},
        {key_arch, arch.name},
    };
    io::SafetensorsWriter writer(output, headers, metadata);
    const bool fp16 = options.precision == Precision::mixed;
    std::mt19937_64 rng(options.seed);
    std::vector<float> buffer;
    for (const ParameterInfo& p : infos) {
        if (!p.persistent) continue;
        if (fresh_head && head_tensor(arch, p.name)) {
            // nn.Linear's reset_parameters: kaiming_uniform_(a=sqrt(5)) for the weight and U(+-1/sqrt(in)) for the
            // bias, both U(+-1/sqrt(in_features)).
            const double bound = 1.0 / std::sqrt(double(std::max<uint32_t>(p.fan_in, 1)));
            buffer.resize(size_t(graph::element_count(p.shape)));
            for (float& v : buffer) v = float((2.0 * double(rng() >> 11) * 0x1.0p-53 - 1.0) * bound);
            writer.write(buffer.data(), buffer.size());
            r.tensors += 1;
            continue;
        }
        const TensorView& t = *file.find(p.name);
        if (p.counter) {
            float v = 0.0f;
            if (t.type == ElementType::i64) {
                int64_t x = 0;
                std::memcpy(&x, t.data, 8);
                v = float(x);
            } else {
                t.to_f32(&v, 0, 1);
            }
            writer.write(&v, 1);
            r.tensors += 1;
            continue;
        }
        buffer.resize(size_t(std::min(piece, t.elements())));
        for (uint64_t first = 0; first < t.elements(); first += piece) {
            const uint64_t n = std::min(piece, t.elements() - first);
            t.to_f32(buffer.data(), first, n);
            check_values(buffer.data(), n, first, p.name, source, fp16);
            writer.write(buffer.data(), n);
        }
        release(t.data, t.bytes, file.mapped());
        r.tensors += 1;
    }
    writer.commit();
    r.model_type = arch.name;
    r.parameters = model.parameter_count();
    r.source_files.push_back(source);
    r.model = std::move(model);
    return r;
}

std::string torchvision_architecture_of(const Model& model, const WeightsFile* file) {
    if (file != nullptr)
        if (const std::string* a = file->metadata_value(key_arch)) {
            find_arch(*a);
            return *a;
        }
    try {
        return "resnet" + std::to_string(resnet_options(model).depth);
    } catch (const Error&) {
    }
    try {
        const MobilenetVariant v = mobilenet_options(model).variant;
        return v == MobilenetVariant::v2         ? "mobilenet_v2"
               : v == MobilenetVariant::v3_small ? "mobilenet_v3_small"
                                                 : "mobilenet_v3_large";
    } catch (const Error&) {
    }
    return "";
}

void export_torchvision(const std::string& weights, const std::string& output, const ExportOptions& options) {
    const WeightsFile file = read_weights(weights);
    const Model model = load_model(file);
    const std::string arch = torchvision_architecture_of(model, &file);
    VKT_CHECK(!arch.empty(), weights,
              ": not a torchvision model (imported with --arch, or built by Model::resnet or Model::mobilenet)");
    try {
        check_graph(find_arch(arch), model);
    } catch (const Error& e) {
        VKT_FAIL(weights, ": recorded as torchvision's ", arch, ", but its graph is ", e.what());
    }
    // state_dict() order: module by module, which is the graph's node order, each node's tensors as declared.
    std::unordered_map<std::string, size_t> node_index;
    for (size_t i = 0; i < model.nodes().size(); ++i) node_index.emplace(model.nodes()[i].name, i);
    std::vector<ParameterInfo> infos;
    for (const ParameterInfo& p : model.parameters())
        if (p.persistent) infos.push_back(p);
    const auto node_of = [&](const ParameterInfo& p) {
        const auto it = node_index.find(p.name.substr(0, p.name.rfind('.')));
        return it == node_index.end() ? model.nodes().size() : it->second;
    };
    std::stable_sort(infos.begin(), infos.end(),
                     [&](const ParameterInfo& a, const ParameterInfo& b) { return node_of(a) < node_of(b); });
    std::vector<io::TensorHeader> headers;
    for (const ParameterInfo& p : infos) {
        const TensorView* t = file.find(p.name);
        VKT_CHECK(t != nullptr, weights, ": no tensor '", p.name, "' (torchvision's ", arch, " needs it)");
        VKT_CHECK(t->shape == p.shape, weights, ": tensor '", p.name, "' has shape ", shape_text(t->shape),
                  ", the model's is ", shape_text(p.shape));
        headers.push_back({p.name, p.shape, p.counter});
    }
    VKT_CHECK(options.overwrite || !fs::exists(output), output,
              ": already exists (pass --force / ExportOptions::overwrite to replace it)");
    io::SafetensorsWriter writer(output, headers, {{"format", "pt"}});
    std::vector<float> buffer;
    for (const ParameterInfo& p : infos) {
        const TensorView& t = *file.find(p.name);
        if (options.tensor_hook) {
            std::vector<float> v = t.to_f32();
            options.tensor_hook(p.name, t.shape, v);
            writer.write(v.data(), v.size());
            continue;
        }
        buffer.resize(size_t(std::min(piece, t.elements())));
        for (uint64_t first = 0; first < t.elements(); first += piece) {
            const uint64_t n = std::min(piece, t.elements() - first);
            t.to_f32(buffer.data(), first, n);
            writer.write(buffer.data(), n);
        }
        release(t.data, t.bytes, file.mapped());
    }
    writer.commit();
}

} // namespace vktrain
