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
layout(binding = 0) readonly buffer BufG { float grads[]; };
layout(binding = 1) buffer BufM { float master[]; };
layout(binding = 2) buffer BufS { float state[]; };
layout(binding = 3) buffer BufW { OUT_S weights[]; };
layout(binding = 4) readonly buffer BufC { uint control[]; };
layout(push_constant) uniform Push { UpdatePush p; };

void main() {
    if (control[0] != 0u) return; // UpdateControl::found_inf
    const bool first = control[1] != 0u;
    const float multiplier = uintBitsToFloat(control[2]);
    const float lr = uintBitsToFloat(control[3]);
    const float step_size = uintBitsToFloat(control[4]);
    const float bias2_sqrt = uintBitsToFloat(control[5]);
    const float decay = uintBitsToFloat(control[UPDATE_CONTROL_WORDS + p.tensor]);
    const bool wd = (p.flags & UPDATE_WEIGHT_DECAY) != 0u;
    FOR_EACH_ELEMENT(i, p.n) {
        const uint j = p.offset + i;
        precise float g = grads[j] * multiplier; // the clip coefficient is 1: clipping stays on the host
        precise float w = master[j];
        if ((p.flags & UPDATE_ADAMW) != 0u) {
            if (wd) w = w * decay;
            precise float m = p.beta1 * state[j] + p.one_minus_beta1 * g;
            precise float v = p.beta2 * state[j + p.state_stride] + (p.one_minus_beta2 * g) * g;
            state[j] = m;
            state[j + p.state_stride] = v;
            precise float denom = sqrt(v) / bias2_sqrt + p.epsilon;
            w = w - (step_size * m) / denom;
        } else {
            precise float d = g;
            if (wd) d = d + p.weight_decay * w;
            if ((p.flags & UPDATE_MOMENTUM) != 0u) {
                precise float b = first ? d : p.momentum * state[j] + d;
                state[j] = b;
                d = (p.flags & UPDATE_NESTEROV) != 0u ? d + p.momentum * b : b;
            }
            w = w - lr * d;
        }
        master[j] = w;
        weights[p.weight_offset + i] = STORE_OUT(w);
    }
}
