// `vktrain generate`: continues a prompt with a GPT trained by `vktrain train --model gpt:...`, one character at a
// time, sampling at a temperature (greedy at 0). The model sees a window of the text of at most `context` tokens;
// when the next token would not fit, the window restarts from its last max(1, context/2) tokens. By default the
// model runs one position per token over a key/value cache (Model::gpt_decoder, or Model::llama_decoder for a Llama
// such as `vktrain import` makes: grouped-query attention with the rotary embeddings at the position); --no-cache
// re-runs the whole window for every token (the reference: both give the same logits, so the same text). Without
// the cache a Llama's window is only as long as the prompt and the new tokens when they fit in the context.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <random>

#include "args.hpp"
#include "commands.hpp"
#include "text_model.hpp"
#include "util.hpp"
#include "vktrain/vktrain.hpp"

namespace vktrain::cli {

namespace {

using Clock = std::chrono::steady_clock;

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
    // The same checks as `vktrain eval` (every tensor of the file is one of the model's, none missing), and the
    // architecture must be the GPT the decoder mirrors, or a Llama.
    TextModelFile file = read_text_model(a.weights);
    // A LoRA model (train --from ... --lora --output) runs as its base with the adapters merged.
    const bool merged = merge_lora_into(file, a.weights);
    std::optional<LlamaOptions> llama;
    try {
        llama = llama_options(file.model);
    } catch (const Error&) {
        // not a Llama: a GPT, or gpt_options_of says what is wrong
    }
    const GptOptions g = llama ? GptOptions{} : gpt_options_of(file, a.weights);
    const uint32_t context = llama ? llama->context : g.context;
    // The tokens sampled: the model's vocabulary (a Llama's may be padded beyond its tokenizer's).
    uint32_t vocab = g.vocab;
    if (llama) {
        const uint64_t tokens = file.tokenizer->vocabulary_size();
        if (tokens > llama->vocab)
            throw Error(a.weights + ": the tokenizer has " + std::to_string(tokens) + " tokens, the model only " +
                        std::to_string(llama->vocab));
        vocab = uint32_t(tokens);
    }
    // The cached decoders hold a head in shared memory: beyond decoder_max_head_size, the whole window per token.
    const uint32_t head_size = llama ? llama->width / llama->heads : g.width / g.heads;
    const bool no_cache = a.no_cache || head_size > decoder_max_head_size;
    const uint32_t logits_row = llama ? llama->vocab : g.vocab;
    const Tokenizer& tokenizer = *file.tokenizer;
    std::vector<int32_t> tokens;
    try {
        tokens = tokenizer.encode(a.prompt);
    } catch (const Error& e) {
        throw Error(std::string("--prompt: ") + e.what());
    }
    const Precision precision = stored_precision(a.precision, a.weights, file.metadata());

    Context ctx(context_options(a.device));
    TrainerOptions o;
    o.precision = precision;
    o.batch_size = 1;
    o.inference_only = true;
    o.gemm_path = a.gemm_path;
    // The positions one forward pass runs: the context, or for a Llama only as many as the prompt and the new tokens
    // fill when they fit in it (the same weights over a shorter window, LlamaOptions::sequence), so a short
    // generation from a model of a long context does not pay for the whole context per token.
    uint32_t window = context;
    Model model = no_cache ? file.model : llama ? Model::llama_decoder(*llama) : Model::gpt_decoder(g);
    if (no_cache && llama && tokens.size() + a.tokens < context) {
        window = uint32_t(std::max<size_t>(1, tokens.size() + a.tokens));
        LlamaOptions shorter = *llama;
        shorter.sequence = window;
        model = Model::llama(shorter);
    }
    Trainer t(ctx, model, o);
    // The decoder's key/value caches start empty. A merged LoRA model's weights are the merged ones, not the file's.
    if (merged)
        t.set_parameters(file.parameters);
    else
        t.load(a.weights);
    if (!a.quiet)
        std::fprintf(stderr, "vktrain: generating %u tokens, %s, %s, %s\n", a.tokens,
                     !no_cache    ? "key/value cache (one position per token)"
                     : a.no_cache ? "no cache (the whole window per token)"
                                  : "no cache (the whole window per token: the head size is above the cached "
                                    "decoder's 512)",
                     precision_name(precision), device_summary(ctx.device_info()).c_str());

    std::mt19937_64 rng(a.seed);
    std::vector<int32_t> ids(window, 0), pos(1, 0), none(window, 0);
    std::vector<int32_t> out;
    // The window: tokens[first, size). At most `context` tokens; when the next one would not fit, it restarts from
    // its last `keep` tokens (at least one, so that a context of 1 still sees the last token). The cache then
    // refills them one position each: a refill every context - keep tokens, and otherwise one position per token.
    const size_t keep = std::max<size_t>(1, context / 2);
    size_t first = 0;  // the window's first token
    size_t primed = 0; // cache mode: tokens before this one have their keys and values cached
    std::vector<float> logits;
    const Clock::time_point start = Clock::now();
    double first_seconds = 0.0;
    for (uint32_t i = 0; i < a.tokens; ++i) {
        if (tokens.size() - first > context) primed = first = tokens.size() - keep;
        size_t row = 0;
        if (no_cache) {
            const size_t n = tokens.size() - first;
            std::copy(tokens.begin() + long(first), tokens.end(), ids.begin());
            std::fill(ids.begin() + long(n), ids.end(), 0);
            logits = t.predict({ids.data(), none.data()}, 1);
            row = (n - 1) * logits_row;
        } else {
            for (; primed < tokens.size(); ++primed) {
                ids[0] = tokens[primed];
                pos[0] = int32_t(primed - first);
                logits = t.predict({ids.data(), pos.data()}, 1);
            }
        }
        const int32_t next = sample(logits, row, vocab, a.temperature, rng);
        tokens.push_back(next);
        out.push_back(next);
        if (i == 0) first_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::fputs(a.prompt.c_str(), stdout);
    const std::string text = tokenizer.decode(out); // may hold NUL bytes
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputs("\n", stdout);
    if (!a.quiet && a.tokens > 1)
        std::fprintf(stderr, "vktrain: %.3f ms per token (%u tokens in %.2f s; the first, with the prompt, %.1f ms)\n",
                     1e3 * (seconds - first_seconds) / double(a.tokens - 1), a.tokens, seconds, 1e3 * first_seconds);
    return 0;
}

} // namespace vktrain::cli
