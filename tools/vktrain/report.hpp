// What `vktrain train` prints per epoch and writes with --report: one EpochStats per epoch, formatted as the
// stdout summary line and collected into the JSON report.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "args.hpp"
#include "io/json.hpp"
#include "vktrain/context.hpp"
#include "vktrain/text.hpp"
#include "vktrain/trainer.hpp"

namespace vktrain::cli {

struct EpochStats {
    uint32_t epoch = 0;      // 1-based
    double train_loss = 0.0; // mean over the epoch's samples
    double test_loss = 0.0;
    double test_accuracy = 0.0;
    double train_seconds = 0.0; // training steps only
    double eval_seconds = 0.0;
    uint64_t samples = 0;
    double loss_scale = 0.0;    // after the epoch
    uint64_t skipped_steps = 0; // cumulative
    uint64_t steps = 0;         // this epoch's
    double host_ms = 0.0;       // sums of StepResult::host_ms and overlapped_ms over this epoch's steps
    double overlapped_ms = 0.0;
};

// "epoch 1/5  train_loss 0.5234  test_loss 0.4412  test_accuracy 0.8421  seconds 12.3  samples/s 4870 ..."
std::string epoch_line(const EpochStats& stats, uint32_t epochs);

// The stdout header lines describing the run, one string with trailing newline.
std::string train_header(const TrainArgs& args, const Context& context, const Trainer& trainer, uint64_t train_count,
                         uint64_t test_count);

// The --profile table for one profiled step of `samples` samples: a header naming the method and its bias, one
// line per op in step order (name, µs, % of the step) and a total line splitting GEMM time from the rest.
std::string profile_table(const StepProfile& profile, uint32_t samples);

struct RunInfo {
    const TrainArgs* args = nullptr;
    const Context* context = nullptr;
    const Trainer* trainer = nullptr;
    uint64_t train_samples = 0;
    uint64_t test_samples = 0;
    std::vector<EpochStats> history;
    const StepProfile* profile = nullptr; // --profile: adds "profile" and "profile_total_us" to the report
};

io::Json train_report(const RunInfo& run);

// Text models: the validation loss over the windows at offsets 0, context, 2·context, ... (each character predicted
// once; limit > 0 takes the first `limit` windows).
struct ValResult {
    uint64_t step = 0;
    double loss = 0.0;
    uint64_t windows = 0;
    double seconds = 0.0;
};
ValResult validate(Trainer& trainer, const TextWindows& windows, uint64_t limit, uint32_t context);

} // namespace vktrain::cli
