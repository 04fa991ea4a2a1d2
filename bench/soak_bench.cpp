// The soak benchmark (not a test): a long run of training steps with evaluation, checkpoint writes and weight
// reads mixed in, sampling the process's resident memory and the context's device memory as it goes, to show that
// neither grows. Writes JSON with every sample (--out) and a line per sample.
//   vktrain_bench_soak [--steps 20000] [--every 500] [--precision mixed|fp32] [--out FILE] [--checkpoint FILE]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <vktrain/vktrain.hpp>

#include "io/json.hpp"

namespace {

// A positive decimal integer, or 0 for anything else.
uint64_t positive(const char* text) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(text, &end, 10);
    return end != text && *end == '\0' && text[0] != '-' ? uint64_t(v) : 0;
}

uint64_t resident_bytes() {
    std::ifstream f("/proc/self/statm");
    uint64_t size = 0, resident = 0;
    f >> size >> resident;
    return resident * 4096;
}

} // namespace

int main(int argc, char** argv) {
    uint64_t steps = 20000, every = 500;
    std::string out, checkpoint = "soak-checkpoint.safetensors";
    vktrain::Precision precision = vktrain::Precision::mixed;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const bool v = i + 1 < argc;
        const auto fail = [&](const char* what) {
            std::fprintf(stderr, "vktrain_bench_soak: error: %s\n", what);
            return 2;
        };
        if ((a == "--steps" || a == "--every") && v) {
            const uint64_t n = positive(argv[++i]);
            if (n == 0) return fail("--steps and --every take a positive integer");
            (a == "--steps" ? steps : every) = n;
        } else if (a == "--out" && v)
            out = argv[++i];
        else if (a == "--checkpoint" && v)
            checkpoint = argv[++i];
        else if (a == "--precision" && v) {
            const std::string p = argv[++i];
            if (p != "mixed" && p != "fp32") return fail("--precision takes mixed or fp32");
            precision = p == "fp32" ? vktrain::Precision::fp32 : vktrain::Precision::mixed;
        } else {
            std::fprintf(stderr, "vktrain_bench_soak: error: unknown argument '%s'\n", a.c_str());
            return 2;
        }
    }
    try {
        vktrain::Context ctx;
        const auto train = vktrain::load_fashion_mnist(vktrain::default_fashion_mnist_dir(), true);
        const auto test = vktrain::load_fashion_mnist(vktrain::default_fashion_mnist_dir(), false, 1000);
        vktrain::TrainerOptions opt;
        opt.precision = ctx.fp16_available() ? precision : vktrain::Precision::fp32;
        vktrain::Trainer trainer(ctx, vktrain::Model::mlp(784, {256, 128}, 10), opt);
        vktrain::io::Json samples = vktrain::io::Json::array();
        const auto start = std::chrono::steady_clock::now();
        size_t at = 0;
        std::printf("%8s %10s %12s %12s %8s\n", "step", "loss", "rss MiB", "device MiB", "seconds");
        for (uint64_t s = 1; s <= steps; ++s) {
            if (at + opt.batch_size > train.count) at = 0;
            const vktrain::StepResult r = trainer.step(&train.x[at * 784], &train.labels[at], opt.batch_size);
            at += opt.batch_size;
            if (s % every != 0 && s != steps) continue;
            // What long runs do between steps: evaluate, read the weights, write a checkpoint.
            (void)trainer.evaluate(test.x.data(), test.labels.data(), test.count);
            (void)trainer.parameters();
            trainer.save_checkpoint(checkpoint);
            const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            const uint64_t rss = resident_bytes(), device = ctx.allocated_bytes();
            std::printf("%8llu %10.4f %12.2f %12.2f %8.1f\n", (unsigned long long)s, double(r.loss),
                        double(rss) / 1048576.0, double(device) / 1048576.0, seconds);
            std::fflush(stdout);
            vktrain::io::Json j = vktrain::io::Json::object();
            j["step"] = double(s);
            j["loss"] = double(r.loss);
            j["resident_bytes"] = double(rss);
            j["device_bytes"] = double(device);
            j["seconds"] = seconds;
            samples.push_back(j);
        }
        // Flat: the second half of the run holds no more memory than its first sample after warm-up.
        const auto& a = samples.as_array();
        const size_t half = a.size() / 2;
        double rss_growth = 0, device_growth = 0;
        for (size_t i = half; i < a.size(); ++i) {
            rss_growth =
                std::max(rss_growth, a[i].at("resident_bytes").as_number() - a[half].at("resident_bytes").as_number());
            device_growth =
                std::max(device_growth, a[i].at("device_bytes").as_number() - a[half].at("device_bytes").as_number());
        }
        std::printf("second half: resident memory grew by %.0f bytes, device memory by %.0f bytes\n", rss_growth,
                    device_growth);
        if (!out.empty()) {
            vktrain::io::Json doc = vktrain::io::Json::object();
            doc["device"] = ctx.device_info().name;
            doc["precision"] = opt.precision == vktrain::Precision::mixed ? "mixed" : "fp32";
            doc["steps"] = double(steps);
            doc["second_half_resident_growth_bytes"] = rss_growth;
            doc["second_half_device_growth_bytes"] = device_growth;
            doc["samples"] = samples;
            vktrain::io::write_json_file(out, doc);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "vktrain_bench_soak: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
