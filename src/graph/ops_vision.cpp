// Vision ops on NCHW values: conv2d (implicit GEMM on the GEMM paths), max and average pooling, and batch
// normalisation with fp32 statistics.
#include "common/check.hpp"
#include "graph/autodiff.hpp"
#include "graph/exec.hpp"
#include "graph/registry.hpp"
#include "kernels/conv.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/norm.hpp"
#include "kernels/pool.hpp"

namespace vktrain::graph {

namespace {

uint32_t u32(int64_t v) {
    VKT_CHECK(v >= 0 && v < (int64_t(1) << 32), "a dimension of ", v, " exceeds 2^32");
    return uint32_t(v);
}

void expect_chw(const Node& n, const Node& in) {
    VKT_CHECK(in.shape.size() == 3, n.op, " '", n.name, "': input '", in.name, "' is ", shape_text(in.shape),
              "; expected [channels, height, width] per sample");
}

// The window attributes convolution and pooling share (declared by window_attrs).
struct Window {
    uint32_t kh, kw, stride_h, stride_w, pad_h, pad_w;
};
template <typename N>
Window window_of(const N& n) {
    const auto u = [&](const char* key) { return attr<uint32_t>(n, key); };
    return {u("kernel_h"), u("kernel_w"), u("stride_h"), u("stride_w"), u("pad_h"), u("pad_w")};
}

// A missing _w attribute takes its _h one (Model::op("max_pool2d", {x}, {{"kernel_h", 3}}) is a 3x3 window with
// stride 3); a convolution's stride defaults to 1, a pooling's to its kernel height (PyTorch's defaults for square
// windows).
std::vector<AttrSpec> window_attrs(double kernel, bool pool) {
    AttrSpec stride_h = size_attr("stride_h", "vertical stride");
    stride_h = pool ? stride_h.or_same_as("kernel_h") : stride_h.or_default(1);
    return {size_attr("kernel_h", "kernel height").or_default(kernel),
            size_attr("kernel_w", "kernel width").or_same_as("kernel_h"),
            stride_h,
            size_attr("stride_w", "horizontal stride").or_same_as("stride_h"),
            count_attr("pad_h", pool
                                    ? "implicit padding at the top and bottom (-inf for max, excluded from the average)"
                                    : "zero padding at the top and bottom")
                .or_default(0),
            count_attr("pad_w", "padding at the left and right").or_same_as("pad_h")};
}

// ---- conv2d ----

template <typename N>
kernels::Conv2dShape conv_shape(const N& a, const Shape& x_chw, int64_t batch) {
    kernels::Conv2dShape s;
    s.n = u32(batch);
    s.c_in = u32(x_chw[0]);
    s.h = u32(x_chw[1]);
    s.w = u32(x_chw[2]);
    s.c_out = attr<uint32_t>(a, "out");
    const Window w = window_of(a);
    s.kh = w.kh;
    s.kw = w.kw;
    s.stride_h = w.stride_h;
    s.stride_w = w.stride_w;
    s.pad_h = w.pad_h;
    s.pad_w = w.pad_w;
    s.dil_h = attr<uint32_t>(a, "dil_h");
    s.dil_w = attr<uint32_t>(a, "dil_w");
    s.groups = attr<uint32_t>(a, "groups");
    return s;
}

// The convolution of a node: the input is in[0] for the forward node, and the forward input's shape is kept in
// the attributes of backward nodes (x_c, x_h, x_w).
kernels::Conv2dShape conv_of(const Exec& e, const IrNode& n) {
    const Shape chw{attr<int64_t>(n, "x_c"), attr<int64_t>(n, "x_h"), attr<int64_t>(n, "x_w")};
    return conv_shape(n, chw, e.ir().batch);
}

void declare(Exec& e, const IrNode& n, kernels::ConvDirection d, int out) {
    kernels::ConvProblem p;
    p.direction = d;
    p.shape = conv_of(e, n);
    p.out = e.dtype(out);
    e.declare_conv(n.label, p);
}

OpDef conv2d() {
    OpDef d;
    d.name = "conv2d";
    d.is_public = true;
    d.doc = "2-D convolution of [C, H, W] -> [out, OH, OW] (PyTorch nn.Conv2d; weight [out, C/groups, kh, kw])";
    d.category = "vision";
    d.inputs = {"x"};
    d.node_prefix = "conv";
    d.summary = "conv2d{out}";
    d.attrs = {size_attr("out", "output channels")};
    for (const AttrSpec& a : window_attrs(3, false)) d.attrs.push_back(a);
    d.attrs.push_back(size_attr("dil_h", "vertical dilation").or_default(1));
    d.attrs.push_back(size_attr("dil_w", "horizontal dilation").or_same_as("dil_h"));
    d.attrs.push_back(size_attr("groups", "channel groups (C and out are multiples of it)").or_default(1));
    d.attrs.push_back(flag_attr("bias", "add a bias per output channel").or_default(1));
    for (const char* x : {"x_c", "x_h", "x_w"})
        d.attrs.push_back(size_attr(x, "the input's channels, height, width (for backward nodes)").set_by_lowering());
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 1);
        expect_real(n, *in[0]);
        expect_chw(n, *in[0]);
        kernels::Conv2dShape s = conv_shape(n, in[0]->shape, 1);
        try {
            s.validate();
        } catch (const Error& e) {
            throw Error("conv2d '" + n.name + "' on " + shape_text(in[0]->shape) + ": " + e.what());
        }
        return Shape{int64_t(s.c_out), int64_t(s.out_h()), int64_t(s.out_w())};
    };
    d.params = [](const Node& n, const std::vector<const Node*>& in) {
        const auto out = attr<int64_t>(n, "out"), groups = attr<int64_t>(n, "groups");
        const auto kh = attr<int64_t>(n, "kernel_h"), kw = attr<int64_t>(n, "kernel_w");
        const int64_t per_group = in[0]->shape[0] / groups;
        const auto fan_in = uint32_t(per_group * kh * kw);
        std::vector<ParamDecl> p{{"weight", {out, per_group, kh, kw}, fan_in}};
        if (attr<bool>(n, "bias")) p.push_back({"bias", {out}, fan_in});
        return p;
    };
    d.lower = [](Ir& ir, IrNode& n) {
        const Shape& x = ir.values[size_t(n.in[0])].shape; // [N, C, H, W]
        n.attrs["x_c"] = double(x[1]);
        n.attrs["x_h"] = double(x[2]);
        n.attrs["x_w"] = double(x[3]);
    };
    d.sites = [](Exec& e, const IrNode& n) { declare(e, n, kernels::ConvDirection::forward, n.out[0]); };
    d.record = [](Exec& e, const IrNode& n) {
        const kernels::Conv2dShape s = conv_of(e, n);
        const kernels::MatRef y = e.batch(n.out[0]);
        e.conv(n.label, kernels::ConvDirection::forward, s, e.batch(n.in[0]),
               e.mat(n.in[1], s.c_out, e.value(n.in[1]).elements() / s.c_out), y, false);
        if (n.in.size() > 2)
            kernels::record_channel_bias_add(e.device(), e.seq(), y, e.mat(n.in[2], 1, s.c_out), s.n, s.c_out,
                                             s.out_h() * s.out_w());
    };
    d.backward = [](Autodiff& ad, const IrNode& n) {
        const int g = ad.grad_output(n);
        ad.emit("conv2d_weight_grad", n, "weight_grad", {g, n.in[0]}, ad.grad_input(n, 1));
        if (n.in.size() > 2) ad.emit("conv2d_bias_grad", n, "bias_grad", {g}, ad.grad_input(n, 2));
        ad.emit("conv2d_input_grad", n, "input_grad", {g, n.in[1]}, ad.grad_input(n, 0));
    };
    return d;
}

