// Fine-tuning options shared by `vktrain train --images` and `train --from` text runs: --freeze / --train /
// --lr-scale applied to the model before its Trainer is made, and the run's peak memory line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "args.hpp"
#include "vktrain/model.hpp"

namespace vktrain::cli {

// set_trainable(pattern, false / true) for --freeze / --train in command-line order, then set_learning_rate_scale for
// each --lr-scale; a pattern no parameter matches is a UsageError naming the option.
void apply_parameter_groups(Model& model, const TrainArgs& a);

// The process's peak resident set (VmHWM of /proc/self/status), where the system reports it.
std::optional<uint64_t> peak_host_bytes();

// "memory  peak device X MiB, peak host Y MiB" (host "n/a" where unknown), without a newline.
std::string peak_memory_line(uint64_t device_bytes, const std::optional<uint64_t>& host_bytes);

} // namespace vktrain::cli
