#include "train/checkpoint.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "common/check.hpp"
#include "io/json.hpp"

namespace vktrain::train {

namespace {

constexpr const char* key_checkpoint = "vktrain_checkpoint";
constexpr const char* key_model = "vktrain_model";
constexpr const char* key_graph = "vktrain_graph";
constexpr const char* key_precision = "vktrain_precision";
constexpr const char* key_optimizer = "vktrain_optimizer";
constexpr const char* key_optimizer_steps = "vktrain_optimizer_steps";
constexpr const char* key_learning_rate = "vktrain_learning_rate";
constexpr const char* key_peak_learning_rate = "vktrain_peak_learning_rate"; // what a schedule scales (optional)
constexpr const char* key_loss_scale = "vktrain_loss_scale";
constexpr const char* key_growth_tracker = "vktrain_growth_tracker";
constexpr const char* key_steps = "vktrain_steps";
constexpr const char* key_skipped = "vktrain_skipped_steps";
constexpr const char* key_trainable = "vktrain_optimizer_tensors";      // version 2: {"<parameter>": <its steps>, ...}
constexpr const char* key_parameters = "vktrain_checkpoint_parameters"; // "trainable": only those and the buffers

constexpr const char* reserved_keys[] = {key_checkpoint,      key_model,         key_precision,  key_optimizer,
                                         key_optimizer_steps, key_learning_rate, key_loss_scale, key_growth_tracker,
                                         key_steps,           key_skipped,       key_graph,      key_peak_learning_rate,
                                         key_trainable,       key_parameters};

const std::string* find(const Metadata& metadata, const char* key) {
    for (const auto& [k, v] : metadata)
        if (k == key) return &v;
    return nullptr;
}

// The entry, or an error naming the file and the missing key.
const std::string& require(const std::string& path, const Metadata& metadata, const char* key) {
    const std::string* value = find(metadata, key);
    VKT_CHECK(value, path, ": checkpoint metadata has no \"", key, "\"");
    return *value;
}

uint64_t parse_uint(const std::string& path, const char* key, const std::string& text, uint64_t max) {
    bool ok = !text.empty() && text.size() <= 20 && text.find_first_not_of("0123456789") == std::string::npos;
    unsigned long long v = 0;
    if (ok) {
        errno = 0;
        char* end = nullptr;
        v = std::strtoull(text.c_str(), &end, 10);
        ok = errno != ERANGE && *end == '\0' && v <= max;
    }
    VKT_CHECK(ok, path, ": checkpoint metadata \"", key, "\" must be an integer in [0, ", max, "], got \"", text, "\"");
    return uint64_t(v);
}

// Hex float text (what float_to_text writes) or any strtod syntax, as long as it is a finite float exactly.
float parse_float(const std::string& path, const char* key, const std::string& text) {
    errno = 0;
    char* end = nullptr;
    const double v = text.empty() || text.front() == ' ' ? NAN : std::strtod(text.c_str(), &end);
    const bool ok = end == text.c_str() + text.size() && errno != ERANGE && std::isfinite(v) &&
                    std::fabs(v) <= double(std::numeric_limits<float>::max()) && double(float(v)) == v;
    VKT_CHECK(ok, path, ": checkpoint metadata \"", key, "\" must be a finite float, got \"", text, "\"");
    return float(v);
}

const char* precision_text(Precision p) {
    return p == Precision::mixed ? "mixed" : "fp32";
}
const char* optimizer_text(OptimizerKind k) {
    return k == OptimizerKind::sgd ? "sgd" : "adamw";
}

} // namespace

bool is_optimizer_tensor(const std::string& name) {
    return name.compare(0, std::char_traits<char>::length(optimizer_tensor_prefix), optimizer_tensor_prefix) == 0;
}

bool is_reserved_metadata_key(const std::string& key) {
    for (const char* k : reserved_keys)
        if (key == k) return true;
    return false;
}

std::string float_to_text(float value) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%a", double(value));
    return buf;
}

void write_checkpoint(const std::string& path, const Checkpoint& c) {
    Metadata metadata = {
        {key_checkpoint, checkpoint_format_version},
        {key_model, c.model},
        {key_precision, precision_text(c.precision)},
        {key_optimizer, optimizer_text(c.optimizer)},
        {key_optimizer_steps, std::to_string(c.optimizer_steps)},
        {key_learning_rate, float_to_text(c.learning_rate)},
        {key_peak_learning_rate, float_to_text(c.peak_learning_rate > 0 ? c.peak_learning_rate : c.learning_rate)},
        {key_loss_scale, float_to_text(c.scaler.scale)},
        {key_growth_tracker, std::to_string(c.scaler.growth_tracker)},
        {key_steps, std::to_string(c.steps)},
        {key_skipped, std::to_string(c.skipped)},
    };
    if (!c.graph.empty()) metadata.emplace_back(key_graph, c.graph);
    if (c.trainable_only) metadata.emplace_back(key_parameters, "trainable");
    io::Json trainable = io::Json::object();
    for (const auto& [name, steps] : c.trainable) {
        VKT_CHECK(!trainable.contains(name), path, ": parameter '", name, "' is listed twice");
        trainable[name] = steps;
    }
    metadata.emplace_back(key_trainable, trainable.dump());
    for (const auto& [key, value] : c.extra) {
        VKT_CHECK(!is_reserved_metadata_key(key), path, ": metadata key \"", key,
                  "\" is reserved for the checkpoint format");
        metadata.emplace_back(key, value);
    }
    std::vector<io::NamedTensor> tensors = c.parameters;
    tensors.reserve(c.parameters.size() + c.optimizer_state.size());
    for (const io::NamedTensor& t : c.optimizer_state)
        tensors.push_back({optimizer_tensor_prefix + t.name, t.shape, t.data});
    io::write_safetensors(path, tensors, metadata);
}

