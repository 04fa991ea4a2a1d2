// Inference-only ops for generation: attention over a key/value cache, one new position per forward pass: a GPT's
// (cached_attention, one qkv row) and a Llama's (cached_rotary_attention: separate q, k, v, grouped-query, the rotary
// embeddings at the position folded into the kernel).
#include <cmath>

#include "common/check.hpp"
#include "graph/exec.hpp"
#include "graph/registry.hpp"
#include "kernels/attention_decode.hpp"

namespace vktrain::graph {

namespace {

// in = {qkv [1, 3C], position (i32 model input [1]), k_cache, v_cache} -> [1, C]. The caches are buffers (state,
// fp32 [max_positions, C]) that keep every earlier position's keys and values between forward passes.
OpDef cached_attention() {
    OpDef d;
    d.name = "cached_attention";
    d.is_public = true;
    d.doc = "generation: attention of one new position (qkv [1, 3C]) over key/value caches of max_positions rows; "
            "inference only";
    d.category = "attention";
    d.inputs = {"qkv", "position"};
    d.attrs = {size_attr("heads", "heads (they divide C)"), size_attr("max_positions", "rows of each cache")};
    d.inference_only = true;
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 2);
        expect_real(n, *in[0]);
        const Shape& s = in[0]->shape;
        const auto heads = attr<int64_t>(n, "heads");
        VKT_CHECK(s.size() == 2 && s[0] == 1 && s[1] % 3 == 0, "cached_attention '", n.name, "': qkv ", shape_text(s),
                  " must be [1, 3 * width] (one new position)");
        VKT_CHECK((s[1] / 3) % heads == 0, "cached_attention '", n.name, "': width ", s[1] / 3,
                  " is not a multiple of ", heads, " heads");
        VKT_CHECK(s[1] / 3 / heads <= int64_t(kernels::attention_decode_max_head), "cached_attention '", n.name,
                  "': the head size ", s[1] / 3 / heads, " is above ", kernels::attention_decode_max_head);
        VKT_CHECK(in[1]->type == DataType::i32 && in[1]->op == "input" && in[1]->shape == Shape{1},
                  "cached_attention '", n.name, "': position '", in[1]->name,
                  "' must be an i32 model input of shape [1]");
        return Shape{1, s[1] / 3};
    };
    d.params = [](const Node& n, const std::vector<const Node*>& in) {
        const Shape cache{attr<int64_t>(n, "max_positions"), in[0]->shape[1] / 3};
        // Run-time state, not weights: never saved, zero-filled when a weights file is loaded.
        std::vector<ParamDecl> caches{{"k", cache, 0, InitKind::zeros, true}, {"v", cache, 0, InitKind::zeros, true}};
        for (ParamDecl& c : caches) c.persistent = false;
        return caches;
    };
    d.lower = [](Ir& ir, IrNode& n) {
        VKT_CHECK(!ir.training, "cached_attention '", n.name,
                  "' is for generation only (use an inference_only trainer)");
        VKT_CHECK(ir.batch == 1, "cached_attention '", n.name,
                  "': the key/value cache holds one sequence; compile with "
                  "batch size 1, got ",
                  ir.batch);
    };
    d.record = [](Exec& e, const IrNode& n) {
        kernels::AttentionDecodeShape s;
        s.heads = s.kv_heads = attr<uint32_t>(n, "heads");
        s.max_positions = attr<uint32_t>(n, "max_positions");
        const uint32_t width = uint32_t(e.value(n.out[0]).elements());
        s.head_size = width / s.heads;
        // q, k and v are the three column blocks of the one qkv row.
        const kernels::MatRef qkv = e.mat(n.in[0], 1, 3 * width);
        kernels::MatRef q = qkv, k = qkv, v = qkv;
        q.cols = k.cols = v.cols = width;
        k.offset += width;
        v.offset += 2 * uint64_t(width);
        kernels::record_attention_decode(e.device(), e.seq(), q, k, v, e.mat(n.in[1], 1, 1),
                                         e.mat(n.in[2], s.max_positions, width), e.mat(n.in[3], s.max_positions, width),
                                         e.mat(n.out[0], 1, width), s);
    };
    return d;
}

