// Model <-> JSON: the architecture a weights file records ("vktrain_graph" metadata), so an application can
// load a trained model without rebuilding it in code. Loading replays the builder, so every check of the
// builder (shapes, names, attributes) applies to files too.
#include <algorithm>
#include <cctype>
#include <cmath>

#include "common/check.hpp"
#include "graph/names.hpp"
#include "io/json.hpp"
#include "vktrain/model.hpp"

namespace vktrain {

using io::Json;

namespace {
// The format version (docs/model-format.md): "vktrain_graph" in the root object. A file without it is version 1.
constexpr int k_format = 1;

Json init_json(const Init& i) {
    static const char* names[] = {"default", "zeros", "ones", "constant", "normal", "uniform"};
    Json j = Json::object();
    j["kind"] = names[int(i.kind)];
    j["a"] = double(i.a);
    j["b"] = double(i.b);
    return j;
}

Init init_from(const Json& j) {
    static const char* names[] = {"default", "zeros", "ones", "constant", "normal", "uniform"};
    Init i;
    const std::string& k = j.at("kind").as_string();
    int found = -1;
    for (int n = 0; n < 6; ++n)
        if (k == names[n]) found = n;
    VKT_CHECK(found >= 0, "unknown init kind '", k, "'");
    i.kind = InitKind(found);
    i.a = float(j.at("a").as_number());
    i.b = float(j.at("b").as_number());
    return i;
}
} // namespace

std::string Model::to_json() const {
    Json root = Json::object();
    root["vktrain_graph"] = k_format;
    Json nodes = Json::array();
    for (const Node& n : m_nodes) {
        Json j = Json::object();
        j["op"] = n.op;
        j["name"] = n.name;
        Json in = Json::array();
        for (int x : n.inputs) in.push_back(x);
        j["inputs"] = in;
        if (n.op == "input") {
            Json s = Json::array();
            for (int64_t d : n.shape) s.push_back(d);
            j["shape"] = s;
            j["type"] = n.type == DataType::i32 ? "i32" : "f32";
        }
        if (!n.attrs.empty()) {
            Json a = Json::object();
            for (const auto& [k, v] : n.attrs) a[k] = v;
            j["attrs"] = a;
        }
        if (!n.shape_attr.empty()) {
            Json s = Json::array();
            for (int64_t d : n.shape_attr) s.push_back(d);
            j["target_shape"] = s;
        }
        if (n.block >= 0) j["block"] = n.block; // absent in files of earlier versions: no blocks
        nodes.push_back(j);
    }
    root["nodes"] = nodes;
    Json groups = Json::array();
    for (const Override& o : m_overrides) {
        Json g = Json::object();
        g["pattern"] = o.pattern;
        if (o.what == 0) g["trainable"] = o.trainable;
        if (o.what == 1) g["weight_decay"] = double(o.weight_decay);
        if (o.what == 2) g["init"] = init_json(o.init);
        if (o.what == 3) g["lr_scale"] = double(o.lr_scale);
        groups.push_back(g);
    }
    root["parameter_groups"] = groups;
    if (!m_outputs.empty()) { // absent in files of earlier versions, and in models without named outputs
        Json outputs = Json::array();
        for (const auto& [name, value] : m_outputs) {
            Json o = Json::object();
            o["name"] = name;
            o["value"] = value;
            outputs.push_back(o);
        }
        root["outputs"] = outputs;
    }
    return root.dump();
}

Model Model::from_json(const std::string& text) {
    const Json root = Json::parse(text, "model architecture");
    try {
        VKT_CHECK(root.is_object() && (root.contains("vktrain_graph") || root.contains("nodes")),
                  "not a vktrain model description");
        const int64_t version = root.contains("vktrain_graph") ? root.at("vktrain_graph").as_int64() : 1;
        VKT_CHECK(version >= 1 && version <= k_format, "model format version ", version,
                  " is not supported (this build reads versions 1 to ", k_format, ")");
        Model m;
        const Json& nodes = root.at("nodes");
        VKT_CHECK(nodes.is_array() && nodes.size() > 0, "\"nodes\" must be a non-empty array of nodes");
        for (size_t i = 0; i < nodes.size(); ++i) {
            const Json& j = nodes.at(i);
            Node n;
            n.op = j.at("op").as_string();
            n.name = j.at("name").as_string();
            // The builder's rule (Model::rename, Model::input): the name becomes parameter names and message text.
            VKT_CHECK(graph::is_valid_node_name(n.name), "node ", i, ": '", graph::printable_name(n.name),
                      "' is not a valid node name (", graph::node_name_rule, ")");
            for (const Json& x : j.at("inputs").as_array()) {
                const int64_t v = x.as_int64();
                VKT_CHECK(v >= 0 && v < int64_t(i), "node ", i, " ('", n.name, "') takes input ", v,
                          ", which is not an earlier node");
                n.inputs.push_back(int(v));
            }
            if (n.op == "input") {
                std::vector<int64_t> shape;
                for (const Json& d : j.at("shape").as_array()) shape.push_back(d.as_int64());
                const std::string& type = j.at("type").as_string();
                VKT_CHECK(type == "f32" || type == "i32", "input '", n.name, "' has unknown type '", type, "'");
                m.input(n.name, shape, type == "i32" ? DataType::i32 : DataType::f32);
                continue;
            }
            if (const Json* a = j.find("attrs"))
                for (const auto& [k, v] : a->as_object()) {
                    VKT_CHECK(std::isfinite(v.as_number()), "node '", n.name, "': attribute ", k, " is not finite");
                    n.attrs[k] = v.as_number();
                }
            if (const Json* s = j.find("target_shape"))
                for (const Json& d : s->as_array()) n.shape_attr.push_back(d.as_int64());
            if (const Json* b = j.find("block")) {
                const int64_t block = b->as_int64();
                VKT_CHECK(block >= 0 && block < (int64_t(1) << 30), "node '", n.name, "': block ", block,
                          " is out of range [0, 2^30)");
                n.block = int(block);
            }
            // Counters continue past loaded names so later builder calls do not collide.
            size_t digits = n.name.size();
            while (digits > 0 && std::isdigit(static_cast<unsigned char>(n.name[digits - 1]))) --digits;
            if (digits < n.name.size() && digits > 0 && n.name.size() - digits <= 9) { // stoi cannot overflow
                const std::string kind = n.name.substr(0, digits);
                const int index = std::stoi(n.name.substr(digits));
                m.m_counters[kind] = std::max(m.m_counters[kind], index + 1);
            }
            m.add_node(n, n.op.c_str());
        }
        if (const Json* groups = root.find("parameter_groups"))
            for (const Json& g : groups->as_array()) {
                const std::string& p = g.at("pattern").as_string();
                if (const Json* t = g.find("trainable")) m.set_trainable(p, t->as_bool());
                if (const Json* w = g.find("weight_decay")) m.set_weight_decay(p, float(w->as_number()));
                if (const Json* in = g.find("init")) m.set_init(p, init_from(*in));
                if (const Json* l = g.find("lr_scale")) m.set_learning_rate_scale(p, float(l->as_number()));
            }
        if (const Json* outputs = root.find("outputs"))
            for (const Json& o : outputs->as_array()) {
                const int64_t v = o.at("value").as_int64();
                VKT_CHECK(v >= 0 && v < int64_t(m.m_nodes.size()), "output '", o.at("name").as_string(), "' is value ",
                          v, ", which is not a node");
                m.output(int(v), o.at("name").as_string());
            }
        (void)m.parameters(); // every op's parameter declaration reads its attributes: checked here, not later
        return m;
    } catch (const Error& e) {
        throw Error(std::string("model architecture: ") + e.what());
    }
}

Model resize_input(const Model& model, const std::string& input, const std::vector<int64_t>& shape) {
    const std::vector<int> inputs = model.inputs();
    VKT_CHECK(!inputs.empty(), "resize_input: the model has no inputs");
    int target = inputs[0];
    if (!input.empty()) {
        const auto it =
            std::find_if(inputs.begin(), inputs.end(), [&](int i) { return model.nodes()[size_t(i)].name == input; });
        VKT_CHECK(it != inputs.end(), "resize_input: the model has no input '", input, "'");
        target = *it;
    }
    const Node& in = model.nodes()[size_t(target)];
    std::string shape_text = "[";
    for (size_t i = 0; i < shape.size(); ++i) shape_text += (i ? ", " : "") + std::to_string(shape[i]);
    shape_text += "]";
    if (shape == in.shape) return model;
    // The builder replayed over the recorded graph with the new input shape re-infers every shape and re-checks
    // every op, as loading a file does.
    Json root = Json::parse(model.to_json(), "model architecture");
    Json& node = root["nodes"].as_array()[size_t(target)];
    Json dims = Json::array();
    for (int64_t d : shape) dims.push_back(d);
    node["shape"] = std::move(dims);
    Model resized;
    try {
        resized = Model::from_json(root.dump(false));
    } catch (const Error& e) {
        VKT_FAIL("the model does not take ", shape_text, " for its input '", in.name, "' (", e.what(), ")");
    }
    const std::vector<ParameterInfo> before = model.parameters(), after = resized.parameters();
    for (size_t i = 0; i < before.size() && i < after.size(); ++i)
        VKT_CHECK(before[i].shape == after[i].shape, "the model does not take ", shape_text, " for its input '",
                  in.name, "': its parameter '", before[i].name, "' would change shape");
    return resized;
}

} // namespace vktrain
