// The GPT recipe's training step with and without the fusions of graph/fusion.hpp, in one run: steps alternate
// between the two trainers (same model, weights and batch), so load on a shared machine hits both alike. Reports the
// median step time of each and their ratio, the dispatches per step, and from Trainer::profile_step the share of the
// step's GPU time outside GEMMs (ops whose profile name says "(gemm": a fused GELU counts as GEMM time). JSON on
// stdout (and --out FILE).
//   vktrain_bench_fusion [--device NAME] [--precision fp32|mixed] [--steps N] [--layers L] [--width W]
//                        [--context T] [--batch B] [--out FILE]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "vktrain/context.hpp"
#include "vktrain/model.hpp"
#include "vktrain/trainer.hpp"

namespace {

struct Args {
    std::string device, out;
    vktrain::Precision precision = vktrain::Precision::fp32;
    int steps = 10;
    uint32_t layers = 4, width = 128, context = 128, batch = 32;
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "vktrain_bench_fusion: %s\nusage: vktrain_bench_fusion [--device NAME] [--precision fp32|mixed] "
                 "[--steps N] [--layers L] [--width W] [--context T] [--batch B] [--out FILE]\n",
                 why);
    std::exit(2);
}

uint32_t positive(const char* v, const std::string& flag) {
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (end == v || *end != '\0' || n < 1 || n > 1000000) usage((flag + " takes a positive integer").c_str());
    return uint32_t(n);
}

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string s = argv[i];
        if (i + 1 >= argc) usage(("missing value after " + s).c_str());
        const char* v = argv[++i];
        if (s == "--device")
            a.device = v;
        else if (s == "--out")
            a.out = v;
        else if (s == "--precision") {
            if (std::strcmp(v, "fp32") == 0)
                a.precision = vktrain::Precision::fp32;
            else if (std::strcmp(v, "mixed") == 0)
                a.precision = vktrain::Precision::mixed;
            else
                usage("--precision takes fp32 or mixed");
        } else if (s == "--steps")
            a.steps = int(positive(v, s));
        else if (s == "--layers")
            a.layers = positive(v, s);
        else if (s == "--width")
            a.width = positive(v, s);
        else if (s == "--context")
            a.context = positive(v, s);
        else if (s == "--batch")
            a.batch = positive(v, s);
        else
            usage(("unknown option " + s).c_str());
    }
    return a;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

struct Profiled {
    uint32_t dispatches = 0;
    double total_us = 0, gemm_us = 0;
};

Profiled profile(vktrain::Trainer& t, const std::vector<const void*>& in, uint32_t batch) {
    const vktrain::StepProfile p = t.profile_step(in, batch);
    Profiled r;
    r.dispatches = p.dispatches;
    for (const auto& op : p.ops) {
        r.total_us += op.microseconds;
        if (op.name.find("(gemm") != std::string::npos) r.gemm_us += op.microseconds;
    }
    return r;
}

} // namespace

int main(int argc, char** argv) {
    const Args a = parse(argc, argv);
    try {
        vktrain::ContextOptions co;
        co.device_name = a.device;
        vktrain::Context ctx(co);
        vktrain::GptOptions g;
        g.vocab = 113; // the recipe's character vocabulary
        g.layers = a.layers;
        g.heads = 4;
        g.width = a.width;
        g.context = a.context;
        vktrain::TrainerOptions o;
        o.precision = a.precision;
        o.batch_size = a.batch;
        o.seed = 1;
        vktrain::Trainer fused(ctx, vktrain::Model::gpt(g), o);
        co.allow_fusion = false; // a second context on the same device: every op on its own kernel
        vktrain::Context unfused_ctx(co);
        vktrain::Trainer unfused(unfused_ctx, vktrain::Model::gpt(g), o);
        unfused.set_parameters(fused.parameters());

        std::mt19937 rng(5);
        std::vector<int32_t> ids(size_t(a.batch) * g.context), targets(ids.size());
        for (auto& t : ids) t = int32_t(rng() % g.vocab);
        for (auto& t : targets) t = int32_t(rng() % g.vocab);
        const std::vector<const void*> in{ids.data(), targets.data()};
        vktrain::Trainer* both[2] = {&fused, &unfused};
        for (auto* t : both) t->step(in, a.batch); // warm: pipelines, tiles
        std::vector<double> ms[2];
        bool same_loss = true;
        for (int s = 0; s < a.steps; ++s) {
            float loss[2];
            for (int k = 0; k < 2; ++k) {
                // Alternate which goes first, so neither always follows the other's cache state.
                const int w = (s % 2 == 0) ? k : 1 - k;
                const auto t0 = std::chrono::steady_clock::now();
                loss[w] = both[w]->step(in, a.batch).loss;
                ms[w].push_back(
                    std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
            }
            same_loss = same_loss && loss[0] == loss[1];
        }
        // The quietest of three alternating profiles of each (GPU time per op; load inflates single samples).
        Profiled pf = profile(fused, in, a.batch), pu = profile(unfused, in, a.batch);
        for (int r = 0; r < 2; ++r) {
            const Profiled qf = profile(fused, in, a.batch), qu = profile(unfused, in, a.batch);
            if (qf.total_us < pf.total_us) pf = qf;
            if (qu.total_us < pu.total_us) pu = qu;
        }
        const double mf = median(ms[0]), mu = median(ms[1]);
        char buf[2048];
        std::snprintf(
            buf, sizeof buf,
            "{\"bench\": \"fusion\", \"device\": \"%s\", \"precision\": \"%s\", \"layers\": %u, \"width\": %u, "
            "\"context\": %u, \"batch\": %u, \"steps\": %d,\n \"step_ms_fused\": %.3f, "
            "\"step_ms_unfused\": %.3f, \"step_ratio_fused_over_unfused\": %.4f,\n \"dispatches_fused\": %u, "
            "\"dispatches_unfused\": %u, \"non_gemm_share_fused\": %.4f, \"non_gemm_share_unfused\": %.4f, "
            "\"same_loss_every_step\": %s,\n \"profile_us_fused\": %.0f, \"profile_us_unfused\": %.0f, "
            "\"gemm_us_fused\": %.0f, \"gemm_us_unfused\": %.0f}\n",
            ctx.device_info().name.c_str(), a.precision == vktrain::Precision::fp32 ? "fp32" : "mixed", a.layers,
            a.width, a.context, a.batch, a.steps, mf, mu, mf / mu, pf.dispatches, pu.dispatches,
            pf.total_us > 0 ? 1.0 - pf.gemm_us / pf.total_us : 0.0,
            pu.total_us > 0 ? 1.0 - pu.gemm_us / pu.total_us : 0.0, same_loss ? "true" : "false", pf.total_us,
            pu.total_us, pf.gemm_us, pu.gemm_us);
        std::fputs(buf, stdout);
        if (!a.out.empty()) {
            FILE* f = std::fopen(a.out.c_str(), "w");
            if (!f) {
                std::fprintf(stderr, "vktrain_bench_fusion: error: cannot write %s\n", a.out.c_str());
                return 1;
            }
            std::fputs(buf, f);
            std::fclose(f);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "vktrain_bench_fusion: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
