// The vision ops of ResNet's and MobileNet's heads and blocks: adaptive average pooling (global average pooling
// at 1×1) and the channel-wise multiply of squeeze-excitation, on [C, H, W] per sample.
#include "common/check.hpp"
#include "graph/autodiff.hpp"
#include "graph/exec.hpp"
#include "graph/registry.hpp"
#include "kernels/plane.hpp"

namespace vktrain::graph {

namespace {

uint32_t dim(int64_t v) {
    VKT_CHECK(v >= 0 && v < (int64_t(1) << 32), "a dimension of ", v, " exceeds 2^32");
    return uint32_t(v);
}

// x [N, C, H, W] (the batch included) pooled to y [N, C, oh, ow].
kernels::AdaptivePool2dShape adaptive_shape(const Shape& x, const Shape& y) {
    kernels::AdaptivePool2dShape s;
    s.n = dim(x[0]);
    s.c = dim(x[1]);
    s.h = dim(x[2]);
    s.w = dim(x[3]);
    s.oh = dim(y[2]);
    s.ow = dim(y[3]);
    return s;
}

OpDef adaptive_avg_pool2d() {
    OpDef d;
    d.name = "adaptive_avg_pool2d";
    d.is_public = true;
    d.doc = "mean of [C, H, W] over out_h × out_w bins, rows [floor(i·H/out_h), ceil((i+1)·H/out_h)) and columns "
            "likewise (PyTorch nn.AdaptiveAvgPool2d; 1×1: global average pooling)";
    d.category = "vision";
    d.inputs = {"x"};
    d.node_prefix = "adaptive_pool";
    d.attrs = {size_attr("out_h", "output height").or_default(1),
               size_attr("out_w", "output width").or_same_as("out_h")};
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 1);
        expect_real(n, *in[0]);
        const Shape& x = in[0]->shape;
        VKT_CHECK(x.size() == 3, "adaptive_avg_pool2d '", n.name, "': input '", in[0]->name, "' is ", shape_text(x),
                  "; expected [channels, height, width] per sample");
        const Shape y{x[0], attr<int64_t>(n, "out_h"), attr<int64_t>(n, "out_w")};
        try {
            adaptive_shape({1, x[0], x[1], x[2]}, {1, y[0], y[1], y[2]}).validate();
        } catch (const Error& e) {
            throw Error("adaptive_avg_pool2d '" + n.name + "' on " + shape_text(x) + ": " + e.what());
        }
        return y;
    };
    d.record = [](Exec& e, const IrNode& n) {
        const auto s = adaptive_shape(e.value(n.in[0]).shape, e.value(n.out[0]).shape);
        kernels::record_adaptive_avg_pool2d(e.device(), e.seq(), s, e.batch(n.in[0]), e.batch(n.out[0]));
    };
    d.backward = [](Autodiff& ad, const IrNode& n) {
        ad.emit("adaptive_avg_pool2d_backward", n, "backward", {ad.grad_output(n)}, ad.grad_input(n, 0));
    };
    return d;
}

// dX (+)= from dY: in = {dY}, out = {dX} (the shapes come from both).
OpDef adaptive_avg_pool2d_backward() {
    OpDef d;
    d.name = "adaptive_avg_pool2d_backward";
    d.backward_only = true;
    d.can_accumulate = true;
    d.record = [](Exec& e, const IrNode& n) {
        const auto s = adaptive_shape(e.value(n.out[0]).shape, e.value(n.in[0]).shape);
        kernels::record_adaptive_avg_pool2d_backward(e.device(), e.seq(), s, e.batch(n.in[0]), e.batch(n.out[0]),
                                                     n.accumulate);
    };
    return d;
}

// x [N, C, H, W] as planes N·C of H·W (s holds N·C values whatever its per-sample shape, [C, 1, 1] or [C]).
struct Planes {
    uint32_t planes, inner;
};
Planes planes_of(const Shape& x) {
    return {dim(x[0] * x[1]), dim(x[2] * x[3])};
}

OpDef channel_mul() {
    OpDef d;
    d.name = "channel_mul";
    d.is_public = true;
    d.doc = "x·s with x [C, H, W] and one factor per channel, s [C, 1, 1] or [C] (squeeze-excitation's scaling)";
    d.category = "vision";
    d.inputs = {"x", "s"};
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 2);
        expect_real(n, *in[0]);
        expect_real(n, *in[1]);
        const Shape& x = in[0]->shape;
        const Shape& s = in[1]->shape;
        VKT_CHECK(x.size() == 3, "channel_mul '", n.name, "': x '", in[0]->name, "' is ", shape_text(x),
                  "; expected [channels, height, width] per sample");
        VKT_CHECK(s == Shape({x[0], 1, 1}) || s == Shape({x[0]}), "channel_mul '", n.name, "': s '", in[1]->name,
                  "' is ", shape_text(s), "; expected [", x[0], ", 1, 1] or [", x[0], "] for x of ", shape_text(x));
        return x;
    };
    d.record = [](Exec& e, const IrNode& n) {
        const Planes p = planes_of(e.value(n.in[0]).shape);
        kernels::record_channel_mul(e.device(), e.seq(), p.planes, p.inner, e.batch(n.in[0]), e.batch(n.in[1]),
                                    e.batch(n.out[0]));
    };
    d.backward = [](Autodiff& ad, const IrNode& n) {
        const int g = ad.grad_output(n);
        // ds = Σ_hw dy·x, dx = dy·s (channel_mul itself). Neither accumulates: autodiff adds through a temporary.
        ad.emit("channel_mul_scale_grad", n, "grad_s", {g, n.in[0]}, ad.grad_input(n, 1));
        ad.emit("channel_mul", n, "grad_x", {g, n.in[1]}, ad.grad_input(n, 0));
    };
    return d;
}

// ds = Σ over H, W of dY·X: in = {dY, X}, out = {ds}.
OpDef channel_mul_scale_grad() {
    OpDef d;
    d.name = "channel_mul_scale_grad";
    d.backward_only = true;
    d.record = [](Exec& e, const IrNode& n) {
        const Planes p = planes_of(e.value(n.in[0]).shape);
        const kernels::MatRef x = e.batch(n.in[1]);
        kernels::record_plane_sum(e.device(), e.seq(), p.planes, p.inner, e.batch(n.in[0]), &x, e.batch(n.out[0]));
    };
    return d;
}

} // namespace

void register_vision_head_ops(std::vector<OpDef>& t) {
    t.push_back(adaptive_avg_pool2d());
    t.push_back(adaptive_avg_pool2d_backward());
    t.push_back(channel_mul());
    t.push_back(channel_mul_scale_grad());
}

} // namespace vktrain::graph
