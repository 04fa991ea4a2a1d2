// `vktrain train --images DIR`: a classifier on a torchvision-style image folder. Batches come from ImageLoader
// (decoded on --workers threads while the device runs the previous step), with RandomResizedCrop and a horizontal
// flip; --val-images gives the accuracy after every epoch through the eval transform. The model is --model net:... or
// mlp:... on [3, S, S] images, or --from FILE whose input is [3, S, S].
#include <chrono>
#include <cmath>
#include <optional>
#include <cstdio>

#include "args.hpp"
#include "commands.hpp"
#include "model_spec.hpp"
#include "util.hpp"
#include "vktrain/images.hpp"
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

Model image_model(const TrainArgs& a, uint32_t classes) {
    const auto s = int64_t(a.image_size);
    if (!a.from.empty()) {
        if (a.has("--model")) throw UsageError("--from FILE gives the model: --model does not apply");
        Model m = load_model(a.from);
        const std::vector<int> inputs = m.inputs();
        const Node& x = m.nodes()[size_t(inputs.front())];
        if (inputs.size() != 2 || x.type != DataType::f32 || x.shape != std::vector<int64_t>{3, s, s})
            throw Error(a.from + ": --images needs a model whose inputs are [3, " + std::to_string(s) + ", " +
                        std::to_string(s) + "] images (--image-size) and labels; this one's first input is " + x.name +
                        " of shape " + [&] {
                            std::string t;
                            for (int64_t d : x.shape) t += (t.empty() ? "[" : ", ") + std::to_string(d);
                            return t + "]";
                        }());
        return m;
    }
    const ModelSpec spec = parse_model_spec(a.model_spec);
    if (spec.kind != "net" && spec.kind != "mlp")
        throw UsageError("--images trains --model net:... or mlp:... (or --from FILE), not " + spec.kind);
    Model m;
    int x = m.input("x", {3, s, s});
    if (spec.kind == "net") {
        for (const NetSpec::Op& op : spec.net.ops) x = m.op(op.name, {x}, op.attrs);
    } else {
        x = m.flatten(x);
        for (uint32_t h : spec.mlp.hidden) x = m.op(spec.mlp.activation, {m.linear(x, h)});
    }
    if (m.nodes()[size_t(x)].shape.size() > 1) x = m.flatten(x);
    m.softmax_cross_entropy(m.linear(x, classes));
    return m;
}

struct ValResult {
    double accuracy = 0.0;
    uint64_t count = 0;
    size_t skipped = 0;
};

ValResult validate(Trainer& trainer, ImageLoader& loader, uint64_t classes) {
    ValResult v;
    loader.start_epoch(0);
    ImageBatch b;
    uint64_t correct = 0;
    while (loader.next(b)) {
        const std::vector<float> logits = trainer.predict(b.x.data(), b.count);
        const size_t width = logits.size() / b.count;
        for (uint32_t i = 0; i < b.count; ++i) {
            const float* row = logits.data() + size_t(i) * width;
            size_t best = 0;
            for (size_t c = 1; c < width && c < classes; ++c)
                if (row[c] > row[best]) best = c;
            correct += best == size_t(b.labels[i]);
        }
        v.count += b.count;
    }
    v.skipped = loader.skipped().size();
    v.accuracy = v.count ? double(correct) / double(v.count) : 0.0;
    return v;
}

std::string skipped_note(const std::vector<SkippedImage>& skipped) {
    if (skipped.empty()) return "";
    return " (first: " + one_line(skipped.front().error) + ")";
}

} // namespace

