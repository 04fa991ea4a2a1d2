#include "util.hpp"

#include <cmath>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "vktrain/error.hpp"

namespace vktrain::cli {

ContextOptions context_options(const DeviceArgs& args) {
    ContextOptions o;
    if (!args.device.empty()) {
        // parse_*_args already checked that an all-digit value fits an int.
        if (args.device.find_first_not_of("0123456789") == std::string::npos)
            o.device_index = int(std::stol(args.device));
        else
            o.device_name = args.device;
    }
    o.validation = args.validation;
    o.allow_coopmat = !args.no_coopmat;
    o.tune_gemm_tiles = !args.no_tune;
    o.allow_fused_attention = args.attention != AttentionChoice::unfused;
    if (args.attention == AttentionChoice::fused) o.fused_attention_min_score_bytes = 0;
    o.log = [](LogLevel level, LogSource source, const std::string& message) {
        std::fprintf(stderr, "vktrain: %s%s: %s\n", source == LogSource::validation ? "validation " : "",
                     to_string(level), message.c_str());
    };
    o.log_level = LogLevel::warning;
    return o;
}

void check_output_path(const std::string& path, const std::string& option, bool force) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path p(path);
    // symlink_status so that a dangling symlink also counts as existing: replacing it would still destroy it.
    const fs::file_status link = fs::symlink_status(p, ec);
    if (fs::exists(link)) {
        if (fs::is_directory(fs::status(p, ec))) throw Error(option + " " + path + ": is a directory");
        if (!force) throw Error(option + " " + path + ": already exists (pass --force to overwrite it)");
        // --force replaces files, nothing else: renaming over a symlink or a device node would destroy it.
        if (!fs::is_regular_file(link))
            throw Error(option + " " + path + ": is not a regular file (a symlink, device or pipe); refusing to " +
                        "replace it even with --force");
    }
    const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
    if (!fs::is_directory(dir, ec))
        throw Error(option + " " + path + ": directory '" + dir.string() + "' does not exist");
    // The library writes "<path>.tmp-<pid>" and renames it, so the directory itself must be writable.
    if (::access(dir.c_str(), W_OK | X_OK) != 0)
        throw Error(option + " " + path + ": directory '" + dir.string() +
                    "' is not writable: " + std::strerror(errno));
}

std::string utc_now_iso8601() {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string fixed(double value, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.*f", decimals, value);
    return buf;
}

std::string number(double value) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.7g", value);
    return buf;
}

std::string one_line(const std::string& text) {
    std::string out = text;
    for (char& c : out)
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
}

std::string device_summary(const DeviceInfo& info) {
    std::string s = info.name + " [" + info.type + "], driver " + info.driver_name;
    if (!info.driver_info.empty()) s += " " + info.driver_info;
    s += ", Vulkan " + info.api_version;
    return s;
}

io::Json device_json(const DeviceInfo& info) {
    io::Json d = io::Json::object();
    d["index"] = info.index;
    d["name"] = info.name;
    d["type"] = info.type;
    d["driver_name"] = info.driver_name;
    d["driver_info"] = info.driver_info;
    d["api_version"] = info.api_version;
    d["vendor_id"] = info.vendor_id;
    d["device_id"] = info.device_id;
    d["driver_version"] = info.driver_version;
    d["cooperative_matrix"] = info.coopmat_extension && info.coopmat_feature;
    return d;
}

bool stderr_is_terminal() {
    return ::isatty(STDERR_FILENO) == 1;
}

Accuracy classification_accuracy(Trainer& trainer, const Dataset& data) {
    Accuracy a;
    if (data.count == 0) return a;
    const std::vector<float> logits = trainer.predict(data.x.data(), data.count);
    const size_t classes = logits.size() / data.count;
    uint64_t correct = 0;
    double loss = 0.0;
    for (size_t i = 0; i < data.count; ++i) {
        const float* row = logits.data() + i * classes;
        size_t best = 0;
        for (size_t c = 1; c < classes; ++c)
            if (row[c] > row[best]) best = c;
        correct += best == size_t(data.labels[i]);
        double sum = 0.0; // cross-entropy in double from the logits: log-sum-exp minus the label's logit
        for (size_t c = 0; c < classes; ++c) sum += std::exp(double(row[c]) - double(row[best]));
        loss += std::log(sum) + double(row[best]) - double(row[size_t(data.labels[i])]);
    }
    a.accuracy = double(correct) / double(data.count);
    a.loss = loss / double(data.count);
    return a;
}

const std::string* find_metadata(const std::vector<std::pair<std::string, std::string>>& metadata,
                                 const std::string& key) {
    for (const auto& [k, v] : metadata)
        if (k == key) return &v;
    return nullptr;
}

Precision stored_precision(const std::optional<Precision>& given, const std::string& path,
                           const std::vector<std::pair<std::string, std::string>>& metadata) {
    // A value this build does not know is a damaged or foreign file, even when --precision makes it irrelevant.
    const std::string* p = find_metadata(metadata, "vktrain_precision");
    if (p && *p != "fp32" && *p != "mixed")
        throw Error(path + ": metadata \"vktrain_precision\" is \"" + *p + "\", expected mixed or fp32");
    if (given) return *given;
    // Evaluating in the precision the weights were trained in reproduces what `train` reported.
    return p && *p == "fp32" ? Precision::fp32 : Precision::mixed;
}

} // namespace vktrain::cli
