// The trainer: compiles a Model for a context (the backward pass derived from the graph, activations and
// gradients placed by a memory planner in one arena), records the training step's command buffer once and
// replays it every step. fp32 master weights and optimizer state live on the host; the device holds the fp16
// (mixed) or fp32 copy, refreshed only when the weights changed.
//
// Threads: a Trainer is used from one thread at a time (calls from several threads must be serialised by the
// caller); a call made while another thread is inside the same Trainer throws vktrain::Error rather than running.
// Several Trainers, on one Context or several, may run on different threads at once (the Context serialises queue
// submissions). A Context may be shared by threads; creating and destroying it is not concurrent with its use.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "vktrain/context.hpp"
#include "vktrain/model.hpp"
#include "vktrain/options.hpp"

namespace vktrain {

struct TrainerOptions {
    Precision precision = Precision::mixed;
    uint32_t batch_size = 128;
    OptimizerOptions optimizer;
    LossScalerOptions loss_scaler;
    GemmPath gemm_path = GemmPath::auto_select; // mixed only; fp32 precision always runs the fp32 GEMM
    uint64_t seed = 0;                          // weight initialisation and dropout masks
    bool inference_only = false;                // predict/evaluate only: no gradient or optimizer buffers
    // > 0: before each update, scale the gradients so their global L2 norm (over every trainable parameter, computed
    // on the unscaled gradients after the inf/NaN check) is at most this (PyTorch: scaler.unscale_(opt);
    // clip_grad_norm_(params, max_grad_norm)). A skipped step clips nothing.
    float max_grad_norm = 0.0f;
    LrSchedule lr_schedule; // applied before every step from the step counter (constant by default)
    // Overlap the host update with the backward pass: the gradients come back in up to this many buckets as the
    // device finishes them, and each bucket is checked and its update staged while the device computes the rest;
    // the step is committed only when no gradient overflowed (GradScaler's rule, exactly). Not used with
    // max_grad_norm > 0 or several micro-batches, which need every gradient before any update. Costs a second copy of
    // the master weights and optimizer state in host memory (12 bytes per trainable parameter with AdamW, 4 more per
    // weight). 1: off (one readback, then the update). 0 (default): 4 for models of 2^20 trainable parameters or
    // more, else 1 (each bucket costs a submission and a fence, more than overlapping a small model's update saves).
    uint32_t update_buckets = 0;
    // host: the optimizer runs on the fp32 master weights in host memory (overlapped as above). device: the master
    // weights and optimizer state also live in device memory (12 bytes more per trainable parameter with AdamW)
    // and kernels update them after a scan of the gradients, so a step moves no gradient down and no weight up:
    // for discrete GPUs whose host cannot keep up. The host's copies stay the API's, refreshed whenever they are
    // read (parameters(), optimizer_state(), checkpoints); skips follow GradScaler exactly; StepResult::grad_norm
    // is NaN (not computed); steps with several micro-batches run on the host. Not with max_grad_norm > 0.
    // automatic: on a GPU without unified memory both are timed when the trainer is made and the faster runs;
    // elsewhere host (no transfers to save). update_location_reason() says which and why.
    UpdateLocation update_location = UpdateLocation::automatic;
    // Activation recomputation (see Recompute): blocks trades about one more forward pass per step for the memory of
    // all but one block's activations. Losses and weights are bit-identical either way. A model without blocks
    // trains without it (one warning through the context's log).
    Recompute recompute = Recompute::none;
};

struct StepResult {
    float loss = 0.0f;          // mean loss of the batch (unscaled; over every micro-batch)
    float loss_scale = 1.0f;    // the scale used for this step's gradients
    bool skipped = false;       // a gradient was inf/NaN: no update, scale backed off
    float grad_norm = 0.0f;     // global L2 norm of the unscaled gradients before clipping (inf when skipped)
    float learning_rate = 0.0f; // the rate this step used (after the schedule)
    // Host work of the update in milliseconds (inf/NaN check and norm, optimizer, fp16 copy), and the part of it
    // done while the device still computed later gradients (TrainerOptions::update_buckets; else 0).
    float host_ms = 0.0f, overlapped_ms = 0.0f;
};

// One micro-batch of a step with gradient accumulation: `count` (1..batch_size) samples per model input.
struct MicroBatch {
    std::vector<const void*> inputs;
    uint32_t count = 0;
};

struct EvalResult {
    double loss = 0.0; // mean loss over all samples (and positions), evaluation mode
    uint64_t count = 0;
};

// Device memory of a compiled model: the planned activation arena (the larger of the training and evaluation
// plans), what one buffer per value would have taken, and every buffer the trainer holds.
struct MemoryReport {
    uint64_t arena_bytes = 0;
    uint64_t train_plan_bytes = 0, eval_plan_bytes = 0;
    uint64_t unplanned_bytes = 0; // the training graph with one buffer per value
    uint32_t in_place = 0;        // values that reuse their input's bytes
    uint64_t total_bytes = 0;     // everything this trainer allocated (== device_bytes())
    // Host memory, by what holds it. Frozen parameters live only on the device: they count in none of these.
    uint64_t host_master_bytes = 0; // fp32 masters of the trainable parameters (and the update pipeline's second bank)
    uint64_t host_optimizer_bytes = 0; // optimizer state (AdamW moments, SGD momentum; both banks when pipelined)
    uint64_t host_gradient_bytes = 0;  // the gradients' readback and the accumulation sum
    uint64_t host_staging_bytes = 0;   // the trainable weights' upload staging (storage precision)
    uint64_t trainable_parameters = 0, frozen_parameters = 0; // elements
};

struct GemmReport {
    std::string site;  // e.g. "linear1.forward"
    std::string shape; // e.g. "ABt:m=128,n=256,k=784,out=f16"
    GemmPath path = GemmPath::fp32;
    std::string reason;
    std::string tiles;       // the tile configuration it runs with, e.g. "regs 16x16 wg8 vec4" (GEMMs and convolutions)
    std::string tile_reason; // e.g. "tuned (measured): 1790.2 us vs the default's 2265.0 us"
};

// One op of a profiled training step, in step order: "upload" (weights to the device), "input.cast",
// "linear0.forward (gemm tiled-fp16)", "linear0.bias_add", "relu0.forward", "softmax_xent",
// "linear1.weight_grad (gemm fp32)", "linear1.bias_grad", "linear1.input_grad (gemm coopmat)", "relu0.backward",
// "gradient_scan", "readback" (gradients to the host). GEMMs carry " (gemm <path>)".
struct OpTiming {
    std::string name;
    double microseconds = 0.0; // GPU time (0 when the device has no timestamps)
};

struct StepProfile {
    std::vector<OpTiming> ops;
    double total_microseconds = 0.0; // GPU time of the whole step (the sum of ops), else host wall-clock time
    bool gpu_timestamps = false;     // false: the device has no timestamps; only the total (host clock) is filled
    // Compute dispatches one training step records: the forward and backward replay as step() runs it, plus the
    // device update's scan and optimizer kernels when the update runs on the device (copies and fills not counted).
    uint32_t dispatches = 0;
};

// String entries a caller stores in a checkpoint's metadata and gets back when loading it.
using CheckpointMetadata = std::vector<std::pair<std::string, std::string>>;

struct Parameter {
    std::string name;
    std::vector<int64_t> shape;
    std::vector<float> data; // fp32 master values
};

// One output of Trainer::predict_all.
struct Prediction {
    std::string name;           // the output's name ("": the default output)
    std::vector<int64_t> shape; // [count, per-sample shape...]
    std::vector<float> data;    // fp32, row-major
};

// What load_checkpoint did with the optimizer state, by parameter name, when the checkpoint's trainable parameters
// differ from the trainer's (Trainer::set_trainable between saving and loading, or another Model::set_trainable):
// restored for the parameters trainable in both; fresh (zero state, step 0) for those trainable only here; not kept for
// those trainable only in the file (frozen here).
struct OptimizerStateLoad {
    std::vector<std::string> restored, fresh, dropped;
};

class Trainer {
public:
    // The trainer compiles its own copy of `model`: later changes to `model` (Model::set_trainable included) do not
    // reach it; Trainer::set_trainable changes a running trainer.
    Trainer(Context& context, const Model& model, const TrainerOptions& options);
    ~Trainer();
    Trainer(const Trainer&) = delete;
    Trainer& operator=(const Trainer&) = delete;

