// `vktrain train --model gpt:...`: a character-level language model on a text corpus, by optimizer steps: random
// training windows, AdamW with warm-up + cosine, gradient clipping and accumulation, validation loss at chosen
// steps, tokens/s, and weights that record the vocabulary (for `vktrain generate`).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "args.hpp"
#include "finetune.hpp"
#include "commands.hpp"
#include "io/json.hpp"
#include "model_spec.hpp"
#include "report.hpp"
#include "text_model.hpp"
#include "util.hpp"
#include "vktrain/vktrain.hpp"

namespace vktrain::cli {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

void print(const std::string& text) {
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
}

std::string mib(uint64_t bytes) {
    return fixed(double(bytes) / (1024.0 * 1024.0), 2) + " MiB";
}

// Options of the image recipes that mean nothing here (and the reverse is checked in run_train).
void refuse_image_options(const TrainArgs& a) {
    for (const char* o : {"--data", "--epochs", "--limit", "--test-limit", "--lr-schedule"})
        if (a.has(o))
            throw UsageError(std::string(o) + " does not apply to text models (they train by --steps on --text)");
}

// The run's model setting: the GPT's shape ("gpt:layers=...") or, for a Llama from --from, its shape ("llama:...").
std::string model_setting(const GptOptions& g, const std::optional<LlamaOptions>& llama) {
    if (llama)
        return "llama:layers=" + std::to_string(llama->layers) + ",heads=" + std::to_string(llama->heads) +
               ",kv_heads=" + std::to_string(llama->kv_heads) + ",width=" + std::to_string(llama->width) +
               ",context=" + std::to_string(llama->context) + ",intermediate=" + std::to_string(llama->intermediate) +
               ",tied=" + (llama->tied ? "1" : "0");
    return "gpt:layers=" + std::to_string(g.layers) + ",heads=" + std::to_string(g.heads) +
           ",width=" + std::to_string(g.width) + ",context=" + std::to_string(g.context) +
           ",mlp=" + std::to_string(g.mlp ? g.mlp : 4 * g.width) + ",tied=" + (g.tied ? "1" : "0");
}

std::vector<std::pair<std::string, std::string>> run_settings(const TrainArgs& a, const std::string& model,
                                                              uint32_t micro, double lr, double min_lr) {
    const auto exact = [](double v) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.17g", v);
        return std::string(buf);
    };
    return {{"model", model},
            {"--text", a.text_path},
            {"--precision", precision_name(a.precision)},
            {"--optimizer", optimizer_name(a.optimizer)},
            {"--lr", exact(lr)},
            {"--min-lr", exact(min_lr)},
            {"--weight-decay", exact(a.weight_decay)},
            {"--clip", exact(a.clip)},
            {"--warmup", std::to_string(a.warmup)},
            {"--steps", std::to_string(a.steps)},
            {"--batch-size", std::to_string(a.batch_size)},
            {"--micro-batch", std::to_string(micro)},
            {"--seed", std::to_string(a.seed)}};
}

std::string join_settings(const std::vector<std::pair<std::string, std::string>>& settings) {
    std::string s;
    for (const auto& [k, v] : settings) s += k + "=" + v + "\n";
    return s;
}

// Throws naming the first setting in which the checkpoint's run differs from this one.
void check_same_run(const std::string& path, const std::string& stored,
                    const std::vector<std::pair<std::string, std::string>>& now) {
    size_t pos = 0;
    for (const auto& [k, v] : now) {
        const size_t end = stored.find('\n', pos);
        const std::string line = stored.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        const std::string want = k + "=" + v;
        if (line != want)
            throw Error(path + ": the checkpoint's run had " + (line.empty() ? "no " + k : line) + ", this run has " +
                        want + " (a resumed run must repeat the original options)");
        pos = end == std::string::npos ? stored.size() : end + 1;
    }
}

struct Split {
    TokenSpan train, val;
};

} // namespace

// Mean next-character cross-entropy over the validation windows at offsets 0, context, 2·context, ...
ValResult validate(Trainer& trainer, const TextWindows& windows, uint64_t limit, uint32_t context) {
    const Clock::time_point start = Clock::now();
    uint64_t n = windows.sequential_count();
    if (limit) n = std::min(n, limit);
    std::vector<int32_t> ids(n * context), targets(n * context);
    for (uint64_t w = 0; w < n; ++w) windows.sequential(w, ids.data() + w * context, targets.data() + w * context);
    const EvalResult r = trainer.evaluate({ids.data(), targets.data()}, n);
    ValResult v;
    v.loss = r.loss;
    v.windows = n;
    v.seconds = seconds_since(start);
    return v;
}

