#include "text_model.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "util.hpp"
#include "vktrain/lora.hpp"

namespace vktrain::cli {

std::string format_validations(const std::vector<ValResult>& validations) {
    std::string text;
    for (const ValResult& r : validations) {
        char buf[96];
        std::snprintf(buf, sizeof buf, "%llu:%.17g:%llu;", static_cast<unsigned long long>(r.step), r.loss,
                      static_cast<unsigned long long>(r.windows));
        text += buf;
    }
    return text;
}

std::vector<ValResult> parse_validations(const std::string& text, const std::string& path, uint64_t last_step) {
    std::vector<ValResult> out;
    size_t pos = 0;
    const auto fail = [&](const std::string& what) {
        return Error(path + ": metadata \"" + key_text_validation + "\" is malformed at character " +
                     std::to_string(pos) + ": " + what);
    };
    // A decimal count that fits 64 bits, followed by `end`.
    const auto count = [&](char end, const char* what) {
        const size_t digits = text.find_first_not_of("0123456789", pos);
        if (digits == pos || digits == std::string::npos || text[digits] != end)
            throw fail(std::string("expected a ") + what + " and '" + end + "'");
        errno = 0;
        const unsigned long long v = std::strtoull(text.c_str() + pos, nullptr, 10);
        if (errno == ERANGE) throw fail(std::string("the ") + what + " does not fit 64 bits");
        pos = digits + 1;
        return uint64_t(v);
    };
    while (pos < text.size()) {
        ValResult r;
        r.step = count(':', "step");
        if (r.step > last_step)
            throw fail("step " + std::to_string(r.step) + " is after the checkpoint's step " +
                       std::to_string(last_step));
        if (!out.empty() && r.step <= out.back().step)
            throw fail("step " + std::to_string(r.step) + " does not follow step " + std::to_string(out.back().step));
        char* end = nullptr;
        const char* start = text.c_str() + pos;
        r.loss = std::strtod(start, &end); // the string ends in '\0': strtod stops there at the latest
        if (end == start || *end != ':') throw fail("expected a loss and ':'");
        pos += size_t(end - start) + 1;
        r.windows = count(';', "window count");
        out.push_back(r);
    }
    return out;
}

TextModelFile read_text_model(const std::string& path) {
    TextModelFile f{read_weights(path), Model(), CharVocabulary(), nullptr, {}};
    f.tokenizer = tokenizer_from_metadata(f.file.metadata(), path);
    const std::string* symbols = f.file.metadata_value(key_vocabulary);
    if (!symbols && !f.tokenizer && f.file.metadata_value(key_text_run))
        throw Error(path + ": a checkpoint of a text run without its vocabulary (written by an earlier vktrain); use "
                           "the run's --output weights, or resume the run once to rewrite the checkpoint");
    if (!symbols && !f.tokenizer)
        throw Error(path + ": no vocabulary (\"" + key_vocabulary + "\"): not a text model's weights or checkpoint");
    if (!f.file.metadata_value("vktrain_graph"))
        throw Error(path + ": no architecture (\"vktrain_graph\") to rebuild the model from");
    if (!f.tokenizer) {
        try {
            f.vocab = CharVocabulary::from_utf8(*symbols);
        } catch (const Error& e) {
            throw Error(path + ": " + e.what());
        }
        f.tokenizer = char_tokenizer(f.vocab);
    }
    f.model = load_model(f.file);
    f.parameters = parameters_for(f.model, f.file);
    return f;
}

bool merge_lora_into(TextModelFile& file, const std::string& path) {
    if (file.model.lora_modules().empty()) return false;
    try {
        file.parameters = merge_lora_parameters(file.model, std::move(file.parameters));
        file.model = file.model.without_lora();
    } catch (const Error& e) {
        throw Error(path + ": merging its LoRA adapters: " + e.what());
    }
    return true;
}

GptOptions gpt_options_of(const TextModelFile& file, const std::string& path) {
    GptOptions g;
    try {
        g = gpt_options(file.model);
    } catch (const Error& e) {
        throw Error(
            path + ": " + e.what() +
            " (generate takes a GPT or a Llama as `vktrain train` or `vktrain import` write them, a LoRA model of "
            "`train --from ... --lora` too: its adapters are merged on load)");
    }
    if (g.vocab != file.tokenizer->vocabulary_size())
        throw Error(path + ": the model has " + std::to_string(g.vocab) + " tokens, the vocabulary " +
                    std::to_string(file.tokenizer->vocabulary_size()));
    return g;
}

void check_split_length(uint64_t tokens, uint32_t context, const std::string& text_path, const char* split) {
    if (tokens > context) return;
    throw Error(text_path + ": the " + split + " split has " + std::to_string(tokens) + " tokens; a context of " +
                std::to_string(context) + " tokens needs at least " + std::to_string(uint64_t(context) + 1) +
                " tokens (use a longer text or a smaller context)");
}

} // namespace vktrain::cli
