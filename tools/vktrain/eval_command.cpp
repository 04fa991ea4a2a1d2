// `vktrain eval`: loads a checkpoint written by `vktrain train --output` (or Trainer::save) and evaluates it on the
// Fashion-MNIST test split, or a text model's weights or checkpoint on its corpus's validation split.
#include <cstdio>
#include <optional>

#include "args.hpp"
#include "commands.hpp"
#include "model_spec.hpp"
#include "report.hpp"
#include "text_model.hpp"
#include "util.hpp"
#include "vktrain/vktrain.hpp"

namespace vktrain::cli {

int run_eval(const std::vector<std::string>& args) {
    const EvalArgs a = parse_eval_args(args);
    if (a.help) {
        std::fputs(eval_usage(), stdout);
        return 0;
    }
    std::optional<ModelSpec> spec;
    if (!a.model_spec.empty()) spec = parse_model_spec(a.model_spec);

    // Read the checkpoint first: a bad file is reported before the test set is decompressed, and its metadata says
    // which model and precision it was trained with.
    const WeightsFile weights = read_weights(a.weights); // mapped: only the header is read here
    const CheckpointMetadata& metadata = weights.metadata();
    // A text model (or a text run's checkpoint, which read_text_model names if it lacks the vocabulary).
    if (!spec && (find_metadata(metadata, key_vocabulary) || find_metadata(metadata, tokenizer_metadata_key) ||
                  find_metadata(metadata, key_text_run)))
        return run_eval_text(a);
    std::optional<Model> stored_model;
    std::string model_source = "--model";
    if (!spec && find_metadata(metadata, "vktrain_graph")) {
        stored_model = load_model(weights);
        model_source = "architecture in " + a.weights;
        const std::vector<int> in = stored_model->inputs();
        if (!in.empty() && stored_model->nodes()[size_t(in[0])].type == DataType::i32)
            throw Error(a.weights + ": a model over token ids without a vocabulary (e.g. from `vktrain import`): eval "
                                    "needs the text model's vocabulary; `vktrain predict` runs it on token ids");
    } else if (!spec) {
        const std::string* description = find_metadata(metadata, "vktrain_model");
        if (!description)
            throw Error(a.weights + ": no \"vktrain_model\" metadata to rebuild the model from; pass --model SPEC");
        try {
            stored_model = model_from_description(*description);
        } catch (const Error& e) {
            throw Error(a.weights + ": " + e.what());
        }
        model_source = "metadata of " + a.weights;
    }
    const Precision precision = stored_precision(a.precision, a.weights, metadata);

    const Dataset test = load_fashion_mnist(a.data_dir, false, size_t(a.test_limit));
    const Model model =
        spec ? build_model(*spec, uint32_t(test.features), uint32_t(test.classes)) : std::move(*stored_model);
    if (model.input_features() != test.features)
        throw Error(a.weights + ": model " + model.describe() + " takes " + std::to_string(model.input_features()) +
                    " inputs but the images in " + a.data_dir + " have " + std::to_string(test.features) + " pixels");
    if (model.classes() != test.classes)
        throw Error(a.weights + ": model " + model.describe() + " has " + std::to_string(model.classes()) +
                    " classes but the data has " + std::to_string(test.classes));

    Context context(context_options(a.device));
    TrainerOptions options;
    options.precision = precision;
    options.batch_size = a.batch_size;
    options.gemm_path = a.gemm_path;
    Trainer trainer(context, model, options);
    trainer.load(a.weights);

    std::printf("device      %s\n", device_summary(context.device_info()).c_str());
    std::printf("model       %s (from %s)\n", model.describe().c_str(), model_source.c_str());
    std::printf("precision   %s, gemm path %s\n", precision_name(precision), trainer.gemm_path_summary().c_str());
    const Accuracy r = classification_accuracy(trainer, test);
    std::printf("test_loss %s  test_accuracy %s  samples %llu\n", fixed(r.loss, 4).c_str(),
                fixed(r.accuracy, 4).c_str(), static_cast<unsigned long long>(test.count));
    return 0;
}

int run_eval_text(const EvalArgs& a) {
    TextModelFile file = read_text_model(a.weights); // the same checks as `vktrain generate`
    const CharVocabulary& vocab = file.vocab;
    const Model& model = file.model;
    const Precision precision = stored_precision(a.precision, a.weights, file.metadata());
    const std::vector<int> inputs = model.inputs();
    if (inputs.empty() || model.nodes()[size_t(inputs[0])].shape.size() != 1)
        throw Error(a.weights + ": the model's first input is not a sequence of token ids");
    const uint32_t context = uint32_t(model.nodes()[size_t(inputs[0])].shape[0]);
    const std::string text_path = a.text_path.empty() ? default_text_dir() : a.text_path;
    std::vector<int32_t> val;
    if (file.tokenizer->kind() != "char") { // the file's tokenizer, streamed
        const TextTokens corpus = load_text_tokens(text_path, *file.tokenizer);
        const TokenSpan split = split_tokens(corpus.tokens, 0.9).validation;
        val.resize(split.count);
        corpus.tokens.copy(split.first, split.count, val.data());
    } else {
        // Streamed (one byte or two per character), then only the validation part mapped into the file's vocabulary.
        const TextTokens corpus = load_text_tokens(text_path);
        const TokenSpan split = split_tokens(corpus.tokens, 0.9).validation;
        std::vector<int32_t> to_file(corpus.vocabulary.size());
        for (uint32_t i = 0; i < corpus.vocabulary.size(); ++i)
            to_file[i] = vocab.id(corpus.vocabulary.symbol(int32_t(i)));
        val.resize(split.count);
        corpus.tokens.copy(split.first, split.count, val.data());
        for (uint64_t i = 0; i < val.size(); ++i) {
            const int32_t id = to_file[size_t(val[i])];
            if (id < 0) {
                const char32_t c = corpus.vocabulary.symbol(val[i]);
                char code[16];
                std::snprintf(code, sizeof code, "U+%04X", unsigned(c));
                throw Error(text_path + ": the validation text holds the character " +
                            encode_utf8(std::u32string(1, c)) + " (" + code + "), which is not in the vocabulary of " +
                            a.weights);
            }
            val[i] = id;
        }
    }
    check_split_length(val.size(), context, text_path, "validation");
    const TextWindows windows(val, context, 0);

    Context context_(context_options(a.device));
    TrainerOptions options;
    options.precision = precision;
    options.batch_size = a.batch_size;
    options.gemm_path = a.gemm_path;
    options.inference_only = true;
    Trainer trainer(context_, model, options);
    trainer.set_parameters(file.parameters);
    std::printf("device      %s\n", device_summary(context_.device_info()).c_str());
    std::printf("model       %s (%llu parameters, vocabulary %llu, context %u)\n", a.weights.c_str(),
                static_cast<unsigned long long>(model.parameter_count()),
                static_cast<unsigned long long>(file.tokenizer->vocabulary_size()), context);
    std::printf("precision   %s, gemm path %s\n", precision_name(precision), trainer.gemm_path_summary().c_str());
    const ValResult r = validate(trainer, windows, a.val_limit, context);
    std::printf("val_loss %s  windows %llu  %s %llu\n", fixed(r.loss, 6).c_str(),
                static_cast<unsigned long long>(r.windows), file.tokenizer->kind() == "char" ? "characters" : "tokens",
                static_cast<unsigned long long>(r.windows * context));
    return 0;
}

} // namespace vktrain::cli
