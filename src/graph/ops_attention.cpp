// Softmax over the last dimension, multi-head self-attention (GPT-2's fused qkv) and attention over separate q, k
// and v with grouped-query heads (Llama), with their backward nodes. Attention's GEMMs run as strided, two-level
// batched GEMMs (sample × key/value head, once per query head of a group) straight on the head columns of the
// inputs and of the output: no transposes or copies. Its sites are "<label>:<gemm>". Where the IR allows
// (Ir::fused_attention_min_bytes, ContextOptions::allow_fused_attention), the head size fits and the score matrix is
// large (ContextOptions::fused_attention_min_score_bytes), both attentions run the fused kernels instead
// (kernels/flash_attention.hpp): no scores in memory, only a per-row log-sum-exp saved, no GEMM sites.
#include <tuple>

#include "common/check.hpp"
#include "graph/autodiff.hpp"
#include "graph/exec.hpp"
#include "graph/registry.hpp"
#include "kernels/attention.hpp"
#include "kernels/flash_attention.hpp"

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

// Both attentions' scratch outputs: out[1] the probabilities P (saved for the backward), out[2] the fp32 scores S,
// each [batch, heads, T, T] from the first input's [batch, T, ...].
void lower_attention_scratch(Ir& ir, IrNode& n) {
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
}

// Set by lowering: the node (and its backward) runs the fused kernels.
bool fused(const IrNode& n) {
    return attr<bool>(n, "fused");
}
AttrSpec fused_attr() {
    return flag_attr("fused", "runs the fused attention kernels (ContextOptions::allow_fused_attention)")
        .set_by_lowering();
}

