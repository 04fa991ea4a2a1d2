// How a training step's gradients become new weights. Trainer::step (src/train/trainer.cpp) drives every strategy
// through the same calls, in this order:
//
//   update.begin(scalars)              the step's 1 / loss scale and learning rate, before the replay is submitted
//   program.start(); update.submitted()
//   for each bucket b:                 (graph/buckets.hpp; one bucket unless the gradients come back in several)
//       program.wait_bucket(b); update.on_bucket(b, program.grads())
//   program.finish()
//   check = update.check()             was a gradient inf/NaN (GradScaler's question), and their norm
//   skip = state.conclude(check)       the GradScaler decision and the step counters, once (train/step_state.hpp)
//   update.finish(skip)                commit the update, or drop it
//
// begin / on_bucket / check / finish rather than one call: the decision sits between what only the strategy can
// find (the gradients' check: on the host, on the device, or agreed over ranks) and what only it can undo (staged
// updates), and it is the trainer's, written once. The strategies:
// - HostUpdate (train/host_update.hpp): every gradient read back, then checked and applied on the host; also the
//   update of gradient accumulation and of clipping;
// - PipelinedUpdate (train/pipelined_update.hpp): each bucket checked and its update staged while the device runs
//   the rest of the backward pass;
// - DeviceUpdate (train/device_update.hpp): the optimizer on the device; the host only reads a flag.
// Later: data parallelism is an all-reduce of each bucket in on_bucket before the host strategy sees it (the reduced
// gradients carry any rank's inf, so check() agrees on every rank); frozen and LoRA parameters change only which
// tensors a strategy is given (TrainableTensors).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vktrain::train {

// The trainable tensors a strategy updates, in Layout::slots order (the optimizer's tensor order).
struct TrainableTensors {
    std::vector<size_t> master_offsets; // where each lies in the host's fp32 master vector (Layout::master_offset)
    std::vector<size_t> grad_offsets;   // where its gradient lies in the gradient buffer (Layout::grad_offset)
};

struct StepScalars {
    float loss_scale = 1.0f;    // what the loss (and so every gradient) is multiplied by in this step
    float multiplier = 1.0f;    // 1 / loss_scale as GradScaler.unscale_ forms it (1 when the scale is 1)
    float learning_rate = 0.0f; // this step's (after the schedule)
};

struct GradientCheck {
    bool found_inf = false; // some unscaled gradient is inf or NaN
    float grad_norm = 0.0f; // their global L2 norm (inf when found_inf; NaN where not formed: the device update)
};

struct StepTiming {
    double host_seconds = 0.0;       // the host's work on the update (checks, optimizer, fp16 copies, commit)
    double overlapped_seconds = 0.0; // the part of it done while the device still computed later gradients
};

class UpdateStrategy {
public:
    virtual ~UpdateStrategy() = default;

    virtual void begin(const StepScalars& scalars) = 0;
    // The replay was submitted: work the device must queue behind it (the device update) goes now.
    virtual void submitted() {}
    // Bucket b's gradients are readable at `grads` (the whole gradient layout, TrainableTensors::grad_offsets; only the
    // buckets passed so far hold this step's values). The device may still be computing later buckets.
    virtual void on_bucket(size_t bucket, const float* grads) = 0;
    virtual GradientCheck check() = 0;
    // skip: GradScaler's decision. Not skipped: the new weights are current on the host or device as the strategy
    // keeps them, and the device's working copy (graph::Resources) is written or staged for upload.
    virtual StepTiming finish(bool skip) = 0;
    // The step failed with an exception after begin(): anything staged is dropped and nothing current has changed.
    virtual void abandon() {}
    // Host memory the strategy holds besides the masters and the optimizer (a second bank of masters).
    virtual uint64_t host_bytes() const { return 0; }
    // Compute dispatches the strategy records per step on the device (the device update's scan and optimizer).
    virtual uint32_t dispatches() const { return 0; }

    // The host's fp32 master weights and train::Optimizer are the API's view (parameters(), checkpoints). A strategy
    // that keeps a copy of its own brings the host's up to date here before they are read or written...
    virtual void sync_host() {}
    // ...and learns here that the host's changed outside its steps (set_parameters, load_checkpoint, a host step):
    // `trainable_only` when only trainable tensors changed (a step by another strategy).
    virtual void host_changed(bool trainable_only) { (void)trainable_only; }
};

} // namespace vktrain::train
