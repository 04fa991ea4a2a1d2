// The C API's models: vkt_model_op over Model::op (every registered op), the op listing over list_ops(), the
// typed shorthands of the first version, recipes, JSON and inspection.
#include <cmath>

#include "capi/capi_common.hpp"
#include "vktrain/lora.hpp"
#include "io/json.hpp"

namespace vktrain::capi {
namespace {

Model& model_of(vkt_model* m) {
    vkt_model& h = need(m, "model");
    h.parameters_current = false; // anything a caller may change invalidates the parameter cache
    return h.model;
}

const Model& model_of(const vkt_model* m) {
    return need(m, "model").model;
}

// list_ops() never changes: built once, so the listing's strings can be static.
const std::vector<OpInfo>& ops() {
    static const std::vector<OpInfo> list = list_ops();
    return list;
}

const OpInfo& op_at(size_t index) {
    if (index >= ops().size())
        throw InvalidArgument("op " + std::to_string(index) + ": there are " + std::to_string(ops().size()));
    return ops()[index];
}

const char* kind_name(AttrKind k) {
    switch (k) {
    case AttrKind::integer: return "integer";
    case AttrKind::real: return "real";
    case AttrKind::flag: return "flag";
    case AttrKind::shape: return "shape";
    }
    return "?";
}

std::string ops_json() {
    io::Json list = io::Json::array();
    for (const OpInfo& op : ops()) {
        io::Json o = io::Json::object();
        o["name"] = op.name;
        o["doc"] = op.doc;
        o["category"] = op.category;
        io::Json inputs = io::Json::array();
        for (const std::string& i : op.inputs) inputs.push_back(i);
        o["inputs"] = inputs;
        io::Json attrs = io::Json::array();
        for (const OpAttrInfo& a : op.attrs) {
            io::Json j = io::Json::object();
            j["name"] = a.name;
            j["kind"] = kind_name(a.kind);
            if (a.kind != AttrKind::shape) {
                j["min"] = a.min;
                j["max"] = a.max;
                j["min_open"] = a.min_open;
                j["max_open"] = a.max_open;
            }
            j["required"] = a.required;
            j["optional"] = a.optional;
            if (a.default_value) j["default"] = *a.default_value;
            if (!a.default_from.empty()) j["default_from"] = a.default_from;
            j["doc"] = a.doc;
            attrs.push_back(j);
        }
        o["attrs"] = attrs;
        o["loss"] = op.loss;
        o["inference_only"] = op.inference_only;
        list.push_back(o);
    }
    return list.dump();
}

const Node& node_at(const Model& m, int32_t node) {
    if (node < 0 || size_t(node) >= m.nodes().size())
        throw Error("node " + std::to_string(node) + " does not exist (the model has " +
                    std::to_string(m.nodes().size()) + ")");
    return m.nodes()[size_t(node)];
}

vkt_gpt_options gpt_defaults() {
    const GptOptions d;
    vkt_gpt_options o{};
    o.struct_size = sizeof o;
    o.vocab = d.vocab;
    o.layers = d.layers;
    o.heads = d.heads;
    o.width = d.width;
    o.context = d.context;
    o.mlp = d.mlp;
    o.tied = d.tied;
    o.eps = d.eps;
    o.activation = d.activation == GptActivation::gelu_tanh ? VKT_GPT_GELU_TANH : VKT_GPT_GELU;
    o.sequence = d.sequence;
    return o;
}

vkt_gpt_options gpt_options_out(const GptOptions& g) {
    vkt_gpt_options o = gpt_defaults();
    o.vocab = g.vocab;
    o.layers = g.layers;
    o.heads = g.heads;
    o.width = g.width;
    o.context = g.context;
    o.mlp = g.mlp;
    o.tied = g.tied ? 1 : 0;
    o.eps = g.eps;
    o.activation = g.activation == GptActivation::gelu_tanh ? VKT_GPT_GELU_TANH : VKT_GPT_GELU;
    o.sequence = g.sequence;
    return o;
}

GptOptions gpt_options_of(const vkt_gpt_options* from) {
    const vkt_gpt_options o =
        read_versioned(&need(from, "options"), gpt_defaults(), {VKT_GPT_OPTIONS_SIZE_V1}, "vkt_gpt_options");
    GptOptions g;
    g.vocab = o.vocab;
    g.layers = o.layers;
    g.heads = o.heads;
    g.width = o.width;
    g.context = o.context;
    g.mlp = o.mlp;
    g.tied = o.tied != 0;
    g.eps = o.eps;
    if (o.activation != VKT_GPT_GELU && o.activation != VKT_GPT_GELU_TANH)
        throw InvalidArgument("vkt_gpt_options.activation is " + std::to_string(int(o.activation)) +
                              " (VKT_GPT_GELU or VKT_GPT_GELU_TANH)");
    g.activation = o.activation == VKT_GPT_GELU_TANH ? GptActivation::gelu_tanh : GptActivation::gelu;
    g.sequence = o.sequence;
    return g;
}

vkt_llama_options llama_out(const LlamaOptions& l) {
    vkt_llama_options o{};
    o.struct_size = sizeof o;
    o.vocab = l.vocab;
    o.layers = l.layers;
    o.heads = l.heads;
    o.kv_heads = l.kv_heads;
    o.width = l.width;
    o.intermediate = l.intermediate;
    o.context = l.context;
    o.tied = l.tied ? 1 : 0;
    o.eps = l.eps;
    o.rope_theta = l.rope_theta;
    o.sequence = l.sequence;
    return o;
}

LlamaOptions llama_options_of(const vkt_llama_options* from) {
    const vkt_llama_options o = read_versioned(&need(from, "options"), llama_out(LlamaOptions{}),
                                               {VKT_LLAMA_OPTIONS_SIZE_V1}, "vkt_llama_options");
    LlamaOptions l;
    l.vocab = o.vocab;
    l.layers = o.layers;
    l.heads = o.heads;
    l.kv_heads = o.kv_heads;
    l.width = o.width;
    l.intermediate = o.intermediate;
    l.context = o.context;
    l.tied = o.tied != 0;
    l.eps = o.eps;
    l.rope_theta = o.rope_theta;
    l.sequence = o.sequence;
    return l;
}

void new_model(vkt_model** out, Model m) {
    need(out, "out");
    *out = nullptr;
    *out = new vkt_model{std::move(m), {}, false};
}

} // namespace
} // namespace vktrain::capi