// dW (+)= from dY and X: in = {dY, X}.
OpDef conv2d_weight_grad() {
    OpDef d;
    d.name = "conv2d_weight_grad";
    d.backward_only = true;
    d.can_accumulate = true;
    d.sites = [](Exec& e, const IrNode& n) { declare(e, n, kernels::ConvDirection::backward_weight, n.out[0]); };
    d.record = [](Exec& e, const IrNode& n) {
        const kernels::Conv2dShape s = conv_of(e, n);
        e.conv(n.label, kernels::ConvDirection::backward_weight, s, e.batch(n.in[0]), e.batch(n.in[1]),
               e.mat(n.out[0], s.c_out, e.value(n.out[0]).elements() / s.c_out), n.accumulate);
    };
    return d;
}

// dX (+)= from dY and W: in = {dY, W}.
OpDef conv2d_input_grad() {
    OpDef d;
    d.name = "conv2d_input_grad";
    d.backward_only = true;
    d.can_accumulate = true;
    d.sites = [](Exec& e, const IrNode& n) { declare(e, n, kernels::ConvDirection::backward_data, n.out[0]); };
    d.record = [](Exec& e, const IrNode& n) {
        const kernels::Conv2dShape s = conv_of(e, n);
        e.conv(n.label, kernels::ConvDirection::backward_data, s, e.batch(n.in[0]),
               e.mat(n.in[1], s.c_out, e.value(n.in[1]).elements() / s.c_out), e.batch(n.out[0]), n.accumulate);
    };
    return d;
}

