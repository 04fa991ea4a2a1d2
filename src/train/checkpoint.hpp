// Full training checkpoints as one safetensors file: the fp32 master weights under their parameter names (so the file
// still loads as plain weights), the optimizer state under "optimizer.<kind>.<parameter name>" shaped like its
// parameter ("optimizer.exp_avg.linear0.weight"), and the scalar state in the metadata, with the trainable parameters
// and each one's optimizer step count. Floats that must round-trip bit-exactly (loss scale, learning rate) are stored
// as C99 hex-float text ("0x1p+16"). Version 1 files (state keyed by the trainable tensor's index,
// "optimizer.exp_avg.0", and no per-tensor step counts) are still read.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "io/safetensors.hpp"
#include "train/loss_scaler.hpp"
#include "train/optimizer.hpp"
#include "vktrain/options.hpp"

namespace vktrain::train {

using Metadata = std::vector<std::pair<std::string, std::string>>;

constexpr const char* checkpoint_format_version = "2";
constexpr const char* optimizer_tensor_prefix = "optimizer.";

struct Checkpoint {
    std::string model; // Model::describe()
    std::string graph; // Model::to_json() (empty in files of earlier versions)
    Precision precision = Precision::mixed;
    OptimizerKind optimizer = OptimizerKind::adamw;
    int64_t optimizer_steps = 0;
    float learning_rate = 0.0f;      // the rate of the last step
    float peak_learning_rate = 0.0f; // the rate TrainerOptions::lr_schedule scales (0 on write: learning_rate)
    LossScalerState scaler;
    uint64_t steps = 0;                      // including skipped ones
    uint64_t skipped = 0;                    // skipped steps
    std::vector<io::NamedTensor> parameters; // under the parameter names
    bool trainable_only = false; // parameters: the trainable ones and the buffers only (frozen ones not saved)
    std::vector<io::NamedTensor> optimizer_state; // names without the prefix ("exp_avg.linear0.weight"), shaped like
                                                  // the parameter
    // The trainable parameters in order, each with its optimizer step count (Optimizer::tensor_steps). Version 1
    // files: empty, and optimizer_state keyed by index ("exp_avg.0") into the trainable parameters of the model.
    std::vector<std::pair<std::string, int64_t>> trainable;
    bool indexed_state = false; // a version 1 file
    Metadata extra;             // the caller's metadata entries, in file order
};

// "optimizer.*": optimizer state in a checkpoint, not a parameter.
bool is_optimizer_tensor(const std::string& name);
// The metadata keys the checkpoint format owns; callers' extra entries must use other keys.
bool is_reserved_metadata_key(const std::string& key);

// Exact text forms: hex float for floats, decimal for integers.
std::string float_to_text(float value);

// Writes (temp file + rename) the checkpoint; throws vktrain::Error naming the path when an extra key is reserved
// or duplicated, or the file cannot be written.
void write_checkpoint(const std::string& path, const Checkpoint& checkpoint);

// Reads a checkpoint (format version 1 or 2) and parses its metadata. Throws vktrain::Error "<path>: <problem>" (one
// line) when the file is unreadable, is no checkpoint (e.g. weights only), has a newer format version, misses a
// metadata entry or holds a value that does not parse. Consistency with a particular trainer is the caller's to
// check.
Checkpoint read_checkpoint(const std::string& path);

} // namespace vktrain::train
