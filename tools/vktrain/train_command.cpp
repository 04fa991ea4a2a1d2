// `vktrain train`: an MLP on Fashion-MNIST, with a progress bar, per-epoch evaluation, optional full checkpoints
// after every epoch (and resuming from one), an optional per-op profile of one step before training, and optional
// weights and JSON report written at the end.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <limits>
#include <random>

#include "args.hpp"
#include "commands.hpp"
#include "io/json.hpp"
#include "model_spec.hpp"
#include "progress.hpp"
#include "report.hpp"
#include "util.hpp"
#include "vktrain/vktrain.hpp"

namespace vktrain::cli {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// Fisher-Yates with our own unbiased index mapping: std::uniform_int_distribution differs between standard
// libraries, which would make the sample order (and so every result) depend on the platform.
void shuffle(std::vector<uint32_t>& order, uint64_t seed) {
    std::mt19937_64 rng(seed);
    constexpr uint64_t max = std::numeric_limits<uint64_t>::max();
    for (size_t i = order.size(); i > 1; --i) {
        const uint64_t bound = i; // pick j in [0, i - 1]
        // Rejection sampling: only draws below the largest multiple of bound keep r % bound uniform.
        const uint64_t limit = max - max % bound;
        uint64_t r = rng();
        while (r >= limit) r = rng();
        std::swap(order[i - 1], order[size_t(r % bound)]);
    }
}

void check_outputs(const TrainArgs& a) {
    if (!a.output.empty()) check_output_path(a.output, "--output", a.force);
    if (!a.report.empty()) check_output_path(a.report, "--report", a.force);
}

// What `train` adds to a checkpoint's metadata, so a resumed run continues the same epoch sequence.
constexpr const char* key_epoch = "vktrain_train_epoch"; // completed epochs
constexpr const char* key_epochs = "vktrain_train_epochs";
constexpr const char* key_seed = "vktrain_train_seed"; // the shuffle seed
constexpr const char* key_batch_size = "vktrain_train_batch_size";
constexpr const char* key_lr_schedule = "vktrain_train_lr_schedule";
constexpr const char* key_base_lr = "vktrain_train_base_lr"; // %.17g: the double round-trips exactly
constexpr const char* key_train_samples = "vktrain_train_samples";

const char* schedule_name(const TrainArgs& a) {
    return a.cosine_schedule ? "cosine" : "constant";
}

CheckpointMetadata checkpoint_metadata(const TrainArgs& a, uint32_t epoch, uint64_t train_samples) {
    char lr[64];
    std::snprintf(lr, sizeof lr, "%.17g", a.effective_learning_rate());
    return {{key_epoch, std::to_string(epoch)},
            {key_epochs, std::to_string(a.epochs)},
            {key_seed, std::to_string(a.seed)},
            {key_batch_size, std::to_string(a.batch_size)},
            {key_lr_schedule, schedule_name(a)},
            {key_base_lr, lr},
            {key_train_samples, std::to_string(train_samples)}};
}

// What a checkpoint fixes that can be checked only once the data is loaded.
struct ResumeInfo {
    std::string model;    // Model::describe()
    uint64_t samples = 0; // training samples per epoch
};

// Reads the --resume file's metadata and checks that this run can continue it, before any data is loaded or a
// device opened. Adopts the checkpoint's shuffle seed and (unless --lr was given) its base learning rate. Returns
// the number of completed epochs. The model and the sample count are checked once the data is loaded, the rest of
// the state by Trainer::load_checkpoint.
uint32_t check_resume(TrainArgs& a, ResumeInfo& resume) {
    const std::string& path = a.resume;
    const CheckpointMetadata metadata = read_weights(path).metadata();
    if (!find_metadata(metadata, "vktrain_checkpoint"))
        throw Error(path + ": not a training checkpoint (a weights-only file has no optimizer or loss-scaler state; "
                           "write checkpoints with --checkpoint)");
    const auto need = [&](const char* key) -> const std::string& {
        const std::string* v = find_metadata(metadata, key);
        if (!v) throw Error(path + ": not written by `vktrain train --checkpoint` (no \"" + key + "\" metadata)");
        return *v;
    };
    const auto number = [&](const char* key, uint64_t max) {
        const std::string& text = need(key);
        uint64_t v = 0;
        bool ok = !text.empty() && text.size() <= 20 && text.find_first_not_of("0123456789") == std::string::npos;
        if (ok) {
            errno = 0;
            v = std::strtoull(text.c_str(), nullptr, 10);
            ok = errno != ERANGE && v <= max;
        }
        if (!ok) throw Error(path + ": checkpoint metadata \"" + key + "\" is not a valid number: \"" + text + "\"");
        return v;
    };
    const auto mismatch = [&](const std::string& what, const std::string& stored, const std::string& now) {
        return Error(path + ": checkpoint was trained with " + what + " " + stored + ", this run has " + now);
    };
    resume.model = need("vktrain_model");
    resume.samples = number(key_train_samples, std::numeric_limits<uint64_t>::max());
    const std::string& precision = need("vktrain_precision");
    if (precision != precision_name(a.precision)) throw mismatch("--precision", precision, precision_name(a.precision));
    const std::string& optimizer = need("vktrain_optimizer");
    if (optimizer != optimizer_name(a.optimizer)) throw mismatch("--optimizer", optimizer, optimizer_name(a.optimizer));
    // run_train reduces a batch larger than the data to the sample count, as it did for the checkpoint's run: the
    // same options give the same batch (if the sample count differs, that is refused once the data is loaded).
    const uint64_t batch_size = number(key_batch_size, std::numeric_limits<uint32_t>::max());
    const uint64_t effective = std::min<uint64_t>(a.batch_size, resume.samples);
    if (batch_size != effective)
        throw mismatch("--batch-size", std::to_string(batch_size),
                       std::to_string(effective) +
                           (effective != a.batch_size
                                ? " (--batch-size " + std::to_string(a.batch_size) + " reduced to the checkpoint's " +
                                      std::to_string(resume.samples) + " training samples)"
                                : std::string()));
    const std::string& schedule = need(key_lr_schedule);
    if (schedule != schedule_name(a)) throw mismatch("--lr-schedule", schedule, schedule_name(a));
    const uint64_t seed = number(key_seed, std::numeric_limits<uint64_t>::max());
    if (a.seed_given && a.seed != seed)
        throw mismatch("--seed", std::to_string(seed),
                       std::to_string(a.seed) + " (a resumed run keeps the checkpoint's shuffle seed; omit --seed)");
    a.seed = seed;
    if (!a.learning_rate) {
        const std::string& text = need(key_base_lr);
        char* end = nullptr;
        const double lr = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0' || !std::isfinite(lr) || !(lr > 0))
            throw Error(path + ": checkpoint metadata \"" + key_base_lr + "\" is not a valid learning rate: \"" + text +
                        "\"");
        a.learning_rate = lr;
    }
    const uint64_t epoch = number(key_epoch, std::numeric_limits<uint32_t>::max());
    if (epoch >= a.epochs)
        throw Error(path + ": checkpoint was saved after epoch " + std::to_string(epoch) + "; --epochs " +
                    std::to_string(a.epochs) + " leaves nothing to train (--epochs counts every epoch of the run)");
    return uint32_t(epoch);
}

void print(const std::string& text) {
    std::fputs(text.c_str(), stdout);
    // Flushed per line so a piped log shows each epoch as it ends rather than all at exit.
    std::fflush(stdout);
}

// One epoch of training steps; returns its statistics (evaluation fields left for the caller).
EpochStats train_epoch(Trainer& trainer, const Dataset& train, const TrainArgs& a, uint32_t epoch,
                       std::vector<uint32_t>& order, std::vector<float>& x, std::vector<int32_t>& labels) {
    // Seeded per epoch (1-based) so an epoch's order does not depend on how many draws earlier epochs made.
    shuffle(order, a.seed + epoch);
    const size_t features = train.features;
    const uint64_t n = train.count;
    ProgressBar bar(!a.quiet, epoch, a.epochs, n);
    const Clock::time_point start = Clock::now();
    double loss_sum = 0.0, host_ms = 0.0, overlapped_ms = 0.0;
    uint64_t done = 0, steps = 0;
    while (done < n) {
        const uint32_t count = uint32_t(std::min<uint64_t>(a.batch_size, n - done));
        // Gather the shuffled samples into one contiguous batch, the layout Trainer::step takes.
        for (uint32_t i = 0; i < count; ++i) {
            const size_t s = order[done + i];
            std::copy_n(train.x.data() + s * features, features, x.data() + size_t(i) * features);
            labels[i] = train.labels[s];
        }
        if (a.cosine_schedule) {
            // Cosine decay from the base rate to 0 over all steps of the run (per step, not per epoch). The
            // position is the trainer's step count, which a resumed run takes over from its checkpoint.
            const uint64_t steps_per_epoch = (n + a.batch_size - 1) / a.batch_size;
            const double t = std::min(1.0, double(trainer.steps()) / double(steps_per_epoch * a.epochs));
            trainer.set_learning_rate(
                float(a.effective_learning_rate() * 0.5 * (1.0 + std::cos(3.14159265358979323846 * t))));
        }
        const StepResult r = trainer.step(x.data(), labels.data(), count);
        loss_sum += double(r.loss) * count;
        host_ms += r.host_ms;
        overlapped_ms += r.overlapped_ms;
        ++steps;
        done += count;
        bar.update(done, loss_sum / double(done), trainer.loss_scale(), trainer.skipped_steps());
    }
    EpochStats stats;
    stats.train_seconds = seconds_since(start);
    bar.finish();
    stats.epoch = epoch;
    stats.samples = n;
    stats.train_loss = loss_sum / double(n);
    stats.loss_scale = trainer.loss_scale();
    stats.skipped_steps = trainer.skipped_steps();
    stats.steps = steps;
    stats.host_ms = host_ms;
    stats.overlapped_ms = overlapped_ms;
    return stats;
}

} // namespace