// db[c] (+)= sum of dY over the batch and positions: in = {dY}.
OpDef conv2d_bias_grad() {
    OpDef d;
    d.name = "conv2d_bias_grad";
    d.backward_only = true;
    d.can_accumulate = true;
    d.record = [](Exec& e, const IrNode& n) {
        const Shape& dy = e.value(n.in[0]).shape;
        kernels::record_channel_bias_grad(e.device(), e.seq(), e.batch(n.in[0]), e.mat(n.out[0], 1, u32(dy[1])),
                                          u32(dy[0]), u32(dy[1]), u32(dy[2] * dy[3]), n.accumulate);
    };
    return d;
}

// ---- pooling ----

template <typename N>
kernels::Pool2dShape pool_shape(const N& a, const Shape& nchw) {
    kernels::Pool2dShape s;
    s.n = u32(nchw[0]);
    s.c = u32(nchw[1]);
    s.h = u32(nchw[2]);
    s.w = u32(nchw[3]);
    const Window w = window_of(a);
    s.kh = w.kh;
    s.kw = w.kw;
    s.stride_h = w.stride_h;
    s.stride_w = w.stride_w;
    s.pad_h = w.pad_h;
    s.pad_w = w.pad_w;
    return s;
}

OpDef pool(const char* name, bool max) {
    OpDef d;
    d.name = name;
    d.is_public = true;
    d.doc =
        max ? "max over each window of [C, H, W] (PyTorch nn.MaxPool2d)"
            : "mean over each window of [C, H, W], padding excluded (PyTorch nn.AvgPool2d, count_include_pad=False)";
    d.category = "vision";
    d.inputs = {"x"};
    d.node_prefix = max ? "maxpool" : "avgpool";
    d.attrs = window_attrs(2, true);
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 1);
        expect_real(n, *in[0]);
        expect_chw(n, *in[0]);
        Shape nchw{1};
        nchw.insert(nchw.end(), in[0]->shape.begin(), in[0]->shape.end());
        const kernels::Pool2dShape s = pool_shape(n, nchw);
        try {
            s.validate();
        } catch (const Error& e) {
            throw Error(n.op + " '" + n.name + "' on " + shape_text(in[0]->shape) + ": " + e.what());
        }
        return Shape{in[0]->shape[0], int64_t(s.out_h()), int64_t(s.out_w())};
    };
    d.record = [max](Exec& e, const IrNode& n) {
        const kernels::Pool2dShape s = pool_shape(n, e.value(n.in[0]).shape);
        if (max)
            kernels::record_max_pool2d(e.device(), e.seq(), s, e.batch(n.in[0]), e.batch(n.out[0]));
        else
            kernels::record_avg_pool2d(e.device(), e.seq(), s, e.batch(n.in[0]), e.batch(n.out[0]));
    };
    const std::string backward = std::string(name) + "_backward";
    d.backward = [backward, max](Autodiff& ad, const IrNode& n) {
        std::vector<int> in{ad.grad_output(n)};
        if (max) in.insert(in.begin(), n.in[0]); // max pooling recomputes the argmax from x
        ad.emit(backward, n, "backward", in, ad.grad_input(n, 0));
    };
    return d;
}