    // One optimisation step on `count` (1..batch_size) samples. inputs[i] holds count samples of the model's
    // input i (Model::inputs() order), fp32 or int32 as declared. Returns the loss, the loss scale used and
    // whether the step was skipped.
    StepResult step(const std::vector<const void*>& inputs, uint32_t count);
    // Models with inputs (x: fp32, labels: int32), such as Model::mlp and Model::cnn; labels in [0, classes).
    StepResult step(const float* x, const int32_t* labels, uint32_t count);
    // One optimisation step over several micro-batches (gradient accumulation): each micro-batch runs forward and
    // backward with the step's loss scale, and the fp32 gradients are summed weighted by count / total count, so the
    // update equals that of one batch of all the samples (within fp32 rounding) while the device holds only
    // batch_size samples at a time. An inf/NaN in any micro-batch skips the whole step.
    StepResult step(const std::vector<MicroBatch>& micro_batches);

    // Loss and fp32 gradients (unscaled) for a batch without updating anything; one vector per trainable
    // parameter, in parameters() order.
    float compute_gradients(const std::vector<const void*>& inputs, uint32_t count,
                            std::vector<std::vector<float>>& grads);
    float compute_gradients(const float* x, const int32_t* labels, uint32_t count,
                            std::vector<std::vector<float>>& grads);

