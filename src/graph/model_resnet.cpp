// Model::resnet and resnet_options: torchvision's ResNet with its state_dict names, so that importing a torchvision
// checkpoint (src/import/torchvision.cpp) is a name and shape check, and exporting one writes the names back as they
// are. The graph follows torchvision.models.resnet (0.14) module by module, in its registration order, so the file's
// tensors come out in state_dict() order.
#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "common/check.hpp"
#include "vktrain/model.hpp"

namespace vktrain {

namespace {

struct Depth {
    uint32_t depth;
    bool bottleneck;
    uint32_t blocks[4];
};

constexpr Depth depths[] = {
    {18, false, {2, 2, 2, 2}},  {34, false, {3, 4, 6, 3}},  {50, true, {3, 4, 6, 3}},
    {101, true, {3, 4, 23, 3}}, {152, true, {3, 8, 36, 3}},
};

const Depth& depth_of(uint32_t depth) {
    for (const Depth& d : depths)
        if (d.depth == depth) return d;
    VKT_FAIL("resnet: depth ", depth, " is not one of torchvision's (18, 34, 50, 101, 152)");
}

// conv -> BatchNorm, named as torchvision's modules; the convolution has no bias (BatchNorm follows).
int conv_bn(Model& m, int x, uint32_t out, uint32_t kernel, uint32_t stride, const std::string& conv,
            const std::string& bn) {
    Conv2dOptions o = Conv2dOptions::square(kernel, stride, kernel / 2);
    o.bias = false;
    const int c = m.conv2d(x, out, o);
    m.rename(c, conv);
    const int b = m.batch_norm2d(c, 1e-5f, 0.1f);
    m.rename(b, bn);
    return b;
}

int named(Model& m, int node, const std::string& name) {
    m.rename(node, name);
    return node;
}

// A node's attributes that make the architecture: frozen_stats (Model::freeze_batch_norm) is a training choice, so a
// fine-tuned model with frozen BatchNorm is still the torchvision architecture it was.
std::map<std::string, double> architecture_attrs(const Node& n) {
    std::map<std::string, double> a = n.attrs;
    a.erase("frozen_stats");
    return a;
}

} // namespace

Model Model::resnet(const ResnetOptions& o) {
    const Depth& d = depth_of(o.depth);
    VKT_CHECK(o.classes >= 1, "resnet: classes must be at least 1");
    VKT_CHECK(o.height >= 1 && o.width >= 1, "resnet: the input size must be at least 1x1");
    Model m;
    int x = m.input("x", {3, int64_t(o.height), int64_t(o.width)});
    x = conv_bn(m, x, 64, 7, 2, "conv1", "bn1");
    x = named(m, m.relu(x), "relu");
    x = named(m, m.max_pool2d(x, Pool2dOptions::square(3, 2, 1)), "maxpool");
    const uint32_t expansion = d.bottleneck ? 4 : 1;
    uint32_t channels = 64;
    for (uint32_t stage = 0; stage < 4; ++stage) {
        const uint32_t planes = 64u << stage;
        for (uint32_t b = 0; b < d.blocks[stage]; ++b) {
            const std::string p = "layer" + std::to_string(stage + 1) + "." + std::to_string(b) + ".";
            const uint32_t stride = stage > 0 && b == 0 ? 2 : 1;
            int y = 0;
            if (d.bottleneck) {
                y = named(m, m.relu(conv_bn(m, x, planes, 1, 1, p + "conv1", p + "bn1")), p + "relu1");
                y = named(m, m.relu(conv_bn(m, y, planes, 3, stride, p + "conv2", p + "bn2")), p + "relu2");
                y = conv_bn(m, y, planes * expansion, 1, 1, p + "conv3", p + "bn3");
            } else {
                y = named(m, m.relu(conv_bn(m, x, planes, 3, stride, p + "conv1", p + "bn1")), p + "relu1");
                y = conv_bn(m, y, planes, 3, 1, p + "conv2", p + "bn2");
            }
            int shortcut = x;
            if (stride != 1 || channels != planes * expansion)
                shortcut = conv_bn(m, x, planes * expansion, 1, stride, p + "downsample.0", p + "downsample.1");
            x = named(m, m.relu(named(m, m.add(y, shortcut), p + "add")), p + "relu");
            channels = planes * expansion;
        }
    }
    x = named(m, m.adaptive_avg_pool2d(x, 1, 1), "avgpool");
    x = named(m, m.flatten(x), "flatten");
    x = named(m, m.linear(x, o.classes), "fc");
    m.cross_entropy(x, m.input("labels", {}, DataType::i32));
    // torchvision's ResNet.__init__: kaiming_normal_(mode="fan_out", nonlinearity="relu") for every convolution.
    for (const Node& n : m.nodes()) {
        if (n.op != "conv2d") continue;
        const double fan_out = n.attrs.at("out") * n.attrs.at("kernel_h") * n.attrs.at("kernel_w");
        m.set_init(n.name + ".weight", Init{InitKind::normal, 0.0f, float(std::sqrt(2.0 / fan_out))});
    }
    return m;
}

ResnetOptions resnet_options(const Model& model) {
    const char* not_resnet = "not a ResNet of Model::resnet's shape";
    ResnetOptions o;
    uint32_t blocks[4] = {0, 0, 0, 0};
    bool bottleneck = false, have_fc = false, have_input = false;
    for (const Node& n : model.nodes()) {
        if (n.op == "input" && n.name == "x" && n.shape.size() == 3) {
            o.height = uint32_t(n.shape[1]);
            o.width = uint32_t(n.shape[2]);
            have_input = true;
        } else if (n.name == "fc" && n.op == "linear") {
            o.classes = uint32_t(n.attrs.count("out") ? n.attrs.at("out") : 0);
            have_fc = true;
        } else if (n.name.size() == 14 && n.name.compare(0, 5, "layer") == 0 &&
                   n.name.compare(8, 6, ".conv1") == 0) { // "layerS.B.conv1" with one-digit B
            const int stage = n.name[5] - '1';
            if (stage >= 0 && stage < 4) ++blocks[stage];
        } else if (n.name.size() == 15 && n.name.compare(0, 5, "layer") == 0 &&
                   n.name.compare(9, 6, ".conv1") == 0) { // two-digit B
            const int stage = n.name[5] - '1';
            if (stage >= 0 && stage < 4) ++blocks[stage];
        } else if (n.name == "layer1.0.conv3") {
            bottleneck = true;
        }
    }
    VKT_CHECK(have_input && have_fc, not_resnet, ": it lacks the input \"x\" [3, H, W] or the head \"fc\"");
    o.depth = 0;
    for (const Depth& d : depths)
        if (d.bottleneck == bottleneck && std::equal(blocks, blocks + 4, d.blocks)) o.depth = d.depth;
    VKT_CHECK(o.depth != 0, not_resnet, ": its stages have ", blocks[0], ", ", blocks[1], ", ", blocks[2], " and ",
              blocks[3], bottleneck ? " Bottlenecks" : " BasicBlocks", ", which no torchvision ResNet has");
    Model expected;
    try {
        expected = Model::resnet(o);
    } catch (const Error& e) {
        VKT_FAIL(not_resnet, " (", e.what(), ")");
    }
    const std::vector<Node>& have = model.nodes();
    const std::vector<Node>& want = expected.nodes();
    VKT_CHECK(have.size() == want.size(), not_resnet, ": it has ", have.size(), " nodes, the ResNet-", o.depth,
              " of its options ", want.size());
    for (size_t i = 0; i < have.size(); ++i) {
        const Node& a = have[i];
        const Node& b = want[i];
        VKT_CHECK(a.op == b.op && a.name == b.name && a.inputs == b.inputs && a.shape == b.shape && a.type == b.type &&
                      architecture_attrs(a) == b.attrs && a.shape_attr == b.shape_attr,
                  not_resnet, ": node ", i, " ('", a.name, "', ", a.op, ") differs from the ResNet-", o.depth,
                  " of its options");
    }
    return o;
}

} // namespace vktrain
