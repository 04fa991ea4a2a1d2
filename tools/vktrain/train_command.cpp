// `vktrain train`: an MLP on Fashion-MNIST, with a progress bar, per-epoch evaluation, and optional weights and
// JSON report written at the end.
#include <cmath>
#include <algorithm>
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
    o.gemm_path = a.gemm_path;
    o.seed = a.seed;
    return o;
}

void check_outputs(const TrainArgs& a) {
    if (!a.output.empty()) check_output_path(a.output, "--output", a.force);
    if (!a.report.empty()) check_output_path(a.report, "--report", a.force);
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
    double loss_sum = 0.0;
    uint64_t done = 0;
    while (done < n) {
        const uint32_t count = uint32_t(std::min<uint64_t>(a.batch_size, n - done));
        // Gather the shuffled samples into one contiguous batch, the layout Trainer::step takes.
        for (uint32_t i = 0; i < count; ++i) {
            const size_t s = order[done + i];
            std::copy_n(train.x.data() + s * features, features, x.data() + size_t(i) * features);
            labels[i] = train.labels[s];
        }
        if (a.cosine_schedule) {
            // Cosine decay from the base rate to 0 over all steps of the run (per step, not per epoch).
            const uint64_t steps_per_epoch = (n + a.batch_size - 1) / a.batch_size;
            const double t =
                double((epoch - 1) * steps_per_epoch + done / a.batch_size) / double(steps_per_epoch * a.epochs);
            trainer.set_learning_rate(
                float(a.effective_learning_rate() * 0.5 * (1.0 + std::cos(3.14159265358979323846 * t))));
        }
        const StepResult r = trainer.step(x.data(), labels.data(), count);
        loss_sum += double(r.loss) * count;
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
    return stats;
}

} // namespace

int run_train(const std::vector<std::string>& args) {
    const TrainArgs a = parse_train_args(args);
    if (a.help) {
        std::fputs(train_usage(), stdout);
        return 0;
    }
    const MlpSpec spec = parse_mlp_spec(a.model_spec);
    // Everything that can be checked cheaply is checked before minutes of loading and training.
    check_outputs(a);

    const Dataset train = load_fashion_mnist(a.data_dir, true, size_t(a.limit));
    const Dataset test = load_fashion_mnist(a.data_dir, false, size_t(a.test_limit));
    if (test.features != train.features)
        throw Error(a.data_dir + ": test images have " + std::to_string(test.features) +
                    " pixels but training images " + std::to_string(train.features));
    if (train.count > std::numeric_limits<uint32_t>::max())
        throw Error(a.data_dir + ": more than 2^32 training samples");

    Context context(context_options(a.device));
    const Model model = build_mlp(spec, uint32_t(train.features), uint32_t(train.classes));
    Trainer trainer(context, model, trainer_options(a));
    print(train_header(a, context, trainer, train.count, test.count));

    std::vector<uint32_t> order(train.count);
    for (size_t i = 0; i < order.size(); ++i) order[i] = uint32_t(i);
    std::vector<float> x(size_t(a.batch_size) * train.features);
    std::vector<int32_t> labels(a.batch_size);

    RunInfo run;
    run.args = &a;
    run.context = &context;
    run.trainer = &trainer;
    run.train_samples = train.count;
    run.test_samples = test.count;
    for (uint32_t epoch = 1; epoch <= a.epochs; ++epoch) {
        EpochStats stats = train_epoch(trainer, train, a, epoch, order, x, labels);
        const Clock::time_point eval_start = Clock::now();
        const EvalResult eval = trainer.evaluate(test.x.data(), test.labels.data(), test.count);
        stats.eval_seconds = seconds_since(eval_start);
        stats.test_loss = eval.loss;
        stats.test_accuracy = eval.accuracy;
        print(epoch_line(stats, a.epochs) + "\n");
        run.history.push_back(stats);
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
    return 0;
}

} // namespace vktrain::cli
