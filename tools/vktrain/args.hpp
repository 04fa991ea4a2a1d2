// Command-line parsing for the vktrain tool: one options struct per command, filled from that command's option
// table (option_table.hpp). Every malformed input throws UsageError, which main() turns into exit status 2
// (runtime failures use vktrain::Error and status 1).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "option_table.hpp"
#include "vktrain/context.hpp"
#include "vktrain/options.hpp"

namespace vktrain::cli {

Precision parse_precision(const std::string& option, const std::string& text);
GemmPath parse_gemm_path(const std::string& option, const std::string& text);
const char* precision_name(Precision precision);
const char* optimizer_name(OptimizerKind kind);

// --attention: auto fuses the attention nodes whose score matrix is large (ContextOptions::
// fused_attention_min_score_bytes), fused every node, unfused none.
enum class AttentionChoice { automatic, fused, unfused };

// Device selection shared by the commands that open a device.
struct DeviceArgs {
    std::string device; // --device: all digits -> index, otherwise a name substring
    bool validation = false;
    bool no_coopmat = false;
    bool no_tune = false;                                   // --no-tune: the device's default GEMM tiles, nothing timed
    AttentionChoice attention = AttentionChoice::automatic; // --attention auto|fused|unfused
};

struct TrainArgs {
    bool help = false;
    std::string data_dir;
    std::string model_spec = "mlp:256,128";
    Precision precision = Precision::mixed;
    OptimizerKind optimizer = OptimizerKind::adamw;
    std::optional<double> learning_rate; // default depends on the optimizer
    double momentum = 0.9;
    double weight_decay = 0.0;   // the recipe's default: 0 for MLPs, 0.01 for the CNN
    bool cosine_schedule = true; // --lr-schedule cosine (MLP default) or constant (CNN default)
    bool weight_decay_given = false, schedule_given = false;
    uint32_t batch_size = 128;
    uint32_t epochs = 5;
    uint64_t seed = 1;
    bool seed_given = false; // --seed was passed (a resumed run otherwise takes the checkpoint's)
    DeviceArgs device;
    GemmPath gemm_path = GemmPath::auto_select;
    double loss_scale = 65536.0;
    uint32_t growth_interval = 2000;
    uint32_t update_buckets = 0;                                // --update-buckets: TrainerOptions::update_buckets
    UpdateLocation update_location = UpdateLocation::automatic; // --update-location
    Recompute recompute = Recompute::none;                      // --recompute
    bool loss_scaling = true;
    uint64_t limit = 0;      // 0: every training sample
    uint64_t test_limit = 0; // 0: every test sample
    std::string output;
    std::string report;
    std::string checkpoint;  // written after every epoch
    std::string resume;      // a --checkpoint file to continue from
    uint32_t stop_after = 0; // 0: run to --epochs; else stop after this many epochs of this invocation
    bool force = false;
    bool quiet = false;
    bool profile = false;        // time every op of one step on the first batch before training
    std::set<std::string> given; // every option on the command line ("--lr", ...)

