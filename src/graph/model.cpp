#include "vktrain/model.hpp"

#include <algorithm>
#include <cmath>

#include "common/check.hpp"
#include "graph/name_pattern.hpp"
#include "graph/names.hpp"
#include "graph/registry.hpp"

namespace vktrain {

using graph::op_def;
using graph::Shape;

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

void Model::rename(int node, const std::string& name) {
    check_value(node, "rename");
    VKT_CHECK(graph::is_valid_node_name(name), "rename: '", graph::printable_name(name), "' is not a valid node name (",
              graph::node_name_rule, ")");
    VKT_CHECK(m_overrides.empty(),
              "rename: rename nodes before set_trainable, set_weight_decay, set_init or set_learning_rate_scale");
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
    for (const graph::ParamDecl& d : def.params(node, ins)) out.push_back(node.name + "." + d.suffix);
    return out;
}

void Model::check_value(int x, const char* op) const {
    VKT_CHECK(x >= 0 && size_t(x) < m_nodes.size(), op, ": value ", x, " does not exist");
}

void Model::set_block(int block) {
    VKT_CHECK(block >= -1, "set_block: block ", block, " is negative (-1: no block)");
    m_block = block;
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
    node.shape = def.infer(node, ins);
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
    if (node.block < 0) node.block = m_block;
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

// The typed builders: each is Model::op with the op's attributes (model_registry.cpp).
int Model::linear(int x, uint32_t out_features, bool bias) {
    return op("linear", {x}, {{"out", out_features}, {"bias", bias}});
}

int Model::conv2d(int x, uint32_t out_channels, const Conv2dOptions& o) {
    return op("conv2d", {x},
              {{"out", out_channels},
               {"kernel_h", o.kernel_h},
               {"kernel_w", o.kernel_w},
               {"stride_h", o.stride_h},
               {"stride_w", o.stride_w},
               {"pad_h", o.pad_h},
               {"pad_w", o.pad_w},
               {"dil_h", o.dilation_h},
               {"dil_w", o.dilation_w},
               {"groups", o.groups},
               {"bias", o.bias}});
}

namespace {
// A stride of 0 is that dimension's kernel size (PyTorch's default).
OpAttrs pool_attrs(const Pool2dOptions& o) {
    return {{"kernel_h", o.kernel_h},
            {"kernel_w", o.kernel_w},
            {"stride_h", o.stride_h ? o.stride_h : o.kernel_h},
            {"stride_w", o.stride_w ? o.stride_w : o.kernel_w},
            {"pad_h", o.pad_h},
            {"pad_w", o.pad_w}};
}
} // namespace

int Model::max_pool2d(int x, const Pool2dOptions& o) {
    return op("max_pool2d", {x}, pool_attrs(o));
}
int Model::avg_pool2d(int x, const Pool2dOptions& o) {
    return op("avg_pool2d", {x}, pool_attrs(o));
}
int Model::adaptive_avg_pool2d(int x, uint32_t out_h, uint32_t out_w) {
    return op("adaptive_avg_pool2d", {x}, {{"out_h", out_h}, {"out_w", out_w}});
}
int Model::channel_mul(int x, int s) {
    return op("channel_mul", {x, s});
}
int Model::batch_norm2d(int x, float eps, float momentum) {
    return op("batch_norm2d", {x}, {{"eps", eps}, {"momentum", momentum}});
}
int Model::relu(int x) {
    return op("relu", {x});
}
int Model::gelu(int x) {
    return op("gelu", {x});
}
int Model::gelu_tanh(int x) {
    return op("gelu_tanh", {x});
}
int Model::silu(int x) {
    return op("silu", {x});
}
int Model::relu6(int x) {
    return op("relu6", {x});
}
int Model::hardswish(int x) {
    return op("hardswish", {x});
}
int Model::hardsigmoid(int x) {
    return op("hardsigmoid", {x});
}
int Model::flatten(int x) {
    return op("flatten", {x});
}
int Model::add(int a, int b) {
    return op("add", {a, b});
}
int Model::mul(int a, int b) {
    return op("mul", {a, b});
}
int Model::dropout(int x, float p) {
    return op("dropout", {x}, {{"p", p}});
}
int Model::reshape(int x, const std::vector<int64_t>& shape) {
    return op("reshape", {x}, {{"shape", shape}});
}
int Model::transpose(int x, uint32_t dim0, uint32_t dim1) {
    return op("transpose", {x}, {{"dim0", dim0}, {"dim1", dim1}});
}
int Model::slice(int x, uint32_t dim, int64_t start, int64_t end) {
    return op("slice", {x}, {{"dim", dim}, {"start", start}, {"end", end}});
}
int Model::layer_norm(int x, float eps, bool affine) {
    return op("layer_norm", {x}, {{"eps", eps}, {"affine", affine}});
}
int Model::rms_norm(int x, float eps) {
    return op("rms_norm", {x}, {{"eps", eps}});
}
int Model::softmax(int x) {
    return op("softmax", {x});
}
int Model::self_attention(int qkv, uint32_t heads, bool causal) {
    return op("self_attention", {qkv}, {{"heads", heads}, {"causal", causal}});
}
int Model::rotary(int x, uint32_t heads, float theta) {
    return op("rotary", {x}, {{"heads", heads}, {"theta", theta}});
}
int Model::attention(int q, int k, int v, uint32_t heads, uint32_t kv_heads, bool causal) {
    return op("attention", {q, k, v}, {{"heads", heads}, {"kv_heads", kv_heads}, {"causal", causal}});
}
int Model::cross_entropy(int logits, int labels, const CrossEntropyOptions& options) {
    OpAttrs a;
    if (options.ignore_index) a.emplace("ignore_index", *options.ignore_index);
    return op("cross_entropy", {logits, labels}, a);
}
int Model::mse_loss(int pred, int target) {
    return op("mse_loss", {pred, target});
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

void Model::freeze_batch_norm(const std::string& pattern, bool frozen) {
    std::vector<size_t> match;
    size_t any_bn = 0;
    for (size_t i = 0; i < m_nodes.size(); ++i) {
        if (m_nodes[i].op != "batch_norm2d") continue;
        ++any_bn;
        if (graph::matches_pattern(pattern, m_nodes[i].name)) match.push_back(i);
    }
    VKT_CHECK(!match.empty(), "freeze_batch_norm: no batch_norm2d node matches '", pattern, "' (", graph::pattern_rule,
              " over node names", any_bn ? std::string("") : std::string("; the model has no batch_norm2d node"), ")");
    // Only a frozen node carries the attribute: model files of unfrozen models stay as they were.
    for (size_t i : match) {
        if (frozen)
            m_nodes[i].attrs["frozen_stats"] = 1;
        else
            m_nodes[i].attrs.erase("frozen_stats");
    }
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

void Model::set_learning_rate_scale(const std::string& pattern, float scale) {
    VKT_CHECK(scale > 0 && std::isfinite(scale), "set_learning_rate_scale: the scale for '", pattern,
              "' must be > 0 and finite, got ", scale);
    check_pattern(pattern, "set_learning_rate_scale");
    Override o;
    o.pattern = pattern;
    o.what = 3;
    o.lr_scale = scale;
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
        for (const graph::ParamDecl& d : def.params(n, ins)) {
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
                if (o.what == 3 && !p.buffer) p.lr_scale = o.lr_scale;
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

int Model::embedding(int ids, uint32_t num_embeddings, uint32_t dim) {
    return op("embedding", {ids}, {{"num_embeddings", num_embeddings}, {"dim", dim}});
}
int Model::position_embedding(int x, uint32_t max_positions) {
    return op("position_embedding", {x}, {{"max_positions", max_positions}});
}
int Model::linear_tied(int x, int embedding_node) {
    return op("linear_tied", {x, embedding_node});
}

} // namespace vktrain