// in = {X, dY} (max) or {dY} (avg); out = {dX}; the input shape comes from dX.
OpDef pool_backward(const char* name, bool max) {
    OpDef d;
    d.name = name;
    d.backward_only = true;
    d.can_accumulate = true;
    d.record = [max](Exec& e, const IrNode& n) {
        const kernels::Pool2dShape s = pool_shape(n, e.value(n.out[0]).shape);
        if (max)
            kernels::record_max_pool2d_backward(e.device(), e.seq(), s, e.batch(n.in[0]), e.batch(n.in[1]),
                                                e.batch(n.out[0]), n.accumulate);
        else
            kernels::record_avg_pool2d_backward(e.device(), e.seq(), s, e.batch(n.in[0]), e.batch(n.out[0]),
                                                n.accumulate);
    };
    return d;
}

// ---- batch normalisation ----
// in = {x, weight, bias, running_mean, running_var}; training adds out[1], out[2] = saved mean and invstd (fp32).
// With frozen_stats (Model::freeze_batch_norm; PyTorch's bn.eval() while the rest trains) the training forward is the
// evaluation one: the running statistics normalise and stay as they are, nothing is saved (the backward reads the
// running statistics, constants of the step), and the backward treats mean and variance as constants.

struct BnDims {
    uint32_t n, c, hw;
};
BnDims bn_dims(const Shape& x) {
    return {u32(x[0]), u32(x[1]), u32(x[2] * x[3])};
}

// Optional, so that the graphs (and files) of models that never froze a BatchNorm stay as they were.
AttrSpec frozen_stats_attr() {
    AttrSpec a = flag_attr("frozen_stats", "1: training too normalises with the running statistics and leaves them as "
                                           "they are (Model::freeze_batch_norm); absent: batch statistics in training");
    a.optional = true;
    return a;
}
bool frozen_stats(const IrNode& n) {
    return optional_attr<bool>(n, "frozen_stats").value_or(false);
}

