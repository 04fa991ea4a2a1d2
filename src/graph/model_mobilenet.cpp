// Model::mobilenet and mobilenet_options: torchvision's MobileNetV2 and MobileNetV3 (small, large) with their
// state_dict names (import and export in
// src/import/torchvision.cpp are then name and shape checks). The graph follows torchvision.models.mobilenetv2
// (0.14) module by module, in registration order, so a file's tensors come out in state_dict() order. The depthwise
// convolutions are grouped conv2d (groups = channels).
#include <algorithm>
#include <cmath>
#include <map>
#include <iterator>
#include <string>

#include "common/check.hpp"
#include "vktrain/model.hpp"

namespace vktrain {

namespace {

int named(Model& m, int node, const std::string& name) {
    m.rename(node, name);
    return node;
}

// torchvision's Conv2dNormActivation: "<p>.0" convolution without bias, "<p>.1" BatchNorm, "<p>.2" the activation
// (ReLU6 here; none when relu6 is false, for the projection, which torchvision builds as bare Conv2d + BatchNorm
// named "<p>" and "<q>": see inverted_residual).
int conv_bn(Model& m, int x, uint32_t out, uint32_t kernel, uint32_t stride, uint32_t groups, const std::string& conv,
            const std::string& bn, float eps = 1e-5f, float momentum = 0.1f) {
    Conv2dOptions o = Conv2dOptions::square(kernel, stride, (kernel - 1) / 2);
    o.groups = groups;
    o.bias = false;
    const int c = named(m, m.conv2d(x, out, o), conv);
    return named(m, m.batch_norm2d(c, eps, momentum), bn);
}

int conv_bn_relu6(Model& m, int x, uint32_t out, uint32_t kernel, uint32_t stride, uint32_t groups,
                  const std::string& p) {
    return named(m, m.relu6(conv_bn(m, x, out, kernel, stride, groups, p + ".0", p + ".1")), p + ".2");
}

Model mobilenet_v2(const MobilenetOptions& o) {
    Model m;
    int x = m.input("x", {3, int64_t(o.height), int64_t(o.width)});
    x = conv_bn_relu6(m, x, 32, 3, 2, 1, "features.0");
    // torchvision's inverted_residual_setting: expansion t, output channels c, blocks n, first stride s.
    const uint32_t setting[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                    {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    uint32_t channels = 32, index = 1;
    for (const auto& s : setting) {
        for (uint32_t i = 0; i < s[2]; ++i, ++index) {
            const std::string p = "features." + std::to_string(index) + ".conv.";
            const uint32_t stride = i == 0 ? s[3] : 1;
            const uint32_t hidden = channels * s[0];
            int y = x;
            uint32_t layer = 0;
            if (s[0] != 1) y = conv_bn_relu6(m, y, hidden, 1, 1, 1, p + std::to_string(layer++));
            y = conv_bn_relu6(m, y, hidden, 3, stride, hidden, p + std::to_string(layer++));
            y = conv_bn(m, y, s[1], 1, 1, 1, p + std::to_string(layer), p + std::to_string(layer + 1));
            if (stride == 1 && channels == s[1])
                y = named(m, m.add(x, y), "features." + std::to_string(index) + ".add");
            x = y;
            channels = s[1];
        }
    }
    x = conv_bn_relu6(m, x, 1280, 1, 1, 1, "features." + std::to_string(index));
    x = named(m, m.adaptive_avg_pool2d(x, 1, 1), "avgpool");
    x = named(m, m.flatten(x), "flatten");
    if (o.dropout > 0.0f) x = named(m, m.dropout(x, o.dropout), "classifier.0");
    const int fc = named(m, m.linear(x, o.classes), "classifier.1");
    m.cross_entropy(fc, m.input("labels", {}, DataType::i32));
    // MobileNetV2.__init__: kaiming_normal_(mode="fan_out") for convolutions (fan_out = out · kh · kw, groups not
    // divided out, as PyTorch computes it), BatchNorm 1 and 0, the classifier N(0, 0.01) and a zero bias.
    for (const Node& n : m.nodes()) {
        if (n.op != "conv2d") continue;
        const double fan_out = n.attrs.at("out") * n.attrs.at("kernel_h") * n.attrs.at("kernel_w");
        m.set_init(n.name + ".weight", Init{InitKind::normal, 0.0f, float(std::sqrt(2.0 / fan_out))});
    }
    m.set_init("classifier.1.weight", Init{InitKind::normal, 0.0f, 0.01f});
    m.set_init("classifier.1.bias", Init{InitKind::zeros, 0.0f, 0.0f});
    return m;
}

// torchvision's _make_divisible(v, 8): the nearest multiple of 8, at least 8, not below 90% of v.
uint32_t make_divisible(uint32_t v) {
    uint32_t d = std::max(8u, (v + 4) / 8 * 8);
    if (double(d) < 0.9 * double(v)) d += 8;
    return d;
}

// MobileNetV3's initialisation (as V2's, plus zero convolution biases, the SE layers').
void init_mobilenet(Model& m, const std::string& last_linear, const std::string& first_linear) {
    for (const Node& n : m.nodes()) {
        if (n.op != "conv2d") continue;
        const double fan_out = n.attrs.at("out") * n.attrs.at("kernel_h") * n.attrs.at("kernel_w");
        m.set_init(n.name + ".weight", Init{InitKind::normal, 0.0f, float(std::sqrt(2.0 / fan_out))});
        if (n.attrs.count("bias") != 0 && n.attrs.at("bias") != 0.0)
            m.set_init(n.name + ".bias", Init{InitKind::zeros, 0.0f, 0.0f});
    }
    for (const std::string& l : {first_linear, last_linear}) {
        if (l.empty()) continue;
        m.set_init(l + ".weight", Init{InitKind::normal, 0.0f, 0.01f});
        m.set_init(l + ".bias", Init{InitKind::zeros, 0.0f, 0.0f});
    }
}

Model mobilenet_v3(const MobilenetOptions& o) {
    const bool large = o.variant == MobilenetVariant::v3_large;
    // torchvision's _mobilenet_v3_conf: input, kernel, expanded, output channels, squeeze-excitation, hardswish
    // (else ReLU), stride.
    struct Block {
        uint32_t in, kernel, expanded, out;
        bool se, hs;
        uint32_t stride;
    };
    static const Block large_blocks[] = {
        {16, 3, 16, 16, false, false, 1},  {16, 3, 64, 24, false, false, 2},  {24, 3, 72, 24, false, false, 1},
        {24, 5, 72, 40, true, false, 2},   {40, 5, 120, 40, true, false, 1},  {40, 5, 120, 40, true, false, 1},
        {40, 3, 240, 80, false, true, 2},  {80, 3, 200, 80, false, true, 1},  {80, 3, 184, 80, false, true, 1},
        {80, 3, 184, 80, false, true, 1},  {80, 3, 480, 112, true, true, 1},  {112, 3, 672, 112, true, true, 1},
        {112, 5, 672, 160, true, true, 2}, {160, 5, 960, 160, true, true, 1}, {160, 5, 960, 160, true, true, 1},
    };
    static const Block small_blocks[] = {
        {16, 3, 16, 16, true, false, 2}, {16, 3, 72, 24, false, false, 2}, {24, 3, 88, 24, false, false, 1},
        {24, 5, 96, 40, true, true, 2},  {40, 5, 240, 40, true, true, 1},  {40, 5, 240, 40, true, true, 1},
        {40, 5, 120, 48, true, true, 1}, {48, 5, 144, 48, true, true, 1},  {48, 5, 288, 96, true, true, 2},
        {96, 5, 576, 96, true, true, 1}, {96, 5, 576, 96, true, true, 1},
    };
    const Block* blocks = large ? large_blocks : small_blocks;
    const size_t count = large ? std::size(large_blocks) : std::size(small_blocks);
    const float eps = 1e-3f, momentum = 0.01f; // partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
    Model m;
    int x = m.input("x", {3, int64_t(o.height), int64_t(o.width)});
    x = named(m, m.hardswish(conv_bn(m, x, 16, 3, 2, 1, "features.0.0", "features.0.1", eps, momentum)),
              "features.0.2");
    for (size_t i = 0; i < count; ++i) {
        const Block& b = blocks[i];
        const std::string f = "features." + std::to_string(i + 1);
        const std::string p = f + ".block.";
        const auto act = [&](int v, const std::string& name) {
            return named(m, b.hs ? m.hardswish(v) : m.relu(v), name);
        };
        int y = x;
        uint32_t layer = 0;
        if (b.expanded != b.in) {
            const std::string q = p + std::to_string(layer++);
            y = act(conv_bn(m, y, b.expanded, 1, 1, 1, q + ".0", q + ".1", eps, momentum), q + ".2");
        }
        {
            const std::string q = p + std::to_string(layer++);
            y = act(conv_bn(m, y, b.expanded, b.kernel, b.stride, b.expanded, q + ".0", q + ".1", eps, momentum),
                    q + ".2");
        }
        if (b.se) { // torchvision.ops.SqueezeExcitation with scale_activation=Hardsigmoid
            const std::string q = p + std::to_string(layer++);
            Conv2dOptions one = Conv2dOptions::square(1);
            int s = named(m, m.adaptive_avg_pool2d(y, 1, 1), q + ".avgpool");
            s = named(m, m.conv2d(s, make_divisible(b.expanded / 4), one), q + ".fc1");
            s = named(m, m.relu(s), q + ".activation");
            s = named(m, m.conv2d(s, b.expanded, one), q + ".fc2");
            s = named(m, m.hardsigmoid(s), q + ".scale_activation");
            y = named(m, m.channel_mul(y, s), q + ".mul");
        }
        const std::string q = p + std::to_string(layer);
        y = conv_bn(m, y, b.out, 1, 1, 1, q + ".0", q + ".1", eps, momentum);
        if (b.stride == 1 && b.in == b.out) y = named(m, m.add(y, x), f + ".add");
        x = y;
    }
    const uint32_t last_in = blocks[count - 1].out, last_out = 6 * last_in;
    const std::string last = "features." + std::to_string(count + 1);
    x = named(m, m.hardswish(conv_bn(m, x, last_out, 1, 1, 1, last + ".0", last + ".1", eps, momentum)), last + ".2");
    x = named(m, m.adaptive_avg_pool2d(x, 1, 1), "avgpool");
    x = named(m, m.flatten(x), "flatten");
    x = named(m, m.linear(x, large ? 1280 : 1024), "classifier.0");
    x = named(m, m.hardswish(x), "classifier.1");
    if (o.dropout > 0.0f) x = named(m, m.dropout(x, o.dropout), "classifier.2");
    const int fc = named(m, m.linear(x, o.classes), "classifier.3");
    m.cross_entropy(fc, m.input("labels", {}, DataType::i32));
    init_mobilenet(m, "classifier.3", "classifier.0");
    return m;
}

// A node's attributes that make the architecture: frozen_stats (Model::freeze_batch_norm) is a training choice, so a
// fine-tuned model with frozen BatchNorm is still the torchvision architecture it was.
std::map<std::string, double> architecture_attrs(const Node& n) {
    std::map<std::string, double> a = n.attrs;
    a.erase("frozen_stats");
    return a;
}

} // namespace

Model Model::mobilenet(const MobilenetOptions& o) {
    VKT_CHECK(o.classes >= 1, "mobilenet: classes must be at least 1");
    VKT_CHECK(o.height >= 1 && o.width >= 1, "mobilenet: the input size must be at least 1x1");
    VKT_CHECK(o.dropout >= 0.0f && o.dropout < 1.0f, "mobilenet: dropout must be in [0, 1), got ", o.dropout);
    return o.variant == MobilenetVariant::v2 ? mobilenet_v2(o) : mobilenet_v3(o);
}

MobilenetOptions mobilenet_options(const Model& model) {
    const char* not_mobilenet = "not a MobileNet of Model::mobilenet's shape";
    MobilenetOptions o;
    bool have_input = false, have_fc = false;
    o.dropout = 0.0f;
    // V2 ends its features at features.18, V3 large at features.16, V3 small at features.12; V3's blocks are
    // "features.N.block.*" and its classifier is Linear, Hardswish, Dropout, Linear.
    bool v3 = false, large = false;
    for (const Node& n : model.nodes()) {
        if (n.name.find(".block.") != std::string::npos) v3 = true;
        if (n.name == "features.16.0") large = true;
    }
    o.variant = !v3 ? MobilenetVariant::v2 : large ? MobilenetVariant::v3_large : MobilenetVariant::v3_small;
    const std::string head = v3 ? "classifier.3" : "classifier.1", drop = v3 ? "classifier.2" : "classifier.0";
    for (const Node& n : model.nodes()) {
        if (n.op == "input" && n.name == "x" && n.shape.size() == 3) {
            o.height = uint32_t(n.shape[1]);
            o.width = uint32_t(n.shape[2]);
            have_input = true;
        } else if (n.name == head && n.op == "linear") {
            o.classes = uint32_t(n.attrs.count("out") ? n.attrs.at("out") : 0);
            have_fc = true;
        } else if (n.name == drop && n.op == "dropout") {
            o.dropout = float(n.attrs.count("p") ? n.attrs.at("p") : 0.0);
        }
    }
    VKT_CHECK(have_input && have_fc, not_mobilenet, ": it lacks the input \"x\" [3, H, W] or the classifier \"", head,
              "\"");
    Model expected;
    try {
        expected = Model::mobilenet(o);
    } catch (const Error& e) {
        VKT_FAIL(not_mobilenet, " (", e.what(), ")");
    }
    const std::vector<Node>& have = model.nodes();
    const std::vector<Node>& want = expected.nodes();
    VKT_CHECK(have.size() == want.size(), not_mobilenet, ": it has ", have.size(),
              " nodes, the MobileNet of its options ", want.size());
    for (size_t i = 0; i < have.size(); ++i) {
        const Node& a = have[i];
        const Node& b = want[i];
        VKT_CHECK(a.op == b.op && a.name == b.name && a.inputs == b.inputs && a.shape == b.shape && a.type == b.type &&
                      architecture_attrs(a) == b.attrs && a.shape_attr == b.shape_attr,
                  not_mobilenet, ": node ", i, " ('", a.name, "', ", a.op,
                  ") differs from the MobileNet of its options");
    }
    return o;
}

} // namespace vktrain