// Both attentions' lowering: fused where the IR allows it and the kernels take the head size, with out[1] the
// per-row log-sum-exp (fp32 [batch, heads, T], saved for the backward); else the unfused scratch outputs.
// Fused only where the unfused score matrix would be large (Ir::fused_attention_min_bytes): below that the strided
// GEMMs are faster than the fused kernels today, above it memory (or the device's binding limit) decides.
void lower_attention(Ir& ir, IrNode& n, int64_t head_size) {
    const Shape x = ir.values[size_t(n.in[0])].shape; // a copy: add_value may reallocate values
    const double score_bytes = double(x[0]) * double(attr<int64_t>(n, "heads")) * double(x[1]) * double(x[1]) * 4.0;
    const bool use = ir.fused_attention_min_bytes != UINT64_MAX &&
                     head_size <= int64_t(kernels::k_flash_max_head_size) &&
                     score_bytes >= double(ir.fused_attention_min_bytes);
    n.attrs["fused"] = use ? 1.0 : 0.0;
    if (!use) return lower_attention_scratch(ir, n);
    IrValue v;
    v.shape = {x[0], attr<int64_t>(n, "heads"), x[1]};
    v.storage = Storage::f32;
    v.role = Role::scratch;
    v.label = n.name + ".lse";
    n.out.push_back(ir.add_value(v));
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
               flag_attr("causal", "position t attends to positions <= t only").or_default(1), fused_attr()};
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
        lower_attention(ir, n, ir.values[size_t(n.in[0])].shape[2] / 3 / attr<int64_t>(n, "heads"));
    };
    const auto gemms = [](const Exec& e, const IrNode& n) {
        const kernels::AttentionShape a = attention_shape(e, n, n.in[0]);
        return kernels::attention_forward_gemms(a, kernels::fused_qkv(a, ref(e, n.in[0])), ref(e, n.out[2]),
                                                ref(e, n.out[1]), ref(e, n.out[0]));
    };
    d.sites = [gemms](Exec& e, const IrNode& n) {
        if (fused(n)) return;
        const kernels::AttentionForwardGemms g = gemms(e, n);
        e.declare_gemm(site(n, "scores"), kernels::gemm_shape(g.scores.at(0)));
        e.declare_gemm(site(n, "values"), kernels::gemm_shape(g.values.at(0)));
    };
    d.record = [](Exec& e, const IrNode& n) {
        if (fused(n)) {
            const kernels::AttentionShape a = attention_shape(e, n, n.in[0]);
            kernels::record_flash_attention(e.device(), e.seq(), a, kernels::fused_qkv(a, ref(e, n.in[0])),
                                            ref(e, n.out[0]), ref(e, n.out[1]));
            return;
        }
        kernels::AttentionPaths paths;
        paths.scores = e.path(site(n, "scores"));
        paths.values = e.path(site(n, "values"));
        kernels::record_attention(e.device(), e.seq(), attention_shape(e, n, n.in[0]), paths, ref(e, n.in[0]),
                                  ref(e, n.out[2]), ref(e, n.out[1]), ref(e, n.out[0]));
    };
    d.backward = [](Autodiff& ad, const IrNode& n) {
        const Autodiff::Target dqkv = ad.grad_input(n, 0);
        if (!dqkv.valid()) return;
        if (fused(n)) { // recomputes the probabilities from q, k and the saved log-sum-exp
            ad.emit("self_attention_fused_backward", n, "backward", {n.in[0], n.out[0], n.out[1], ad.grad_output(n)},
                    dqkv);
            return;
        }
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
        e.declare_gemm(site(n, "dp"), kernels::gemm_shape(g.dp.at(0)));
        e.declare_gemm(site(n, "dq"), kernels::gemm_shape(g.dq.at(0)));
        e.declare_gemm(site(n, "dk"), kernels::gemm_shape(g.dk.at(0)));
        e.declare_gemm(site(n, "dv"), kernels::gemm_shape(g.dv.at(0)));
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

// in = {qkv, O, lse, dO}; out = {d(qkv)}: the fused kernels' backward.
OpDef self_attention_fused_backward() {
    OpDef d;
    d.name = "self_attention_fused_backward";
    d.backward_only = true;
    d.can_accumulate = true; // d(qkv)
    d.record = [](Exec& e, const IrNode& n) {
        const kernels::AttentionShape a = attention_shape(e, n, n.in[0]);
        const kernels::AttentionQkv g = kernels::fused_qkv(a, ref(e, n.out[0]));
        kernels::record_flash_attention_backward(e.device(), e.seq(), a, kernels::fused_qkv(a, ref(e, n.in[0])),
                                                 ref(e, n.in[1]), ref(e, n.in[2]), ref(e, n.in[3]), &g.q, &g.k, &g.v,
                                                 n.accumulate);
    };
    return d;
}

// ---- attention over separate q, k and v (grouped-query heads) ----

// q [batch, seq, heads·D], k and v [batch, seq, kv_heads·D]: the shape from value v (q's layout, or with kv: k's).
kernels::AttentionShape gqa_shape(const Exec& e, const IrNode& n, int v, bool kv) {
    const Shape& s = e.value(v).shape;
    kernels::AttentionShape a;
    a.heads = attr<uint32_t>(n, "heads");
    a.kv_heads = attr<uint32_t>(n, "kv_heads");
    a.batch = uint32_t(s[0]);
    a.seq = uint32_t(s[1]);
    a.head_size = uint32_t(s[2] / (kv ? a.kv_heads : a.heads));
    a.causal = attr<bool>(n, "causal");
    return a;
}

// Every attention node and its backward nodes take q, k, v as in[0..2].
kernels::AttentionQkv gqa_inputs(const Exec& e, const IrNode& n, const kernels::AttentionShape& a) {
    return kernels::separate_qkv(a, ref(e, n.in[0]), ref(e, n.in[1]), ref(e, n.in[2]));
}

OpDef attention() {
    OpDef d;
    d.name = "attention";
    d.is_public = true;
    d.doc = "multi-head attention over separate q [T, heads*D], k and v [T, kv_heads*D] -> [T, heads*D]; query head h "
            "reads key/value head h / (heads / kv_heads) (grouped-query attention), scores scaled by 1/sqrt(D)";
    d.category = "attention";
    d.inputs = {"q", "k", "v"};
    d.attrs = {size_attr("heads", "query heads"),
               size_attr("kv_heads", "key/value heads (they divide heads)").or_same_as("heads"),
               flag_attr("causal", "position t attends to positions <= t only").or_default(1), fused_attr()};
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 3);
        for (const Node* x : in) expect_real(n, *x);
        const auto heads = attr<int64_t>(n, "heads"), kv_heads = attr<int64_t>(n, "kv_heads");
        const char* names[] = {"q", "k", "v"};
        for (size_t i = 0; i < 3; ++i)
            VKT_CHECK(in[i]->shape.size() == 2, "attention '", n.name, "': ", names[i], " '", in[i]->name, "' is ",
                      shape_text(in[i]->shape), "; expected [positions, heads * head_size] per sample");
        const Shape &q = in[0]->shape, &k = in[1]->shape, &v = in[2]->shape;
        VKT_CHECK(heads % kv_heads == 0, "attention '", n.name, "': ", kv_heads, " key/value heads do not divide ",
                  heads, " heads");
        VKT_CHECK(q[1] % heads == 0, "attention '", n.name, "': ", heads, " heads do not divide q's ", q[1],
                  " columns");
        const int64_t head_size = q[1] / heads;
        for (size_t i = 1; i < 3; ++i)
            VKT_CHECK(in[i]->shape[1] == kv_heads * head_size, "attention '", n.name, "': ", names[i], " '",
                      in[i]->name, "' has ", in[i]->shape[1], " columns; expected ", kv_heads, " key/value heads * ",
                      head_size, " (q's head size)");
        VKT_CHECK(k[0] == q[0] && v[0] == q[0], "attention '", n.name, "': q, k and v have ", q[0], ", ", k[0], " and ",
                  v[0], " positions; they must agree");
        return Shape{q[0], q[1]};
    };
    d.lower = [](Ir& ir, IrNode& n) {
        lower_attention(ir, n, ir.values[size_t(n.in[0])].shape[2] / attr<int64_t>(n, "heads"));
    };
    const auto gemms = [](const Exec& e, const IrNode& n) {
        const kernels::AttentionShape a = gqa_shape(e, n, n.in[0], false);
        return kernels::attention_forward_gemms(a, gqa_inputs(e, n, a), ref(e, n.out[2]), ref(e, n.out[1]),
                                                ref(e, n.out[0]));
    };
    d.sites = [gemms](Exec& e, const IrNode& n) {
        if (fused(n)) return;
        const kernels::AttentionForwardGemms g = gemms(e, n);
        e.declare_gemm(site(n, "scores"), kernels::gemm_shape(g.scores.at(0)));
        e.declare_gemm(site(n, "values"), kernels::gemm_shape(g.values.at(0)));
    };
    d.record = [](Exec& e, const IrNode& n) {
        const kernels::AttentionShape a = gqa_shape(e, n, n.in[0], false);
        if (fused(n)) {
            kernels::record_flash_attention(e.device(), e.seq(), a, gqa_inputs(e, n, a), ref(e, n.out[0]),
                                            ref(e, n.out[1]));
            return;
        }
        kernels::AttentionPaths paths;
        paths.scores = e.path(site(n, "scores"));
        paths.values = e.path(site(n, "values"));
        kernels::record_attention(e.device(), e.seq(), a, paths, gqa_inputs(e, n, a), ref(e, n.out[2]),
                                  ref(e, n.out[1]), ref(e, n.out[0]));
    };
    d.backward = [](Autodiff& ad, const IrNode& n) {
        // In input order, so that an input given twice (k == v) is written by the first gradient node and added
        // to by the second.
        const Autodiff::Target dq = ad.grad_input(n, 0), dk = ad.grad_input(n, 1), dv = ad.grad_input(n, 2);
        const int q = n.in[0], k = n.in[1], v = n.in[2], p = n.out[1], dout = ad.grad_output(n);
        if (fused(n)) { // each node recomputes the probabilities from q, k and the saved log-sum-exp (n.out[1])
            const std::vector<int> in{q, k, v, n.out[0], n.out[1], dout};
            ad.emit("attention_fused_q_grad", n, "q_grad", in, dq);
            // dk and dv from one node (one dispatch, P recomputed once) where both are wanted, are distinct values
            // and are both written or both added to; else one node each (k == v: the second adds to the first).
            if (dk.valid() && dv.valid() && dk.value != dv.value && dk.accumulate == dv.accumulate) {
                ad.emit("attention_fused_kv_grad", n, "kv_grad", in, dk, {dv.value});
                return;
            }
            ad.emit("attention_fused_k_grad", n, "k_grad", in, dk);
            ad.emit("attention_fused_v_grad", n, "v_grad", in, dv);
            return;
        }
        if (dq.valid() || dk.valid()) {
            // A copy: scratch() adds values, which may move the vector a reference would point into.
            const Shape scores = ad.ir().values[size_t(n.out[2])].shape;
            const int dp = ad.scratch(scores, Storage::f32, n.name + ".dprobs");
            const int ds = ad.scratch(scores, Storage::act, n.name + ".dscores");
            ad.emit("attention_backward", n, "backward", {q, k, v, p, dout}, Autodiff::Target{ds, false}, {dp});
            ad.emit("attention_q_grad", n, "q_grad", {q, k, v, ds}, dq);
            ad.emit("attention_k_grad", n, "k_grad", {q, k, v, ds}, dk);
        }
        ad.emit("attention_v_grad", n, "v_grad", {q, k, v, p, dout}, dv);
    };
    return d;
}

