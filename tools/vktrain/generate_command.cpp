// `vktrain generate`: continues a prompt with a GPT trained by `vktrain train --model gpt:...`, one character at a
// time, sampling at a temperature (greedy at 0). By default the model runs one position per token over a
// key/value cache (Model::gpt_decoder); --no-cache re-runs the whole context for every token (the reference).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>

#include "args.hpp"
#include "commands.hpp"
#include "io/safetensors.hpp"
#include "util.hpp"
#include "vktrain/vktrain.hpp"

namespace vktrain::cli {

namespace {

using Clock = std::chrono::steady_clock;

// The GptOptions a Model::gpt graph was built with, read back from its nodes.
GptOptions gpt_options_of(const Model& m, const std::string& file) {
    GptOptions g;
    g.layers = 0;
    for (const Node& n : m.nodes()) {
        if (n.name == "transformer.wte") {
            g.vocab = uint32_t(n.attrs.at("num_embeddings"));
            g.width = uint32_t(n.attrs.at("dim"));
        } else if (n.name == "transformer.wpe") {
            g.context = uint32_t(n.attrs.at("max_positions"));
        } else if (n.op == "self_attention") {
            g.heads = uint32_t(n.attrs.at("heads"));
            ++g.layers;
        } else if (n.name == "transformer.h.0.mlp.c_fc") {
            g.mlp = uint32_t(n.attrs.at("out"));
        } else if (n.op == "linear_tied") {
            g.tied = true;
        } else if (n.name == "transformer.ln_f") {
            g.eps = float(n.attrs.at("eps"));
        }
    }
    if (g.vocab == 0 || g.layers == 0 || g.context == 0)
        throw Error(file + ": not a GPT written by `vktrain train --model gpt:...`");
    return g;
}

int32_t sample(const std::vector<float>& logits, size_t offset, uint32_t vocab, double temperature,
               std::mt19937_64& rng) {
    const float* l = logits.data() + offset;
    size_t best = 0;
    for (size_t i = 1; i < vocab; ++i)
        if (l[i] > l[best]) best = i;
    if (temperature == 0.0) return int32_t(best);
    std::vector<double> p(vocab);
    double sum = 0.0;
    for (size_t i = 0; i < vocab; ++i) sum += p[i] = std::exp((double(l[i]) - l[best]) / temperature);
    // Our own mapping of the generator's bits, so the same seed gives the same text on every platform.
    double u = double(rng() >> 11) * 0x1.0p-53 * sum;
    for (size_t i = 0; i < vocab; ++i) {
        if (u < p[i]) return int32_t(i);
        u -= p[i];
    }
    return int32_t(best);
}

} // namespace

int run_generate(const std::vector<std::string>& args) {
    const GenerateArgs a = parse_generate_args(args);
    if (a.help) {
        std::fputs(generate_usage(), stdout);
        return 0;
    }
    std::vector<std::pair<std::string, std::string>> metadata;
    std::vector<io::NamedTensor> weights = io::read_safetensors(a.weights, &metadata);
    const std::string* symbols = find_metadata(metadata, "vktrain_vocabulary");
    if (!symbols) throw Error(a.weights + ": no vocabulary (\"vktrain_vocabulary\"): not a text model's weights");
    const CharVocabulary vocab = CharVocabulary::from_utf8(*symbols);
    const Model trained = load_model(a.weights);
    const GptOptions g = gpt_options_of(trained, a.weights);
    if (g.vocab != vocab.size())
        throw Error(a.weights + ": the model has " + std::to_string(g.vocab) + " tokens, the vocabulary " +
                    std::to_string(vocab.size()));
    std::vector<int32_t> tokens = vocab.encode(decode_utf8(a.prompt, "--prompt"));
    const Precision precision = stored_precision(a.precision, a.weights, metadata);

    Context ctx(context_options(a.device));
    TrainerOptions o;
    o.precision = precision;
    o.batch_size = 1;
    o.inference_only = true;
    o.gemm_path = a.gemm_path;
    const Model model = a.no_cache ? trained : Model::gpt_decoder(g);
    Trainer t(ctx, model, o);
    std::vector<Parameter> params;
    for (const ParameterInfo& p : model.parameters()) {
        Parameter q{p.name, p.shape, {}};
        for (io::NamedTensor& w : weights)
            if (w.name == p.name) q.data = std::move(w.data);
        if (q.data.empty() && p.buffer) { // the key/value caches start empty
            uint64_t n = 1;
            for (int64_t d : p.shape) n *= uint64_t(d);
            q.data.assign(n, 0.0f);
        }
        if (q.data.empty()) throw Error(a.weights + ": tensor '" + p.name + "' is missing");
        params.push_back(std::move(q));
    }
    t.set_parameters(params);
    if (!a.quiet)
        std::fprintf(stderr, "vktrain: generating %u characters, %s, %s, %s\n", a.tokens,
                     a.no_cache ? "no cache (whole context per token)" : "key/value cache (one position per token)",
                     precision_name(precision), device_summary(ctx.device_info()).c_str());

    std::mt19937_64 rng(a.seed);
    const uint32_t context = g.context;
    std::vector<int32_t> ids(context, 0), pos(1, 0), none(context, 0);
    std::vector<int32_t> out;
    uint32_t cached = 0; // positions in the cache (cache mode)
    size_t primed = 0;   // tokens of `tokens` whose keys and values are cached
    std::vector<float> logits;
    // Cache mode: feed tokens [primed, size) one position each; when the context is full, start over from the last
    // context/2 tokens (each later token still costs one position; a refill every context/2 tokens).
    const auto advance_cache = [&] {
        if (cached + (tokens.size() - primed) > context) {
            primed = tokens.size() - std::min<size_t>(tokens.size(), context / 2);
            cached = 0;
        }
        for (; primed < tokens.size(); ++primed, ++cached) {
            ids[0] = tokens[primed];
            pos[0] = int32_t(cached);
            logits = t.predict({ids.data(), pos.data(), none.data()}, 1);
        }
    };
    const Clock::time_point start = Clock::now();
    double first_seconds = 0.0;
    for (uint32_t i = 0; i < a.tokens; ++i) {
        size_t row = 0;
        if (a.no_cache) {
            const size_t n = std::min<size_t>(tokens.size(), context);
            std::copy(tokens.end() - long(n), tokens.end(), ids.begin());
            std::fill(ids.begin() + long(n), ids.end(), 0);
            logits = t.predict({ids.data(), none.data()}, 1);
            row = (n - 1) * g.vocab;
        } else {
            advance_cache();
        }
        const int32_t next = sample(logits, row, g.vocab, a.temperature, rng);
        tokens.push_back(next);
        out.push_back(next);
        if (i == 0) first_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::fputs(a.prompt.c_str(), stdout);
    std::fputs(vocab.decode(out).c_str(), stdout);
    std::fputs("\n", stdout);
    if (!a.quiet && a.tokens > 1)
        std::fprintf(stderr, "vktrain: %.3f ms per token (%u tokens in %.2f s; the first, with the prompt, %.1f ms)\n",
                     1e3 * (seconds - first_seconds) / double(a.tokens - 1), a.tokens, seconds, 1e3 * first_seconds);
    return 0;
}

} // namespace vktrain::cli
