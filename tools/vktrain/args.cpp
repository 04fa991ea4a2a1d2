#include "args.hpp"

#include <algorithm>
#include <filesystem>
#include <limits>

#include "vktrain/data.hpp"

namespace vktrain::cli {

namespace {

constexpr uint64_t max_batch = 1u << 20;
constexpr uint64_t max_u64 = std::numeric_limits<uint64_t>::max();

const Choices<Precision>& precision_choices() {
    static const Choices<Precision> c{{"mixed", Precision::mixed}, {"fp32", Precision::fp32}};
    return c;
}

const Choices<GemmPath>& gemm_path_choices() {
    static const Choices<GemmPath> c{
        {"auto", GemmPath::auto_select}, {"coopmat", GemmPath::coopmat}, {"tiled-fp16", GemmPath::tiled_fp16}};
    return c;
}

// The options several commands share, each declared once here.

void add_help(OptionTable& t, bool& help) {
    t.flag("--help", [&help] { help = true; });
}

void add_validation(OptionTable& t, bool& validation) {
    t.flag("--validation", [&validation] { validation = true; });
}

// Device selection, for every command that opens a device.
void add_device_options(OptionTable& t, DeviceArgs& d) {
    t.value("--device", [&d](const std::string& option, const std::string& value) {
        d.device = value;
        // An index must fit in the int ContextOptions::device_index holds.
        if (d.device.find_first_not_of("0123456789") == std::string::npos)
            parse_uint(option, d.device, 0, uint64_t(std::numeric_limits<int>::max()));
    });
    add_validation(t, d.validation);
    t.flag("--no-coopmat", [&d] { d.no_coopmat = true; });
    t.flag("--no-tune", [&d] { d.no_tune = true; });
    t.value("--attention", store_choice(d.attention, Choices<AttentionChoice>{{"auto", AttentionChoice::automatic},
                                                                              {"fused", AttentionChoice::fused},
                                                                              {"unfused", AttentionChoice::unfused}}));
}

// `Target` is Precision or std::optional<Precision>.
template <typename Target>
void add_precision(OptionTable& t, Target& precision) {
    t.value("--precision", store_choice(precision, precision_choices()));
}

void add_gemm_path(OptionTable& t, GemmPath& path) {
    t.value("--gemm-path", store_choice(path, gemm_path_choices()));
}

void add_quiet(OptionTable& t, bool& quiet) {
    t.flag("--quiet", [&quiet] { quiet = true; });
}

// `given` (may be null) records that --seed was passed.
void add_seed(OptionTable& t, uint64_t& seed, bool* given) {
    t.value("--seed", [&seed, given](const std::string& option, const std::string& value) {
        seed = parse_uint(option, value, 0, max_u64);
        if (given) *given = true;
    });
}

// Two output options naming one file (empty names never match).
bool same_file(const std::string& a, const std::string& b) {
    if (a.empty() || b.empty()) return false;
    std::error_code ea, eb;
    namespace fs = std::filesystem;
    const auto ca = fs::weakly_canonical(fs::absolute(a, ea), ea), cb = fs::weakly_canonical(fs::absolute(b, eb), eb);
    return ea || eb ? a == b : ca.lexically_normal() == cb.lexically_normal();
}

} // namespace

Precision parse_precision(const std::string& option, const std::string& text) {
    return parse_choice(option, text, precision_choices());
}

GemmPath parse_gemm_path(const std::string& option, const std::string& text) {
    return parse_choice(option, text, gemm_path_choices());
}

const char* precision_name(Precision precision) {
    return precision == Precision::mixed ? "mixed" : "fp32";
}

const char* optimizer_name(OptimizerKind kind) {
    return kind == OptimizerKind::sgd ? "sgd" : "adamw";
}

TrainArgs parse_train_args(const std::vector<std::string>& args) {
    TrainArgs a;
    a.data_dir = default_fashion_mnist_dir();
    bool momentum_set = false;
    OptionTable t;
    add_help(t, a.help);
    add_device_options(t, a.device);
    add_precision(t, a.precision);
    add_gemm_path(t, a.gemm_path);
    add_quiet(t, a.quiet);
    add_seed(t, a.seed, &a.seed_given);
    // Data and model.
    t.value("--data", store(a.data_dir));
    t.value("--model", store(a.model_spec));
    t.value("--limit", store_uint(a.limit, 1, max_u64));
    t.value("--test-limit", store_uint(a.test_limit, 1, max_u64));
    // Text models.
    t.value("--text", store(a.text_path));
    t.value("--tokenizer", store(a.tokenizer_path));
    t.value("--steps", store_uint(a.steps, 1, 1ull << 40));
    t.value("--warmup", store_uint(a.warmup, 0, 1ull << 40));
    t.value("--min-lr", store_real(a.min_lr, false));
    t.value("--clip", store_real(a.clip, false));
    t.value("--micro-batch", store_uint(a.micro_batch, 1, max_batch));
    t.value("--eval-at", [&a](const std::string& option, const std::string& list) {
        a.eval_at.clear();
        size_t start = 0;
        while (start <= list.size()) {
            const size_t comma = std::min(list.find(',', start), list.size());
            a.eval_at.push_back(parse_uint(option, list.substr(start, comma - start), 0, 1ull << 40));
            start = comma + 1;
        }
    });
    t.value("--val-limit", store_uint(a.val_limit, 1, max_u64));
    t.value("--log-every", store_uint(a.log_every, 1, 1ull << 40));
    t.value("--from", store(a.from));
    t.value("--freeze", [&a](const std::string&, const std::string& v) {
        a.freeze.push_back(v);
        a.trainable_changes.emplace_back(v, false);
    });
    t.value("--train", [&a](const std::string&, const std::string& v) { a.trainable_changes.emplace_back(v, true); });
    t.value("--lr-scale", [&a](const std::string& option, const std::string& v) {
        const size_t eq = v.rfind('=');
        if (eq == std::string::npos || eq == 0)
            throw UsageError(option + " expects PATTERN=SCALE (e.g. layer4.=0.1), got '" + v + "'");
        a.lr_scales.emplace_back(v.substr(0, eq), parse_real(option + " " + v.substr(0, eq), v.substr(eq + 1), true));
    });
    t.value("--lora", [&a](const std::string&, const std::string& v) { a.lora.push_back(v); });
    t.value("--lora-r", store_uint(a.lora_r, 1, 65536));
    t.value("--lora-alpha", store_real(a.lora_alpha, true));
    t.value("--lora-dropout", [&a](const std::string& option, const std::string& v) {
        a.lora_dropout = parse_real(option, v, false);
        if (a.lora_dropout >= 1.0) throw UsageError(option + " must be in [0, 1), got " + v);
    });
    t.value("--save-adapter", store(a.save_adapter));
    t.value("--images", store(a.images));
    t.value("--val-images", store(a.val_images));
    t.value("--image-size", store_uint(a.image_size, 1, 4096));
    t.value("--resize", store_uint(a.resize, 1, 65535));
    t.value("--workers", store_uint(a.workers, 0, 256));
    t.flag("--skip-bad-images", [&a] { a.skip_bad_images = true; });
    t.flag("--freeze-bn", [&a] { a.freeze_bn = true; });
    // Training.
    t.value("--optimizer", store_choice(a.optimizer, Choices<OptimizerKind>{{"adamw", OptimizerKind::adamw},
                                                                            {"sgd", OptimizerKind::sgd}}));
    t.value("--lr", store_real(a.learning_rate, true));
    t.value("--momentum", [&a, &momentum_set](const std::string& option, const std::string& value) {
        a.momentum = parse_real(option, value, false);
        if (!(a.momentum < 1.0)) throw UsageError(option + " expects a number in [0, 1), got '" + value + "'");
        momentum_set = true;
    });
    t.value("--lr-schedule", [&a](const std::string& option, const std::string& value) {
        a.cosine_schedule = parse_choice(option, value, Choices<bool>{{"cosine", true}, {"constant", false}});
        a.schedule_given = true;
    });
    t.value("--weight-decay", [&a](const std::string& option, const std::string& value) {
        a.weight_decay = parse_real(option, value, false);
        a.weight_decay_given = true;
    });
    t.value("--batch-size", store_uint(a.batch_size, 1, max_batch));
    t.value("--epochs", store_uint(a.epochs, 1, 1000000));
    t.value("--loss-scale", store_real(a.loss_scale, true));
    t.value("--growth-interval", store_uint(a.growth_interval, 1, uint64_t(std::numeric_limits<int32_t>::max())));
    t.value("--update-location",
            store_choice(a.update_location, Choices<UpdateLocation>{{"auto", UpdateLocation::automatic},
                                                                    {"host", UpdateLocation::host},
                                                                    {"device", UpdateLocation::device}}));
    t.value("--update-buckets", store_uint(a.update_buckets, 0, 64));
    t.value("--recompute",
            store_choice(a.recompute, Choices<Recompute>{{"none", Recompute::none}, {"blocks", Recompute::blocks}}));
    t.flag("--no-loss-scaling", [&a] { a.loss_scaling = false; });
    t.flag("--profile", [&a] { a.profile = true; });
    // Outputs.
    t.value("--output", store(a.output));
    t.value("--report", store(a.report));
    t.value("--checkpoint", store(a.checkpoint));
    t.value("--resume", store(a.resume));
    t.value("--stop-after", store_uint(a.stop_after, 1, 1000000));
    t.flag("--force", [&a] { a.force = true; });
    t.parse(args, &a.given);

    if (a.help) return a;
    if (momentum_set && a.optimizer != OptimizerKind::sgd)
        throw UsageError("--momentum applies only to --optimizer sgd");
    if (a.loss_scale > double(std::numeric_limits<float>::max()))
        throw UsageError("--loss-scale is too large for a float");
    if (a.loss_scale < 0x1p-24) throw UsageError("--loss-scale must be at least 2^-24 (5.96e-08)");
    if (a.device.no_coopmat && a.gemm_path == GemmPath::coopmat)
        throw UsageError("--gemm-path coopmat contradicts --no-coopmat");
    // Compared as files, not as strings: "X", "./X", "dir/../X" and a symlink to X are one file.
    if (same_file(a.output, a.report)) throw UsageError("--output and --report name the same file");
    if (same_file(a.checkpoint, a.output)) throw UsageError("--checkpoint and --output name the same file");
    if (same_file(a.checkpoint, a.report)) throw UsageError("--checkpoint and --report name the same file");
    if (a.stop_after && a.checkpoint.empty())
        throw UsageError("--stop-after needs --checkpoint (otherwise the stopped run's state is lost)");
    return a;
}

GenerateArgs parse_generate_args(const std::vector<std::string>& args) {
    GenerateArgs a;
    OptionTable t;
    add_help(t, a.help);
    add_device_options(t, a.device);
    add_precision(t, a.precision);
    add_gemm_path(t, a.gemm_path);
    add_quiet(t, a.quiet);
    add_seed(t, a.seed, nullptr);
    t.value("--weights", store(a.weights));
    t.value("--prompt", store(a.prompt));
    t.value("--tokens", store_uint(a.tokens, 0, 1u << 24));
    t.value("--temperature", store_real(a.temperature, false));
    t.flag("--no-cache", [&a] { a.no_cache = true; });
    t.parse(args);

    if (a.help) return a;
    if (a.weights.empty()) throw UsageError("--weights FILE is required");
    if (a.prompt.empty()) throw UsageError("--prompt must not be empty (generation continues a text)");
    if (a.temperature > 100.0) throw UsageError("--temperature must be at most 100");
    return a;
}

EvalArgs parse_eval_args(const std::vector<std::string>& args) {
    EvalArgs a;
    a.data_dir = default_fashion_mnist_dir();
    OptionTable t;
    add_help(t, a.help);
    add_device_options(t, a.device);
    add_precision(t, a.precision);
    add_gemm_path(t, a.gemm_path);
    t.value("--weights", store(a.weights));
    t.value("--data", store(a.data_dir));
    t.value("--model", store(a.model_spec));
    t.value("--test-limit", store_uint(a.test_limit, 1, max_u64));
    t.value("--batch-size", store_uint(a.batch_size, 1, max_batch));
    t.value("--text", store(a.text_path));
    t.value("--val-limit", store_uint(a.val_limit, 1, max_u64));
    t.parse(args);

    if (a.help) return a;
    if (a.weights.empty()) throw UsageError("eval needs --weights FILE");
    if (a.device.no_coopmat && a.gemm_path == GemmPath::coopmat)
        throw UsageError("--gemm-path coopmat contradicts --no-coopmat");
    return a;
}

DevicesArgs parse_devices_args(const std::vector<std::string>& args) {
    DevicesArgs a;
    OptionTable t;
    add_help(t, a.help);
    add_validation(t, a.validation);
    t.parse(args);
    return a;
}

namespace {

// The one positional argument of import/export (first, or anywhere among the options); the rest go to the table.
std::vector<std::string> take_positional(const std::vector<std::string>& args, std::string& positional,
                                         const std::set<std::string>& valued) {
    std::vector<std::string> rest;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a.compare(0, 1, "-") == 0 || a.empty()) {
            rest.push_back(a);
            if (valued.count(a) && i + 1 < args.size()) rest.push_back(args[++i]);
            continue;
        }
        if (!positional.empty()) throw UsageError("unexpected argument '" + a + "'");
        positional = a;
    }
    return rest;
}

} // namespace