TrainerOptions trainer_options(const TrainArgs& a) {
    TrainerOptions o;
    o.precision = a.precision;
    o.batch_size = a.batch_size;
    o.optimizer.kind = a.optimizer;
    o.optimizer.learning_rate = float(a.effective_learning_rate());
    o.optimizer.momentum = float(a.momentum);
    o.optimizer.weight_decay = float(a.weight_decay);
    o.loss_scaler.enabled = a.loss_scaling;
    o.loss_scaler.init_scale = float(a.loss_scale);
    o.loss_scaler.growth_interval = int32_t(a.growth_interval);
    o.update_buckets = a.update_buckets;
    o.update_location = a.update_location;
    o.recompute = a.recompute;
    o.gemm_path = a.gemm_path;
    o.seed = a.seed;
    return o;
}

int run_train(const std::vector<std::string>& args) {
    TrainArgs a = parse_train_args(args);
    if (a.help) {
        std::fputs(train_usage(), stdout);
        return 0;
    }
    if (!a.images.empty()) return run_train_images(a);
    for (const char* o : {"--val-images", "--image-size", "--resize", "--workers", "--skip-bad-images"})
        if (a.has(o)) throw UsageError(std::string(o) + " applies only with --images DIR");
    if (a.freeze_bn) throw UsageError("--freeze-bn applies only with --images DIR (an image classifier's BatchNorm)");
    if (!a.from.empty()) {
        if (a.has("--model")) throw UsageError("--from FILE gives the model: --model does not apply");
        return run_train_text(a, ModelSpec{});
    }
    for (const char* o : {"--freeze", "--train", "--lr-scale"})
        if (a.has(o)) throw UsageError(std::string(o) + " applies only with --from FILE or --images DIR");
    for (const char* o : {"--lora", "--lora-r", "--lora-alpha", "--lora-dropout", "--save-adapter"})
        if (a.has(o)) throw UsageError(std::string(o) + " applies only with --from FILE");
    const ModelSpec spec = parse_model_spec(a.model_spec);
    if (spec.kind == "gpt") return run_train_text(a, spec);
    for (const char* o : {"--text", "--tokenizer", "--steps", "--warmup", "--min-lr", "--clip", "--micro-batch",
                          "--eval-at", "--val-limit", "--log-every"})
        if (a.has(o)) throw UsageError(std::string(o) + " applies only to text models (--model gpt:...)");
    if (spec.kind == "cnn") { // the CNN recipe: AdamW with weight decay 0.01 at a constant learning rate
        if (!a.weight_decay_given) a.weight_decay = 0.01;
        if (!a.schedule_given) a.cosine_schedule = false;
    }
    // Everything that can be checked cheaply is checked before minutes of loading and training.
    check_outputs(a);
    if (!a.checkpoint.empty()) check_output_path(a.checkpoint, "--checkpoint", a.force);
    ResumeInfo resume;
    const uint32_t first_epoch = a.resume.empty() ? 1 : check_resume(a, resume) + 1;

    const Dataset train = load_fashion_mnist(a.data_dir, true, size_t(a.limit));
    const Dataset test = load_fashion_mnist(a.data_dir, false, size_t(a.test_limit));
    if (test.features != train.features)
        throw Error(a.data_dir + ": test images have " + std::to_string(test.features) +
                    " pixels but training images " + std::to_string(train.features));
    if (train.count > std::numeric_limits<uint32_t>::max())
        throw Error(a.data_dir + ": more than 2^32 training samples");
    // The shuffles, the schedule's length and the epoch boundaries all depend on the sample count.
    if (!a.resume.empty() && resume.samples != train.count)
        throw Error(a.resume + ": checkpoint was trained on " + std::to_string(resume.samples) +
                    " samples per epoch, this run has " + std::to_string(train.count) + " (--limit must match)");

    // A batch larger than the data would only compute zero padding: every step runs at the compiled batch size. A
    // resumed run is reduced the same way (check_resume compared the result with the checkpoint's).
    if (a.batch_size > train.count) {
        print("note        --batch-size " + std::to_string(a.batch_size) + " exceeds the " +
              std::to_string(train.count) + " training samples; using " + std::to_string(train.count) + "\n");
        a.batch_size = uint32_t(train.count);
    }
    const Model model = build_model(spec, uint32_t(train.features), uint32_t(train.classes));
    if (!a.resume.empty() && resume.model != model.describe())
        throw Error(a.resume + ": checkpoint is for model " + resume.model + ", this run has " + model.describe());
    Context context(context_options(a.device));
    Trainer trainer(context, model, trainer_options(a));
    print(train_header(a, context, trainer, train.count, test.count));
    if (!a.resume.empty()) {
        trainer.load_checkpoint(a.resume);
        // The checkpoint restored its last learning rate; a constant schedule runs at this run's rate.
        if (!a.cosine_schedule) trainer.set_learning_rate(float(a.effective_learning_rate()));
        print("resumed     " + a.resume + ": " + std::to_string(first_epoch - 1) + " of " + std::to_string(a.epochs) +
              " epochs done, " + std::to_string(trainer.steps()) + " steps (" +
              std::to_string(trainer.skipped_steps()) + " skipped), loss scale " + number(trainer.loss_scale()) + "\n");
    }

    StepProfile profile;
    if (a.profile) {
        // Measurement only: the first samples (unshuffled) as one batch; no update, no state changes.
        const auto count = uint32_t(std::min<uint64_t>(a.batch_size, train.count));
        profile = trainer.profile_step(train.x.data(), train.labels.data(), count);
        print(profile_table(profile, count));
    }

    std::vector<uint32_t> order(train.count);
    for (size_t i = 0; i < order.size(); ++i) order[i] = uint32_t(i);
    // Each epoch shuffles the previous epoch's order: a resumed run replays the shuffles of the completed epochs.
    for (uint32_t epoch = 1; epoch < first_epoch; ++epoch) shuffle(order, a.seed + epoch);
    std::vector<float> x(size_t(a.batch_size) * train.features);
    std::vector<int32_t> labels(a.batch_size);

    RunInfo run;
    run.args = &a;
    run.context = &context;
    run.trainer = &trainer;
    run.train_samples = train.count;
    run.test_samples = test.count;
    if (a.profile) run.profile = &profile;
    for (uint32_t epoch = first_epoch; epoch <= a.epochs; ++epoch) {
        EpochStats stats = train_epoch(trainer, train, a, epoch, order, x, labels);
        const Clock::time_point eval_start = Clock::now();
        const Accuracy eval = classification_accuracy(trainer, test);
        stats.eval_seconds = seconds_since(eval_start);
        stats.test_loss = eval.loss;
        stats.test_accuracy = eval.accuracy;
        print(epoch_line(stats, a.epochs) + "\n");
        run.history.push_back(stats);
        if (!a.checkpoint.empty()) {
            // Before the first write, checked again (a file may have appeared meanwhile); later writes replace ours.
            if (epoch == first_epoch) check_output_path(a.checkpoint, "--checkpoint", a.force);
            trainer.save_checkpoint(a.checkpoint, checkpoint_metadata(a, epoch, train.count));
            print("checkpoint  " + a.checkpoint + " (epoch " + std::to_string(epoch) + ")\n");
        }
        if (a.stop_after && epoch + 1 - first_epoch >= a.stop_after && epoch < a.epochs) {
            print("stopped     after epoch " + std::to_string(epoch) + " of " + std::to_string(a.epochs) +
                  "; continue with --resume " + a.checkpoint + "\n");
            break;
        }
    }

    // Checked again: a file that appeared while we trained must not be replaced either.
    check_outputs(a);
    if (!a.output.empty()) {
        trainer.save(a.output);
        print("weights     " + a.output + "\n");
    }
    if (!a.report.empty()) {
        io::write_json_file(a.report, train_report(run));
        print("report      " + a.report + "\n");
    }
    // Outputs are written (they help to diagnose), but a run whose loss was never finite has failed.
    bool diverged = !run.history.empty();
    for (const EpochStats& e : run.history) diverged = diverged && !std::isfinite(e.train_loss);
    if (diverged)
        throw Error("training diverged: the loss was not finite in any epoch (" +
                    std::to_string(trainer.skipped_steps()) + " of " + std::to_string(trainer.steps()) +
                    " steps skipped, loss scale " + number(trainer.loss_scale()) + "); try a lower --lr");
    return 0;
}

} // namespace vktrain::cli
