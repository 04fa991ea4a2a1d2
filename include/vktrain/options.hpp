// Plain option structs shared by the trainer, the optimizers and the loss scaler (no Vulkan types).
#pragma once

#include <cstdint>

namespace vktrain {

// fp32: everything fp32 on the device (the reference). mixed: weights, activations and activation
// gradients are fp16 on the device, GEMMs accumulate in fp32; master weights stay fp32 on the host.
enum class Precision { fp32, mixed };

enum class OptimizerKind { sgd, adamw };

// Activation recomputation (TrainerOptions::recompute). none: every activation the backward pass reads stays in
// memory from the forward pass. blocks: only each block's input (a transformer layer's residual-stream input) stays;
// the backward pass recomputes the rest of a block's forward pass just before it needs it, bit for bit as before, so
// peak activation memory holds one block's activations plus the block inputs instead of every block's, for about one
// more forward pass of time. Models without blocks (Model::set_block) train as with none.
enum class Recompute { none, blocks };

// Where the optimizer step runs (TrainerOptions::update_location).
enum class UpdateLocation { automatic, host, device };

// PyTorch semantics: SGD(momentum, dampening=0, nesterov, weight_decay as L2) and AdamW (decoupled
// weight decay: p *= 1 - lr * weight_decay before the Adam update).
struct OptimizerOptions {
    OptimizerKind kind = OptimizerKind::adamw;
    float learning_rate = 1e-3f;
    float momentum = 0.9f; // sgd
    bool nesterov = false; // sgd
    float beta1 = 0.9f;    // adamw
    float beta2 = 0.999f;  // adamw
    float epsilon = 1e-8f; // adamw
    float weight_decay = 0.0f;
};

// Dynamic loss scaling with torch.amp.GradScaler semantics and defaults.
struct LossScalerOptions {
    bool enabled = true;         // only used in mixed precision; fp32 runs with scale 1
    float init_scale = 65536.0f; // 2^16
    float growth_factor = 2.0f;  // after growth_interval consecutive finite steps
    float backoff_factor = 0.5f; // on a step with a non-finite gradient (that step is skipped)
    int32_t growth_interval = 2000;
};

} // namespace vktrain

namespace vktrain {

// The learning rate of optimizer step s (0-based; skipped steps count, as with a PyTorch scheduler stepped every
// iteration), from the peak rate `lr` (OptimizerOptions::learning_rate or Trainer::set_learning_rate):
// - constant: lr;
// - warmup_cosine: lr·(s+1)/warmup_steps for s < warmup_steps, then cosine from lr at s = warmup_steps down to
//   min_learning_rate at s = total_steps − 1, and min_learning_rate after that.
// A rate may be 0 (a step at rate 0 leaves the weights as they are but counts, as in PyTorch); a rate below the
// smallest normal float (1.18e-38) is returned as 0, so that host and device updates agree (GPUs may flush
// subnormal numbers).
enum class LrScheduleKind { constant, warmup_cosine };
struct LrSchedule {
    LrScheduleKind kind = LrScheduleKind::constant;
    uint64_t warmup_steps = 0;
    uint64_t total_steps = 0;
    float min_learning_rate = 0.0f;
};

// Throws vktrain::Error for a peak rate that is negative or not finite, or an inconsistent schedule (warmup_cosine:
// total_steps > warmup_steps, 0 <= min <= lr).
void check_schedule(const LrSchedule& schedule, float lr);
float scheduled_learning_rate(const LrSchedule& schedule, float lr, uint64_t step);

} // namespace vktrain