using namespace vktrain::capi;

extern "C" {

size_t vkt_op_count(void) {
    try {
        return ops().size();
    } catch (...) {
        return 0;
    }
}

vkt_status vkt_op_get(size_t index, vkt_op_info* out) {
    return guarded([&] {
        const vktrain::OpInfo& op = op_at(index);
        vkt_op_info o{};
        o.struct_size = sizeof o;
        o.name = op.name.c_str();
        o.doc = op.doc.c_str();
        o.category = op.category.c_str();
        o.input_count = op.inputs.size();
        o.attr_count = op.attrs.size();
        o.loss = op.loss;
        o.inference_only = op.inference_only;
        write_versioned(out, o, VKT_OP_INFO_SIZE_V1, "vkt_op_info");
    });
}

vkt_status vkt_op_find(const char* name, size_t* index) {
    return guarded([&] {
        const std::string n = text(name, "name");
        need(index, "index");
        for (size_t i = 0; i < ops().size(); ++i)
            if (ops()[i].name == n) {
                *index = i;
                return;
            }
        throw vktrain::Error("unknown op '" + n + "'");
    });
}

vkt_status vkt_op_input_name(size_t op, size_t input, const char** name) {
    return guarded([&] {
        const vktrain::OpInfo& o = op_at(op);
        need(name, "name");
        if (input >= o.inputs.size())
            throw InvalidArgument(o.name + " input " + std::to_string(input) + ": it takes " +
                                  std::to_string(o.inputs.size()));
        *name = o.inputs[input].c_str();
    });
}

vkt_status vkt_op_attr(size_t op, size_t attr, vkt_op_attr_info* out) {
    return guarded([&] {
        const vktrain::OpInfo& o = op_at(op);
        if (attr >= o.attrs.size())
            throw InvalidArgument(o.name + " attribute " + std::to_string(attr) + ": it has " +
                                  std::to_string(o.attrs.size()));
        const vktrain::OpAttrInfo& a = o.attrs[attr];
        vkt_op_attr_info i{};
        i.struct_size = sizeof i;
        i.name = a.name.c_str();
        i.kind = vkt_attr_kind(int(a.kind));
        i.min = a.min;
        i.max = a.max;
        i.min_open = a.min_open;
        i.max_open = a.max_open;
        i.required = a.required;
        i.optional = a.optional;
        i.has_default = a.default_value.has_value();
        i.default_value = a.default_value.value_or(0.0);
        i.default_from = a.default_from.empty() ? nullptr : a.default_from.c_str();
        i.doc = a.doc.c_str();
        write_versioned(out, i, VKT_OP_ATTR_INFO_SIZE_V1, "vkt_op_attr_info");
    });
}

vkt_status vkt_ops_json(char** out) {
    return guarded([&] { need(out, "out") = copy_out(ops_json()); });
}

vkt_status vkt_model_create(vkt_model** out) {
    return guarded([&] { new_model(out, vktrain::Model()); });
}

void vkt_model_destroy(vkt_model* model) {
    delete model;
}

vkt_status vkt_model_input(vkt_model* m, const char* name, const int64_t* shape, size_t rank, vkt_dtype type,
                           int32_t* out) {
    return guarded([&] {
        vktrain::Model& g = model_of(m);
        text(name, "name");
        if (rank && !shape) throw InvalidArgument("shape is null");
        if (type != VKT_F32 && type != VKT_I32) throw InvalidArgument("type must be VKT_F32 or VKT_I32");
        set(out, g.input(name, std::vector<int64_t>(shape, shape + rank),
                         type == VKT_I32 ? vktrain::DataType::i32 : vktrain::DataType::f32));
    });
}

vkt_status vkt_model_op(vkt_model* m, const char* op, const int32_t* inputs, size_t input_count, const vkt_attr* attrs,
                        size_t attr_count, int32_t* out) {
    return guarded([&] {
        vktrain::Model& g = model_of(m);
        const std::string name = text(op, "op");
        if (input_count && !inputs) throw InvalidArgument(name + ": inputs is null");
        if (attr_count && !attrs) throw InvalidArgument(name + ": attrs is null");
        vktrain::OpAttrs a;
        for (size_t i = 0; i < attr_count; ++i) {
            const vkt_attr& at = attrs[i];
            const std::string key = text(at.name, "attrs[i].name");
            if (at.shape || at.rank) {
                if (!at.shape) throw InvalidArgument(name + ": attribute '" + key + "' has a rank but no shape");
                a.insert_or_assign(key, vktrain::AttrValue(std::vector<int64_t>(at.shape, at.shape + at.rank)));
            } else {
                a.insert_or_assign(key, vktrain::AttrValue(at.value));
            }
        }
        set(out, g.op(name, std::vector<int>(inputs, inputs + input_count), a));
    });
}

vkt_status vkt_model_rename(vkt_model* m, int32_t node, const char* name) {
    return guarded([&] { model_of(m).rename(node, text(name, "name")); });
}

vkt_status vkt_model_set_trainable(vkt_model* m, const char* name_or_prefix, int32_t trainable) {
    return guarded([&] { model_of(m).set_trainable(text(name_or_prefix, "name"), trainable != 0); });
}

vkt_status vkt_model_freeze_batch_norm(vkt_model* m, const char* pattern, int32_t frozen) {
    return guarded([&] { model_of(m).freeze_batch_norm(text(pattern, "pattern"), frozen != 0); });
}

vkt_status vkt_model_add_lora(vkt_model* m, const char* pattern, uint32_t r, float alpha, float dropout) {
    return guarded([&] {
        (void)model_of(m).add_lora(text(pattern, "pattern"), vktrain::LoraOptions{r, alpha, dropout});
    });
}

vkt_status vkt_model_add_lora_adapter(vkt_model* m, const char* directory) {
    return guarded(
        [&] { (void)vktrain::add_lora(model_of(m), vktrain::read_lora_adapter_config(text(directory, "directory"))); });
}

vkt_status vkt_model_set_weight_decay(vkt_model* m, const char* name_or_prefix, float weight_decay) {
    return guarded([&] { model_of(m).set_weight_decay(text(name_or_prefix, "name"), weight_decay); });
}

vkt_status vkt_model_set_learning_rate_scale(vkt_model* m, const char* name_or_prefix, float scale) {
    return guarded([&] { model_of(m).set_learning_rate_scale(text(name_or_prefix, "name"), scale); });
}

vkt_status vkt_model_set_init(vkt_model* m, const char* name_or_prefix, vkt_init_kind kind, float a, float b) {
    return guarded([&] {
        if (kind < VKT_INIT_DEFAULT || kind > VKT_INIT_UNIFORM)
            throw InvalidArgument("init kind must be VKT_INIT_DEFAULT .. VKT_INIT_UNIFORM");
        model_of(m).set_init(text(name_or_prefix, "name"), vktrain::Init{vktrain::InitKind(int(kind)), a, b});
    });
}

// ---- the typed shorthands of the first version: each is Model::op ----

vkt_status vkt_model_linear(vkt_model* m, int32_t x, uint32_t out_features, int32_t bias, int32_t* out) {
    return guarded([&] { set(out, model_of(m).linear(x, out_features, bias != 0)); });
}

vkt_status vkt_model_unary(vkt_model* m, const char* op, int32_t x, int32_t* out) {
    return guarded([&] {
        vktrain::Model& g = model_of(m);
        const std::string name = text(op, "op");
        for (const char* listed : {"relu", "gelu", "gelu_tanh", "silu", "softmax", "flatten"})
            if (name == listed) return set(out, g.op(name, {x}));
        throw InvalidArgument("unknown unary op '" + name +
                              "' (relu, gelu, gelu_tanh, silu, softmax, flatten; vkt_model_op builds every op)");
    });
}

vkt_status vkt_model_add(vkt_model* m, int32_t a, int32_t b, int32_t* out) {
    return guarded([&] { set(out, model_of(m).add(a, b)); });
}

vkt_status vkt_model_conv2d(vkt_model* m, int32_t x, uint32_t out_channels, uint32_t kernel, uint32_t stride,
                            uint32_t padding, int32_t* out) {
    return guarded([&] {
        set(out, model_of(m).conv2d(x, out_channels, vktrain::Conv2dOptions::square(kernel, stride, padding)));
    });
}

vkt_status vkt_model_max_pool2d(vkt_model* m, int32_t x, uint32_t kernel, int32_t* out) {
    return guarded([&] { set(out, model_of(m).max_pool2d(x, vktrain::Pool2dOptions::square(kernel))); });
}

vkt_status vkt_model_layer_norm(vkt_model* m, int32_t x, float eps, int32_t* out) {
    return guarded([&] { set(out, model_of(m).layer_norm(x, eps)); });
}

vkt_status vkt_model_embedding(vkt_model* m, int32_t ids, uint32_t num_embeddings, uint32_t dim, int32_t* out) {
    return guarded([&] { set(out, model_of(m).embedding(ids, num_embeddings, dim)); });
}

vkt_status vkt_model_self_attention(vkt_model* m, int32_t qkv, uint32_t heads, int32_t causal, int32_t* out) {
    return guarded([&] { set(out, model_of(m).self_attention(qkv, heads, causal != 0)); });
}

vkt_status vkt_model_cross_entropy(vkt_model* m, int32_t logits, int32_t labels, int32_t* out) {
    return guarded([&] { set(out, model_of(m).cross_entropy(logits, labels)); });
}

vkt_status vkt_model_mse_loss(vkt_model* m, int32_t pred, int32_t target, int32_t* out) {
    return guarded([&] { set(out, model_of(m).mse_loss(pred, target)); });
}

// ---- recipes ----

vkt_status vkt_model_mlp(uint32_t input_features, const uint32_t* hidden, size_t hidden_count, uint32_t classes,
                         vkt_mlp_activation activation, vkt_model** out) {
    return guarded([&] {
        if (hidden_count && !hidden) throw InvalidArgument("hidden is null");
        if (activation != VKT_MLP_RELU && activation != VKT_MLP_GELU)
            throw InvalidArgument("activation must be VKT_MLP_RELU or VKT_MLP_GELU");
        new_model(out,
                  vktrain::Model::mlp(input_features, std::vector<uint32_t>(hidden, hidden + hidden_count), classes,
                                      activation == VKT_MLP_GELU ? vktrain::OpKind::gelu : vktrain::OpKind::relu));
    });
}

vkt_status vkt_model_cnn(uint32_t classes, vkt_model** out) {
    return guarded([&] { new_model(out, vktrain::Model::cnn(classes)); });
}

vkt_status vkt_gpt_options_default(vkt_gpt_options* options, size_t struct_size) {
    return guarded(
        [&] { fill_default(options, struct_size, gpt_defaults(), {VKT_GPT_OPTIONS_SIZE_V1}, "vkt_gpt_options"); });
}

vkt_status vkt_model_gpt(const vkt_gpt_options* options, vkt_model** out) {
    return guarded([&] { new_model(out, vktrain::Model::gpt(gpt_options_of(options))); });
}

vkt_status vkt_model_gpt_decoder(const vkt_gpt_options* options, vkt_model** out) {
    return guarded([&] { new_model(out, vktrain::Model::gpt_decoder(gpt_options_of(options))); });
}

vkt_status vkt_model_gpt_options(const vkt_model* m, vkt_gpt_options* out) {
    return guarded([&] {
        need(out, "out");
        write_versioned(out, gpt_options_out(vktrain::gpt_options(model_of(m))), VKT_GPT_OPTIONS_SIZE_V1,
                        "vkt_gpt_options");
    });
}

vkt_status vkt_llama_options_default(vkt_llama_options* options, size_t struct_size) {
    return guarded([&] {
        fill_default(options, struct_size, llama_out(vktrain::LlamaOptions{}), {VKT_LLAMA_OPTIONS_SIZE_V1},
                     "vkt_llama_options");
    });
}

vkt_status vkt_model_llama(const vkt_llama_options* options, vkt_model** out) {
    return guarded([&] { new_model(out, vktrain::Model::llama(llama_options_of(options))); });
}

vkt_status vkt_model_llama_options(const vkt_model* m, vkt_llama_options* out) {
    return guarded([&] {
        need(out, "out");
        write_versioned(out, llama_out(vktrain::llama_options(model_of(m))), VKT_LLAMA_OPTIONS_SIZE_V1,
                        "vkt_llama_options");
    });
}

// ---- JSON ----

vkt_status vkt_model_to_json(const vkt_model* m, char** out) {
    return guarded([&] { need(out, "out") = copy_out(model_of(m).to_json()); });
}

vkt_status vkt_model_from_json(const char* json, vkt_model** out) {
    return guarded([&] { new_model(out, vktrain::Model::from_json(text(json, "json"))); });
}

vkt_status vkt_load_model(const char* weights_path, vkt_model** out) {
    return guarded([&] { new_model(out, vktrain::load_model(text(weights_path, "path"))); });
}

vkt_status vkt_model_describe(const vkt_model* m, char** out) {
    return guarded([&] { need(out, "out") = copy_out(model_of(m).describe()); });
}

vkt_status vkt_import_hf(const char* source, const char* output, vkt_precision precision) {
    return guarded([&] {
        if (precision != VKT_PRECISION_MIXED && precision != VKT_PRECISION_FP32)
            throw InvalidArgument("precision is " + std::to_string(int(precision)) +
                                  " (VKT_PRECISION_MIXED or VKT_PRECISION_FP32)");
        vktrain::ImportOptions o;
        o.precision = precision == VKT_PRECISION_FP32 ? vktrain::Precision::fp32 : vktrain::Precision::mixed;
        vktrain::import_hf(text(source, "source"), text(output, "output"), o);
    });
}

vkt_status vkt_export_hf(const char* weights, const char* directory, int32_t overwrite) {
    return guarded([&] {
        vktrain::ExportOptions o;
        o.overwrite = overwrite != 0;
        vktrain::export_hf(text(weights, "weights"), text(directory, "directory"), o);
    });
}

namespace {
vkt_torchvision_options torchvision_out(const vktrain::TorchvisionImportOptions& t) {
    vkt_torchvision_options o{};
    o.struct_size = sizeof o;
    o.arch = nullptr; // no default architecture: the caller names one
    o.classes = t.classes;
    o.height = t.height;
    o.width = t.width;
    o.precision = t.precision == vktrain::Precision::fp32 ? VKT_PRECISION_FP32 : VKT_PRECISION_MIXED;
    o.seed = t.seed;
    return o;
}
} // namespace

vkt_status vkt_torchvision_options_default(vkt_torchvision_options* options, size_t struct_size) {
    return guarded([&] {
        fill_default(options, struct_size, torchvision_out(vktrain::TorchvisionImportOptions{}),
                     {VKT_TORCHVISION_OPTIONS_SIZE_V1}, "vkt_torchvision_options");
    });
}

vkt_status vkt_import_torchvision(const char* source, const char* output, const vkt_torchvision_options* options) {
    return guarded([&] {
        const vkt_torchvision_options o =
            read_versioned(&need(options, "options"), torchvision_out(vktrain::TorchvisionImportOptions{}),
                           {VKT_TORCHVISION_OPTIONS_SIZE_V1}, "vkt_torchvision_options");
        if (o.precision != VKT_PRECISION_MIXED && o.precision != VKT_PRECISION_FP32)
            throw InvalidArgument("precision is " + std::to_string(int(o.precision)) +
                                  " (VKT_PRECISION_MIXED or VKT_PRECISION_FP32)");
        vktrain::TorchvisionImportOptions t;
        t.arch = text(o.arch, "options.arch");
        t.classes = o.classes;
        t.height = o.height;
        t.width = o.width;
        t.precision = o.precision == VKT_PRECISION_FP32 ? vktrain::Precision::fp32 : vktrain::Precision::mixed;
        t.seed = o.seed;
        vktrain::import_torchvision(text(source, "source"), text(output, "output"), t);
    });
}

vkt_status vkt_export_torchvision(const char* weights, const char* output, int32_t overwrite) {
    return guarded([&] {
        vktrain::ExportOptions o;
        o.overwrite = overwrite != 0;
        vktrain::export_torchvision(text(weights, "weights"), text(output, "output"), o);
    });
}

// ---- inspection ----

vkt_status vkt_model_node_count(const vkt_model* m, size_t* count) {
    return guarded([&] { need(count, "count") = model_of(m).nodes().size(); });
}

vkt_status vkt_model_node(const vkt_model* m, int32_t node, vkt_node_info* out) {
    return guarded([&] {
        const vktrain::Node& n = node_at(model_of(m), node);
        vkt_node_info o{};
        o.struct_size = sizeof o;
        o.op = n.op.c_str();
        o.name = n.name.c_str();
        o.input_count = n.inputs.size();
        o.rank = n.shape.size();
        o.type = n.type == vktrain::DataType::i32 ? VKT_I32 : VKT_F32;
        write_versioned(out, o, VKT_NODE_INFO_SIZE_V1, "vkt_node_info");
    });
}

vkt_status vkt_model_node_input(const vkt_model* m, int32_t node, size_t input, int32_t* value) {
    return guarded([&] {
        const vktrain::Node& n = node_at(model_of(m), node);
        need(value, "value");
        if (input >= n.inputs.size())
            throw InvalidArgument("node '" + n.name + "' input " + std::to_string(input) + ": it has " +
                                  std::to_string(n.inputs.size()));
        *value = n.inputs[input];
    });
}

vkt_status vkt_model_value_shape(const vkt_model* m, int32_t value, int64_t* dims, size_t capacity, size_t* rank) {
    return guarded(
        [&] { write_shape(node_at(model_of(m), value).shape, dims, capacity, rank, "vkt_model_value_shape"); });
}

vkt_status vkt_model_inputs(const vkt_model* m, int32_t* values, size_t capacity, size_t* count) {
    return guarded([&] {
        const std::vector<int> in = model_of(m).inputs();
        if (in.size() > capacity) too_small("vkt_model_inputs", in.size(), capacity, count, "count");
        if (!in.empty()) need(values, "values");
        for (size_t i = 0; i < in.size(); ++i) values[i] = in[i];
        if (count) *count = in.size();
    });
}

vkt_status vkt_model_loss(const vkt_model* m, int32_t* value) {
    return guarded([&] { need(value, "value") = model_of(m).loss(); });
}

vkt_status vkt_model_parameter_count(const vkt_model* m, uint64_t* out) {
    return guarded([&] { need(out, "out") = model_of(m).parameter_count(); });
}

vkt_status vkt_model_parameter_tensors(const vkt_model* m, size_t* count) {
    return guarded([&] { need(count, "count") = model_of(m).parameters().size(); });
}

vkt_status vkt_model_parameter(const vkt_model* m, size_t index, vkt_parameter_info* out) {
    return guarded([&] {
        const vkt_model& h = need(m, "model");
        if (!h.parameters_current) {
            h.parameters = h.model.parameters();
            h.parameters_current = true;
        }
        if (index >= h.parameters.size())
            throw InvalidArgument("parameter " + std::to_string(index) + ": the model has " +
                                  std::to_string(h.parameters.size()));
        const vktrain::ParameterInfo& p = h.parameters[index];
        vkt_parameter_info o{};
        o.struct_size = sizeof o;
        o.name = p.name.c_str();
        o.rank = p.shape.size();
        for (size_t i = 0; i < p.shape.size() && i < 8; ++i) o.shape[i] = p.shape[i];
        o.elements = elements_of(p.shape);
        o.trainable = p.trainable;
        o.buffer = p.buffer;
        o.weight_decay = p.weight_decay;
        o.init = vkt_init_kind(int(p.init.kind));
        o.init_a = p.init.a;
        o.init_b = p.init.b;
        o.persistent = p.persistent;
        o.counter = p.counter;
        o.lr_scale = p.lr_scale;
        write_versioned(out, o, VKT_PARAMETER_INFO_SIZE_V1, "vkt_parameter_info");
    });
}

} // extern "C"
