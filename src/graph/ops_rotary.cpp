// Rotary position embeddings (RoPE, transformers' rotate_half convention with rope_theta), as Llama applies them to
// its queries and keys: x [T, heads·D] per sample, each head's pairs (i, i + D/2) turned by t·theta^(-2i/D) at
// position t. The backward pass turns dY back (the inverse rotation); neither direction saves anything.
#include <cmath>

#include "common/check.hpp"
#include "graph/autodiff.hpp"
#include "graph/exec.hpp"
#include "graph/registry.hpp"
#include "kernels/rotary.hpp"

namespace vktrain::graph {

namespace {

// The rotation of node n over value v ([batch, T, heads·D]).
kernels::RotaryShape rotary_shape(const Exec& e, const IrNode& n, int v) {
    const Shape& s = e.value(v).shape;
    kernels::RotaryShape r;
    r.positions = uint32_t(s[1]);
    r.heads = attr<uint32_t>(n, "heads");
    r.head_size = uint32_t(s[2] / r.heads);
    r.theta = attr<float>(n, "theta");
    return r;
}

OpDef rotary() {
    OpDef d;
    d.name = "rotary";
    d.is_public = true;
    d.doc = "rotary position embeddings of x [T, heads·D] in transformers' rotate_half convention (Llama's RoPE)";
    d.category = "embedding";
    d.inputs = {"x"};
    d.attrs = {size_attr("heads", "heads of D columns each (they divide the last dimension; D even)"),
               positive_real_attr("theta", "the base of the frequencies theta^(-2i/D) (rope_theta)").or_default(1e4)};
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 1);
        expect_real(n, *in[0]);
        const Shape& s = in[0]->shape;
        const auto heads = attr<int64_t>(n, "heads");
        VKT_CHECK(s.size() == 2, "rotary '", n.name, "': input '", in[0]->name, "' is ", shape_text(s),
                  "; expected [positions, heads * head_size] per sample");
        VKT_CHECK(s[1] % heads == 0, "rotary '", n.name, "': ", heads, " heads do not divide the last dimension ",
                  s[1]);
        VKT_CHECK((s[1] / heads) % 2 == 0, "rotary '", n.name, "': the head size ", s[1] / heads, " (", s[1], " / ",
                  heads, " heads) is odd; rotary pairs element i with i + head_size / 2");
        return s;
    };
    // The backward reads only dY: x may be overwritten in place whenever it dies here.
    d.inplace_input = 0;
    d.record = [](Exec& e, const IrNode& n) {
        kernels::record_rotary(e.device(), e.seq(), rotary_shape(e, n, n.in[0]), e.rows(n.in[0]), e.rows(n.out[0]));
    };
    d.backward = [](Autodiff& ad, const IrNode& n) {
        ad.emit("rotary_backward", n, "backward", {ad.grad_output(n)}, ad.grad_input(n, 0));
    };
    return d;
}

// dX (+)= dY turned by -angle: in = {dY}, out = {dX}.
OpDef rotary_backward() {
    OpDef d;
    d.name = "rotary_backward";
    d.backward_only = true;
    d.can_accumulate = true;
    d.inplace_input = 0;
    d.record = [](Exec& e, const IrNode& n) {
        kernels::record_rotary(e.device(), e.seq(), rotary_shape(e, n, n.in[0]), e.rows(n.in[0]), e.rows(n.out[0]),
                               true, n.accumulate);
    };
    return d;
}

} // namespace

void register_rotary_ops(std::vector<OpDef>& t) {
    t.push_back(rotary());
    t.push_back(rotary_backward());
}

} // namespace vktrain::graph
