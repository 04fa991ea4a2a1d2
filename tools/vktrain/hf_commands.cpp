// `vktrain import` (a Hugging Face folder to a vktrain weights file), `vktrain export` (back to a folder) and
// `vktrain predict` (an inference-only pass over a safetensors tensor named "input", writing "logits").
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>

#include "args.hpp"
#include "commands.hpp"
#include "io/safetensors.hpp"
#include "util.hpp"
#include "vktrain/import.hpp"
#include "vktrain/lora.hpp"
#include "vktrain/tokenizer.hpp"
#include "vktrain/vktrain.hpp"

namespace vktrain::cli {

namespace {

using Clock = std::chrono::steady_clock;

std::string shape_text(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// The embedding that reads the input `ids` (its table size bounds the ids), or 0 when none does.
uint64_t vocabulary_of(const Model& model, int ids) {
    for (const Node& n : model.nodes()) {
        if (n.op != "embedding" || n.inputs.empty() || n.inputs[0] != ids) continue;
        const auto it = n.attrs.find("num_embeddings");
        if (it != n.attrs.end()) return uint64_t(it->second);
    }
    return 0;
}

// Token ids [B, T] (I32 or I64) as int32, checked against [0, vocab).
std::vector<int32_t> read_ids(const TensorView& t, const std::string& path, uint64_t vocab) {
    std::vector<int32_t> ids(size_t(t.elements()));
    const auto* bytes = static_cast<const unsigned char*>(t.data);
    const int64_t cols = t.shape[1];
    for (size_t i = 0; i < ids.size(); ++i) {
        int64_t v = 0;
        if (t.type == ElementType::i64) {
            std::memcpy(&v, bytes + 8 * i, 8);
        } else {
            int32_t w = 0;
            std::memcpy(&w, bytes + 4 * i, 4);
            v = w;
        }
        if (v < 0 || (vocab != 0 && uint64_t(v) >= vocab))
            throw Error(path + ": tensor 'input' holds token id " + std::to_string(v) + " at [" +
                        std::to_string(int64_t(i) / cols) + ", " + std::to_string(int64_t(i) % cols) +
                        "], outside the model's vocabulary [0, " + std::to_string(vocab) + ")");
        ids[i] = int32_t(v);
    }
    return ids;
}

std::string join_names(const std::vector<std::string>& names) {
    std::string s;
    for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
    return s;
}

} // namespace

int run_import(const std::vector<std::string>& args) {
    const ImportArgs a = parse_import_args(args);
    if (a.help) {
        std::fputs(import_usage(), stdout);
        return 0;
    }
    check_output_path(a.output, "--output", a.force);
    const Clock::time_point start = Clock::now();
    if (!a.arch.empty()) {
        TorchvisionImportOptions options;
        options.arch = a.arch;
        options.classes = a.classes;
        options.height = a.height;
        options.width = a.width;
        options.precision = a.precision;
        options.seed = a.seed;
        const ImportResult r = import_torchvision(a.source, a.output, options);
        if (!a.quiet)
            std::printf("imported torchvision %s from %s: %llu tensors, %llu parameters, %u classes%s, %ux%u inputs "
                        "-> %s (%s) in %.2f s\n",
                        r.model_type.c_str(), a.source.c_str(), static_cast<unsigned long long>(r.tensors),
                        static_cast<unsigned long long>(r.parameters), r.model.classes(),
                        a.classes ? " (a new head)" : "", a.height, a.width, a.output.c_str(),
                        precision_name(a.precision), seconds_since(start));
        return 0;
    }
    if (std::filesystem::is_regular_file(a.source))
        throw Error(a.source +
                    ": a file, not a Hugging Face folder (for a torchvision state_dict pass --arch NAME, "
                    "one of " +
                    join_names(torchvision_architectures()) + ")");
    ImportOptions options;
    options.precision = a.precision;
    options.tokenizer = !a.no_tokenizer;
    const ImportResult r = import_hf(a.source, a.output, options);
    if (!a.quiet)
        std::printf("imported %s from %s: %llu tensors, %llu parameters%s, tokenizer %s -> %s (%s) in %.2f s\n",
                    r.model_type.c_str(), a.source.c_str(), static_cast<unsigned long long>(r.tensors),
                    static_cast<unsigned long long>(r.parameters),
                    r.skipped.empty() ? "" : (", " + std::to_string(r.skipped.size()) + " buffers skipped").c_str(),
                    r.tokenizer.empty() ? "none" : r.tokenizer.c_str(), a.output.c_str(), precision_name(a.precision),
                    seconds_since(start));
    return 0;
}

int run_export(const std::vector<std::string>& args) {
    const ExportArgs a = parse_export_args(args);
    if (a.help) {
        std::fputs(export_usage(), stdout);
        return 0;
    }
    const Clock::time_point start = Clock::now();
    ExportOptions options;
    options.overwrite = a.force;
    {
        const WeightsFile file = read_weights(a.weights);
        const std::string arch = torchvision_architecture_of(load_model(file), &file);
        if (!arch.empty()) {
            if (!a.adapter.empty())
                throw Error(a.weights +
                            ": --adapter merges LoRA adapters into Hugging Face exports; this is "
                            "torchvision's " +
                            arch);
            export_torchvision(a.weights, a.output, options);
            if (!a.quiet)
                std::printf("exported %s -> %s (torchvision %s state_dict, safetensors) in %.2f s\n", a.weights.c_str(),
                            a.output.c_str(), arch.c_str(), seconds_since(start));
            return 0;
        }
    }
    if (!a.adapter.empty()) options.tensor_hook = lora_merge_hook(a.adapter, load_model(a.weights));
    export_hf(a.weights, a.output, options);
    if (!a.quiet)
        std::printf("exported %s%s -> %s (config.json, model.safetensors%s) in %.2f s\n", a.weights.c_str(),
                    a.adapter.empty() ? "" : (" + adapter " + a.adapter).c_str(), a.output.c_str(),
                    read_weights(a.weights).metadata_value(tokenizer_metadata_key) ? ", tokenizer" : "",
                    seconds_since(start));
    return 0;
}

int run_predict(const std::vector<std::string>& args) {
    const PredictArgs a = parse_predict_args(args);
    if (a.help) {
        std::fputs(predict_usage(), stdout);
        return 0;
    }
    check_output_path(a.output, "--output", a.force);
    const WeightsFile weights = read_weights(a.weights);
    Model model = load_model(weights);
    const Precision precision = stored_precision(a.precision, a.weights, weights.metadata());
    const WeightsFile in = read_weights(a.input);
    const TensorView* x = in.find("input");
    if (x == nullptr) throw Error(a.input + ": no tensor 'input' (predict reads the model's input from it)");

    const std::vector<int> inputs = model.inputs();
    if (inputs.empty()) throw Error(a.weights + ": the model has no inputs");
    const Node first = model.nodes()[size_t(inputs[0])];
    const bool ids = first.type == DataType::i32;
    std::optional<std::vector<Parameter>> merged; // the weights when they are not the file's as they are
    if (x->shape.empty() || x->shape[0] < 1)
        throw Error(a.input + ": tensor 'input' has shape " + shape_text(x->shape) + ", expected [batch, ...]");
    const uint64_t batch = uint64_t(x->shape[0]);
    const std::vector<int64_t> per_sample(x->shape.begin() + 1, x->shape.end());
    std::vector<int32_t> id_data;
    std::vector<float> real_data;
    if (ids) {
        if (x->type != ElementType::i32 && x->type != ElementType::i64)
            throw Error(a.input + ": tensor 'input' is " + to_string(x->type) +
                        ", but the model takes token ids (I32 or I64 [batch, positions])");
        if (x->shape.size() != 2 || first.shape.size() != 1)
            throw Error(a.input + ": tensor 'input' has shape " + shape_text(x->shape) + ", the model takes ids " +
                        shape_text(first.shape) + " per sample ([batch, positions])");
        const int64_t positions = x->shape[1];
        const int64_t takes = first.shape[0];
        if (positions != takes) {
            // A GPT or a Llama runs on any window up to its context over the same weights (causal: a shorter window
            // gives the same logits at its positions). A LoRA model does as its base with the adapters merged.
            if (!model.lora_modules().empty()) {
                merged = merge_lora_parameters(model, parameters_for(model, weights));
                model = model.without_lora();
            }
            std::optional<GptOptions> g;
            std::optional<LlamaOptions> l;
            try {
                g = gpt_options(model);
            } catch (const Error&) {
                try {
                    l = llama_options(model);
                } catch (const Error&) {
                    throw Error(a.input + ": tensor 'input' has " + std::to_string(positions) +
                                " positions, the model takes exactly " + std::to_string(takes));
                }
            }
            const uint32_t context = g ? g->context : l->context;
            if (positions < 1 || uint64_t(positions) > context)
                throw Error(a.input + ": tensor 'input' has " + std::to_string(positions) +
                            " positions, the model's context is " + std::to_string(context));
            const uint32_t sequence = uint32_t(positions) == context ? 0 : uint32_t(positions);
            if (g) {
                g->sequence = sequence;
                model = Model::gpt(*g);
            } else {
                l->sequence = sequence;
                model = Model::llama(*l);
            }
        }
        id_data = read_ids(*x, a.input, vocabulary_of(model, model.inputs()[0]));
    } else {
        if (x->type != ElementType::f32 && x->type != ElementType::f16 && x->type != ElementType::bf16)
            throw Error(a.input + ": tensor 'input' is " + to_string(x->type) + ", but the model takes real values " +
                        "(F32 [batch] + " + shape_text(first.shape) + ")");
        if (per_sample != first.shape) {
            // An image model with adaptive pooling runs on other sizes over the same weights.
            try {
                model = resize_input(model, first.name, per_sample);
            } catch (const Error& e) {
                throw Error(a.input + ": tensor 'input' has shape " + shape_text(x->shape) +
                            ", the model takes [batch] + " + shape_text(first.shape) + " (" + e.what() + ")");
            }
        }
        real_data = x->to_f32();
    }

    Context context(context_options(a.device));
    TrainerOptions options;
    options.precision = precision;
    options.batch_size = uint32_t(std::min<uint64_t>(batch, a.batch_size));
    options.gemm_path = a.gemm_path;
    options.inference_only = true;
    Trainer trainer(context, model, options);
    if (merged)
        trainer.set_parameters(*merged);
    else
        trainer.load(a.weights);
    std::vector<const void*> feeds(model.inputs().size(), nullptr); // labels and targets are not needed
    feeds[0] = ids ? static_cast<const void*>(id_data.data()) : static_cast<const void*>(real_data.data());
    const Clock::time_point start = Clock::now();
    std::vector<float> logits = trainer.predict(feeds, batch);
    const double seconds = seconds_since(start);
    std::vector<int64_t> shape = trainer.output_shape();
    shape.insert(shape.begin(), int64_t(batch));
    io::write_safetensors(a.output, {{"logits", shape, std::move(logits)}},
                          {{"vktrain_precision", precision_name(precision)}});
    std::fprintf(stderr, "vktrain: predicted %llu samples (%s, %s) in %.3f s -> %s logits %s\n",
                 static_cast<unsigned long long>(batch), precision_name(precision),
                 device_summary(context.device_info()).c_str(), seconds, a.output.c_str(), shape_text(shape).c_str());
    return 0;
}

} // namespace vktrain::cli