    // Text models (--model gpt:...): steps, not epochs.
    std::string text_path;        // --text: a file or a folder (default: the fortunes folder)
    std::string tokenizer_path;   // --tokenizer: a tokenizer folder (default: characters, or the checkpoint's)
    uint64_t steps = 2000;        // optimizer steps
    uint64_t warmup = 100;        // linear warm-up steps
    std::optional<double> min_lr; // the cosine's floor (default: lr / 10)
    double clip = 1.0;            // global gradient norm (0: off)
    uint32_t micro_batch = 0;     // samples per device pass (0: the batch size; smaller: gradient accumulation)
    std::vector<uint64_t> eval_at{0, 250, 500, 1000, 2000}; // validation loss after these steps (and the last)
    uint64_t val_limit = 0;                                 // validation windows (0: all)
    uint64_t log_every = 0;                                 // a progress line every N steps (0: steps / 40)
    // Fine-tuning a model file (--from): its architecture and weights, parts frozen (--freeze, repeatable) or LoRA on
    // linear layers (--lora, repeatable; the base is then frozen), the adapters written as a PEFT folder.
    std::string from;
    std::vector<std::string> freeze, lora;
    // --freeze and --train PATTERN in command-line order (second: trainable), later ones winning where they overlap;
    // --lr-scale PATTERN=SCALE (repeatable) likewise.
    std::vector<std::pair<std::string, bool>> trainable_changes;
    std::vector<std::pair<std::string, double>> lr_scales;
    uint32_t lora_r = 8;
    double lora_alpha = 8.0, lora_dropout = 0.0; // PEFT's LoraConfig defaults
    std::string save_adapter;
    // Image folders (--images DIR): torchvision's ImageFolder layout, PNG and JPEG (docs/images.md).
    std::string images, val_images;
    uint32_t image_size = 224; // RandomResizedCrop / CenterCrop size
    uint32_t resize = 0;       // the eval transform's short side (0: image_size * 8 / 7, 256 for 224)
    uint32_t workers = 2;      // decoding threads
    bool skip_bad_images = false;
    bool freeze_bn = false; // --freeze-bn: every BatchNorm normalises with its running statistics, which stay
    bool has(const char* option) const { return given.count(option) != 0; }

    double effective_learning_rate() const {
        if (learning_rate) return *learning_rate;
        return optimizer == OptimizerKind::sgd ? 0.05 : 1e-3;
    }
};

struct EvalArgs {
    bool help = false;
    std::string weights;
    std::string data_dir;
    std::string model_spec;             // empty: from the checkpoint's metadata
    std::optional<Precision> precision; // unset: the checkpoint's, else mixed
    DeviceArgs device;
    GemmPath gemm_path = GemmPath::auto_select;
    uint64_t test_limit = 0;
    uint32_t batch_size = 128;
    std::string text_path; // text models: the corpus whose last 10% is the validation split (default: fortunes)
    uint64_t val_limit = 0;
};

struct GenerateArgs {
    bool help = false;
    std::string weights;
    std::string prompt = "\n";
    uint32_t tokens = 300;
    double temperature = 0.8;
    uint64_t seed = 1;
    bool no_cache = false; // re-run the whole context for every token (the reference and the baseline)
    std::optional<Precision> precision;
    DeviceArgs device;
    GemmPath gemm_path = GemmPath::auto_select;
    bool quiet = false; // only the generated text
};

// `vktrain import SRC --output FILE`, `vktrain export FILE --output DIR`: the positional argument and the options.
struct ImportArgs {
    bool help = false;
    std::string source;
    std::string output;
    Precision precision = Precision::mixed;
    bool force = false;
    bool quiet = false;
    bool no_tokenizer = false;
    // A torchvision state_dict file (--arch NAME) instead of a Hugging Face folder.
    std::string arch;
    uint32_t classes = 0;               // --classes N: a new classifier
    uint32_t height = 224, width = 224; // --image-size N or HxW
    uint64_t seed = 0;
};

struct ExportArgs {
    bool help = false;
    std::string weights;
    std::string output;
    std::string adapter; // a PEFT LoRA folder merged into the weights (--adapter)
    bool force = false;
    bool quiet = false;
};

struct PredictArgs {
    bool help = false;
    std::string weights;
    std::string input;
    std::string output;
    std::optional<Precision> precision; // unset: the file's
    DeviceArgs device;
    GemmPath gemm_path = GemmPath::auto_select;
    uint32_t batch_size = 16; // samples per device pass
    bool force = false;
};

struct DevicesArgs {
    bool help = false;
    bool validation = false;
};

TrainArgs parse_train_args(const std::vector<std::string>& args);
EvalArgs parse_eval_args(const std::vector<std::string>& args);
DevicesArgs parse_devices_args(const std::vector<std::string>& args);
GenerateArgs parse_generate_args(const std::vector<std::string>& args);
ImportArgs parse_import_args(const std::vector<std::string>& args);
ExportArgs parse_export_args(const std::vector<std::string>& args);
PredictArgs parse_predict_args(const std::vector<std::string>& args);

} // namespace vktrain::cli