// in = {q, k, v, P, dO}; out = {dS (scratch), dP (fp32 scratch)}.
OpDef attention_backward() {
    OpDef d;
    d.name = "attention_backward";
    d.backward_only = true;
    const auto gemms = [](const Exec& e, const IrNode& n) {
        const kernels::AttentionShape a = gqa_shape(e, n, n.in[0], false);
        return kernels::attention_dp_gemms(a, gqa_inputs(e, n, a), ref(e, n.in[4]), ref(e, n.out[1]));
    };
    d.sites = [gemms](Exec& e, const IrNode& n) {
        e.declare_gemm(site(n, "dp"), kernels::gemm_shape(gemms(e, n).at(0)));
    };
    d.record = [](Exec& e, const IrNode& n) {
        const kernels::AttentionShape a = gqa_shape(e, n, n.in[0], false);
        kernels::record_attention_backward_scores(e.device(), e.seq(), a, e.path(site(n, "dp")), gqa_inputs(e, n, a),
                                                  ref(e, n.in[3]), ref(e, n.in[4]), ref(e, n.out[1]), ref(e, n.out[0]));
    };
    return d;
}

// One input's gradient: q and k from in = {q, k, v, dS}, v from in = {q, k, v, P, dO}; out = {the gradient}.
OpDef attention_input_grad(int which) {
    static const char* const names[] = {"attention_q_grad", "attention_k_grad", "attention_v_grad"};
    static const char* const gemm_names[] = {"dq", "dk", "dv"};
    OpDef d;
    d.name = names[which];
    d.backward_only = true;
    d.can_accumulate = true;
    const auto args = [which](const Exec& e, const IrNode& n) {
        const kernels::AttentionShape a = gqa_shape(e, n, n.in[0], false);
        const kernels::AttentionQkv in = gqa_inputs(e, n, a);
        const kernels::MatRef dout = which == 2 ? ref(e, n.in[4]) : kernels::MatRef{};
        const kernels::AttentionOperand grad{ref(e, n.out[0]), 0, which == 0 ? a.channels() : a.kv_channels()};
        return std::tuple{a, in, ref(e, n.in[3]), dout, grad};
    };
    d.sites = [which, args](Exec& e, const IrNode& n) {
        const auto [a, in, p_or_ds, dout, grad] = args(e, n);
        const auto g = kernels::attention_grad_gemms(a, which, in, p_or_ds, dout, grad, n.accumulate);
        e.declare_gemm(site(n, gemm_names[which]), kernels::gemm_shape(g.at(0)));
    };
    d.record = [which, args](Exec& e, const IrNode& n) {
        const auto [a, in, p_or_ds, dout, grad] = args(e, n);
        kernels::record_attention_input_grad(e.device(), e.seq(), a, e.path(site(n, gemm_names[which])), which, in,
                                             p_or_ds, dout, grad, n.accumulate);
    };
    return d;
}

