// Plain option structs shared by the trainer, the optimizers and the loss scaler (no Vulkan types).
#pragma once

#include <cstdint>

namespace vktrain {

// fp32: everything fp32 on the device (the reference). mixed: weights, activations and activation
// gradients are fp16 on the device, GEMMs accumulate in fp32; master weights stay fp32 on the host.
enum class Precision { fp32, mixed };

enum class OptimizerKind { sgd, adamw };

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
