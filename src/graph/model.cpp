#include "vktrain/model.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "common/check.hpp"
#include "graph/name_pattern.hpp"
#include "graph/names.hpp"
#include "graph/registry.hpp"

namespace vktrain {

using graph::op_def;
using graph::Shape;

namespace {
// Ops read their settings with attrs.at(): a node without one (a hand-edited or damaged architecture in a weights
// file) is a one-line error naming the node, not a std::out_of_range escaping the library.
template <typename F>
auto with_attributes(const Node& node, F f) -> decltype(f()) {
    try {
        return f();
    } catch (const std::out_of_range&) {
        VKT_FAIL(node.op, " '", node.name, "': a required attribute is missing");
    }
}
} // namespace

Conv2dOptions Conv2dOptions::square(uint32_t kernel, uint32_t stride, uint32_t padding) {
    Conv2dOptions o;
    o.kernel_h = o.kernel_w = kernel;
    o.stride_h = o.stride_w = stride;
    o.pad_h = o.pad_w = padding;
    return o;
}

Pool2dOptions Pool2dOptions::square(uint32_t kernel, uint32_t stride, uint32_t padding) {
    Pool2dOptions o;
    o.kernel_h = o.kernel_w = kernel;
    o.stride_h = o.stride_w = stride;
    o.pad_h = o.pad_w = padding;
    return o;
}

Model::Model(uint32_t input_features) {
    VKT_CHECK(input_features > 0, "a model needs at least one input feature");
    input("x", {int64_t(input_features)});
}

std::string Model::next_name(const std::string& kind) {
    return kind + std::to_string(m_counters[kind]++);
}

void Model::rename(int node, const std::string& name) {
    check_value(node, "rename");
    VKT_CHECK(graph::is_valid_node_name(name), "rename: '", graph::printable_name(name), "' is not a valid node name (",
              graph::node_name_rule, ")");
    VKT_CHECK(m_overrides.empty(), "rename: rename nodes before set_trainable, set_weight_decay or set_init");
    Node& n = m_nodes[size_t(node)];
    if (n.name == name) return;
    VKT_CHECK(m_node_index.count(name) == 0, "rename: a node named '", name, "' exists already");
    for (const std::string& p : parameter_names(n)) m_parameter_names.erase(p);
    m_node_index.erase(n.name);
    n.name = name;
    m_node_index.emplace(name, node);
    for (std::string& p : parameter_names(n)) m_parameter_names.insert(std::move(p));
}

std::vector<std::string> Model::parameter_names(const Node& node) const {
    std::vector<std::string> out;
    const graph::OpDef& def = op_def(node.op);
    if (!def.params) return out;
    std::vector<const Node*> ins;
    for (int x : node.inputs) ins.push_back(&m_nodes[size_t(x)]);
    for (const graph::ParamDecl& d : with_attributes(node, [&] { return def.params(node, ins); }))
        out.push_back(node.name + "." + d.suffix);
    return out;
}

void Model::check_value(int x, const char* op) const {
    VKT_CHECK(x >= 0 && size_t(x) < m_nodes.size(), op, ": value ", x, " does not exist");
}

int Model::add_node(Node node, const char* what) {
    VKT_CHECK(m_loss < 0, what, ": the model's loss is already set; add ops before the loss");
    for (int x : node.inputs) check_value(x, what);
    VKT_CHECK(m_node_index.count(node.name) == 0, what, ": a node named '", node.name, "' exists already");
    std::vector<const Node*> ins;
    for (int x : node.inputs) ins.push_back(&m_nodes[size_t(x)]);
    const graph::OpDef& def = op_def(node.op);
    VKT_CHECK(def.infer && !def.backward_only, what, " '", node.name, "': op '", node.op,
              "' is internal to vktrain (a backward step) and cannot appear in a model");
    graph::check_attributes(def, node);
    node.shape = with_attributes(node, [&] { return def.infer(node, ins); });
    uint64_t elements = 1;
    for (int64_t d : node.shape) {
        VKT_CHECK(d > 0, what, " '", node.name, "': output shape ", graph::shape_text(node.shape), " is empty");
        // Per sample at most 2^40 values: any batch times it stays far inside 64 bits.
        VKT_CHECK(uint64_t(d) <= (uint64_t(1) << 40) / elements, what, " '", node.name, "': output shape ",
                  graph::shape_text(node.shape), " has more than 2^40 values per sample");
        elements *= uint64_t(d);
    }
    if (def.loss)
        node.type = DataType::f32;
    else if (!node.inputs.empty() && node.op != "input")
        node.type = DataType::f32;
    std::vector<std::string> params = parameter_names(node);
    m_nodes.push_back(std::move(node));
    const int id = int(m_nodes.size() - 1);
    m_node_index.emplace(m_nodes.back().name, id);
    for (std::string& p : params) m_parameter_names.insert(std::move(p));
    if (def.loss) m_loss = id;
    return id;
}

int Model::input(const std::string& name, const std::vector<int64_t>& shape, DataType type) {
    VKT_CHECK(!name.empty(), "input: a name is required");
    VKT_CHECK(graph::is_valid_node_name(name), "input: '", graph::printable_name(name), "' is not a valid node name (",
              graph::node_name_rule, ")");
    VKT_CHECK(shape.size() <= 5, "input '", name, "': at most 5 dimensions per sample (6 with the batch)");
    for (int64_t d : shape) VKT_CHECK(d > 0, "input '", name, "': dimension ", d, " in ", graph::shape_text(shape));
    Node n;
    n.op = "input";
    n.name = name;
    n.shape = shape;
    n.type = type;
    const int id = add_node(n, "input");
    m_nodes[size_t(id)].type = type;
    return id;
}

std::vector<int> Model::inputs() const {
    std::vector<int> out;
    for (size_t i = 0; i < m_nodes.size(); ++i)
        if (m_nodes[i].op == "input") out.push_back(int(i));
    return out;
}

int Model::input() const {
    const auto in = inputs();
    VKT_CHECK(!in.empty(), "the model has no input");
    return in.front();
}

int Model::linear(int x, uint32_t out_features, bool bias) {
    VKT_CHECK(out_features > 0, "linear: out_features must be positive");
    Node n;
    n.op = "linear";
    n.name = next_name("linear");
    n.inputs = {x};
    n.attrs = {{"out", out_features}, {"bias", bias ? 1 : 0}};
    return add_node(n, "linear");
}

int Model::conv2d(int x, uint32_t out_channels, const Conv2dOptions& o) {
    Node n;
    n.op = "conv2d";
    n.name = next_name("conv");
    n.inputs = {x};
    n.attrs = {{"out", out_channels},    {"kernel_h", o.kernel_h}, {"kernel_w", o.kernel_w}, {"stride_h", o.stride_h},
               {"stride_w", o.stride_w}, {"pad_h", o.pad_h},       {"pad_w", o.pad_w},       {"dil_h", o.dilation_h},
               {"dil_w", o.dilation_w},  {"groups", o.groups},     {"bias", o.bias ? 1 : 0}};
    return add_node(n, "conv2d");
}

namespace {
std::map<std::string, double> pool_attrs(const Pool2dOptions& o) {
    return {{"kernel_h", o.kernel_h},
            {"kernel_w", o.kernel_w},
            {"stride_h", o.stride_h ? o.stride_h : o.kernel_h},
            {"stride_w", o.stride_w ? o.stride_w : o.kernel_w},
            {"pad_h", o.pad_h},
            {"pad_w", o.pad_w}};
}
} // namespace

int Model::max_pool2d(int x, const Pool2dOptions& o) {
    Node n;
    n.op = "max_pool2d";
    n.name = next_name("maxpool");
    n.inputs = {x};
    n.attrs = pool_attrs(o);
    return add_node(n, "max_pool2d");
}

int Model::avg_pool2d(int x, const Pool2dOptions& o) {
    Node n;
    n.op = "avg_pool2d";
    n.name = next_name("avgpool");
    n.inputs = {x};
    n.attrs = pool_attrs(o);
    return add_node(n, "avg_pool2d");
}

int Model::batch_norm2d(int x, float eps, float momentum) {
    VKT_CHECK(eps > 0 && std::isfinite(eps), "batch_norm2d: eps must be positive");
    VKT_CHECK(momentum >= 0 && momentum <= 1, "batch_norm2d: momentum must be in [0, 1]");
    Node n;
    n.op = "batch_norm2d";
    n.name = next_name("bn");
    n.inputs = {x};
    n.attrs = {{"eps", eps}, {"momentum", momentum}};
    return add_node(n, "batch_norm2d");
}

namespace {
Node unary(const std::string& op, const std::string& name, int x) {
    Node n;
    n.op = op;
    n.name = name;
    n.inputs = {x};
    return n;
}
} // namespace

int Model::relu(int x) {
    return add_node(unary("relu", next_name("relu"), x), "relu");
}
int Model::gelu(int x) {
    return add_node(unary("gelu", next_name("gelu"), x), "gelu");
}
int Model::gelu_tanh(int x) {
    return add_node(unary("gelu_tanh", next_name("gelu"), x), "gelu_tanh");
}
int Model::silu(int x) {
    return add_node(unary("silu", next_name("silu"), x), "silu");
}
int Model::flatten(int x) {
    return add_node(unary("flatten", next_name("flatten"), x), "flatten");
}

int Model::add(int a, int b) {
    Node n;
    n.op = "add";
    n.name = next_name("add");
    n.inputs = {a, b};
    return add_node(n, "add");
}

int Model::dropout(int x, float p) {
    VKT_CHECK(p >= 0 && p < 1, "dropout: p must be in [0, 1), got ", p);
    Node n = unary("dropout", next_name("dropout"), x);
    n.attrs = {{"p", p}};
    return add_node(n, "dropout");
}

int Model::reshape(int x, const std::vector<int64_t>& shape) {
    VKT_CHECK(!shape.empty() && shape.size() <= 5, "reshape: 1 to 5 dimensions per sample");
    Node n = unary("reshape", next_name("reshape"), x);
    n.shape_attr = shape;
    return add_node(n, "reshape");
}

int Model::transpose(int x, uint32_t dim0, uint32_t dim1) {
    Node n = unary("transpose", next_name("transpose"), x);
    n.attrs = {{"dim0", dim0}, {"dim1", dim1}};
    return add_node(n, "transpose");
}

int Model::slice(int x, uint32_t dim, int64_t start, int64_t end) {
    Node n = unary("slice", next_name("slice"), x);
    n.attrs = {{"dim", dim}, {"start", double(start)}, {"end", double(end)}};
    return add_node(n, "slice");
}

// LayerNorm and RMSNorm
int Model::layer_norm(int x, float eps, bool affine) {
    VKT_CHECK(eps > 0 && std::isfinite(eps), "layer_norm: eps must be positive and finite, got ", eps);
    Node n = unary("layer_norm", next_name("ln"), x);
    n.attrs = {{"eps", eps}, {"affine", affine ? 1 : 0}};
    return add_node(n, "layer_norm");
}

int Model::rms_norm(int x, float eps) {
    VKT_CHECK(eps > 0 && std::isfinite(eps), "rms_norm: eps must be positive and finite, got ", eps);
    Node n = unary("rms_norm", next_name("rms"), x);
    n.attrs = {{"eps", eps}};
    return add_node(n, "rms_norm");
}

// ---- softmax and self-attention (issue 12) ----
int Model::softmax(int x) {
    return add_node(unary("softmax", next_name("softmax"), x), "softmax");
}

int Model::self_attention(int qkv, uint32_t heads, bool causal) {
    VKT_CHECK(heads > 0, "self_attention: heads must be positive");
    Node n = unary("self_attention", next_name("attn"), qkv);
    n.attrs = {{"heads", heads}, {"causal", causal ? 1.0 : 0.0}};
    return add_node(n, "self_attention");
}

int Model::cross_entropy(int logits, int labels, const CrossEntropyOptions& options) {
    Node n;
    n.op = "cross_entropy";
    n.name = "loss";
    n.inputs = {logits, labels};
    if (options.ignore_index) n.attrs["ignore_index"] = double(*options.ignore_index);
    return add_node(n, "cross_entropy");
}

int Model::mse_loss(int pred, int target) {
    Node n;
    n.op = "mse_loss";
    n.name = "loss";
    n.inputs = {pred, target};
    return add_node(n, "mse_loss");
}

void Model::softmax_cross_entropy(int logits) {
    check_value(logits, "softmax_cross_entropy");
    Shape labels(m_nodes[size_t(logits)].shape.begin(), m_nodes[size_t(logits)].shape.end() - 1);
    const int l = input("labels", labels, DataType::i32);
    cross_entropy(logits, l);
}

// A pattern names at least one parameter or buffer (graph/name_pattern.hpp). Exact names and prefixes ending in '.'
// are found in the sorted set of names (a prefix at the first name not below it); only a pattern with '*' is matched
// against every name.
void Model::check_pattern(const std::string& pattern, const char* what) const {
    bool any = false;
    if (pattern.find('*') != std::string::npos) {
        for (const std::string& name : m_parameter_names)
            if ((any = graph::matches_pattern(pattern, name))) break;
    } else if (!pattern.empty() && pattern.back() == '.') {
        const auto it = m_parameter_names.lower_bound(pattern);
        any = it != m_parameter_names.end() && it->compare(0, pattern.size(), pattern) == 0;
    } else {
        any = m_parameter_names.count(pattern) != 0;
    }
    VKT_CHECK(any, what, ": no parameter matches '", pattern, "' (", graph::pattern_rule, ")");
}

void Model::add_override(Override o) {
    if (o.pattern.find('*') != std::string::npos)
        m_glob_overrides.push_back(m_overrides.size()); // matched against every name (globs are few)
    else
        m_override_index[o.pattern].push_back(m_overrides.size());
    m_overrides.push_back(std::move(o));
}

void Model::set_trainable(const std::string& pattern, bool trainable) {
    check_pattern(pattern, "set_trainable");
    Override o;
    o.pattern = pattern;
    o.what = 0;
    o.trainable = trainable;
    add_override(std::move(o));
}

void Model::set_weight_decay(const std::string& pattern, float wd) {
    VKT_CHECK(wd >= 0 && std::isfinite(wd), "set_weight_decay: weight decay must be >= 0 and finite");
    check_pattern(pattern, "set_weight_decay");
    Override o;
    o.pattern = pattern;
    o.what = 1;
    o.weight_decay = wd;
    add_override(std::move(o));
}

void Model::set_init(const std::string& pattern, const Init& init) {
    check_pattern(pattern, "set_init");
    VKT_CHECK(std::isfinite(init.a) && std::isfinite(init.b), "set_init: values must be finite");
    VKT_CHECK(init.kind != InitKind::normal || init.b >= 0, "set_init: a normal's std must be >= 0");
    VKT_CHECK(init.kind != InitKind::uniform || init.a <= init.b, "set_init: uniform needs a <= b");
    Override o;
    o.pattern = pattern;
    o.what = 2;
    o.init = init;
    add_override(std::move(o));
}

std::vector<ParameterInfo> Model::parameters() const {
    std::vector<ParameterInfo> out;
    std::vector<size_t> applies; // the overrides matching one parameter, in the order they were made
    for (const Node& n : m_nodes) {
        const graph::OpDef& def = op_def(n.op);
        if (!def.params) continue;
        std::vector<const Node*> ins;
        for (int x : n.inputs) ins.push_back(&m_nodes[size_t(x)]);
        for (const graph::ParamDecl& d : with_attributes(n, [&] { return def.params(n, ins); })) {
            ParameterInfo p;
            p.name = n.name + "." + d.suffix;
            p.shape = d.shape;
            p.fan_in = d.fan_in;
            p.buffer = d.buffer || d.counter;
            p.counter = d.counter;
            p.persistent = !p.buffer || d.persistent;
            p.trainable = !p.buffer; // counters are buffers too: never trained
            p.init.kind = d.init;
            p.init.a = d.init_a;
            p.init.b = d.init_b;
            // The patterns that can match p.name: the name itself, each of its prefixes ending in '.', and the globs.
            applies.clear();
            const auto collect = [&](const std::string& pattern) {
                const auto it = m_override_index.find(pattern);
                if (it != m_override_index.end()) applies.insert(applies.end(), it->second.begin(), it->second.end());
            };
            if (!m_override_index.empty()) {
                collect(p.name);
                for (size_t dot = p.name.find('.'); dot != std::string::npos; dot = p.name.find('.', dot + 1))
                    collect(p.name.substr(0, dot + 1));
            }
            for (size_t k : m_glob_overrides)
                if (graph::matches_pattern(m_overrides[k].pattern, p.name)) applies.push_back(k);
            std::sort(applies.begin(), applies.end()); // in the order they were set: the last one wins
            for (size_t i : applies) {
                const Override& o = m_overrides[i];
                if (o.what == 0 && !p.buffer) p.trainable = o.trainable;
                if (o.what == 1) p.weight_decay = o.weight_decay;
                if (o.what == 2 && !p.buffer) p.init = o.init;
            }
            out.push_back(std::move(p));
        }
    }
    return out;
}

uint64_t Model::parameter_count() const {
    uint64_t total = 0;
    for (const auto& p : parameters())
        if (!p.buffer) total += graph::element_count(p.shape);
    return total;
}

uint64_t Model::input_elements(int x) const {
    check_value(x, "input_elements");
    return graph::element_count(m_nodes[size_t(x)].shape);
}

uint32_t Model::input_features() const {
    return uint32_t(input_elements(input()));
}

void Model::output(int value, const std::string& name) {
    check_value(value, "output");
    VKT_CHECK(graph::is_valid_node_name(name), "output: '", graph::printable_name(name),
              "' is not a valid output name (", graph::node_name_rule, ")");
    for (const auto& [other, v] : m_outputs)
        VKT_CHECK(other != name, "output: an output named '", name, "' exists already");
    const Node& n = m_nodes[size_t(value)];
    VKT_CHECK(value != m_loss, "output '", name, "': value ", value,
              " is the loss; mark its prediction operand instead");
    VKT_CHECK(n.type == DataType::f32, "output '", name, "': value ", value, " ('", n.name,
              "') holds integers; outputs are real (f32) values");
    m_outputs.emplace_back(name, value);
}

namespace {
std::string output_list(const std::vector<std::pair<std::string, int>>& outputs) {
    std::string s;
    for (const auto& [name, v] : outputs) s += (s.empty() ? "" : ", ") + name;
    return s.empty() ? "none" : s;
}
} // namespace

int Model::output() const {
    if (m_loss >= 0) return m_nodes[size_t(m_loss)].inputs[0];
    VKT_CHECK(!m_outputs.empty(), "the model has no loss and no output (mark one with Model::output, or add a loss)");
    VKT_CHECK(m_outputs.size() == 1, "the model has no loss and ", m_outputs.size(), " outputs (",
              output_list(m_outputs), "): name the one to predict");
    return m_outputs.front().second;
}

int Model::output(const std::string& name) const {
    if (name.empty()) return output();
    for (const auto& [n, v] : m_outputs)
        if (n == name) return v;
    VKT_FAIL("the model has no output named '", graph::printable_name(name), "' (outputs: ", output_list(m_outputs),
             ")");
}

std::vector<int64_t> Model::shape(int value) const {
    check_value(value, "shape");
    return m_nodes[size_t(value)].shape;
}

uint32_t Model::classes() const {
    VKT_CHECK(m_loss >= 0 && m_nodes[size_t(m_loss)].op == "cross_entropy",
              "the model has no cross-entropy loss (call cross_entropy or softmax_cross_entropy)");
    return uint32_t(m_nodes[size_t(output())].shape.back());
}

Model Model::mlp(uint32_t input_features, const std::vector<uint32_t>& hidden, uint32_t classes, OpKind activation) {
    Model m(input_features);
    int x = m.input();
    for (uint32_t h : hidden) {
        x = m.linear(x, h);
        x = activation == OpKind::relu ? m.relu(x) : m.gelu_tanh(x);
    }
    x = m.linear(x, classes);
    m.softmax_cross_entropy(x);
    return m;
}

Model Model::cnn(uint32_t classes) {
    Model m;
    int x = m.input("x", {1, 28, 28});
    x = m.relu(m.conv2d(x, 32, Conv2dOptions::square(5, 1, 2)));
    x = m.max_pool2d(x, Pool2dOptions::square(2));
    x = m.relu(m.conv2d(x, 64, Conv2dOptions::square(5, 1, 2)));
    x = m.max_pool2d(x, Pool2dOptions::square(2));
    x = m.flatten(x);
    x = m.relu(m.linear(x, 1024));
    x = m.linear(x, classes);
    m.softmax_cross_entropy(x);
    return m;
}

namespace {
bool is_mlp(const std::vector<Node>& nodes) {
    for (const Node& n : nodes)
        if (n.op != "input" && n.op != "linear" && n.op != "relu" && n.op != "gelu_tanh" && n.op != "cross_entropy")
            return false;
    return true;
}
} // namespace

std::string Model::describe() const {
    if (m_nodes.empty()) return "empty";
    if (is_mlp(m_nodes) && m_nodes[0].op == "input" && m_nodes[0].shape.size() == 1) {
        std::string s = std::to_string(m_nodes[0].shape[0]);
        for (const Node& n : m_nodes) {
            if (n.op == "linear") s += "-" + std::to_string(n.shape.back());
            if (n.op == "relu") s += "(relu)";
            if (n.op == "gelu_tanh") s += "(gelu)";
        }
        return s;
    }
    std::string s;
    for (const Node& n : m_nodes) {
        if (n.op == "input" && n.type == DataType::i32) continue;
        if (!s.empty()) s += " ";
        s += n.op == "input" ? graph::shape_text(n.shape) : n.op;
        if (n.op == "linear" || n.op == "conv2d") s += std::to_string(int64_t(n.attrs.at("out")));
    }
    return s;
}

// Embeddings: token embedding, learned positional embedding, weight tying.
int Model::embedding(int ids, uint32_t num_embeddings, uint32_t dim) {
    VKT_CHECK(num_embeddings > 0 && dim > 0, "embedding: num_embeddings and dim must be positive");
    Node n = unary("embedding", next_name("embedding"), ids);
    n.attrs = {{"num_embeddings", num_embeddings}, {"dim", dim}};
    return add_node(n, "embedding");
}

int Model::position_embedding(int x, uint32_t max_positions) {
    VKT_CHECK(max_positions > 0, "position_embedding: max_positions must be positive");
    Node n = unary("position_embedding", next_name("position_embedding"), x);
    n.attrs = {{"max_positions", max_positions}};
    return add_node(n, "position_embedding");
}

int Model::linear_tied(int x, int embedding_node) {
    Node n;
    n.op = "linear_tied";
    n.name = next_name("linear_tied");
    n.inputs = {x, embedding_node};
    return add_node(n, "linear_tied");
}

} // namespace vktrain
