// Model::mobilenet and mobilenet_options: torchvision's MobileNetV2 with its state_dict names (import and export in
// src/import/torchvision.cpp are then name and shape checks). The graph follows torchvision.models.mobilenetv2
// (0.14) module by module, in registration order, so a file's tensors come out in state_dict() order. The depthwise
// convolutions are grouped conv2d (groups = channels).
#include <algorithm>
#include <cmath>

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
            const std::string& bn) {
    Conv2dOptions o = Conv2dOptions::square(kernel, stride, (kernel - 1) / 2);
    o.groups = groups;
    o.bias = false;
    const int c = named(m, m.conv2d(x, out, o), conv);
    return named(m, m.batch_norm2d(c, 1e-5f, 0.1f), bn);
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

} // namespace

Model Model::mobilenet(const MobilenetOptions& o) {
    VKT_CHECK(o.classes >= 1, "mobilenet: classes must be at least 1");
    VKT_CHECK(o.height >= 1 && o.width >= 1, "mobilenet: the input size must be at least 1x1");
    VKT_CHECK(o.dropout >= 0.0f && o.dropout < 1.0f, "mobilenet: dropout must be in [0, 1), got ", o.dropout);
    VKT_CHECK(o.variant == MobilenetVariant::v2, "mobilenet: MobileNetV3 is not built yet (only v2)");
    return mobilenet_v2(o);
}

MobilenetOptions mobilenet_options(const Model& model) {
    const char* not_mobilenet = "not a MobileNet of Model::mobilenet's shape";
    MobilenetOptions o;
    bool have_input = false, have_fc = false;
    o.dropout = 0.0f;
    for (const Node& n : model.nodes()) {
        if (n.op == "input" && n.name == "x" && n.shape.size() == 3) {
            o.height = uint32_t(n.shape[1]);
            o.width = uint32_t(n.shape[2]);
            have_input = true;
        } else if (n.name == "classifier.1" && n.op == "linear") {
            o.classes = uint32_t(n.attrs.count("out") ? n.attrs.at("out") : 0);
            have_fc = true;
        } else if (n.name == "classifier.0" && n.op == "dropout") {
            o.dropout = float(n.attrs.count("p") ? n.attrs.at("p") : 0.0);
        }
    }
    VKT_CHECK(have_input && have_fc, not_mobilenet,
              ": it lacks the input \"x\" [3, H, W] or the classifier \"classifier.1\"");
    Model expected;
    try {
        expected = Model::mobilenet(o);
    } catch (const Error& e) {
        VKT_FAIL(not_mobilenet, " (", e.what(), ")");
    }
    const std::vector<Node>& have = model.nodes();
    const std::vector<Node>& want = expected.nodes();
    VKT_CHECK(have.size() == want.size(), not_mobilenet, ": it has ", have.size(), " nodes, the MobileNetV2 of its ",
              "options ", want.size());
    for (size_t i = 0; i < have.size(); ++i) {
        const Node& a = have[i];
        const Node& b = want[i];
        VKT_CHECK(a.op == b.op && a.name == b.name && a.inputs == b.inputs && a.shape == b.shape && a.type == b.type &&
                      a.attrs == b.attrs && a.shape_attr == b.shape_attr,
                  not_mobilenet, ": node ", i, " ('", a.name, "', ", a.op,
                  ") differs from the MobileNetV2 of its options");
    }
    return o;
}

} // namespace vktrain
