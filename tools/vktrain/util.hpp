// Helpers shared by the vktrain commands: device options, output-path checks, number and date formatting, and the
// JSON/text forms of a device.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "args.hpp"
#include "io/json.hpp"
#include "vktrain/context.hpp"
#include "vktrain/data.hpp"
#include "vktrain/trainer.hpp"

namespace vktrain::cli {

constexpr const char* tool_version = "0.1.0";

// ContextOptions for --device/--validation/--no-coopmat; library log messages go to stderr prefixed "vktrain: ".
ContextOptions context_options(const DeviceArgs& args);

// Fails (vktrain::Error) unless `path` can be created: it must not exist (unless force, and then it must not be a
// directory) and its directory must exist and be writable. Run before any expensive work so a typo costs nothing.
void check_output_path(const std::string& path, const std::string& option, bool force);

// "2025-01-31T12:34:56Z"
std::string utc_now_iso8601();

// Fixed-point with `decimals` digits ("0.8421").
std::string fixed(double value, int decimals);
// Shortest readable form with up to 7 significant digits ("65536", "0.001").
std::string number(double value);

// Error messages must stay on one line: newlines and tabs become spaces.
std::string one_line(const std::string& text);

// "llvmpipe (LLVM 15.0.6, 256 bits) [cpu] driver llvmpipe Mesa 22.3.6, Vulkan 1.3.230"
std::string device_summary(const DeviceInfo& info);
io::Json device_json(const DeviceInfo& info);

bool stderr_is_terminal();

// A weights file's or checkpoint's metadata entry, or null.
const std::string* find_metadata(const std::vector<std::pair<std::string, std::string>>& metadata,
                                 const std::string& key);
// --precision when given, else the precision a weights file was trained in (its "vktrain_precision"), else mixed.
// Throws naming `path` (the file the metadata came from) when "vktrain_precision" is neither mixed nor fp32.
Precision stored_precision(const std::optional<Precision>& given, const std::string& path,
                           const std::vector<std::pair<std::string, std::string>>& metadata);

// The recipes' classification metric (not the library's): loss and the share of samples whose largest logit is
// the label, from the trainer's evaluation-mode predictions.
struct Accuracy {
    double loss = 0.0, accuracy = 0.0;
};
Accuracy classification_accuracy(Trainer& trainer, const Dataset& data);

} // namespace vktrain::cli
