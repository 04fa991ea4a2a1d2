// A model is a graph of ops on N-D tensors, built through this API and compiled by a Trainer for a device,
// a precision and a batch size. Shapes given here are per sample: the batch dimension is implicit and comes
// first at run time. A value may feed several ops (residual connections); gradients of such values
// accumulate. Every builder method checks its arguments and throws vktrain::Error with a one-line message.
//
//   vktrain::Model m;
//   int x = m.input("x", {1, 28, 28});
//   x = m.relu(m.conv2d(x, 32, vktrain::Conv2dOptions::square(5, 1, 2)));
//   x = m.max_pool2d(x, vktrain::Pool2dOptions::square(2));
//   x = m.linear(m.flatten(x), 10);
//   m.cross_entropy(x, m.input("labels", {}, vktrain::DataType::i32));
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace vktrain {

enum class DataType { f32, i32 }; // what an input holds: real values, or integers (class labels, token ids)

// PyTorch's nn.CrossEntropyLoss(ignore_index=...): positions whose label equals ignore_index (padding) add no loss and
// no gradient, and the mean is over the other positions; when every position of a batch is ignored the loss and the
// gradients are 0 (PyTorch gives NaN there; a padded batch is not a diverged step). Without it (the default) every
// label must be in [0, classes).
struct CrossEntropyOptions {
    std::optional<int32_t> ignore_index;
};

struct Conv2dOptions {
    uint32_t kernel_h = 3, kernel_w = 3;
    uint32_t stride_h = 1, stride_w = 1;
    uint32_t pad_h = 0, pad_w = 0;
    uint32_t dilation_h = 1, dilation_w = 1;
    uint32_t groups = 1;
    bool bias = true;
    static Conv2dOptions square(uint32_t kernel, uint32_t stride = 1, uint32_t padding = 0);
};

struct Pool2dOptions {
    uint32_t kernel_h = 2, kernel_w = 2;
    uint32_t stride_h = 0, stride_w = 0; // 0: the kernel size (PyTorch's default)
    uint32_t pad_h = 0, pad_w = 0;
    static Pool2dOptions square(uint32_t kernel, uint32_t stride = 0, uint32_t padding = 0);
};

// How a parameter starts. default_init: the owning op's PyTorch default (Linear and Conv2d: kaiming_uniform
// with a = sqrt(5) for weights, i.e. U(+-1/sqrt(fan_in)), and U(+-1/sqrt(fan_in)) for biases; BatchNorm:
// weight 1, bias 0).
enum class InitKind { default_init, zeros, ones, constant, normal, uniform };
struct Init {
    InitKind kind = InitKind::default_init;
    float a = 0.0f, b = 0.0f; // constant: a; normal: mean a, std b; uniform: [a, b)
};

struct ParameterInfo {
    std::string name;           // PyTorch state_dict style: "conv0.weight", "bn0.running_mean", ...
    std::vector<int64_t> shape; // PyTorch layout: Linear weight [out, in], Conv2d weight [out, in/groups, kh, kw]
    uint32_t fan_in = 0;
    bool trainable = true; // false: frozen (lives only on the device: no host master, gradient or optimizer state)
    bool buffer = false;   // true: state such as BatchNorm running statistics (saved, never trained)
    bool counter = false;  // a buffer counting training forward passes (BatchNorm's num_batches_tracked; a 0-d
                           // tensor, stored as F32: exact below 2^24)
    // false: a buffer that is not part of the model's saved state (PyTorch's register_buffer(persistent=False)), such
    // as a decoder's key/value caches: never saved, not needed in a weights file, zero-filled when load() reads one.
    bool persistent = true;
    float weight_decay = -1.0; // < 0: the optimizer's default
    Init init;
    float lr_scale = 1.0f; // multiplies the optimizer's learning rate, schedule included (set_learning_rate_scale)
};

// One op of the graph. Node i produces value i; op "input" nodes are the model's inputs.
struct Node {
    std::string op;             // registry name: "input", "linear", "conv2d", "relu", "add", ...
    std::string name;           // unique; parameter prefix and profile label ("conv0", "relu3", "x")
    std::vector<int> inputs;    // producing nodes
    std::vector<int64_t> shape; // per-sample output shape (inferred)
    DataType type = DataType::f32;
    std::map<std::string, double> attrs; // op settings ("out", "kernel_h", "p", ...)
    std::vector<int64_t> shape_attr;     // reshape's target shape
    // The repeated block (a transformer layer) this node belongs to, -1: none. Activation recomputation
    // (TrainerOptions::recompute) keeps only a block's inputs from the forward pass and recomputes the rest of the
    // block inside the backward pass. Set by Model::set_block; recorded by to_json.
    int block = -1;
};

// Model::gpt: token and learned position embeddings, `layers` blocks x = x + attn.c_proj(causal_attention(
// attn.c_attn(ln_1(x)))); x = x + mlp.c_proj(GELU(mlp.c_fc(ln_2(x)))) (GELU: GptOptions::activation), a final LayerNorm
// and an untied output head without bias (or the token embedding's weight when tied). Init (GPT-2): Linear and
// Embedding weights N(0, 0.02), c_proj weights N(0, 0.02/sqrt(2·layers)), biases 0, LayerNorm 1 and 0. Parameter names
// follow nanoGPT: "transformer.wte.weight", "transformer.h.0.attn.c_attn.weight", "transformer.ln_f.bias",
// "lm_head.weight", ...
enum class GptActivation { gelu, gelu_tanh };
// The largest head size (width / heads) the cached decoders (Model::gpt_decoder, Model::llama_decoder) take: their
// attention kernel holds one head's q, k and v in shared memory. Larger heads are refused; `vktrain generate` then
// re-runs the whole window per token instead.
constexpr uint32_t decoder_max_head_size = 512;

struct GptOptions {
    uint32_t vocab = 0; // required
    uint32_t layers = 4;
    uint32_t heads = 4;
    uint32_t width = 128;
    uint32_t context = 128;
    uint32_t mlp = 0; // 0: 4 · width
    bool tied = false;
    float eps = 1e-5f; // LayerNorm
    // The MLP's activation: exact GELU (nn.GELU(), Hugging Face "gelu") or its tanh form (GPT-2's "gelu_new").
    GptActivation activation = GptActivation::gelu;
    // Tokens per sample of Model::gpt's inputs, at most context (0: context): a shorter window over the same weights
    // (the position table keeps `context` rows), e.g. to predict on sequences shorter than the model's context.
    uint32_t sequence = 0;
};

class Model;

// LoRA (PEFT's LoraConfig, bias "none"): a linear layer y = W·x + b becomes y = W·x + b + (alpha / r)·B·A·dropout(x)
// with A [r, in] (PEFT's init: Kaiming-uniform with a = sqrt(5), i.e. U(+-1/sqrt(in))) and B [out, r] (zeros), so the
// model starts as the base did. See Model::add_lora.
struct LoraOptions {
    uint32_t r = 8;
    float alpha = 8.0f;   // the scaling is alpha / r
    float dropout = 0.0f; // on the adapter's input only, in [0, 1)
};

// One adapted layer, as Model::lora_modules finds it in the graph.
struct LoraModule {
    std::string module; // the linear node's name, e.g. "transformer.h.0.attn.c_attn" (PEFT's module name)
    uint32_t in = 0, out = 0;
    LoraOptions options;
};
// The options of a GPT: `model` must be exactly the graph Model::gpt or Model::gpt_decoder builds from them (for
// instance the architecture a weights file records, load_model), else vktrain::Error "not a GPT of Model::gpt's
// shape: ..." (one line, naming the first node that differs). mlp comes back as the width it has (4 · width too).
GptOptions gpt_options(const Model& model);

// Model::llama: Hugging Face's LlamaForCausalLM. A token embedding, `layers` blocks
//   x = x + o_proj(attention(rotary(q_proj(n)), rotary(k_proj(n)), v_proj(n)))   with n = input_layernorm(x)
//   x = x + down_proj(silu(gate_proj(n)) * up_proj(n))                          with n = post_attention_layernorm(x)
// (RMSNorm, rotary position embeddings in transformers' rotate_half convention with rope_theta, causal grouped-query
// attention: query head h reads key/value head h / (heads / kv_heads), linear layers without biases), a final RMSNorm
// and a head without bias (or the token embedding's weight when tied). Names are Hugging Face's:
// "model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight" ([heads · head size, width], nn.Linear's
// [out, in]), "model.layers.0.mlp.gate_proj.weight", "model.layers.0.input_layernorm.weight", "model.norm.weight",
// "lm_head.weight". Init (LlamaPreTrainedModel): Linear and Embedding weights N(0, 0.02), RMSNorm weights 1.
struct LlamaOptions {
    uint32_t vocab = 0;        // required (vocab_size)
    uint32_t layers = 2;       // num_hidden_layers
    uint32_t heads = 4;        // num_attention_heads; the head size is width / heads and must be even
    uint32_t kv_heads = 0;     // num_key_value_heads, dividing heads (0: heads, plain multi-head attention)
    uint32_t width = 128;      // hidden_size
    uint32_t intermediate = 0; // intermediate_size, the SwiGLU width (0: 4 · width)
    uint32_t context = 128;    // max_position_embeddings
    bool tied = false;         // tie_word_embeddings
    float eps = 1e-6f;         // rms_norm_eps
    float rope_theta = 10000.0f;
    // Tokens per sample of the inputs "ids" and "targets", at most context (0: context), as GptOptions::sequence.
    uint32_t sequence = 0;
};

// The options of a Llama: `model` must be exactly the graph Model::llama builds from them, else vktrain::Error "not a
// Llama of Model::llama's shape: ..." (one line, naming the first node that differs). The graph holds no position
// table (rotary embeddings work at any position), so context comes back as the inputs' length and sequence as 0;
// kv_heads and intermediate come back as the values they have.
LlamaOptions llama_options(const Model& model);

// Model::resnet: torchvision's ResNet (torchvision.models.resnet18 ... resnet152, v1.5: the stride on the 3x3
// convolution of a Bottleneck). A 7x7 stride-2 convolution, BatchNorm, ReLU and a 3x3 stride-2 max pool, four stages
// of BasicBlocks (depth 18 and 34) or Bottlenecks (50, 101, 152) whose first block of stages 2-4 halves the size
// (a 1x1 stride-2 convolution and BatchNorm on the shortcut: "downsample"), adaptive average pooling to 1x1 (so
// any input size works: padding keeps every map at least 1x1), and a linear head; inputs "x" (f32 [3, height, width])
// and "labels" (i32 []), cross-entropy. Names are torchvision's state_dict keys: "conv1.weight", "bn1.running_mean",
// "bn1.num_batches_tracked", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight", "layer2.0.downsample.1.bias",
// "fc.weight", ... Init as torchvision's: convolutions kaiming_normal_(mode="fan_out", nonlinearity="relu"), i.e.
// N(0, sqrt(2 / (out_channels·kh·kw))), BatchNorm 1 and 0, the head nn.Linear's default U(+-1/sqrt(in)).
struct ResnetOptions {
    uint32_t depth = 18; // 18, 34, 50, 101 or 152
    uint32_t classes = 1000;
    uint32_t height = 224, width = 224; // the input images' size
};

// The options of a ResNet: `model` must be exactly the graph Model::resnet builds from them (the architecture a
// weights file records, for instance), else vktrain::Error "not a ResNet of Model::resnet's shape: ..." (one line).
ResnetOptions resnet_options(const Model& model);

// Model::mobilenet: torchvision's MobileNetV2 and MobileNetV3 small / large (torchvision.models.mobilenet_v2,
// mobilenet_v3_small, mobilenet_v3_large; width 1.0).
// MobileNetV2: features.0 (3x3 stride-2 convolution to 32 channels, BatchNorm, ReLU6), features.1-17 (inverted
// residuals: a 1x1 expansion with BatchNorm and ReLU6 unless the ratio is 1, a 3x3 depthwise convolution with
// BatchNorm and ReLU6, a 1x1 projection with BatchNorm, a residual add where the stride is 1 and the widths agree),
// features.18 (1x1 to 1280, BatchNorm, ReLU6), adaptive average pooling, flatten, classifier.0 (dropout) and
// classifier.1 (linear); inputs "x" (f32 [3, height, width]) and "labels", cross-entropy. Names are torchvision's
// ("features.0.0.weight", "features.2.conv.1.0.weight", "features.2.conv.3.running_var", "classifier.1.weight").
// MobileNetV3: features.0 (3x3 stride-2 convolution to 16, BatchNorm, hardswish), the inverted residuals
// "features.N.block.M" (expansion, depthwise, squeeze-excitation "block.M.fc1" / "fc2" with ReLU and hardsigmoid
// through channel_mul, projection; ReLU or hardswish per torchvision's table; BatchNorm eps 1e-3, momentum 0.01), the
// last 1x1 convolution, pooling, and classifier.0 (linear to 1024 / 1280), hardswish, classifier.2 (dropout),
// classifier.3 (linear). Init as torchvision's: convolutions kaiming_normal_(mode="fan_out") with zero biases,
// BatchNorm 1 and 0, linear layers N(0, 0.01) with zero biases.
enum class MobilenetVariant { v2, v3_small, v3_large };
struct MobilenetOptions {
    MobilenetVariant variant = MobilenetVariant::v2;
    uint32_t classes = 1000;
    uint32_t height = 224, width = 224;
    float dropout = 0.2f; // the classifier's dropout (torchvision's default)
};

// The options of a MobileNet: `model` must be exactly the graph Model::mobilenet builds from them, else
// vktrain::Error "not a MobileNet of Model::mobilenet's shape: ..." (one line).
MobilenetOptions mobilenet_options(const Model& model);

// The same model for inputs of another per-sample shape (an image model at another resolution): the graph rebuilt
// with the input `input` (a name; "": the first input) shaped `shape`. Throws vktrain::Error naming the node when
// an op does not take the new shape, or when a parameter's shape would change (a linear layer reading a flattened
// map sees another width), since the weights would no longer fit.
Model resize_input(const Model& model, const std::string& input, const std::vector<int64_t>& shape);

// Kept for source compatibility with the MLP-only API.
enum class OpKind { relu, gelu };

// ---- The op registry: every op a model can use, with its attributes (list_ops(), Model::op) ----

// integer, real, flag (0 or 1), or shape (a list of dimensions, such as reshape's target shape).
enum class AttrKind { integer, real, flag, shape };

// An attribute value for Model::op: a number (for integer, real and flag attributes; true and false are 1 and 0) or a
// shape ({2, -1}).
class AttrValue {
public:
    template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T>>>
    AttrValue(T number) : m_number(static_cast<double>(number)) {}
    AttrValue(std::vector<int64_t> shape) : m_is_shape(true), m_shape(std::move(shape)) {}
    AttrValue(std::initializer_list<int64_t> shape) : AttrValue(std::vector<int64_t>(shape)) {}
    bool is_shape() const { return m_is_shape; }
    double number() const { return m_number; }
    const std::vector<int64_t>& shape() const { return m_shape; }

private:
    bool m_is_shape = false;
    double m_number = 0.0;
    std::vector<int64_t> m_shape;
};
using OpAttrs = std::map<std::string, AttrValue>;

struct OpAttrInfo {
    std::string name;
    AttrKind kind = AttrKind::integer;
    double min = 0.0, max = 0.0; // the accepted range (integer and real; flags are 0 or 1)
    bool min_open = false, max_open = false;
    // Given none, Model::op uses default_value, or the value of the attribute default_from names; else the
    // attribute is required, or (optional) left out, which has its own meaning (doc).
    std::optional<double> default_value;
    std::string default_from;
    bool required = false;
    bool optional = false;
    std::string doc;
};

struct OpInfo {
    std::string name;
    std::string doc;      // one line
    std::string category; // "dense", "vision", "activation", "elementwise", "shape", "norm", "attention", "loss", ...
    std::vector<std::string> inputs; // the inputs' names, in order: what Model::op's `inputs` hold
    std::vector<OpAttrInfo> attrs;
    bool loss = false;           // a model's one loss (its last node)
    bool inference_only = false; // no backward: models using it only run forward (e.g. cached_attention)
};

// Every op Model::op builds, in the registry's order: the one op list that the typed builders, the C API
// (vkt_model_op, vkt_op_*) and the vktrain command (`vktrain ops`, --model net:...) all read.
std::vector<OpInfo> list_ops();

class Model {
public:
    Model() = default;
    // An input "x" of `input_features` values per sample (the MLP API of earlier versions).
    explicit Model(uint32_t input_features);

    int input(const std::string& name, const std::vector<int64_t>& shape, DataType type = DataType::f32);
    int input() const; // the first input

    // Any registered op by name (list_ops()): `inputs` are value ids in the op's input order, `attrs` its attributes
    // by name; an attribute not given takes its default (OpAttrInfo), and one without a default must be given. The
    // node is named as the typed builder below would name it ("conv0", "loss"). Every typed builder is this call:
    //   m.op("conv2d", {x}, {{"out", 32}, {"kernel_h", 5}, {"pad_h", 2}})   // 5x5, padding 2 (kernel_w, pad_w follow)
    //   m.op("reshape", {x}, {{"shape", {4, -1}}})
    // Throws vktrain::Error naming the op and the problem (an unknown op or attribute, a value out of range, a wrong
    // number of inputs, shapes that do not fit).
    int op(const std::string& name, const std::vector<int>& inputs, const OpAttrs& attrs = {});

    // Applies to the last dimension: [..., in] -> [..., out].
    int linear(int x, uint32_t out_features, bool bias = true);
    // [C, H, W] -> [out_channels, OH, OW]
    int conv2d(int x, uint32_t out_channels, const Conv2dOptions& options);
    int max_pool2d(int x, const Pool2dOptions& options);
    int avg_pool2d(int x, const Pool2dOptions& options);
    // [C, H, W] -> [C, out_h, out_w], each cell the mean of rows [floor(i·H/out_h), ceil((i+1)·H/out_h)) and columns
    // likewise (PyTorch nn.AdaptiveAvgPool2d): any input size; 1×1 is global average pooling (ResNet / MobileNet
    // heads). No parameters; nodes "adaptive_pool0", ...
    int adaptive_avg_pool2d(int x, uint32_t out_h = 1, uint32_t out_w = 1);
    // x [C, H, W] times one factor per channel, s [C, 1, 1] or [C] (squeeze-excitation:
    // channel_mul(x, hardsigmoid(...pooled x...))); gradients dx = dy·s and ds = Σ_hw dy·x. Nodes "channel_mul0", ...
    int channel_mul(int x, int s);
    // Per-channel normalisation of [C, H, W] with batch statistics in training and running ones in evaluation.
    int batch_norm2d(int x, float eps = 1e-5f, float momentum = 0.1f);
    int relu(int x);
    int gelu(int x);      // exact: x * Phi(x) (PyTorch nn.GELU())
    int gelu_tanh(int x); // tanh approximation (nn.GELU(approximate="tanh"))
    int silu(int x);
    // MobileNet's activations, PyTorch's definitions and gradients (nn.ReLU6, nn.Hardswish, nn.Hardsigmoid):
    //   relu6 = min(max(0, x), 6); hardswish = x * relu6(x + 3) / 6; hardsigmoid = relu6(x + 3) / 6.
    // Nodes "relu6_0", "hardswish0", "hardsigmoid0", ...
    int relu6(int x);
    int hardswish(int x);
    int hardsigmoid(int x);
    int add(int a, int b); // same shapes (residual connections)
    int mul(int a, int b); // a * b element-wise, same shapes (SwiGLU: mul(silu(gate), up)); nodes "mul0", ...
    int dropout(int x, float p);
    int flatten(int x);                                    // [d0, d1, ...] -> [d0 * d1 * ...]
    int reshape(int x, const std::vector<int64_t>& shape); // same element count; one -1 is inferred
    // Per-sample dimensions (the batch dimension not counted): swap two, or keep [start, end) of one.
    int transpose(int x, uint32_t dim0, uint32_t dim1);
    int slice(int x, uint32_t dim, int64_t start, int64_t end);
    // LayerNorm and RMSNorm over the last dimension (any leading dimensions), statistics in fp32 (PyTorch
    // nn.LayerNorm(C, eps, elementwise_affine=affine) and nn.RMSNorm(C, eps)):
    //   layer_norm: y = (x - mean) / sqrt(var + eps) * weight + bias (biased variance; "<name>.weight" [C] = 1
    //               and "<name>.bias" [C] = 0 when affine, else no parameters); nodes "ln0", "ln1", ...
    //   rms_norm:   y = x / sqrt(mean(x^2) + eps) * weight ("<name>.weight" [C] = 1); nodes "rms0", ...
    int layer_norm(int x, float eps = 1e-5f, bool affine = true);
    int rms_norm(int x, float eps = 1e-6f);
    // ---- softmax and self-attention (issue 12) ----
    int softmax(int x); // over the last dimension (PyTorch softmax(dim=-1))
    // qkv per sample [T, 3C] in GPT-2 order (q | k | v along the last dimension, each split into `heads` heads of
    // C / heads columns) -> [T, C] with head h in columns [h * C / heads, (h + 1) * C / heads); scores scaled by
    // 1 / sqrt(C / heads); causal: position t attends to positions <= t only.
    int self_attention(int qkv, uint32_t heads, bool causal = true);
    // Rotary position embeddings (Llama's RoPE, transformers' rotate_half convention): x per sample [T, heads * D]
    // (D even) -> the same shape, each head's elements i and i + D/2 (i < D/2) at position t turned by the angle
    // a = t * theta^(-2i/D): y[i] = x[i] cos a - x[i + D/2] sin a, y[i + D/2] = x[i + D/2] cos a + x[i] sin a
    // (angles, cos and sin in fp32; theta: config.json's rope_theta). No parameters; nodes "rotary0", ...
    int rotary(int x, uint32_t heads, float theta = 10000.f);
    // Attention over separate q [T, heads * D], k and v [T, kv_heads * D] per sample (Llama's layout after its
    // q/k/v projections) -> [T, heads * D]. Grouped-query attention: query head h reads key/value head
    // h / (heads / kv_heads), as Hugging Face's repeat_kv does (kv_heads == heads: plain multi-head attention,
    // the same result as self_attention on q | k | v; kv_heads == 1: multi-query). Scores scaled by 1 / sqrt(D),
    // softmax in fp32; causal: position t attends to positions <= t only. Nodes "attention0", "attention1", ...
    int attention(int q, int k, int v, uint32_t heads, uint32_t kv_heads, bool causal = true);

    // Losses (at most one per model, and the last node): mean over all samples and positions. A model without a loss
    // can only run inference (TrainerOptions::inference_only), and predicts its outputs (see output()).
    // logits [..., classes] against integer labels shaped like logits without the last dimension.
    int cross_entropy(int logits, int labels, const CrossEntropyOptions& options = {});
    // pred against a real-valued target of the same shape.
    int mse_loss(int pred, int target);
    // The earlier API: adds an i32 input "labels" and a cross-entropy loss on `logits`.
    void softmax_cross_entropy(int logits);

    // Embeddings. embedding: ids, an i32 model input of any per-sample shape S (e.g. [T]), -> S + [dim]; parameter
    // "<name>.weight" [num_embeddings, dim]. Ids outside [0, num_embeddings) are refused before a step runs.
    int embedding(int ids, uint32_t num_embeddings, uint32_t dim);
    // x [T, C] -> y[t] = x[t] + weight[t] for t < T; parameter "<name>.weight" [max_positions, C], T <= max_positions.
    int position_embedding(int x, uint32_t max_positions);
    // logits = x · Eᵀ with E the weight [V, C] of the embedding node `embedding_node` (x's last dimension must be C;
    // no bias): weight tying. E is one parameter; its gradient is the sum of both uses. Both weights start N(0, 1)
    // (PyTorch's nn.Embedding), see set_init.
    int linear_tied(int x, int embedding_node);
    // Generation only: attention of one new position (qkv [1, 3·width], GPT-2 order) over a key/value cache of
    // max_positions rows (buffers "<name>.k" and "<name>.v"); position: an i32 model input [1]. -> [1, width].
    int cached_attention(int qkv, int position, uint32_t heads, uint32_t max_positions);

    // Gives a node another name (its parameters become "<name>.weight", ...), e.g. PyTorch module paths such as
    // "transformer.h.0.attn.c_attn"; before any set_trainable / set_weight_decay / set_init.
    void rename(int node, const std::string& name);

    // BatchNorm with frozen running statistics while the rest trains (PyTorch's bn.eval() inside model.train(), the
    // usual choice for small-batch fine-tuning): every batch_norm2d node whose name matches `pattern` (an exact node
    // name, a prefix ending in '.' such as "layer4.", or with '*' for any characters; "*" is every one) normalises
    // with its running statistics in training too, leaves them and num_batches_tracked as they are, and its
    // gradients treat them as constants (weight and bias still train unless frozen by set_trainable). frozen = false
    // undoes it. Stored as the node attribute frozen_stats: it is saved in the model file and shown by describe().
    // Throws vktrain::Error naming the pattern when it matches no batch_norm2d node.
    void freeze_batch_norm(const std::string& pattern = "*", bool frozen = true);

    // Parameter groups, by pattern: an exact name, a prefix ending in '.' ("conv0." = every parameter of conv0), or
    // with '*' for any characters ("*.bias", "h.*.attn."); a pattern no parameter matches throws. These shape the
    // Trainers built from this model afterwards: a Trainer copies the model, so set_trainable here after it was built
    // changes nothing there (use Trainer::set_trainable for a running trainer).
    void set_trainable(const std::string& name_or_prefix, bool trainable);
    void set_weight_decay(const std::string& name_or_prefix, float weight_decay);
    void set_init(const std::string& name_or_prefix, const Init& init);
    // Per-group learning rates (PyTorch param groups with their own lr): the optimizer's learning rate, after the
    // schedule, times `scale` for the parameters the pattern matches (default 1; AdamW's decoupled weight decay uses
    // the scaled rate too). Throws unless scale > 0 and finite. Saved with the model, kept by checkpoints.
    void set_learning_rate_scale(const std::string& name_or_prefix, float scale);

    // LoRA on every linear layer whose node name matches `pattern` (the parameter patterns' syntax applied to node
    // names: "transformer.h.*.attn.c_attn", "*.c_fc", "transformer.h.0." for every linear of block 0). A graph
    // transform: after each such node `<m>` come the nodes "<m>.lora_dropout" (when dropout > 0), "<m>.lora_A" and
    // "<m>.lora_B" (linear, no bias: parameters "<m>.lora_A.weight" [r, in] and "<m>.lora_B.weight" [out, r], PEFT's
    // names below "base_model.model.") and "<m>.lora" (add with alpha = alpha / r), which every former consumer of
    // <m> now reads. As PEFT's get_peft_model does, every other parameter is frozen (set_trainable afterwards to
    // train some base parameters too). Returns the adapted module names in graph order. Throws vktrain::Error for
    // r == 0, alpha not positive and finite, dropout outside [0, 1), a pattern matching no linear layer, or a layer
    // that already has LoRA; the model is unchanged then.
    std::vector<std::string> add_lora(const std::string& pattern, const LoraOptions& options);
    // The adapted layers, in graph order (empty without LoRA).
    std::vector<LoraModule> lora_modules() const;
    // The graph without add_lora's nodes: each adapted layer's consumers read the layer itself again, so the result is
    // the base architecture (gpt_options and llama_options take it). Parameter groups naming adapter tensors, and
    // every trainable flag (add_lora's freezing), are dropped: the result trains whole. merge_lora_parameters gives
    // its weights. A model without LoRA comes back as it is.
    Model without_lora() const;

    // input -> [linear -> act] * hidden -> linear(classes) -> cross-entropy (inputs "x" and "labels").
    static Model mlp(uint32_t input_features, const std::vector<uint32_t>& hidden, uint32_t classes,
                     OpKind activation = OpKind::relu);
    // The CNN recipe on 1x28x28 images: conv(1,32,5,p2)+ReLU+maxpool2, conv(32,64,5,p2)+ReLU+maxpool2, flatten,
    // linear(3136,1024)+ReLU, linear(1024,classes), cross-entropy.
    static Model cnn(uint32_t classes = 10);
    // A GPT (pre-LayerNorm decoder, nanoGPT layout and parameter names) over token ids: inputs "ids" and "targets"
    // (i32, [context] each), next-token cross-entropy over every position. See GptOptions.
    static Model gpt(const GptOptions& options);
    // The same GPT for generation, one token per forward pass: inputs "ids" and "pos" (i32, [1] each: the new token
    // and its position), a key/value cache per layer (buffers "transformer.h.<l>.attn.cache.k" / ".v", fp32
    // [context, width], not persistent: never saved, zero-filled by Trainer::load) and the same parameter names as
    // gpt(), so Trainer::load reads gpt()'s weights files unchanged. No loss: its output "logits" (the default, what
    // predict() gives) is the next-token logits [1, vocab]. Compile it with batch size 1 and inference_only;
    // positions must be fed in order 0, 1, 2, ... (a position overwrites that row of every cache).
    static Model gpt_decoder(const GptOptions& options);
    // Hugging Face's LlamaForCausalLM over token ids: inputs "ids" and "targets" (i32, [sequence or context] each),
    // next-token cross-entropy over every position. See LlamaOptions.
    static Model llama(const LlamaOptions& options);
    // Generation for llama(): inputs "ids" and "pos" (i32 [1]: one token and its position, 0-based), the rotary
    // embeddings and grouped-query attention of each layer in one cached op (buffers
    // "model.layers.<l>.self_attn.cache.k" / ".v", fp32 [context, kv_heads · head size], not persistent), the same
    // parameter names as llama(), output "logits" [1, vocab]. Batch size 1, inference_only, positions fed in order.
    static Model llama_decoder(const LlamaOptions& options);
    // torchvision's ResNet-18/34/50/101/152 with its state_dict names. See ResnetOptions.
    static Model resnet(const ResnetOptions& options);
    // torchvision's MobileNetV2 and V3 small / large (MobilenetOptions::variant), with their state_dict names.
    static Model mobilenet(const MobilenetOptions& options);

    // Outputs: values that Trainer::predict reads back by name (several may be marked, at any time, the loss's
    // operands included). Names follow the node name rule and are unique among outputs; an output is a real (f32)
    // value, not the loss itself. Recorded by to_json, so a weights file keeps them.
    void output(int value, const std::string& name);
    const std::vector<std::pair<std::string, int>>& outputs() const { return m_outputs; } // declaration order
    // The value predict() reads without a name, the default output: the loss's prediction operand (logits) when the
    // model has a loss, else its only output. Throws vktrain::Error when there is none (no loss and no output, or no
    // loss and several outputs).
    int output() const;
    // The value of the output named `name` ("": the default output); throws naming the outputs there are.
    int output(const std::string& name) const;
    std::vector<int64_t> shape(int value) const; // a value's per-sample shape (the batch dimension not counted)

    const std::vector<Node>& nodes() const { return m_nodes; }
    // Nodes added from now on belong to block `block` (Node::block; -1: none). The built-in GPT and Llama builders
    // put each transformer layer in a block of its own; a block must be a contiguous run of nodes whose outputs the
    // rest of the graph reads only through values that also leave the forward pass (the residual stream).
    void set_block(int block);
    std::vector<int> inputs() const;    // input nodes in declaration order
    int loss() const { return m_loss; } // -1: the model has no loss
    uint64_t input_elements(int input) const;
    uint32_t input_features() const; // elements per sample of the first input
    uint32_t classes() const;        // cross-entropy models: the logits' last dimension
    // Trainable and frozen parameters, then buffers, in declaration order.
    std::vector<ParameterInfo> parameters() const;
    uint64_t parameter_count() const; // elements of all parameters (not buffers)
    // One line: MLPs as before ("784-256(relu)-128(relu)-10"), other graphs op by op.
    std::string describe() const;

    // The whole architecture (nodes, attributes, parameter groups) as JSON, and back: a weights file records
    // it so an application can load a trained model without rebuilding it in code.
    std::string to_json() const;
    static Model from_json(const std::string& json); // throws vktrain::Error naming the problem

private:
    int add_node(Node node, const char* what);
    void check_value(int x, const char* op) const;
    struct Override {
        std::string pattern;
        int what; // 0 trainable, 1 weight decay, 2 init, 3 learning-rate scale
        bool trainable = true;
        float weight_decay = 0.0f;
        Init init;
        float lr_scale = 1.0f;
    };
    void add_override(Override o);
    void check_pattern(const std::string& pattern, const char* what) const;
    // The names of a node's parameters and buffers ("<node name>.<suffix>").
    std::vector<std::string> parameter_names(const Node& node) const;

    std::vector<Node> m_nodes;
    std::map<std::string, int> m_counters;
    std::vector<Override> m_overrides;
    std::vector<std::pair<std::string, int>> m_outputs;
    int m_loss = -1;
    int m_block = -1; // set_block
    // Indexes kept up to date as nodes are added, renamed and overridden, so that building a model of n nodes and
    // n parameter groups (a deep GPT sets one per parameter) takes O(n log n), not O(n^2) or worse:
    std::unordered_map<std::string, int> m_node_index;                     // node name -> node
    std::set<std::string> m_parameter_names;                               // every parameter and buffer name, sorted
    std::unordered_map<std::string, std::vector<size_t>> m_override_index; // pattern -> its overrides, in order
    std::vector<size_t> m_glob_overrides;                                  // overrides whose pattern has a '*'
};

} // namespace vktrain