Checkpoint read_checkpoint(const std::string& path) {
    Metadata metadata;
    std::vector<io::NamedTensor> tensors = io::read_safetensors(path, &metadata);
    const std::string* version = find(metadata, key_checkpoint);
    VKT_CHECK(version, path, ": not a vktrain checkpoint (no \"", key_checkpoint,
              "\" metadata; a weights-only file holds no optimizer or loss-scaler state)");
    VKT_CHECK(*version == checkpoint_format_version || *version == "1", path,
              ": unsupported checkpoint format version \"", *version, "\" (this build reads versions 1 and ",
              checkpoint_format_version, ")");

    Checkpoint c;
    c.model = require(path, metadata, key_model);
    if (const std::string* graph = find(metadata, key_graph)) c.graph = *graph;
    if (const std::string* which = find(metadata, key_parameters)) {
        VKT_CHECK(*which == "trainable", path, ": metadata ", key_parameters, " is \"", *which,
                  "\", expected \"trainable\"");
        c.trainable_only = true;
    }
    const std::string& precision = require(path, metadata, key_precision);
    VKT_CHECK(precision == "mixed" || precision == "fp32", path, ": checkpoint metadata \"", key_precision,
              "\" must be mixed or fp32, got \"", precision, "\"");
    c.precision = precision == "mixed" ? Precision::mixed : Precision::fp32;
    const std::string& optimizer = require(path, metadata, key_optimizer);
    VKT_CHECK(optimizer == "adamw" || optimizer == "sgd", path, ": checkpoint metadata \"", key_optimizer,
              "\" must be adamw or sgd, got \"", optimizer, "\"");
    c.optimizer = optimizer == "sgd" ? OptimizerKind::sgd : OptimizerKind::adamw;
    constexpr uint64_t max_i64 = uint64_t(std::numeric_limits<int64_t>::max());
    c.optimizer_steps =
        int64_t(parse_uint(path, key_optimizer_steps, require(path, metadata, key_optimizer_steps), max_i64));
    c.learning_rate = parse_float(path, key_learning_rate, require(path, metadata, key_learning_rate));
    // Files of earlier versions have no peak rate: their runs had no schedule inside the trainer.
    const std::string* peak = find(metadata, key_peak_learning_rate);
    c.peak_learning_rate = peak ? parse_float(path, key_peak_learning_rate, *peak) : c.learning_rate;
    // 0 is a legal rate (a schedule decayed to 0, or Trainer::set_learning_rate(0)); negative ones are not.
    VKT_CHECK(c.peak_learning_rate >= 0.0f, path, ": checkpoint peak learning rate must be >= 0, got ",
              c.peak_learning_rate);
    c.scaler.scale = parse_float(path, key_loss_scale, require(path, metadata, key_loss_scale));
    c.scaler.growth_tracker = int32_t(parse_uint(path, key_growth_tracker, require(path, metadata, key_growth_tracker),
                                                 uint64_t(std::numeric_limits<int32_t>::max())));
    c.steps = parse_uint(path, key_steps, require(path, metadata, key_steps), max_i64);
    c.skipped = parse_uint(path, key_skipped, require(path, metadata, key_skipped), max_i64);
    VKT_CHECK(c.skipped <= c.steps, path, ": checkpoint has ", c.skipped, " skipped steps but only ", c.steps,
              " steps");
    VKT_CHECK(uint64_t(c.optimizer_steps) <= c.steps - c.skipped, path, ": checkpoint has ", c.optimizer_steps,
              " optimizer steps but only ", c.steps - c.skipped, " steps that were not skipped");
    VKT_CHECK(c.learning_rate >= 0.0f, path, ": checkpoint learning rate must be >= 0, got ", c.learning_rate);
    VKT_CHECK(c.scaler.scale > 0.0f, path, ": checkpoint loss scale must be positive, got ", c.scaler.scale);
    c.indexed_state = *version == "1";
    if (!c.indexed_state) {
        const std::string& text = require(path, metadata, key_trainable);
        io::Json trainable;
        try {
            trainable = io::Json::parse(text, key_trainable);
        } catch (const Error& e) {
            VKT_FAIL(path, ": checkpoint metadata \"", key_trainable, "\": ", e.what());
        }
        VKT_CHECK(trainable.is_object(), path, ": checkpoint metadata \"", key_trainable,
                  "\" must be an object of parameter names and step counts");
        for (const auto& [name, steps] : trainable.as_object()) {
            const bool ok = steps.is_number() && std::floor(steps.as_number()) == steps.as_number() &&
                            steps.as_number() >= 0 && steps.as_number() <= double(c.optimizer_steps);
            VKT_CHECK(ok, path, ": checkpoint metadata \"", key_trainable, "\": parameter '", name,
                      "' must have a step count in [0, ", c.optimizer_steps, "] (the optimizer steps)");
            c.trainable.emplace_back(name, int64_t(steps.as_number()));
        }
    }

    for (auto& [key, value] : metadata)
        if (!is_reserved_metadata_key(key)) c.extra.emplace_back(key, value);
    for (io::NamedTensor& t : tensors) {
        if (is_optimizer_tensor(t.name)) {
            t.name.erase(0, std::char_traits<char>::length(optimizer_tensor_prefix));
            c.optimizer_state.push_back(std::move(t));
        } else {
            c.parameters.push_back(std::move(t));
        }
    }
    return c;
}

} // namespace vktrain::train
