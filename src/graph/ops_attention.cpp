// Softmax over the last dimension and multi-head self-attention (GPT-2 layout), with their backward nodes.
// Attention's GEMMs run as strided, two-level batched GEMMs (sample × head) straight on the columns of qkv and
// of the output: no transposes or copies. Its sites are "<label>:<gemm>".
#include "common/check.hpp"
#include "graph/autodiff.hpp"
#include "graph/exec.hpp"
#include "graph/registry.hpp"
#include "kernels/attention.hpp"

namespace vktrain::graph {

namespace {

// ---- softmax ----

OpDef softmax() {
    OpDef d;
    d.name = "softmax";
    d.is_public = true;
    d.doc = "softmax over the last dimension (PyTorch softmax(dim=-1))";
    d.category = "attention";
    d.inputs = {"x"};
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 1);
        expect_real(n, *in[0]);
        VKT_CHECK(!in[0]->shape.empty(), "softmax '", n.name, "': input '", in[0]->name, "' is a scalar per sample");
        return in[0]->shape;
    };
    d.record = [](Exec& e, const IrNode& n) {
        kernels::record_softmax(e.device(), e.seq(), e.rows(n.in[0]), e.rows(n.out[0]));
    };
    d.backward = [](Autodiff& ad, const IrNode& n) { // dX from the saved output and dY
        ad.emit("softmax_backward", n, "backward", {n.out[0], ad.grad_output(n)}, ad.grad_input(n, 0));
    };
    return d;
}

// in = {Y, dY}; out = {dX}.
OpDef softmax_backward() {
    OpDef d;
    d.name = "softmax_backward";
    d.backward_only = true;
    d.can_accumulate = true;
    d.record = [](Exec& e, const IrNode& n) {
        kernels::record_softmax_backward(e.device(), e.seq(), e.rows(n.in[0]), e.rows(n.in[1]), e.rows(n.out[0]), 1.0f,
                                         false, n.accumulate);
    };
    return d;
}

// ---- self-attention ----

// qkv is [batch, seq, 3·channels]; heads and causal are attributes.
kernels::AttentionShape attention_shape(const Exec& e, const IrNode& n, int qkv) {
    const Shape& s = e.value(qkv).shape;
    kernels::AttentionShape a;
    a.heads = attr<uint32_t>(n, "heads");
    a.batch = uint32_t(s[0]);
    a.seq = uint32_t(s[1]);
    a.head_size = uint32_t(s[2] / 3 / a.heads);
    a.causal = attr<bool>(n, "causal");
    return a;
}

// A value as rows × cols, or only its type while sites are collected (no storage yet).
kernels::MatRef ref(const Exec& e, int v) {
    const uint64_t count = e.value(v).elements();
    if (e.collecting()) return kernels::MatRef{nullptr, e.dtype(v), 1, uint32_t(count), 0};
    return e.mat(v, 1, count);
}

std::string site(const IrNode& n, const char* gemm) {
    return n.label + ":" + gemm;
}

