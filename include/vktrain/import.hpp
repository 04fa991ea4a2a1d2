// Models trained elsewhere, in and out: a Hugging Face model folder (config.json plus model.safetensors, or the
// shards model.safetensors.index.json lists) becomes an ordinary vktrain weights file (fp32 masters, the architecture
// in its metadata), which Trainer::load, load_model, `vktrain eval/predict/train` and the C API take; and such a file
// goes back out as a Hugging Face folder in the layout it came from.
//
//   vktrain::ImportResult r = vktrain::import_hf("gpt2-folder", "gpt2.safetensors");
//   vktrain::export_hf("gpt2.safetensors", "gpt2-out");   // config.json + model.safetensors, HF names and layouts
//
// Supported model_type values: import_architectures() ("gpt2": GPT2LMHeadModel; "llama": LlamaForCausalLM).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "vktrain/model.hpp"
#include "vktrain/options.hpp"

namespace vktrain {

class WeightsFile;

struct ImportOptions {
    // The precision the file records for training and inference (its "vktrain_precision"). mixed stores the weights
    // as fp16 on the device, so a weight outside fp16's range (|x| > 65504) is refused, naming it; fp32 keeps fp32
    // storage and accepts every finite value.
    Precision precision = Precision::mixed;
    // Carry the folder's tokenizer (tokenizer.model, tokenizer.json, or vocab.json + merges.txt; see
    // load_tokenizer) into the file's metadata (tokenizer_metadata_key), so `eval`, `generate` and `train` tokenise
    // as the model was trained. A folder without one imports without; a tokenizer that cannot be read, or whose
    // vocabulary is larger than the model's, is an error unless this is false.
    bool tokenizer = true;
};

struct ImportResult {
    std::string model_type;                // config.json's, e.g. "gpt2"
    Model model;                           // the architecture written to the file
    uint64_t parameters = 0;               // elements of the model's parameters
    uint64_t tensors = 0;                  // tensors written
    std::vector<std::string> skipped;      // the folder's non-parameter buffers (e.g. "h.0.attn.bias"), not imported
    std::vector<std::string> source_files; // the safetensors files read
    std::string tokenizer;                 // the carried tokenizer's kind ("gpt2-bpe", "sentencepiece"), or empty
};

// Reads the Hugging Face folder `source` and writes the vktrain weights file `output` (replaced atomically: a failed
// import leaves no file). The source files are memory-mapped and converted tensor by tensor (F32, F16 or BF16 to the
// file's fp32), so at most one tensor's fp32 copy is held in memory besides the mapping. Every problem throws
// vktrain::Error with one line naming the file and the field or tensor: an unsupported model_type or config option,
// a missing, extra or mis-shaped tensor, a non-finite weight, a weight outside fp16's range in mixed precision.
ImportResult import_hf(const std::string& source, const std::string& output, const ImportOptions& options = {});

// export_hf also writes the tokenizer a file carries (its original tokenizer.json, vocab.json + merges.txt or
// tokenizer.model) into the folder; a character-level vocabulary has no Hugging Face form and is left out.
struct ExportOptions {
    // Called with each weight's vktrain name, shape (vktrain's layout) and fp32 values before it is converted to the
    // Hugging Face layout and written: the place to merge adapters into their base weights (LoRA). Unset: the values
    // are written unchanged, so import -> export gives back the original F32 tensors bit for bit.
    std::function<void(const std::string& name, const std::vector<int64_t>& shape, std::vector<float>& values)>
        tensor_hook;
    bool overwrite = false; // replace an existing config.json / model.safetensors in the folder
};

// Writes the weights file `weights` (from import_hf, or a GPT or Llama built by vktrain) as the Hugging Face folder
// `directory` (created if absent; its parent must exist): config.json (the imported config unchanged, or one made
// from the GPT's or Llama's options) and model.safetensors (F32, Hugging Face's names, order and layouts, e.g. GPT-2's
// Conv1D weights [in, out]; the tied head left out, as save_pretrained does; non-parameter buffers left out: the
// model's constructor rebuilds them). Throws vktrain::Error naming the file and the problem.
void export_hf(const std::string& weights, const std::string& directory, const ExportOptions& options = {});

// The config.json model_type values import_hf reads.
std::vector<std::string> import_architectures();

// ---- torchvision (docs/torchvision.md) ----

// What import_torchvision builds from a state_dict file.
struct TorchvisionImportOptions {
    // torchvision_architectures(): "resnet18" ... "resnet152", "mobilenet_v2", "mobilenet_v3_small",
    // "mobilenet_v3_large"
    std::string arch;
    // 0: the file's classifier (fc), its class count from fc.weight. N > 0: a new classifier of N outputs, initialised
    // as nn.Linear's default (U(+-1/sqrt(in)) for weight and bias, from `seed`); the file's fc.* are then skipped
    // (ImportResult::skipped) and may be absent. The classifier is fc (ResNet), classifier.1 (MobileNetV2) or
    // classifier.3 (MobileNetV3).
    uint32_t classes = 0;
    // The input size the file records (Model::resnet's height and width; `vktrain predict` runs the model on other
    // sizes through resize_input).
    uint32_t height = 224, width = 224;
    Precision precision = Precision::mixed; // as ImportOptions::precision
    uint64_t seed = 0;                      // the new classifier's initialisation
};

// Reads the safetensors file `source` holding a torchvision model's state_dict() (torchvision 0.14's names; weights
// F32, F16 or BF16; num_batches_tracked I64, kept as the vktrain counter it is) and writes the vktrain weights file
// `output` (atomically; nothing is left on failure) of Model::resnet or Model::mobilenet with those names, the
// architecture name in its metadata ("vktrain_torchvision"). Streamed from the mapping tensor by tensor, as import_hf.
// Throws vktrain::Error, one line naming the file and the tensor: an unsupported arch, a file of another architecture
// (naming it), a missing, unexpected or mis-shaped tensor, a non-floating weight, a counter that is not an integer in
// [0, 2^24], a non-finite weight or, in mixed precision, one outside fp16's range.
ImportResult import_torchvision(const std::string& source, const std::string& output,
                                const TorchvisionImportOptions& options);

// Writes the weights file `weights` (from import_torchvision, trained further or not, or a Model::resnet trained by
// vktrain, or a Model::mobilenet) as a safetensors state_dict under torchvision's names (`output`, one file): F32
// weights and buffers, num_batches_tracked as I64, in state_dict() order, {"format": "pt"}, so that
// model.load_state_dict(safetensors.torch.load_file(output), strict=True) takes it. options.tensor_hook sees each
// tensor as in export_hf; options.overwrite replaces an existing output.
void export_torchvision(const std::string& weights, const std::string& output, const ExportOptions& options = {});

// The architecture name a torchvision export would use for this model: the one `file` records (may be null), or the
// ResNet its graph is; "" when it is not a torchvision model.
std::string torchvision_architecture_of(const Model& model, const WeightsFile* file);

// The --arch values import_torchvision reads.
std::vector<std::string> torchvision_architectures();

} // namespace vktrain
