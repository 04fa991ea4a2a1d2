#include "text_model.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "train/checkpoint.hpp"
#include "util.hpp"

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

std::vector<Parameter> checked_parameters(const Model& model, std::vector<io::NamedTensor> tensors,
                                          const std::string& path) {
    const std::vector<ParameterInfo> infos = model.parameters();
    std::vector<Parameter> out(infos.size());
    std::vector<bool> seen(infos.size(), false);
    for (io::NamedTensor& t : tensors) {
        size_t i = 0;
        while (i < infos.size() && infos[i].name != t.name) ++i;
        if (i == infos.size())
            throw Error(path + ": tensor '" + t.name + "' is not a parameter of the model the file records");
        if (seen[i]) throw Error(path + ": tensor '" + t.name + "' appears twice");
        if (t.shape != infos[i].shape)
            throw Error(path + ": tensor '" + t.name + "' has the wrong shape for the model");
        for (size_t k = 0; k < t.data.size(); ++k)
            if (!std::isfinite(t.data[k]) || (infos[i].counter && t.data[k] < 0.0f))
                throw Error(path + ": tensor '" + t.name + "' holds " + number(t.data[k]) + " at element " +
                            std::to_string(k) + " (weights and buffers must be finite, counters >= 0)");
        seen[i] = true;
        out[i] = {t.name, t.shape, std::move(t.data)};
    }
    for (size_t i = 0; i < infos.size(); ++i)
        if (!seen[i]) throw Error(path + ": tensor '" + infos[i].name + "' is missing");
    return out;
}

TextModelFile read_text_model(const std::string& path) {
    TextModelFile f;
    std::vector<io::NamedTensor> tensors = io::read_safetensors(path, &f.metadata);
    const std::string* symbols = find_metadata(f.metadata, key_vocabulary);
    if (!symbols && find_metadata(f.metadata, key_text_run))
        throw Error(path + ": a checkpoint of a text run without its vocabulary (written by an earlier vktrain); use "
                           "the run's --output weights, or resume the run once to rewrite the checkpoint");
    if (!symbols)
        throw Error(path + ": no vocabulary (\"" + key_vocabulary + "\"): not a text model's weights or checkpoint");
    const std::string* graph = find_metadata(f.metadata, "vktrain_graph");
    if (!graph) throw Error(path + ": no architecture (\"vktrain_graph\") to rebuild the model from");
    try {
        f.vocab = CharVocabulary::from_utf8(*symbols);
        f.model = Model::from_json(*graph);
    } catch (const Error& e) {
        throw Error(path + ": " + e.what());
    }
    // A checkpoint also holds the optimizer state, which is not weights.
    std::vector<io::NamedTensor> weights;
    for (io::NamedTensor& t : tensors)
        if (!train::is_optimizer_tensor(t.name)) weights.push_back(std::move(t));
    f.parameters = checked_parameters(f.model, std::move(weights), path);
    return f;
}

GptOptions gpt_options_of(const TextModelFile& file, const std::string& path) {
    GptOptions g;
    g.layers = 0;
    const auto attr = [&](const Node& n, const char* key) {
        const auto it = n.attrs.find(key);
        if (it == n.attrs.end()) throw Error(path + ": node '" + n.name + "' has no attribute '" + key + "'");
        return it->second;
    };
    for (const Node& n : file.model.nodes()) {
        if (n.name == "transformer.wte" && n.op == "embedding") {
            g.vocab = uint32_t(attr(n, "num_embeddings"));
            g.width = uint32_t(attr(n, "dim"));
        } else if (n.name == "transformer.wpe") {
            g.context = uint32_t(attr(n, "max_positions"));
        } else if (n.op == "self_attention") {
            g.heads = uint32_t(attr(n, "heads"));
            ++g.layers;
        } else if (n.name == "transformer.h.0.mlp.c_fc") {
            g.mlp = uint32_t(attr(n, "out"));
        } else if (n.op == "linear_tied") {
            g.tied = true;
        } else if (n.name == "transformer.ln_f") {
            g.eps = float(attr(n, "eps"));
        }
    }
    const std::string not_gpt = path + ": not a GPT written by `vktrain train --model gpt:...`";
    if (g.vocab == 0 || g.layers == 0 || g.context == 0 || g.width == 0 || g.heads == 0) throw Error(not_gpt);
    // Generation runs Model::gpt_decoder(g), which mirrors Model::gpt(g) only: any other graph (a LayerNorm without
    // affine, a head with a bias, ...) would be decoded as something it is not.
    Model expected;
    try {
        expected = Model::gpt(g);
    } catch (const Error& e) {
        throw Error(not_gpt + " (" + e.what() + ")");
    }
    const std::vector<Node>& have = file.model.nodes();
    const std::vector<Node>& want = expected.nodes();
    for (size_t i = 0; i < std::max(have.size(), want.size()); ++i) {
        if (i >= have.size() || i >= want.size())
            throw Error(not_gpt + ": it has " + std::to_string(have.size()) + " nodes, the GPT of its options " +
                        std::to_string(want.size()));
        const Node& a = have[i];
        const Node& b = want[i];
        if (a.op != b.op || a.name != b.name || a.inputs != b.inputs || a.shape != b.shape || a.type != b.type ||
            a.attrs != b.attrs || a.shape_attr != b.shape_attr)
            throw Error(not_gpt + ": node " + std::to_string(i) + " ('" + a.name + "', " + a.op +
                        ") differs from the GPT of its options");
    }
    if (g.vocab != file.vocab.size())
        throw Error(path + ": the model has " + std::to_string(g.vocab) + " tokens, the vocabulary " +
                    std::to_string(file.vocab.size()));
    return g;
}

void check_split_length(uint64_t tokens, uint32_t context, const std::string& text_path, const char* split) {
    if (tokens > context) return;
    throw Error(text_path + ": the " + split + " split has " + std::to_string(tokens) + " tokens; a context of " +
                std::to_string(context) + " tokens needs at least " + std::to_string(uint64_t(context) + 1) +
                " tokens (use a longer text or a smaller context)");
}

} // namespace vktrain::cli