    // Times every op of one training step on this batch with GPU timestamps. Measurement only: no optimizer
    // update, and the master weights, optimizer state, loss scale and step counters are left exactly as they
    // were. A timestamp waits for everything before it, so ops never overlap here and the times are slightly
    // pessimistic compared with step(). The first call records the profiling command buffer and replays it
    // once untimed (first-use driver work) before the measured replay.
    StepProfile profile_step(const std::vector<const void*>& inputs, uint32_t count);
    StepProfile profile_step(const float* x, const int32_t* labels, uint32_t count);

    // Forward pass in evaluation mode: the default output (Model::output(): the loss's prediction operand, e.g.
    // logits, count × classes; in a model without a loss its only output) as fp32, for any number of samples. Inputs
    // the prediction does not depend on (labels) may be null.
    std::vector<float> predict(const std::vector<const void*>& inputs, uint64_t count);
    std::vector<float> predict(const float* x, uint64_t count);
    // The output named `output` (Model::output(value, name); "": the default output).
    std::vector<float> predict(const std::vector<const void*>& inputs, uint64_t count, const std::string& output);
    // Every output of one forward pass: the named outputs in Model::outputs() order, preceded by the default output
    // under the name "" when the model has a loss whose prediction operand is not one of them.
    std::vector<Prediction> predict_all(const std::vector<const void*>& inputs, uint64_t count);
    // An output's per-sample shape (the batch dimension not counted; "": the default output), e.g. to size buffers.
    std::vector<int64_t> output_shape(const std::string& output = "") const;
    // Mean loss over the samples; throws for a model without a loss.
    EvalResult evaluate(const std::vector<const void*>& inputs, uint64_t count);
    EvalResult evaluate(const float* x, const int32_t* labels, uint64_t count);

    // Changes the learning rate from the next step on; with TrainerOptions::lr_schedule this is the peak rate the
    // schedule scales. It must be finite and >= 0 (0, e.g. the end of a hand-made cosine decay: later steps leave the
    // weights as they are but count). learning_rate() is the rate of the last step (or the next one before any step).
    void set_learning_rate(float learning_rate);
    float learning_rate() const;

    // Every parameter and buffer (BatchNorm running statistics, read from the device), in Model::parameters()
    // order.
    std::vector<Parameter> parameters() const;
    // One parameter or buffer by name, without copying the others. Throws vktrain::Error naming an unknown one.
    Parameter parameter(const std::string& name) const;
    // The optimizer's fp32 state of each trainable parameter, by parameter name ("exp_avg.linear0.weight",
    // "exp_avg_sq.linear0.weight", "momentum_buffer.conv0.bias", ...) in parameters() order, for inspection and tests.
    std::vector<std::pair<std::string, std::vector<float>>> optimizer_state() const;
    // Any subset of the parameters and buffers: every name must be one of them, once, with its shape, and the values
    // finite (counters >= 0); the others keep their values. Checked before anything changes. The optimizer state is
    // kept (as when a PyTorch user copies into param.data).
    void set_parameters(const std::vector<Parameter>& params);
    // One parameter or buffer: `values` must hold its element count (its shape's product), finite.
    void set_parameter(const std::string& name, const std::vector<float>& values);

    // Freezes (false) or unfreezes (true) the parameters `pattern` matches (Model::set_trainable's patterns: an exact
    // name, a prefix ending in '.', '*' for any characters), at any time between steps. Tensors that stay trainable
    // keep their optimizer state bit for bit; newly trainable ones start fresh (zero state, step 0, as PyTorch creates
    // a parameter's state at its first gradient); frozen ones lose theirs and get no gradient, readback or update (the
    // training program is compiled again for the new set; weights, buffers and activations stay where they are).
    // A frozen tensor lives only on the device, in the storage precision (its host master is dropped); unfreezing
    // starts the new fp32 master from the device's copy (in mixed precision its fp16 values). model() reflects the
    // change, and checkpoints record it. Throws vktrain::Error, changing nothing, for a pattern no parameter matches, a
    // change that would leave nothing trainable, or an inference_only trainer.
    void set_trainable(const std::string& pattern, bool trainable);

