#include "finetune.hpp"

#include <fstream>

#include "util.hpp"

namespace vktrain::cli {

namespace {

template <typename Change>
void named(const char* option, const std::string& pattern, const Change& change) {
    try {
        change();
    } catch (const Error& e) {
        throw UsageError(std::string(option) + " " + pattern + ": " + e.what());
    }
}

std::string mib_text(uint64_t bytes) {
    return fixed(double(bytes) / (1024.0 * 1024.0), 2) + " MiB";
}

} // namespace

void apply_parameter_groups(Model& model, const TrainArgs& a) {
    for (const auto& [pattern, trainable] : a.trainable_changes)
        named(trainable ? "--train" : "--freeze", pattern, [&] { model.set_trainable(pattern, trainable); });
    for (const auto& [pattern, scale] : a.lr_scales)
        named("--lr-scale", pattern, [&] { model.set_learning_rate_scale(pattern, float(scale)); });
}

std::optional<uint64_t> peak_host_bytes() {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.compare(0, 6, "VmHWM:") == 0) {
            try {
                return uint64_t(std::stoull(line.substr(6))) * 1024; // "VmHWM:    123456 kB"
            } catch (const std::exception&) {
                return std::nullopt;
            }
        }
    return std::nullopt;
}

std::string peak_memory_line(uint64_t device_bytes, const std::optional<uint64_t>& host_bytes) {
    return "memory  peak device " + mib_text(device_bytes) + ", peak host " +
           (host_bytes ? mib_text(*host_bytes) : std::string("n/a"));
}

} // namespace vktrain::cli