ImportArgs parse_import_args(const std::vector<std::string>& args) {
    ImportArgs a;
    OptionTable t;
    add_help(t, a.help);
    add_precision(t, a.precision);
    add_quiet(t, a.quiet);
    t.value("--output", store(a.output));
    t.flag("--force", [&a] { a.force = true; });
    t.flag("--no-tokenizer", [&a] { a.no_tokenizer = true; });
    t.value("--arch", store(a.arch));
    bool classes = false, size = false, seed = false;
    t.value("--classes", [&](const std::string& option, const std::string& value) {
        a.classes = uint32_t(parse_uint(option, value, 1, 1u << 24));
        classes = true;
    });
    t.value("--image-size", [&](const std::string& option, const std::string& value) {
        const size_t x = value.find('x');
        a.height = uint32_t(parse_uint(option, value.substr(0, x), 1, 1u << 15));
        a.width = x == std::string::npos ? a.height : uint32_t(parse_uint(option, value.substr(x + 1), 1, 1u << 15));
        size = true;
    });
    add_seed(t, a.seed, &seed);
    t.parse(
        take_positional(args, a.source, {"--output", "--precision", "--arch", "--classes", "--image-size", "--seed"}));
    if (a.help) return a;
    if (a.source.empty())
        throw UsageError("the Hugging Face model folder or torchvision state_dict file SRC is required");
    if (a.output.empty()) throw UsageError("--output FILE is required");
    if (a.arch.empty() && (classes || size || seed))
        throw UsageError("--classes, --image-size and --seed apply to torchvision files (with --arch NAME)");
    if (!a.arch.empty() && a.no_tokenizer) throw UsageError("--no-tokenizer applies to Hugging Face folders");
    return a;
}

