#include "report.hpp"

#include <algorithm>

#include "util.hpp"

namespace vktrain::cli {

namespace {

double samples_per_second(uint64_t samples, double seconds) {
    return seconds > 0 ? double(samples) / seconds : 0.0;
}

io::Json gemm_json(const GemmReport& g) {
    io::Json j = io::Json::object();
    j["site"] = g.site;
    j["shape"] = g.shape;
    j["path"] = to_string(g.path);
    j["reason"] = g.reason;
    if (!g.tiles.empty()) {
        j["tiles"] = g.tiles;
        j["tile_reason"] = g.tile_reason;
    }
    return j;
}

io::Json epoch_json(const EpochStats& e) {
    io::Json j = io::Json::object();
    j["epoch"] = e.epoch;
    j["train_loss"] = e.train_loss;
    j["test_loss"] = e.test_loss;
    j["test_accuracy"] = e.test_accuracy;
    j["seconds"] = e.train_seconds;
    j["eval_seconds"] = e.eval_seconds;
    j["samples_per_second"] = samples_per_second(e.samples, e.train_seconds);
    j["loss_scale"] = e.loss_scale;
    j["skipped_steps"] = e.skipped_steps;
    if (e.steps) { // the host's update per step, and the part of it hidden behind the device's backward pass
        j["host_update_ms_per_step"] = e.host_ms / double(e.steps);
        j["host_overlapped_ms_per_step"] = e.overlapped_ms / double(e.steps);
    }
    return j;
}

// GEMM ops are named "<site> (gemm <path>)".
bool is_gemm(const OpTiming& op) {
    return op.name.find(" (gemm ") != std::string::npos;
}

std::string pad_right(const std::string& s, size_t width) {
    return s.size() >= width ? s : s + std::string(width - s.size(), ' ');
}

std::string pad_left(const std::string& s, size_t width) {
    return s.size() >= width ? s : std::string(width - s.size(), ' ') + s;
}

std::string percent(double part, double total) {
    return fixed(total > 0 ? 100.0 * part / total : 0.0, 1);
}

} // namespace

std::string profile_table(const StepProfile& p, uint32_t samples) {
    const std::string step = "one training step on the first batch (" + std::to_string(samples) + " samples)";
    const std::string dispatches = "            " + std::to_string(p.dispatches) + " compute dispatches per step\n";
    if (!p.gpu_timestamps)
        return "profile     " + step + ": " + fixed(p.total_microseconds, 1) +
               " µs (host clock); the device has no timestamp queries, so there are no per-op times\n" + dispatches;
    std::string s = "profile     " + step +
                    ", GPU timestamps; each timestamp waits for the op\n"
                    "            before it, so ops never overlap and the times are slightly pessimistic\n";
    size_t width = 5;
    for (const OpTiming& op : p.ops) width = std::max(width, op.name.size());
    // "µs" is two bytes but one column wide.
    s += "  " + pad_right("op", width) + pad_left("", 10) + "µs" + pad_left("%", 8) + "\n";
    double gemm = 0;
    for (const OpTiming& op : p.ops) {
        if (is_gemm(op)) gemm += op.microseconds;
        s += "  " + pad_right(op.name, width) + pad_left(fixed(op.microseconds, 1), 12) +
             pad_left(percent(op.microseconds, p.total_microseconds), 8) + "\n";
    }
    const double other = p.total_microseconds - gemm;
    s += "  " + pad_right("total", width) + pad_left(fixed(p.total_microseconds, 1), 12) + pad_left("100.0", 8) +
         "   gemm " + fixed(gemm, 1) + " µs (" + percent(gemm, p.total_microseconds) + "%), other " + fixed(other, 1) +
         " µs (" + percent(other, p.total_microseconds) + "%), " + std::to_string(p.dispatches) + " dispatches\n";
    return s;
}

std::string epoch_line(const EpochStats& e, uint32_t epochs) {
    return "epoch " + std::to_string(e.epoch) + "/" + std::to_string(epochs) + "  train_loss " +
           fixed(e.train_loss, 4) + "  test_loss " + fixed(e.test_loss, 4) + "  test_accuracy " +
           fixed(e.test_accuracy, 4) + "  seconds " + fixed(e.train_seconds, 1) + "  samples/s " +
           fixed(samples_per_second(e.samples, e.train_seconds), 0) + "  loss_scale " + number(e.loss_scale) +
           "  skipped " + std::to_string(e.skipped_steps);
}

namespace {
std::string mib(uint64_t bytes) {
    return fixed(double(bytes) / (1024.0 * 1024.0), 2) + " MiB";
}
} // namespace

std::string train_header(const TrainArgs& args, const Context& context, const Trainer& trainer, uint64_t train_count,
                         uint64_t test_count) {
    const Model& model = trainer.model();
    std::string s = "vktrain " + std::string(tool_version) + "\n";
    s += "device      " + device_summary(context.device_info()) + "\n";
    s += "precision   " + std::string(precision_name(args.precision));
    if (args.precision == Precision::mixed)
        s += args.loss_scaling ? " (loss scale " + number(args.loss_scale) + ", growth interval " +
                                     std::to_string(args.growth_interval) + ")"
                               : " (no loss scaling)";
    s += "\n";
    s += "model       " + model.describe() + " (" + std::to_string(model.parameter_count()) + " parameters)\n";
    s += "optimizer   " + std::string(optimizer_name(args.optimizer)) + " lr " + number(args.effective_learning_rate());
    if (args.optimizer == OptimizerKind::sgd) s += " momentum " + number(args.momentum);
    s += " weight_decay " + number(args.weight_decay) + (args.cosine_schedule ? " cosine schedule" : "") + "\n";
    s += "data        " + std::to_string(train_count) + " train / " + std::to_string(test_count) +
         " test samples, batch size " + std::to_string(args.batch_size) + ", " + std::to_string(args.epochs) +
         (args.epochs == 1 ? " epoch" : " epochs") + ", seed " + std::to_string(args.seed) + "\n";
    const MemoryReport m = trainer.memory();
    s += "memory      planned activation arena " + mib(m.arena_bytes) + " (training " + mib(m.train_plan_bytes) +
         ", evaluation " + mib(m.eval_plan_bytes) + "; one buffer per value: " + mib(m.unplanned_bytes) +
         "), trainer total " + mib(m.total_bytes) + ", device peak so far " + mib(context.peak_allocated_bytes()) +
         "\n";
    s += std::string("update      ") + (trainer.update_location() == UpdateLocation::device ? "device" : "host") +
         " (" + trainer.update_location_reason() + ")";
    if (trainer.update_buckets() > 1) s += ", gradients in " + std::to_string(trainer.update_buckets()) + " buckets";
    s += "\n";
    s += "gemm path   " + trainer.gemm_path_summary() + "\n";
    for (const GemmReport& g : trainer.gemm_paths()) {
        s += "  gemm " + g.site + " " + g.shape + " -> " + to_string(g.path);
        if (!g.reason.empty()) s += " (" + g.reason + ")";
        if (!g.tiles.empty()) s += ", tiles " + g.tiles + " (" + g.tile_reason + ")";
        s += "\n";
    }
    return s;
}

io::Json train_report(const RunInfo& run) {
    const TrainArgs& a = *run.args;
    const Trainer& t = *run.trainer;
    io::Json r = io::Json::object();
    r["vktrain_version"] = tool_version;
    r["date"] = utc_now_iso8601();
    r["precision"] = precision_name(a.precision);
    r["device"] = device_json(run.context->device_info());
    r["gemm_path"] = t.gemm_path_summary();
    r["update_location"] = t.update_location() == UpdateLocation::device ? "device" : "host";
    r["update_location_reason"] = t.update_location_reason();
    r["update_buckets"] = t.update_buckets();
    r["recompute"] = t.options().recompute == Recompute::blocks ? "blocks" : "none";
    io::Json paths = io::Json::array();
    for (const GemmReport& g : t.gemm_paths()) paths.push_back(gemm_json(g));
    r["gemm_paths"] = std::move(paths);
    r["model"] = t.model().describe();
    r["parameters"] = t.model().parameter_count();
    r["optimizer"] = optimizer_name(a.optimizer);
    r["learning_rate"] = a.effective_learning_rate();
    if (a.optimizer == OptimizerKind::sgd) r["momentum"] = a.momentum;
    r["weight_decay"] = a.weight_decay;
    r["lr_schedule"] = a.cosine_schedule ? "cosine" : "constant";
    r["batch_size"] = a.batch_size;
    r["seed"] = a.seed;
    r["epochs"] = a.epochs;
    r["train_samples"] = run.train_samples;
    r["test_samples"] = run.test_samples;
    r["loss_scaling"] = a.precision == Precision::mixed && a.loss_scaling;
    r["initial_loss_scale"] = a.loss_scale;
    r["growth_interval"] = a.growth_interval;
    r["resumed_from"] = a.resume.empty() ? io::Json() : io::Json(a.resume);
    r["checkpoint"] = a.checkpoint.empty() ? io::Json() : io::Json(a.checkpoint);

    double train_seconds = 0;
    uint64_t samples = 0;
    io::Json epoch_seconds = io::Json::array();
    io::Json history = io::Json::array();
    for (const EpochStats& e : run.history) {
        train_seconds += e.train_seconds;
        samples += e.samples;
        epoch_seconds.push_back(e.train_seconds);
        history.push_back(epoch_json(e));
    }
    const EpochStats last = run.history.empty() ? EpochStats{} : run.history.back();
    r["test_accuracy"] = last.test_accuracy;
    r["test_loss"] = last.test_loss;
    r["final_loss"] = last.train_loss;
    r["loss_scale"] = t.loss_scale();
    r["skipped_steps"] = t.skipped_steps();
    r["steps"] = t.steps();
    r["samples_per_second"] = samples_per_second(samples, train_seconds);
    r["seconds_per_epoch"] = run.history.empty() ? 0.0 : train_seconds / double(run.history.size());
    r["epoch_seconds"] = std::move(epoch_seconds);
    r["history"] = std::move(history);
    r["peak_device_bytes"] = run.context->peak_allocated_bytes();
    r["trainer_device_bytes"] = t.device_bytes();
    const MemoryReport m = t.memory();
    io::Json mem = io::Json::object();
    mem["planned_arena_bytes"] = m.arena_bytes;
    mem["planned_training_bytes"] = m.train_plan_bytes;
    mem["planned_evaluation_bytes"] = m.eval_plan_bytes;
    mem["unplanned_bytes"] = m.unplanned_bytes;
    mem["in_place_values"] = m.in_place;
    mem["trainer_bytes"] = m.total_bytes;
    mem["observed_peak_bytes"] = run.context->peak_allocated_bytes();
    r["memory"] = std::move(mem);
    if (run.profile) {
        io::Json ops = io::Json::array();
        for (const OpTiming& op : run.profile->ops) {
            io::Json j = io::Json::object();
            j["op"] = op.name;
            j["microseconds"] = op.microseconds;
            ops.push_back(std::move(j));
        }
        r["profile"] = std::move(ops);
        r["profile_total_us"] = run.profile->total_microseconds;
        r["profile_gpu_timestamps"] = run.profile->gpu_timestamps;
        r["profile_dispatches"] = run.profile->dispatches;
    }
    return r;
}

} // namespace vktrain::cli
