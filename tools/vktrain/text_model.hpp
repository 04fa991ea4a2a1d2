// A text model's files as `vktrain train --model gpt:...` writes them (the --output weights and the --checkpoint
// files) and `vktrain eval` and `vktrain generate` read them back: the metadata keys, a checkpoint's validation
// history, and the one checked reading of the weights that both readers share.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "report.hpp"
#include "vktrain/model.hpp"
#include "vktrain/text.hpp"
#include "vktrain/tokenizer.hpp"
#include "vktrain/trainer.hpp"
#include "vktrain/weights.hpp"

namespace vktrain::cli {

// Metadata of the weights and checkpoints of text runs.
constexpr const char* key_vocabulary = "vktrain_vocabulary";           // CharVocabulary::to_utf8()
constexpr const char* key_text_run = "vktrain_text_run";               // checkpoints: the run's settings (--resume)
constexpr const char* key_text_validation = "vktrain_text_validation"; // checkpoints: the validations so far

using Metadata = std::vector<std::pair<std::string, std::string>>;

// A checkpoint's validation history: "<step>:<loss>:<windows>;" per validation, the loss as "%.17g" (exact).
std::string format_validations(const std::vector<ValResult>& validations);
// Reads format_validations' text strictly: decimal step and window counts that fit 64 bits, a loss that strtod reads
// whole (nan and inf included: a diverged run's), each entry ended by ';', steps increasing and at most `last_step`
// (the checkpoint's). Anything else throws vktrain::Error "<path>: ..." (one line).
std::vector<ValResult> parse_validations(const std::string& text, const std::string& path, uint64_t last_step);

// A text model's weights file or checkpoint, read once (mapped) and checked whole.
struct TextModelFile {
    WeightsFile file;
    Model model;                                // the architecture the file records
    CharVocabulary vocab;                       // the characters (empty when the file carries another tokenizer)
    std::shared_ptr<const Tokenizer> tokenizer; // the file's (tokenizer_metadata_key), else char_tokenizer(vocab)
    std::vector<Parameter> parameters;          // parameters_for(model, file): checked, without optimizer state
    const Metadata& metadata() const { return file.metadata(); }
};
// Throws vktrain::Error "<path>: ..." (one line) for a file that is unreadable, has no vocabulary or tokenizer (a
// checkpoint of an earlier version without one is named as such) or architecture, or whose tensors parameters_for
// refuses.
TextModelFile read_text_model(const std::string& path);

// A file `train --from ... --lora` wrote holds the adapters as graph nodes: its model becomes the base architecture
// (Model::without_lora) and its parameters the merged weights (merge_lora_parameters, W + (alpha / r)·B·A), so that
// what needs a plain GPT or Llama (generate's cached decoder) takes it. Returns whether there was anything to merge.
bool merge_lora_into(TextModelFile& file, const std::string& path);

// The GptOptions of a GPT file (vktrain::gpt_options of its architecture). Throws vktrain::Error "<path>: ..." unless
// its architecture is exactly the graph Model::gpt builds from them (the one Model::gpt_decoder mirrors for
// generation) and the vocabulary fits it.
GptOptions gpt_options_of(const TextModelFile& file, const std::string& path);

// Throws vktrain::Error naming the file and the split unless `tokens` hold a window of `context` tokens and its
// last target (what TextWindows needs).
void check_split_length(uint64_t tokens, uint32_t context, const std::string& text_path, const char* split);

} // namespace vktrain::cli