    // Weights only: safetensors with the fp32 master weights and persistent buffers under the parameter names (not
    // buffers such as a decoder's key/value caches: ParameterInfo::persistent), and the architecture (Model::to_json)
    // in the metadata, so load_model() rebuilds the model.
    void save(const std::string& path) const;
    // The same with extra metadata entries (e.g. a text model's vocabulary), which read_weights(path).metadata() gives
    // back; keys must not start with "vktrain_" unless they are the caller's own ("vktrain_vocabulary" is used by the
    // vktrain tool).
    void save(const std::string& path, const CheckpointMetadata& extra) const;
    // Reads weights checked as parameters_for (vktrain/weights.hpp) checks them: F32, F16 or BF16 (or integer)
    // tensors, every persistent one of this model's present with its shape; buffers that are not persistent (caches)
    // restart from zeros, so Model::gpt_decoder loads the weights Model::gpt saved. A full checkpoint's weights load
    // too (its "optimizer.*" tensors are ignored). Changes nothing else, and nothing at all on error. Unlike
    // set_parameters, which takes a subset, the file must hold every persistent parameter and buffer.
    void load(const std::string& path);

    // Full training checkpoints, for resuming bit-identically: one safetensors file with the weights (under the
    // parameter names, so load() and other safetensors readers still see plain weights), the optimizer state under
    // "optimizer.<kind>.<parameter name>" ("optimizer.exp_avg.linear0.weight", ...) and, in the metadata, the model,
    // precision, optimizer kind and step count, the trainable parameters with their step counts, learning rate, exact
    // loss scale and growth tracker, and the step and skipped-step counters.
    // `extra` entries (e.g. a caller's epoch counter) are stored alongside; their keys must not be the format's own
    // ("vktrain_checkpoint", "vktrain_model", ...). Written to a temporary file and renamed over `path`.
    // trainable_only: only the trainable parameters (and the buffers) are stored, not the frozen ones, so a checkpoint
    // of LoRA on a frozen base holds the adapters, their optimizer state and the scaler; loading it takes the frozen
    // parameters as this trainer holds them (load the base first).
    void save_checkpoint(const std::string& path, const CheckpointMetadata& extra = {},
                         bool trainable_only = false) const;
    // Restores everything save_checkpoint stored (device weights included) and returns its `extra` entries. Throws
    // vktrain::Error with a one-line message naming the file and the problem (not a checkpoint, e.g. a weights-only
    // file; another model or optimizer kind; a missing, unexpected or wrongly shaped tensor; a malformed or
    // inconsistent number) and then leaves this trainer unchanged. The precision may differ from the checkpoint's
    // (continuing is then not bit-identical, but the state carries over); the learning rate is the checkpoint's.
    // The trainable parameters may differ too (staged unfreezing): see OptimizerStateLoad, filled in when given; a
    // difference is also logged as a warning through the context's log. Files of the earlier index-keyed format
    // ("optimizer.exp_avg.0") still load.
    CheckpointMetadata load_checkpoint(const std::string& path, OptimizerStateLoad* optimizer_state_load = nullptr);

    const Model& model() const;
    const TrainerOptions& options() const;
    float loss_scale() const;
    uint64_t steps() const; // steps taken (including skipped ones)
    uint64_t skipped_steps() const;
    // The buckets a step's gradients come back in (TrainerOptions::update_buckets; 1: no overlap, or a model too
    // small to split).
    uint32_t update_buckets() const;
    UpdateLocation update_location() const; // host or device: what TrainerOptions::update_location resolved to
    const std::string& update_location_reason() const;
    // The GEMM path of every GEMM in the step, and a one-word summary ("coopmat", "tiled-fp16",
    // "fp32", or "mixed" when GEMMs differ).
    const std::vector<GemmReport>& gemm_paths() const;
    std::string gemm_path_summary() const;
    uint64_t device_bytes() const; // device memory held by this trainer
    MemoryReport memory() const;
    uint64_t weight_uploads() const;      // times the weights were copied to the device (they go up only when changed)
    uint64_t weight_upload_bytes() const; // bytes copied by those uploads (after a step: trainable parameters only)

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

// The architecture recorded in a weights file or checkpoint written by Trainer::save / save_checkpoint.
Model load_model(const std::string& path);

} // namespace vktrain