ExportArgs parse_export_args(const std::vector<std::string>& args) {
    ExportArgs a;
    OptionTable t;
    add_help(t, a.help);
    add_quiet(t, a.quiet);
    t.value("--output", store(a.output));
    t.value("--adapter", store(a.adapter));
    t.flag("--force", [&a] { a.force = true; });
    t.parse(take_positional(args, a.weights, {"--output", "--adapter"}));
    if (a.help) return a;
    if (a.weights.empty()) throw UsageError("the weights FILE to export is required");
    if (a.output.empty()) throw UsageError("--output DIR is required");
    return a;
}

PredictArgs parse_predict_args(const std::vector<std::string>& args) {
    PredictArgs a;
    OptionTable t;
    add_help(t, a.help);
    add_device_options(t, a.device);
    add_precision(t, a.precision);
    add_gemm_path(t, a.gemm_path);
    t.value("--weights", store(a.weights));
    t.value("--input", store(a.input));
    t.value("--output", store(a.output));
    t.value("--batch-size", store_uint(a.batch_size, 1, max_batch));
    t.flag("--force", [&a] { a.force = true; });
    t.parse(args);
    if (a.help) return a;
    if (a.weights.empty()) throw UsageError("--weights FILE is required");
    if (a.input.empty()) throw UsageError("--input FILE is required");
    if (a.output.empty()) throw UsageError("--output FILE is required");
    return a;
}

} // namespace vktrain::cli