// in = {q, k, v, O, lse, dO}; out = {the gradient of q, k or v (`which` 0, 1, 2)}: the fused kernels' backward.
OpDef attention_fused_grad(int which) {
    static const char* const names[] = {"attention_fused_q_grad", "attention_fused_k_grad", "attention_fused_v_grad"};
    OpDef d;
    d.name = names[which];
    d.backward_only = true;
    d.can_accumulate = true;
    d.record = [which](Exec& e, const IrNode& n) {
        const kernels::AttentionShape a = gqa_shape(e, n, n.in[0], false);
        const kernels::AttentionOperand grad{ref(e, n.out[0]), 0, which == 0 ? a.channels() : a.kv_channels()};
        kernels::record_flash_attention_backward(
            e.device(), e.seq(), a, gqa_inputs(e, n, a), ref(e, n.in[3]), ref(e, n.in[4]), ref(e, n.in[5]),
            which == 0 ? &grad : nullptr, which == 1 ? &grad : nullptr, which == 2 ? &grad : nullptr, n.accumulate);
    };
    return d;
}

// in = {q, k, v, O, lse, dO}; out = {dk, dv}: both gradients from one dispatch of the fused dk/dv kernel. Emitted
// only where both are distinct values written (or both added to, IrNode::accumulate) alike.
OpDef attention_fused_kv_grad() {
    OpDef d;
    d.name = "attention_fused_kv_grad";
    d.backward_only = true;
    d.can_accumulate = true;
    d.record = [](Exec& e, const IrNode& n) {
        const kernels::AttentionShape a = gqa_shape(e, n, n.in[0], false);
        const kernels::AttentionOperand dk{ref(e, n.out[0]), 0, a.kv_channels()},
            dv{ref(e, n.out[1]), 0, a.kv_channels()};
        kernels::record_flash_attention_backward(e.device(), e.seq(), a, gqa_inputs(e, n, a), ref(e, n.in[3]),
                                                 ref(e, n.in[4]), ref(e, n.in[5]), nullptr, &dk, &dv, n.accumulate);
    };
    return d;
}

} // namespace

void register_attention_ops(std::vector<OpDef>& t) {
    t.push_back(softmax());
    t.push_back(softmax_backward());
    t.push_back(self_attention());
    t.push_back(self_attention_backward());
    // attention over separate q, k and v with grouped-query heads (issue 23)
    t.push_back(attention());
    t.push_back(attention_backward());
    for (int which = 0; which < 3; ++which) t.push_back(attention_input_grad(which));
    // the fused (flash) kernels' backward nodes (issue 25)
    t.push_back(self_attention_fused_backward());
    for (int which = 0; which < 3; ++which) t.push_back(attention_fused_grad(which));
    t.push_back(attention_fused_kv_grad());
}

} // namespace vktrain::graph
