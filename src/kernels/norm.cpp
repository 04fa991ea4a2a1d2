#include "kernels/norm.hpp"

#include <cmath>
#include <initializer_list>
#include <utility>

#include "common/check.hpp"
#include "kernels/launch.hpp"
#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::kernels {

static_assert(sizeof(ChannelPush) == 16 * 4, "ChannelPush layout must match shaders/push_constants.h");

namespace {

using Named = std::pair<const MatRef*, const char*>;

// Checks the shape, the element counts and types of every operand, and that no output overlaps another
// operand. `full` hold n·c·hw elements of the storage type, `weights` c of it, `stats` c fp32 elements;
// `outputs` name the operands the call writes.
void check_operands(const runtime::Device& device, const char* op, uint32_t n, uint32_t c, uint32_t hw,
                    std::initializer_list<Named> full, std::initializer_list<Named> weights,
                    std::initializer_list<Named> stats, std::initializer_list<Named> outputs) {
    const uint64_t count = uint64_t(n) * c * hw;
    VKT_CHECK(count <= k_max_elements, op, ": ", n, "x", c, "x", hw, " has more than 2^31 - 4096 elements");
    const DType type = full.begin()->first->dtype;
    for (const auto& [m, what] : full) {
        check_operand(device, *m, count, op, what);
        VKT_CHECK(m->dtype == type, op, ": ", what, " is ", dtype_name(m->dtype), " but ", full.begin()->second, " is ",
                  dtype_name(type), " (activations, gradients, gamma and beta share one type)");
    }
    for (const auto& [m, what] : weights) {
        check_operand(device, *m, c, op, what);
        VKT_CHECK(m->dtype == type, op, ": ", what, " is ", dtype_name(m->dtype), " but ", full.begin()->second, " is ",
                  dtype_name(type), " (activations, gradients, gamma and beta share one type)");
    }
    for (const auto& [m, what] : stats) {
        check_operand(device, *m, c, op, what);
        VKT_CHECK(m->dtype == DType::f32, op, ": ", what, " must be f32 (it is ", dtype_name(m->dtype), ")");
    }
    for (const auto& [out, out_name] : outputs)
        for (const auto& group : {full, weights, stats})
            for (const auto& [m, what] : group)
                VKT_CHECK(m == out || !overlaps(*out, *m), op, ": ", out_name, " overlaps ", what);
}

ChannelPush channel_push(uint32_t n, uint32_t c, uint32_t hw) {
    ChannelPush pc{};
    pc.outer = n;
    pc.channels = c;
    pc.inner = hw;
    return pc;
}

void check_eps(const char* op, float eps) {
    VKT_CHECK(std::isfinite(eps) && eps >= 0.0f, op, ": eps ", eps, " must be finite and >= 0");
}

} // namespace

void record_batch_norm_train(runtime::Device& device, runtime::Sequence& seq, uint32_t n, uint32_t c, uint32_t hw,
                             float eps, float momentum, const MatRef& x, const MatRef& gamma, const MatRef& beta,
                             const MatRef& y, const MatRef& save_mean, const MatRef& save_invstd,
                             const MatRef& running_mean, const MatRef& running_var) {
    const char* op = "batch_norm_train";
    check_operands(device, op, n, c, hw, {{&x, "x"}, {&y, "y"}}, {{&gamma, "gamma"}, {&beta, "beta"}},
                   {{&save_mean, "save_mean"},
                    {&save_invstd, "save_invstd"},
                    {&running_mean, "running_mean"},
                    {&running_var, "running_var"}},
                   {{&y, "y"},
                    {&save_mean, "save_mean"},
                    {&save_invstd, "save_invstd"},
                    {&running_mean, "running_mean"},
                    {&running_var, "running_var"}});
    check_eps(op, eps);
    VKT_CHECK(momentum >= 0.0f && momentum <= 1.0f, op, ": momentum ", momentum, " must lie in [0, 1]");
    VKT_CHECK(c == 0 || uint64_t(n) * hw >= 2, op, ": ", uint64_t(n) * hw,
              " value per channel; training needs at least 2 (n·hw) to estimate a variance");
    if (uint64_t(n) * c * hw == 0) return;

    const DType t = x.dtype;
    ChannelPush pc = channel_push(n, c, hw);
    pc.eps = eps;
    pc.momentum = momentum;
    dispatch_operands(device, seq, variant_name("batch_norm_stats", t, t), pc,
                      {{&x, runtime::Access::read},
                       {&save_mean, runtime::Access::write},
                       {&save_invstd, runtime::Access::write},
                       {&running_mean, runtime::Access::read_write},
                       {&running_var, runtime::Access::read_write}},
                      group_count(c, 1));
    dispatch_operands(device, seq, variant_name("batch_norm_apply", t, t), pc,
                      {{&x, runtime::Access::read},
                       {&gamma, runtime::Access::read},
                       {&beta, runtime::Access::read},
                       {&save_mean, runtime::Access::read},
                       {&save_invstd, runtime::Access::read},
                       {&y, runtime::Access::write}},
                      element_groups(device, uint64_t(n) * c * hw));
}