// in = {q [1, heads·D], k, v [1, kv_heads·D], position (i32 model input [1]), k_cache, v_cache} -> [1, heads·D]: a
// Llama's attention at one new position. q and k are rotated by the position's angles (the rotary op of Model::llama,
// same arithmetic) inside the kernel; the caches (state, fp32 [max_positions, kv_heads·D]) hold rotated keys.
OpDef cached_rotary_attention() {
    OpDef d;
    d.name = "cached_rotary_attention";
    d.is_public = true;
    d.doc =
        "generation: a Llama's attention of one new position (q [1, heads*D], k and v [1, kv_heads*D], rotary "
        "embeddings at the position applied to q and k) over key/value caches of max_positions rows; inference only";
    d.category = "attention";
    d.inputs = {"q", "k", "v", "position"};
    d.attrs = {
        size_attr("heads", "query heads"),
        size_attr("kv_heads", "key/value heads (they divide heads)").or_same_as("heads"),
        positive_real_attr("theta", "the base of the rotary frequencies theta^(-2i/D) (rope_theta)").or_default(1e4),
        size_attr("max_positions", "rows of each cache")};
    d.inference_only = true;
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 4);
        const auto heads = attr<int64_t>(n, "heads"), kv_heads = attr<int64_t>(n, "kv_heads");
        VKT_CHECK(heads % kv_heads == 0, "cached_rotary_attention '", n.name, "': ", kv_heads,
                  " key/value heads do not divide ", heads, " heads");
        const char* names[3] = {"q", "k", "v"};
        for (int i = 0; i < 3; ++i) {
            expect_real(n, *in[size_t(i)]);
            const Shape& s = in[size_t(i)]->shape;
            VKT_CHECK(s.size() == 2 && s[0] == 1, "cached_rotary_attention '", n.name, "': ", names[i], " '",
                      in[size_t(i)]->name, "' is ", shape_text(s), "; expected [1, columns] (one new position)");
        }
        const int64_t width = in[0]->shape[1];
        VKT_CHECK(width % heads == 0 && (width / heads) % 2 == 0, "cached_rotary_attention '", n.name, "': q has ",
                  width, " columns; expected ", heads, " heads of an even head size");
        VKT_CHECK(width / heads <= int64_t(kernels::attention_decode_max_head), "cached_rotary_attention '", n.name,
                  "': the head size ", width / heads, " is above ", kernels::attention_decode_max_head);
        for (size_t i = 1; i < 3; ++i)
            VKT_CHECK(in[i]->shape[1] == kv_heads * (width / heads), "cached_rotary_attention '", n.name,
                      "': ", names[i], " '", in[i]->name, "' has ", in[i]->shape[1], " columns; expected ", kv_heads,
                      " key/value heads * ", width / heads);
        VKT_CHECK(in[3]->type == DataType::i32 && in[3]->op == "input" && in[3]->shape == Shape{1},
                  "cached_rotary_attention '", n.name, "': position '", in[3]->name,
                  "' must be an i32 model input of shape [1]");
        return Shape{1, width};
    };
    d.params = [](const Node& n, const std::vector<const Node*>& in) {
        const Shape cache{attr<int64_t>(n, "max_positions"), in[1]->shape[1]};
        std::vector<ParamDecl> caches{{"k", cache, 0, InitKind::zeros, true}, {"v", cache, 0, InitKind::zeros, true}};
        for (ParamDecl& c : caches) c.persistent = false;
        return caches;
    };
    d.lower = [](Ir& ir, IrNode& n) {
        VKT_CHECK(!ir.training, "cached_rotary_attention '", n.name,
                  "' is for generation only (use an inference_only trainer)");
        VKT_CHECK(ir.batch == 1, "cached_rotary_attention '", n.name,
                  "': the key/value cache holds one sequence; compile with batch size 1, got ", ir.batch);
    };
    d.record = [](Exec& e, const IrNode& n) {
        kernels::AttentionDecodeShape s;
        s.heads = attr<uint32_t>(n, "heads");
        s.kv_heads = attr<uint32_t>(n, "kv_heads");
        s.rope_theta = attr<float>(n, "theta");
        s.max_positions = attr<uint32_t>(n, "max_positions");
        const uint32_t width = uint32_t(e.value(n.out[0]).elements());
        s.head_size = width / s.heads;
        const uint32_t kv_width = s.kv_heads * s.head_size;
        kernels::record_attention_decode(e.device(), e.seq(), e.mat(n.in[0], 1, width), e.mat(n.in[1], 1, kv_width),
                                         e.mat(n.in[2], 1, kv_width), e.mat(n.in[3], 1, 1),
                                         e.mat(n.in[4], s.max_positions, kv_width),
                                         e.mat(n.in[5], s.max_positions, kv_width), e.mat(n.out[0], 1, width), s);
    };
    return d;
}

} // namespace

void register_decode_ops(std::vector<OpDef>& t) {
    t.push_back(cached_attention());
    t.push_back(cached_rotary_attention());
}

} // namespace vktrain::graph
