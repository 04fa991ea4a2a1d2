// Inference-only ops for generation: attention over a key/value cache, one new position per forward pass.
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
        const uint32_t positions = attr<uint32_t>(n, "max_positions");
        const uint64_t width = e.value(n.out[0]).elements();
        kernels::record_attention_decode(e.device(), e.seq(), e.mat(n.in[0], 1, 3 * width), e.mat(n.in[1], 1, 1),
                                         e.mat(n.in[2], positions, width), e.mat(n.in[3], positions, width),
                                         e.mat(n.out[0], 1, width), attr<uint32_t>(n, "heads"), positions);
    };
    return d;
}

} // namespace

void register_decode_ops(std::vector<OpDef>& t) {
    t.push_back(cached_attention());
}

} // namespace vktrain::graph
