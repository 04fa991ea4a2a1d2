#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// The optimizer on the device (TrainerOptions::update_location): PyTorch's AdamW and SGD rules on fp32 master
// weights, operation for operation as the host optimizer (src/train/optimizer.cpp) computes them, every
// intermediate `precise` so that no multiply-add is fused; then the weights the kernels read (fp16 in mixed
// precision). Nothing is written when the scan of the step's gradients found an inf or NaN (GradScaler skips
// the step). Layouts: UpdatePush / UpdateControl in push_constants.h.
#include "elementwise.glsl"

layout(local_size_x = ELT_WG) in;
layout(binding = 0) readonly buffer BufG {
    float grads[];
};
layout(binding = 1) buffer BufM {
    float master[];
};
layout(binding = 2) buffer BufS1 {
    float state1[];
};
layout(binding = 3) buffer BufS2 {
    float state2[];
};
layout(binding = 4) buffer BufW {
    OUT_S weights[];
};
layout(binding = 5) readonly buffer BufC {
    uint control[];
};
layout(push_constant) uniform Push {
    UpdatePush p;
};

void main() {
    const uint c = p.offsets[5];
    if (control[c] != 0u) return; // UpdateControl::found_inf
    const float multiplier = uintBitsToFloat(control[c + 2u]);
    const uint t = c + UPDATE_CONTROL_WORDS + UPDATE_TENSOR_WORDS * p.tensor; // UpdateTensorControl
    const float decay = uintBitsToFloat(control[t]);
    const float step_size = uintBitsToFloat(control[t + 1u]); // SGD: the tensor's learning rate
    const float bias2_sqrt = uintBitsToFloat(control[t + 2u]);
    const bool first = control[t + 3u] != 0u;
    const bool wd = (p.flags & UPDATE_WEIGHT_DECAY) != 0u;
    FOR_EACH_ELEMENT(i, p.n) {
        precise float g = grads[p.offsets[0] + i] * multiplier; // the clip coefficient is 1: clipping stays on the host
        precise float w = master[p.offsets[1] + i];
        const uint s1 = p.offsets[2] + i, s2 = p.offsets[3] + i;
        if ((p.flags & UPDATE_ADAMW) != 0u) {
            if (wd) w = w * decay;
            precise float m = p.beta1 * state1[s1] + p.one_minus_beta1 * g;
            precise float v = p.beta2 * state2[s2] + (p.one_minus_beta2 * g) * g;
            state1[s1] = m;
            state2[s2] = v;
            precise float denom = sqrt(v) / bias2_sqrt + p.epsilon;
            w = w - (step_size * m) / denom;
        } else {
            precise float d = g;
            if (wd) d = d + p.weight_decay * w;
            if ((p.flags & UPDATE_MOMENTUM) != 0u) {
                precise float b = first ? d : p.momentum * state1[s1] + d;
                state1[s1] = b;
                d = (p.flags & UPDATE_NESTEROV) != 0u ? d + p.momentum * b : b;
            }
            w = w - step_size * d;
        }
        master[p.offsets[1] + i] = w;
        weights[p.offsets[4] + i] = STORE_OUT(w);
    }
}
