// `vktrain train --images DIR`: a classifier on a torchvision-style image folder. Batches come from ImageLoader
// (decoded on --workers threads while the device runs the previous step), with RandomResizedCrop and a horizontal
// flip; --val-images gives the accuracy after every epoch through the eval transform. The model is --model net:... or
// mlp:... on [3, S, S] images, or --from FILE whose input is [3, S, S]; --freeze / --train / --lr-scale choose what
// trains and how fast (docs/torchvision.md), and --report FILE writes the run as JSON.
#include <chrono>
#include <cmath>
#include <optional>
#include <cstdio>

#include "args.hpp"
#include "commands.hpp"
#include "finetune.hpp"
#include "io/json.hpp"
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

struct EpochResult {
    uint32_t epoch = 0;
    double train_loss = 0.0, images_per_second = 0.0, waiting_share = 0.0, seconds = 0.0;
    uint64_t images = 0;
    size_t skipped = 0;
    std::optional<ValResult> val;
};

io::Json report_json(const TrainArgs& a, const Context& context, const Trainer& trainer, const ImageFolder& train,
                     const std::optional<ImageFolder>& val, const std::vector<EpochResult>& epochs,
                     const std::optional<uint64_t>& host_peak) {
    const auto strings = [](const auto& items, bool trainable) {
        io::Json j = io::Json::array();
        for (const auto& [pattern, t] : items)
            if (t == trainable) j.push_back(pattern);
        return j;
    };
    io::Json r = io::Json::object();
    r["vktrain_version"] = tool_version;
    r["date"] = utc_now_iso8601();
    r["device"] = device_json(context.device_info());
    r["precision"] = precision_name(a.precision);
    r["model"] = trainer.model().describe();
    r["from"] = a.from.empty() ? io::Json() : io::Json(a.from);
    r["images"] = a.images;
    r["train_images"] = train.files.size();
    r["val_images"] = a.val_images.empty() ? io::Json() : io::Json(a.val_images);
    r["validation_images"] = val ? val->files.size() : 0;
    r["classes"] = train.classes.size();
    r["image_size"] = a.image_size;
    r["workers"] = a.workers;
    r["optimizer"] = optimizer_name(a.optimizer);
    r["learning_rate"] = a.effective_learning_rate();
    r["weight_decay"] = a.weight_decay;
    r["lr_schedule"] = a.cosine_schedule ? "cosine" : "constant";
    r["batch_size"] = a.batch_size;
    r["epochs"] = a.epochs;
    r["seed"] = a.seed;
    r["freeze"] = strings(a.trainable_changes, false);
    r["train"] = strings(a.trainable_changes, true);
    io::Json scales = io::Json::array();
    for (const auto& [pattern, scale] : a.lr_scales) {
        io::Json g = io::Json::object();
        g["pattern"] = pattern;
        g["scale"] = scale;
        scales.push_back(std::move(g));
    }
    r["lr_scales"] = std::move(scales);
    const MemoryReport m = trainer.memory();
    r["parameters"] = trainer.model().parameter_count();
    r["trainable_parameters"] = m.trainable_parameters;
    r["frozen_parameters"] = m.frozen_parameters;
    r["update_location"] = trainer.update_location() == UpdateLocation::device ? "device" : "host";
    r["recompute"] = trainer.options().recompute == Recompute::blocks ? "blocks" : "none";
    io::Json history = io::Json::array();
    double seconds = 0.0;
    uint64_t images = 0;
    for (const EpochResult& e : epochs) {
        io::Json j = io::Json::object();
        j["epoch"] = e.epoch;
        j["train_loss"] = e.train_loss;
        j["images_per_second"] = e.images_per_second;
        j["waiting_share"] = e.waiting_share;
        j["seconds"] = e.seconds;
        j["skipped"] = e.skipped;
        j["val_accuracy"] = e.val ? io::Json(e.val->accuracy) : io::Json();
        history.push_back(std::move(j));
        seconds += e.seconds;
        images += e.images;
    }
    r["history"] = std::move(history);
    r["images_per_second"] = seconds > 0 ? double(images) / seconds : 0.0;
    r["train_seconds"] = seconds;
    r["final_train_loss"] = epochs.empty() ? io::Json() : io::Json(epochs.back().train_loss);
    r["final_val_accuracy"] = epochs.empty() || !epochs.back().val ? io::Json() : io::Json(epochs.back().val->accuracy);
    r["peak_device_bytes"] = context.peak_allocated_bytes();
    r["peak_host_bytes"] = host_peak ? io::Json(*host_peak) : io::Json();
    r["trainer_device_bytes"] = trainer.device_bytes();
    return r;
}