OpDef self_attention() {
    OpDef d;
    d.name = "self_attention";
    d.is_public = true;
    d.doc = "multi-head attention over GPT-2's fused qkv rows [T, 3C] -> [T, C], scores scaled by 1/sqrt(C/heads)";
    d.category = "attention";
    d.inputs = {"qkv"};
    d.node_prefix = "attn";
    d.attrs = {size_attr("heads", "heads (they divide C)"),
               flag_attr("causal", "position t attends to positions <= t only").or_default(1)};
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 1);
        expect_real(n, *in[0]);
        const Shape& s = in[0]->shape;
        const auto heads = attr<int64_t>(n, "heads");
        VKT_CHECK(s.size() == 2, "self_attention '", n.name, "': input '", in[0]->name, "' is ", shape_text(s),
                  "; expected [positions, 3 * channels] per sample (q | k | v)");
        VKT_CHECK(s[1] % 3 == 0, "self_attention '", n.name, "': the last dimension ", s[1],
                  " is not 3 * channels (q | k | v)");
        VKT_CHECK(heads > 0 && (s[1] / 3) % heads == 0, "self_attention '", n.name, "': ", heads,
                  " heads do not divide ", s[1] / 3, " channels");
        return Shape{s[0], s[1] / 3};
    };
    d.lower = [](Ir& ir, IrNode& n) {
        // out[1]: the probabilities P (saved for the backward), out[2]: the fp32 scores S (scratch).
        const Shape x = ir.values[size_t(n.in[0])].shape; // a copy: add_value may reallocate values
        const Shape scores{x[0], attr<int64_t>(n, "heads"), x[1], x[1]};
        for (const auto& [what, storage] : {std::pair{".probs", Storage::act}, {".scores", Storage::f32}}) {
            IrValue v;
            v.shape = scores;
            v.storage = storage;
            v.role = Role::scratch;
            v.label = n.name + what;
            n.out.push_back(ir.add_value(v));
        }
    };
    const auto gemms = [](const Exec& e, const IrNode& n) {
        const kernels::AttentionShape a = attention_shape(e, n, n.in[0]);
        return kernels::attention_forward_gemms(a, ref(e, n.in[0]), ref(e, n.out[2]), ref(e, n.out[1]),
                                                ref(e, n.out[0]));
    };
    d.sites = [gemms](Exec& e, const IrNode& n) {
        const kernels::AttentionForwardGemms g = gemms(e, n);
        e.declare_gemm(site(n, "scores"), kernels::gemm_shape(g.scores));
        e.declare_gemm(site(n, "values"), kernels::gemm_shape(g.values));
    };
    d.record = [](Exec& e, const IrNode& n) {
        kernels::AttentionPaths paths;
        paths.scores = e.path(site(n, "scores"));
        paths.values = e.path(site(n, "values"));
        kernels::record_attention(e.device(), e.seq(), attention_shape(e, n, n.in[0]), paths, ref(e, n.in[0]),
                                  ref(e, n.out[2]), ref(e, n.out[1]), ref(e, n.out[0]));
    };
    d.backward = [](Autodiff& ad, const IrNode& n) {
        const Autodiff::Target dqkv = ad.grad_input(n, 0);
        if (!dqkv.valid()) return;
        // A copy: scratch() adds values, which may move the vector a reference would point into.
        const Shape scores = ad.ir().values[size_t(n.out[2])].shape;
        const int dp = ad.scratch(scores, Storage::f32, n.name + ".dprobs");
        const int ds = ad.scratch(scores, Storage::act, n.name + ".dscores");
        ad.emit("self_attention_backward", n, "backward", {n.in[0], n.out[1], ad.grad_output(n)}, dqkv, {dp, ds});
    };
    return d;
}

// in = {qkv, P, dO}; out = {d(qkv), dP (fp32 scratch), dS (scratch)}.
OpDef self_attention_backward() {
    OpDef d;
    d.name = "self_attention_backward";
    d.backward_only = true;
    d.can_accumulate = true; // d(qkv)
    const auto gemms = [](const Exec& e, const IrNode& n) {
        const kernels::AttentionShape a = attention_shape(e, n, n.in[0]);
        return kernels::attention_backward_gemms(a, ref(e, n.in[0]), ref(e, n.in[1]), ref(e, n.in[2]), ref(e, n.out[1]),
                                                 ref(e, n.out[2]), ref(e, n.out[0]), n.accumulate);
    };
    d.sites = [gemms](Exec& e, const IrNode& n) {
        const kernels::AttentionBackwardGemms g = gemms(e, n);
        e.declare_gemm(site(n, "dp"), kernels::gemm_shape(g.dp));
        e.declare_gemm(site(n, "dq"), kernels::gemm_shape(g.dq));
        e.declare_gemm(site(n, "dk"), kernels::gemm_shape(g.dk));
        e.declare_gemm(site(n, "dv"), kernels::gemm_shape(g.dv));
    };
    d.record = [](Exec& e, const IrNode& n) {
        kernels::AttentionPaths paths;
        paths.dp = e.path(site(n, "dp"));
        paths.dq = e.path(site(n, "dq"));
        paths.dk = e.path(site(n, "dk"));
        paths.dv = e.path(site(n, "dv"));
        kernels::record_attention_backward(e.device(), e.seq(), attention_shape(e, n, n.in[0]), paths, ref(e, n.in[0]),
                                           ref(e, n.in[1]), ref(e, n.in[2]), ref(e, n.out[1]), ref(e, n.out[2]),
                                           ref(e, n.out[0]), n.accumulate);
    };
    return d;
}

} // namespace

void register_attention_ops(std::vector<OpDef>& t) {
    t.push_back(softmax());
    t.push_back(softmax_backward());
    t.push_back(self_attention());
    t.push_back(self_attention_backward());
}

} // namespace vktrain::graph