int run_train_images(TrainArgs& a) {
    for (const char* o : {"--data", "--limit", "--test-limit", "--text", "--tokenizer", "--steps", "--freeze", "--lora",
                          "--checkpoint", "--resume", "--stop-after", "--profile", "--report"})
        if (a.has(o)) throw UsageError(std::string(o) + " does not apply with --images DIR");
    if (!a.output.empty()) check_output_path(a.output, "--output", a.force);

    const ImageFolder train = scan_image_folder(a.images);
    std::optional<ImageFolder> val;
    if (!a.val_images.empty()) {
        val = scan_image_folder(a.val_images);
        if (val->classes != train.classes)
            throw Error(a.val_images + ": its classes differ from " + a.images + "'s (" +
                        std::to_string(val->classes.size()) + " against " + std::to_string(train.classes.size()) +
                        "; the same class folder names are needed, so that labels agree)");
    }
    const auto classes = uint32_t(train.classes.size());
    if (classes < 2) throw Error(a.images + ": one class folder; a classifier needs at least 2");
    if (a.batch_size > train.files.size()) a.batch_size = uint32_t(train.files.size());

    ImageLoaderOptions lo;
    lo.batch_size = a.batch_size;
    lo.transform = ImageTransform::train(a.image_size);
    lo.shuffle = true;
    lo.seed = a.seed;
    lo.threads = a.workers;
    lo.skip_bad_images = a.skip_bad_images;
    ImageLoader loader(train, lo);
    std::optional<ImageLoader> val_loader;
    if (val) {
        ImageLoaderOptions vo = lo;
        vo.shuffle = false;
        vo.transform = ImageTransform::eval(a.resize ? a.resize : a.image_size * 8 / 7, a.image_size);
        val_loader.emplace(*val, vo);
    }

    Model model = image_model(a, classes);
    if (a.freeze_bn) model.freeze_batch_norm(); // every BatchNorm: its running statistics normalise and stay
    Context context(context_options(a.device));
    Trainer trainer(context, model, trainer_options(a));
    if (!a.from.empty()) trainer.load(a.from);
    print("device      " + context.device_info().name + "\n");
    print("images      " + a.images + ": " + std::to_string(train.files.size()) + " in " + std::to_string(classes) +
          " classes" + (val ? ", validation " + a.val_images + ": " + std::to_string(val->files.size()) : "") + "; " +
          std::to_string(a.image_size) + "x" + std::to_string(a.image_size) + ", " + std::to_string(a.workers) +
          " decoding threads\n");
    print("model       " + model.describe() + "\n");
    print("precision   " + std::string(precision_name(a.precision)) + "\n");

    const uint64_t steps_per_epoch = (train.files.size() + a.batch_size - 1) / a.batch_size;
    for (uint32_t epoch = 1; epoch <= a.epochs; ++epoch) {
        const Clock::time_point start = Clock::now();
        double wait = 0.0, loss_sum = 0.0;
        uint64_t samples = 0;
        loader.start_epoch(epoch);
        ImageBatch b;
        for (;;) {
            const Clock::time_point w = Clock::now();
            if (!loader.next(b)) break;
            wait += seconds_since(w);
            if (a.cosine_schedule) {
                const double t = std::min(1.0, double(trainer.steps()) / double(steps_per_epoch * a.epochs));
                trainer.set_learning_rate(
                    float(a.effective_learning_rate() * 0.5 * (1.0 + std::cos(3.14159265358979323846 * t))));
            }
            const StepResult r = trainer.step(b.x.data(), b.labels.data(), b.count);
            loss_sum += double(r.loss) * b.count;
            samples += b.count;
        }
        const double seconds = seconds_since(start);
        std::string line = "epoch " + std::to_string(epoch) + "/" + std::to_string(a.epochs) + "  train_loss " +
                           fixed(samples ? loss_sum / double(samples) : 0.0, 4) + "  images/s " +
                           fixed(double(samples) / seconds, 1) + "  waiting_for_images " +
                           fixed(100.0 * wait / seconds, 0) + "%";
        if (!loader.skipped().empty())
            line += "  skipped " + std::to_string(loader.skipped().size()) + skipped_note(loader.skipped());
        if (val_loader) {
            const ValResult v = validate(trainer, *val_loader, classes);
            line += "  val_accuracy " + fixed(v.accuracy, 4);
            if (v.skipped) line += "  val_skipped " + std::to_string(v.skipped);
        }
        print(line + "\n");
        if (samples == 0) throw Error(a.images + ": no image could be read (every file was skipped)");
    }
    if (!a.output.empty()) {
        check_output_path(a.output, "--output", a.force);
        trainer.save(a.output);
        print("weights     " + a.output + "\n");
    }
    return 0;
}

} // namespace vktrain::cli