OpDef batch_norm2d() {
    OpDef d;
    d.name = "batch_norm2d";
    d.is_public = true;
    d.doc = "per-channel normalisation of [C, H, W], batch statistics in training, running ones in evaluation "
            "(PyTorch nn.BatchNorm2d)";
    d.category = "vision";
    d.inputs = {"x"};
    d.node_prefix = "bn";
    // Float values, as the typed builders (float parameters) store them: Model::op and batch_norm2d() agree bit for
    // bit.
    d.attrs = {positive_real_attr("eps", "added to the variance").or_default(double(1e-5f)),
               real_attr("momentum", 0.0, 1.0, false, "running statistics' update factor").or_default(double(0.1f)),
               frozen_stats_attr()};
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 1);
        expect_real(n, *in[0]);
        expect_chw(n, *in[0]);
        return in[0]->shape;
    };
    d.params = [](const Node&, const std::vector<const Node*>& in) {
        const int64_t c = in[0]->shape[0];
        return std::vector<ParamDecl>{{"weight", {c}, 0, InitKind::ones},
                                      {"bias", {c}, 0, InitKind::zeros},
                                      {"running_mean", {c}, 0, InitKind::zeros, true},
                                      {"running_var", {c}, 0, InitKind::ones, true},
                                      {"num_batches_tracked", {}, 0, InitKind::zeros, false, true}};
    };
    d.lower = [](Ir& ir, IrNode& n) {
        if (!ir.training || frozen_stats(n)) return;
        const int64_t c = ir.values[size_t(n.in[0])].shape[1];
        for (const char* what : {".save_mean", ".save_invstd"}) {
            IrValue v;
            v.shape = {c};
            v.storage = Storage::f32;
            v.role = Role::scratch;
            v.label = n.name + what;
            n.out.push_back(ir.add_value(v));
        }
    };
    d.record = [](Exec& e, const IrNode& n) {
        const BnDims k = bn_dims(e.value(n.in[0]).shape);
        const auto vec = [&](int v) { return e.mat(v, 1, k.c); };
        const float eps = attr<float>(n, "eps");
        if (e.ir().training && !frozen_stats(n))
            kernels::record_batch_norm_train(e.device(), e.seq(), k.n, k.c, k.hw, eps, attr<float>(n, "momentum"),
                                             e.batch(n.in[0]), vec(n.in[1]), vec(n.in[2]), e.batch(n.out[0]),
                                             vec(n.out[1]), vec(n.out[2]), vec(n.in[3]), vec(n.in[4]));
        else
            kernels::record_batch_norm_eval(e.device(), e.seq(), k.n, k.c, k.hw, eps, e.batch(n.in[0]), vec(n.in[1]),
                                            vec(n.in[2]), vec(n.in[3]), vec(n.in[4]), e.batch(n.out[0]));
    };
    d.backward = [](Autodiff& ad, const IrNode& n) {
        // One kernel writes dx, dgamma and dbeta; gradients nobody needs go to scratch.
        const Autodiff::Target dx = ad.grad_input(n, 0);
        Autodiff::Target dg = ad.grad_input(n, 1), db = ad.grad_input(n, 2);
        const Shape c{ad.ir().values[size_t(n.in[1])].shape};
        if (!dg.valid()) dg = {ad.scratch(c, Storage::f32, n.name + ".dweight"), false};
        if (!db.valid()) db = {ad.scratch(c, Storage::f32, n.name + ".dbias"), false};
        VKT_CHECK(!dg.accumulate && !db.accumulate, "batch_norm2d '", n.name, "': shared parameters");
        Autodiff::Target out = dx;
        if (!out.valid())
            out = {ad.scratch(ad.ir().values[size_t(n.in[0])].shape, Storage::act, n.name + ".dx"), false};
        const bool frozen = frozen_stats(n);
        ad.emit("batch_norm2d_backward", n, "backward",
                {n.in[0], ad.grad_output(n), n.in[1], frozen ? n.in[3] : n.out[1], frozen ? n.in[4] : n.out[2]}, out,
                {dg.value, db.value});
    };
    return d;
}

// in = {x, dy, gamma, save_mean, save_invstd}, or with frozen_stats {x, dy, gamma, running_mean, running_var};
// out = {dx, dgamma, dbeta}.
OpDef batch_norm2d_backward() {
    OpDef d;
    d.name = "batch_norm2d_backward";
    d.backward_only = true;
    d.can_accumulate = true; // dx
    d.record = [](Exec& e, const IrNode& n) {
        const BnDims k = bn_dims(e.value(n.in[0]).shape);
        const auto vec = [&](int v) { return e.mat(v, 1, k.c); };
        if (frozen_stats(n))
            kernels::record_batch_norm_frozen_backward(e.device(), e.seq(), k.n, k.c, k.hw, attr<float>(n, "eps"),
                                                       e.batch(n.in[0]), e.batch(n.in[1]), vec(n.in[2]), vec(n.in[3]),
                                                       vec(n.in[4]), e.batch(n.out[0]), vec(n.out[1]), vec(n.out[2]),
                                                       n.accumulate);
        else
            kernels::record_batch_norm_backward(e.device(), e.seq(), k.n, k.c, k.hw, e.batch(n.in[0]), e.batch(n.in[1]),
                                                vec(n.in[2]), vec(n.in[3]), vec(n.in[4]), e.batch(n.out[0]),
                                                vec(n.out[1]), vec(n.out[2]), n.accumulate);
    };
    return d;
}

} // namespace

void register_vision_ops(std::vector<OpDef>& t) {
    t.push_back(conv2d());
    t.push_back(conv2d_weight_grad());
    t.push_back(conv2d_input_grad());
    t.push_back(conv2d_bias_grad());
    t.push_back(pool("max_pool2d", true));
    t.push_back(pool_backward("max_pool2d_backward", true));
    t.push_back(pool("avg_pool2d", false));
    t.push_back(pool_backward("avg_pool2d_backward", false));
    t.push_back(batch_norm2d());
    t.push_back(batch_norm2d_backward());
}

} // namespace vktrain::graph