std::string skipped_note(const std::vector<SkippedImage>& skipped) {
    if (skipped.empty()) return "";
    return " (first: " + one_line(skipped.front().error) + ")";
}

} // namespace

int run_train_images(TrainArgs& a) {
    for (const char* o : {"--data", "--limit", "--test-limit", "--text", "--tokenizer", "--steps", "--lora",
                          "--checkpoint", "--resume", "--stop-after", "--profile"})
        if (a.has(o)) throw UsageError(std::string(o) + " does not apply with --images DIR");
    if (!a.output.empty()) check_output_path(a.output, "--output", a.force);
    if (!a.report.empty()) check_output_path(a.report, "--report", a.force);

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
    apply_parameter_groups(model, a);           // --freeze, --train, --lr-scale
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
    const MemoryReport mem = trainer.memory();
    std::string groups;
    for (const auto& [pattern, scale] : a.lr_scales)
        groups += (groups.empty() ? "" : ", ") + pattern + " x" + number(scale);
    print("trainable   " + std::to_string(mem.trainable_parameters) + " parameters, frozen " +
          std::to_string(mem.frozen_parameters) + (groups.empty() ? "" : "; learning rate " + groups) + "\n");

    const uint64_t steps_per_epoch = (train.files.size() + a.batch_size - 1) / a.batch_size;
    std::vector<EpochResult> epochs;
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
        EpochResult e;
        e.epoch = epoch;
        e.seconds = seconds;
        e.images = samples;
        e.train_loss = samples ? loss_sum / double(samples) : 0.0;
        e.images_per_second = double(samples) / seconds;
        e.waiting_share = wait / seconds;
        e.skipped = loader.skipped().size();
        std::string line = "epoch " + std::to_string(epoch) + "/" + std::to_string(a.epochs) + "  train_loss " +
                           fixed(e.train_loss, 4) + "  images/s " + fixed(e.images_per_second, 1) +
                           "  waiting_for_images " + fixed(100.0 * e.waiting_share, 0) + "%";
        if (!loader.skipped().empty())
            line += "  skipped " + std::to_string(loader.skipped().size()) + skipped_note(loader.skipped());
        if (val_loader) {
            const ValResult v = validate(trainer, *val_loader, classes);
            line += "  val_accuracy " + fixed(v.accuracy, 4);
            if (v.skipped) line += "  val_skipped " + std::to_string(v.skipped);
            e.val = v;
        }
        print(line + "\n");
        if (samples == 0) throw Error(a.images + ": no image could be read (every file was skipped)");
        epochs.push_back(std::move(e));
    }
    const std::optional<uint64_t> host_peak = peak_host_bytes();
    print(peak_memory_line(context.peak_allocated_bytes(), host_peak) + "\n");
    if (!a.output.empty()) {
        check_output_path(a.output, "--output", a.force);
        trainer.save(a.output);
        print("weights     " + a.output + "\n");
    }
    if (!a.report.empty()) {
        check_output_path(a.report, "--report", a.force);
        io::write_json_file(a.report, report_json(a, context, trainer, train, val, epochs, host_peak));
        print("report      " + a.report + "\n");
    }
    return 0;
}

} // namespace vktrain::cli