int run_train_text(TrainArgs& a, const ModelSpec& spec) {
    refuse_image_options(a);
    // The device update cannot clip (the norm is formed on the host), and this recipe clips by default: say so
    // before any work, in the options' own names.
    if (a.update_location == UpdateLocation::device && a.clip > 0)
        throw UsageError("--update-location device cannot clip gradients (--clip " + number(a.clip) +
                         (a.has("--clip") ? "" : ", the GPT recipe's default") +
                         "): pass --clip 0, or --update-location host or auto");
    if (!a.has("--lr")) a.learning_rate = 3e-4;
    if (!a.has("--weight-decay")) a.weight_decay = 0.1;
    if (!a.has("--batch-size")) a.batch_size = 32;
    if (a.text_path.empty()) a.text_path = default_text_dir();
    const double lr = a.effective_learning_rate();
    const double min_lr = a.min_lr ? *a.min_lr : lr / 10.0;
    if (min_lr > lr) throw UsageError("--min-lr " + number(min_lr) + " exceeds the learning rate " + number(lr));
    if (a.warmup >= a.steps)
        throw UsageError("--warmup " + std::to_string(a.warmup) + " must be below --steps " + std::to_string(a.steps));
    const uint32_t micro = a.micro_batch ? a.micro_batch : a.batch_size;
    if (a.batch_size % micro != 0)
        throw UsageError("--micro-batch " + std::to_string(micro) + " must divide --batch-size " +
                         std::to_string(a.batch_size));
    std::vector<uint64_t> eval_at;
    for (uint64_t s : a.eval_at)
        if (s <= a.steps) eval_at.push_back(s);
    eval_at.push_back(a.steps);
    std::sort(eval_at.begin(), eval_at.end());
    eval_at.erase(std::unique(eval_at.begin(), eval_at.end()), eval_at.end());
    if (!a.output.empty()) check_output_path(a.output, "--output", a.force);
    if (!a.report.empty()) check_output_path(a.report, "--report", a.force);
    if (!a.checkpoint.empty() && a.resume != a.checkpoint) check_output_path(a.checkpoint, "--checkpoint", a.force);

    // --from FILE: its architecture (a GPT or a Llama) and, once the trainer exists, its weights.
    const bool from = !a.from.empty();
    std::optional<WeightsFile> from_file;
    Model from_model;
    GptOptions g = spec.gpt;
    std::optional<LlamaOptions> llama;
    // A LoRA model (an earlier `train --from ... --lora --output`) trains on as its base with the adapters merged,
    // W + (alpha / r)·B·A, tensor by tensor as the weights are read below: by "<module>.weight".
    std::map<std::string, LoraModule> merges;
    if (!a.from.empty()) {
        from_file = read_weights(a.from);
        from_model = load_model(*from_file);
        for (const LoraModule& m : from_model.lora_modules()) merges[m.module + ".weight"] = m;
        if (!merges.empty()) from_model = from_model.without_lora();
        try {
            llama = llama_options(from_model);
        } catch (const Error&) {
            try {
                g = gpt_options(from_model);
            } catch (const Error& e) {
                throw Error(a.from + ": --from takes a GPT or a Llama (" + e.what() + ")");
            }
        }
    }
    const uint32_t model_vocab = llama ? llama->vocab : g.vocab;
    // The tokenizer: --tokenizer DIR, else the one a resumed checkpoint carries, else the --from file's, else the
    // corpus's characters.
    std::shared_ptr<const Tokenizer> tokenizer;
    if (!a.tokenizer_path.empty()) tokenizer = load_tokenizer(a.tokenizer_path);
    // A character-level file (train --model gpt:... wrote it) carries its characters instead: the new corpus is
    // mapped onto them, as `vktrain eval` maps a validation text, so ids keep their meaning.
    CharVocabulary from_vocab;
    bool from_chars = false;
    if (from_file && !tokenizer) {
        tokenizer = tokenizer_from_metadata(from_file->metadata(), a.from);
        const std::string* symbols = from_file->metadata_value(key_vocabulary);
        if (!tokenizer && !symbols)
            throw UsageError(a.from + " carries no tokenizer and no character vocabulary (\"" + key_vocabulary +
                             "\"; imported without its tokenizer?): pass --tokenizer DIR");
        if (!tokenizer) {
            try {
                from_vocab = CharVocabulary::from_utf8(*symbols);
            } catch (const Error& e) {
                throw Error(a.from + ": " + e.what());
            }
            tokenizer = char_tokenizer(from_vocab);
            from_chars = true;
        }
    }
    if (!a.resume.empty()) {
        std::shared_ptr<const Tokenizer> stored = tokenizer_from_metadata(read_weights(a.resume).metadata(), a.resume);
        if (stored && tokenizer && stored->serialize() != tokenizer->serialize())
            throw Error(a.resume + ": the checkpoint's tokenizer is not the one of --tokenizer " + a.tokenizer_path +
                        " (a resumed run must repeat the original options)");
        if (stored) tokenizer = stored;
    }
    // The corpus: first 90% of the tokens for training, the last 10% for validation. Streamed into one token
    // array, which the two splits and their windows view.
    const TextTokens corpus = [&] {
        try {
            return tokenizer ? load_text_tokens(a.text_path, *tokenizer) : load_text_tokens(a.text_path);
        } catch (const Error& e) {
            const std::string what = e.what();
            if (!from_chars || what.find("is not in the vocabulary") == std::string::npos) throw;
            throw Error(a.from + " is a character-level model, and takes only text made of its characters: " + what);
        }
    }();
    const CharVocabulary& vocab = from_chars ? from_vocab : corpus.vocabulary;
    if (!tokenizer) tokenizer = char_tokenizer(vocab);
    const bool chars = tokenizer->kind() == "char";
    // What the weights and checkpoints carry so that eval and generate tokenise as training did.
    const std::pair<std::string, std::string> tokenizer_entry =
        chars ? std::make_pair(std::string(key_vocabulary), vocab.to_utf8())
              : std::make_pair(std::string(tokenizer_metadata_key), tokenizer->serialize());
    const TokenSplit text = split_tokens(corpus.tokens, 0.9);
    Split split;
    split.train = text.train;
    split.val = text.validation;
    if (from_file) {
        if (tokenizer->vocabulary_size() > model_vocab)
            throw Error(a.from + ": the tokenizer has " + std::to_string(tokenizer->vocabulary_size()) +
                        " tokens, the model's vocabulary only " + std::to_string(model_vocab));
    } else {
        g.vocab = uint32_t(tokenizer->vocabulary_size());
    }
    const uint32_t context = llama ? llama->context : g.context;
    check_split_length(split.train.size(), context, a.text_path, "training");
    check_split_length(split.val.size(), context, a.text_path, "validation");
    const TextWindows train_windows(split.train, context, a.seed);
    const TextWindows val_windows(split.val, context, 0);
    Model model = from_file ? from_model : Model::gpt(g);
    // LoRA first (it freezes the whole base, as PEFT does), then --freeze.
    const auto named = [](const char* option, const std::string& pattern, const auto& change) {
        try {
            change();
        } catch (const Error& e) {
            throw UsageError(std::string(option) + " " + pattern + ": " + e.what());
        }
    };
    for (const std::string& pattern : a.lora)
        named("--lora", pattern, [&] {
            model.add_lora(pattern, LoraOptions{a.lora_r, float(a.lora_alpha), float(a.lora_dropout)});
        });
    apply_parameter_groups(model, a); // --freeze, --train, --lr-scale
    if (!a.save_adapter.empty()) {
        if (a.lora.empty()) throw UsageError("--save-adapter needs --lora");
        if (std::filesystem::is_directory(a.save_adapter)) // (a folder save_lora_adapter makes is new)
            for (const char* f : {"/adapter_config.json", "/adapter_model.safetensors"})
                check_output_path(a.save_adapter + f, "--save-adapter", a.force);
    }

    Context ctx(context_options(a.device));
    TrainerOptions o = trainer_options(a);
    o.batch_size = micro;
    o.optimizer.learning_rate = float(lr);
    o.max_grad_norm = float(a.clip);
    o.lr_schedule = {LrScheduleKind::warmup_cosine, a.warmup, a.steps, float(min_lr)};
    Trainer trainer(ctx, model, o);
    if (from_file) {
        // The file's weights one tensor at a time, from its mapping: a frozen one goes straight to the device, so the
        // host never holds a second copy of a frozen base; the trainable ones are set together at the end.
        std::set<std::string> trains;
        for (const ParameterInfo& i : model.parameters())
            if (i.trainable && !i.buffer) trains.insert(i.name);
        std::vector<Parameter> trainable;
        for (const ParameterInfo& i : from_model.parameters()) {
            const TensorView* t = from_file->find(i.name);
            if (!t && !i.persistent) continue; // a cache: starts from zeros
            if (!t) throw Error(a.from + ": tensor '" + i.name + "' is missing");
            if (t->shape != i.shape) throw Error(a.from + ": tensor '" + i.name + "' has the wrong shape");
            Parameter p{i.name, i.shape, t->to_f32()};
            const auto merge = merges.find(i.name);
            if (merge != merges.end()) {
                const LoraModule& m = merge->second;
                const auto adapter = [&](const char* part, std::vector<int64_t> shape) {
                    const std::string name = m.module + part;
                    const TensorView* x = from_file->find(name);
                    if (!x) throw Error(a.from + ": tensor '" + name + "' is missing");
                    if (x->shape != shape) throw Error(a.from + ": tensor '" + name + "' has the wrong shape");
                    return x->to_f32();
                };
                merge_lora_weight(p.data, adapter(".lora_A.weight", {m.options.r, m.in}),
                                  adapter(".lora_B.weight", {m.out, m.options.r}), m.out, m.in, m.options.r,
                                  double(m.options.alpha) / m.options.r);
            }
            if (trains.count(i.name))
                trainable.push_back(std::move(p));
            else
                trainer.set_parameters({std::move(p)});
        }
        trainer.set_parameters(trainable);
        from_file
            .reset(); // the mapping goes: the weights are the trainer's now (and a CPU device's memory is the host's)
    }

    std::string h = "vktrain " + std::string(tool_version) + "\n";
    h += "device      " + device_summary(ctx.device_info()) + "\n";
    h += "precision   " + std::string(precision_name(a.precision));
    if (a.precision == Precision::mixed)
        h += a.loss_scaling ? " (loss scale " + number(a.loss_scale) + ", growth interval " +
                                  std::to_string(a.growth_interval) + ")"
                            : " (no loss scaling)";
    h += "\ntext        " + a.text_path + ": " + std::to_string(corpus.files.size()) + " files, " +
         std::to_string(corpus.tokens.size()) + (chars ? " characters (" : " tokens (") +
         std::to_string(split.train.size()) + " train, " + std::to_string(split.val.size()) +
         " validation), vocabulary " + std::to_string(tokenizer->vocabulary_size()) +
         (chars ? "" : " (" + tokenizer->kind() + ")") + "\n";
    for (const std::string& s : corpus.skipped) h += "  skipped   " + s + "\n";
    if (!merges.empty())
        h += "merged      the " + std::to_string(merges.size()) + " LoRA adapters of " + a.from +
             " into its base weights\n";
    if (llama)
        h += "model       " + a.from + ": llama layers " + std::to_string(llama->layers) + " heads " +
             std::to_string(llama->heads) + " kv_heads " + std::to_string(llama->kv_heads) + " width " +
             std::to_string(llama->width) + " context " + std::to_string(llama->context) + " intermediate " +
             std::to_string(llama->intermediate) + (llama->tied ? " tied" : "") + " (" +
             std::to_string(model.parameter_count()) + " parameters)\n";
    else
        h += "model       " + (from ? a.from + ": " : std::string()) + "gpt layers " + std::to_string(g.layers) +
             " heads " + std::to_string(g.heads) + " width " + std::to_string(g.width) + " context " +
             std::to_string(g.context) + " mlp " + std::to_string(g.mlp ? g.mlp : 4 * g.width) +
             (g.tied ? " tied" : "") + " (" + std::to_string(model.parameter_count()) + " parameters)\n";
    const MemoryReport m = trainer.memory();
    if (from) {
        const std::vector<LoraModule> adapters = model.lora_modules();
        h += "trainable   " + std::to_string(m.trainable_parameters) + " parameters, frozen " +
             std::to_string(m.frozen_parameters) +
             (adapters.empty()
                  ? std::string()
                  : " (LoRA r " + std::to_string(a.lora_r) + " alpha " + number(a.lora_alpha) + " dropout " +
                        number(a.lora_dropout) + " on " + std::to_string(adapters.size()) + " layers)") +
             "; host memory: masters " + mib(m.host_master_bytes) + ", optimizer state " + mib(m.host_optimizer_bytes) +
             "\n";
    }
    h += "optimizer   " + std::string(optimizer_name(a.optimizer)) + " lr " + number(lr) + " warm-up " +
         std::to_string(a.warmup) + " then cosine to " + number(min_lr) + ", weight_decay " + number(a.weight_decay) +
         ", clip " + (a.clip > 0 ? number(a.clip) : std::string("off")) + "\n";
    h += "steps       " + std::to_string(a.steps) + " of " + std::to_string(a.batch_size) + " windows x " +
         std::to_string(context) + " tokens" +
         (micro < a.batch_size ? " in micro-batches of " + std::to_string(micro) : std::string()) + ", seed " +
         std::to_string(a.seed) + "\n";
    h += "memory      planned activation arena " + mib(m.arena_bytes) + ", trainer total " + mib(m.total_bytes) +
         ", device peak so far " + mib(ctx.peak_allocated_bytes()) + "\n";
    h += "gemm path   " + trainer.gemm_path_summary() + "\n";
    print(h);

    std::vector<int32_t> ids(size_t(a.batch_size) * context), targets(size_t(a.batch_size) * context);
    StepProfile profile;
    if (a.profile) {
        train_windows.random(0, micro, ids.data(), targets.data());
        profile = trainer.profile_step({ids.data(), targets.data()}, micro);
        print(profile_table(profile, micro));
    }

    io::Json history = io::Json::array();
    std::vector<ValResult> vals;
    auto settings = run_settings(a, model_setting(g, llama), micro, lr, min_lr);
    if (!chars) settings.emplace_back("tokenizer", tokenizer->kind()); // absent from character runs, as before
    if (from) { // absent from runs of earlier versions, which had no --from
        const auto joined = [](const std::vector<std::string>& v) {
            std::string s;
            for (const std::string& x : v) s += (s.empty() ? "" : " ") + x;
            return s;
        };
        settings.emplace_back("--from", a.from);
        settings.emplace_back("--freeze", joined(a.freeze));
        settings.emplace_back("--lora", joined(a.lora));
        // Only when given: runs of earlier versions, which had neither, resume as before.
        std::string train_patterns, scales;
        for (const auto& [pattern, trainable] : a.trainable_changes)
            if (trainable) train_patterns += (train_patterns.empty() ? "" : " ") + pattern;
        for (const auto& [pattern, scale] : a.lr_scales)
            scales += (scales.empty() ? "" : " ") + pattern + "=" + number(scale);
        if (!train_patterns.empty()) settings.emplace_back("--train", train_patterns);
        if (!scales.empty()) settings.emplace_back("--lr-scale", scales);
        if (!a.lora.empty())
            settings.emplace_back("--lora-options", "r=" + std::to_string(a.lora_r) + ",alpha=" + number(a.lora_alpha) +
                                                        ",dropout=" + number(a.lora_dropout));
    }
    if (!a.resume.empty()) {
        const CheckpointMetadata stored = read_weights(a.resume).metadata();
        const std::string* run = find_metadata(stored, key_text_run);
        if (!run)
            throw Error(a.resume + ": not a checkpoint of a text run (`vktrain train --model gpt:... --checkpoint`)");
        check_same_run(a.resume, *run, settings);
        const CheckpointMetadata extra = trainer.load_checkpoint(a.resume);
        if (const std::string* validations = find_metadata(extra, key_text_validation))
            vals = parse_validations(*validations, a.resume, trainer.steps());
        print("resumed     " + a.resume + " at step " + std::to_string(trainer.steps()) + " (" +
              std::to_string(trainer.skipped_steps()) + " skipped), loss scale " + number(trainer.loss_scale()) + "\n");
    }
    // Before the first write the path is checked again: a file that appeared meanwhile must not be replaced without
    // --force (later writes replace our own; the file being resumed is ours to replace).
    bool checkpoint_checked = a.resume == a.checkpoint;
    uint64_t saved_step = ~uint64_t(0); // the step of the last checkpoint this run wrote
    const auto save_checkpoint = [&] {
        if (a.checkpoint.empty() || saved_step == trainer.steps()) return;
        if (!checkpoint_checked) check_output_path(a.checkpoint, "--checkpoint", a.force);
        checkpoint_checked = true;
        // The vocabulary too, so that `vktrain eval` and `vktrain generate` take a checkpoint like weights.
        // From a file, only what trains (LoRA: the adapters) and its state: the frozen rest comes from --from again.
        trainer.save_checkpoint(
            a.checkpoint,
            {{key_text_run, join_settings(settings)}, {key_text_validation, format_validations(vals)}, tokenizer_entry},
            from);
        saved_step = trainer.steps();
        print("checkpoint  " + a.checkpoint + " (step " + std::to_string(trainer.steps()) + ")\n");
    };
    const auto run_validation = [&](uint64_t step) {
        ValResult v = validate(trainer, val_windows, a.val_limit, context);
        v.step = step;
        print("validation  step " + std::to_string(step) + "  val_loss " + fixed(v.loss, 4) + "  windows " +
              std::to_string(v.windows) + "  seconds " + fixed(v.seconds, 1) + "\n");
        vals.push_back(v);
    };
    size_t next_eval = 0;
    while (next_eval < eval_at.size() && eval_at[next_eval] < trainer.steps()) ++next_eval; // done before a resume
    if (next_eval < eval_at.size() && eval_at[next_eval] == trainer.steps()) {
        // At the start, or resumed at a validation step: validated now unless the checkpoint already holds it (every
        // checkpoint written at such a step does). Either way the next validation is a later one.
        if (vals.empty() || vals.back().step != trainer.steps()) run_validation(trainer.steps());
        ++next_eval;
    }
    const uint64_t first_step = trainer.steps();
    const uint64_t log_every = a.log_every ? a.log_every : std::max<uint64_t>(1, a.steps / 40);
    const uint64_t tokens_per_step = uint64_t(a.batch_size) * context;
    double train_seconds = 0.0, window_loss = 0.0;
    uint64_t window_steps = 0;
    double last_loss = 0.0;
    StepResult last{};
    bool stopped = false;
    for (uint64_t s = first_step; s < a.steps; ++s) {
        const Clock::time_point start = Clock::now();
        train_windows.random(s * a.batch_size, a.batch_size, ids.data(), targets.data());
        std::vector<MicroBatch> parts;
        for (uint32_t b = 0; b < a.batch_size; b += micro)
            parts.push_back({{ids.data() + size_t(b) * context, targets.data() + size_t(b) * context}, micro});
        last = trainer.step(parts);
        train_seconds += seconds_since(start);
        last_loss = last.loss;
        window_loss += last.loss;
        ++window_steps;
        const uint64_t done = s + 1 - first_step; // steps of this invocation
        if ((s + 1) % log_every == 0 || s + 1 == a.steps) {
            const double tps = double(tokens_per_step) * double(done) / train_seconds;
            const double eta = train_seconds / double(done) * double(a.steps - s - 1);
            print("step " + std::to_string(s + 1) + "/" + std::to_string(a.steps) + "  loss " +
                  fixed(window_loss / double(window_steps), 4) + "  lr " + number(last.learning_rate) + "  norm " +
                  fixed(last.grad_norm, 3) + "  scale " + number(trainer.loss_scale()) + "  skipped " +
                  std::to_string(trainer.skipped_steps()) + "  tokens/s " + fixed(tps, 0) + "  eta " +
                  fixed(eta / 60.0, 1) + " min\n");
            io::Json j = io::Json::object();
            j["step"] = s + 1;
            j["loss"] = window_loss / double(window_steps);
            j["learning_rate"] = last.learning_rate;
            j["grad_norm"] = last.grad_norm;
            j["loss_scale"] = trainer.loss_scale();
            j["tokens_per_second"] = tps;
            history.push_back(std::move(j));
            window_loss = 0.0;
            window_steps = 0;
        }
        if (next_eval < eval_at.size() && eval_at[next_eval] == s + 1) {
            run_validation(s + 1);
            ++next_eval;
            save_checkpoint();
        }
        if (a.stop_after && done >= a.stop_after && s + 1 < a.steps) {
            save_checkpoint();
            print("stopped     after step " + std::to_string(s + 1) + " of " + std::to_string(a.steps) +
                  "; continue with --resume " + a.checkpoint + "\n");
            stopped = true;
            break;
        }
    }
    const uint64_t trained = trainer.steps() - first_step;
    const double tokens_per_second = double(tokens_per_step) * double(trained) / std::max(train_seconds, 1e-9);
    print((stopped ? "paused      " : "done        ") + std::to_string(trained) + " steps in " +
          fixed(train_seconds, 1) + " s, " + fixed(tokens_per_second, 0) + " tokens/s, peak device memory " +
          mib(ctx.peak_allocated_bytes()) + "\n");

    if (!a.output.empty()) {
        check_output_path(a.output, "--output", a.force);
        trainer.save(a.output, {tokenizer_entry});
        print("weights     " + a.output + "\n");
    }
    if (!a.save_adapter.empty()) {
        save_lora_adapter(trainer, a.save_adapter, a.from);
        print("adapter     " + a.save_adapter + " (PEFT: adapter_config.json, adapter_model.safetensors)\n");
    }
    if (!a.report.empty()) {
        check_output_path(a.report, "--report", a.force);
        io::Json r = io::Json::object();
        r["vktrain_version"] = tool_version;
        r["date"] = utc_now_iso8601();
        r["device"] = device_json(ctx.device_info());
        r["precision"] = precision_name(a.precision);
        r["model"] = a.model_spec;
        r["parameters"] = model.parameter_count();
        r["trainable_parameters"] = m.trainable_parameters;
        r["frozen_parameters"] = m.frozen_parameters;
        r["from"] = a.from.empty() ? io::Json() : io::Json(a.from);
        r["vocabulary"] = tokenizer->vocabulary_size();
        r["tokenizer"] = tokenizer->kind();
        r["text"] = a.text_path;
        r["train_characters"] = split.train.size();
        r["validation_characters"] = split.val.size();
        r["steps"] = a.steps;
        r["batch_size"] = a.batch_size;
        r["micro_batch"] = micro;
        r["context"] = context;
        r["learning_rate"] = lr;
        r["min_learning_rate"] = min_lr;
        r["warmup"] = a.warmup;
        r["weight_decay"] = a.weight_decay;
        r["clip"] = a.clip;
        r["seed"] = a.seed;
        r["resumed_from"] = a.resume.empty() ? io::Json() : io::Json(a.resume);
        r["steps_this_run"] = trained;
        r["gemm_path"] = trainer.gemm_path_summary();
        r["train_seconds"] = train_seconds;
        r["tokens_per_second"] = tokens_per_second;
        r["final_loss"] = last_loss;
        r["loss_scale"] = trainer.loss_scale();
        r["skipped_steps"] = trainer.skipped_steps();
        r["peak_device_bytes"] = ctx.peak_allocated_bytes();
        r["trainer_device_bytes"] = trainer.device_bytes();
        r["recompute"] = trainer.options().recompute == Recompute::blocks ? "blocks" : "none";
        r["planned_training_bytes"] = trainer.memory().train_plan_bytes; // the activation arena's training plan
        io::Json v = io::Json::array();
        for (const ValResult& x : vals) {
            io::Json j = io::Json::object();
            j["step"] = x.step;
            j["val_loss"] = x.loss;
            j["windows"] = x.windows;
            v.push_back(std::move(j));
        }
        r["validation"] = std::move(v);
        r["history"] = std::move(history);
        if (a.profile) {
            io::Json ops = io::Json::array();
            for (const OpTiming& op : profile.ops) {
                io::Json j = io::Json::object();
                j["op"] = op.name;
                j["microseconds"] = op.microseconds;
                ops.push_back(std::move(j));
            }
            r["profile"] = std::move(ops);
            r["profile_total_us"] = profile.total_microseconds;
            r["profile_dispatches"] = profile.dispatches;
        }
        io::write_json_file(a.report, r);
        print("report      " + a.report + "\n");
    }
    if (!std::isfinite(last_loss) && trainer.skipped_steps() == trainer.steps())
        throw Error("training diverged: every step was skipped (loss scale " + number(trainer.loss_scale()) + ")");
    return 0;
}

} // namespace vktrain::cli