void record_batch_norm_eval(runtime::Device& device, runtime::Sequence& seq, uint32_t n, uint32_t c, uint32_t hw,
                            float eps, const MatRef& x, const MatRef& gamma, const MatRef& beta,
                            const MatRef& running_mean, const MatRef& running_var, const MatRef& y) {
    const char* op = "batch_norm_eval";
    check_operands(device, op, n, c, hw, {{&x, "x"}, {&y, "y"}}, {{&gamma, "gamma"}, {&beta, "beta"}},
                   {{&running_mean, "running_mean"}, {&running_var, "running_var"}}, {{&y, "y"}});
    check_eps(op, eps);
    if (uint64_t(n) * c * hw == 0) return;

    const DType t = x.dtype;
    ChannelPush pc = channel_push(n, c, hw);
    pc.eps = eps;
    pc.flags = BN_FLAG_EVAL;
    dispatch_operands(device, seq, variant_name("batch_norm_apply", t, t), pc,
                      {{&x, runtime::Access::read},
                       {&gamma, runtime::Access::read},
                       {&beta, runtime::Access::read},
                       {&running_mean, runtime::Access::read},
                       {&running_var, runtime::Access::read},
                       {&y, runtime::Access::write}},
                      element_groups(device, uint64_t(n) * c * hw));
}

namespace {

// Both backward forms: `mean` and `scale` are the saved batch mean and invstd, or (frozen) running_mean and
// running_var.
void record_backward(runtime::Device& device, runtime::Sequence& seq, const char* op, uint32_t n, uint32_t c,
                     uint32_t hw, bool frozen, float eps, const MatRef& x, const MatRef& dy, const MatRef& gamma,
                     const MatRef& mean, const MatRef& scale, const MatRef& dx, const MatRef& dgamma,
                     const MatRef& dbeta, bool accumulate_dx) {
    const char* mean_name = frozen ? "running_mean" : "save_mean";
    const char* scale_name = frozen ? "running_var" : "save_invstd";
    check_operands(device, op, n, c, hw, {{&x, "x"}, {&dy, "dy"}, {&dx, "dx"}}, {{&gamma, "gamma"}},
                   {{&mean, mean_name}, {&scale, scale_name}, {&dgamma, "dgamma"}, {&dbeta, "dbeta"}},
                   {{&dx, "dx"}, {&dgamma, "dgamma"}, {&dbeta, "dbeta"}});
    if (frozen) check_eps(op, eps);
    if (c == 0) return;
    // n·hw == 0 still writes dgamma = dbeta = 0 (sums over no elements); dx is empty.

    const DType t = x.dtype;
    ChannelPush pc = channel_push(n, c, hw);
    pc.eps = eps;
    const uint32_t mode = frozen ? BN_FLAG_FROZEN : 0u;
    pc.flags = mode;
    dispatch_operands(device, seq, variant_name("batch_norm_backward_reduce", t, t), pc,
                      {{&x, runtime::Access::read},
                       {&dy, runtime::Access::read},
                       {&mean, runtime::Access::read},
                       {&scale, runtime::Access::read},
                       {&dgamma, runtime::Access::write},
                       {&dbeta, runtime::Access::write}},
                      group_count(c, 1));
    if (uint64_t(n) * hw == 0) return;
    pc.flags = mode | (accumulate_dx ? FLAG_ACCUMULATE : 0u);
    dispatch_operands(device, seq, variant_name("batch_norm_backward_dx", t, t), pc,
                      {{&x, runtime::Access::read},
                       {&dy, runtime::Access::read},
                       {&gamma, runtime::Access::read},
                       {&mean, runtime::Access::read},
                       {&scale, runtime::Access::read},
                       {&dgamma, runtime::Access::read},
                       {&dbeta, runtime::Access::read},
                       {&dx, accumulate_dx ? runtime::Access::read_write : runtime::Access::write}},
                      element_groups(device, uint64_t(n) * c * hw));
}

} // namespace

void record_batch_norm_backward(runtime::Device& device, runtime::Sequence& seq, uint32_t n, uint32_t c, uint32_t hw,
                                const MatRef& x, const MatRef& dy, const MatRef& gamma, const MatRef& save_mean,
                                const MatRef& save_invstd, const MatRef& dx, const MatRef& dgamma, const MatRef& dbeta,
                                bool accumulate_dx) {
    record_backward(device, seq, "batch_norm_backward", n, c, hw, false, 0.0f, x, dy, gamma, save_mean, save_invstd, dx,
                    dgamma, dbeta, accumulate_dx);
}

void record_batch_norm_frozen_backward(runtime::Device& device, runtime::Sequence& seq, uint32_t n, uint32_t c,
                                       uint32_t hw, float eps, const MatRef& x, const MatRef& dy, const MatRef& gamma,
                                       const MatRef& running_mean, const MatRef& running_var, const MatRef& dx,
                                       const MatRef& dgamma, const MatRef& dbeta, bool accumulate_dx) {
    record_backward(device, seq, "batch_norm_frozen_backward", n, c, hw, true, eps, x, dy, gamma, running_mean,
                    running_var, dx, dgamma, dbeta, accumulate_dx);
}

} // namespace vktrain::kernels
