// Fused (flash) attention against the unfused path (strided GEMMs + softmax over a materialised score matrix) at a
// long context: (1) the kernels alone on one GPT attention layer's shape, forward and backward, as time and as
// GFLOP/s over the device's fp32 FMA ceiling measured in the same run (src/kernels/peak.cpp); (2) a GPT training
// step (Model::gpt, one block) with each path, each on a fresh Context so that Context::peak_allocated_bytes is that
// path's peak device memory, and the step time. Ratios fused / unfused come from one run of one binary.
// Writes JSON to --out and a table to stdout.
//   vktrain_bench_attention [--out FILE] [--device NAME] [--context 2048] [--batch 8] [--heads 2] [--width 128]
//                           [--steps 2] [--repeats 2] [--precision fp32|mixed] [--no-kernels] [--no-unfused]
// In mixed precision on a device with cooperative matrices the fused step also runs with ContextOptions::allow_coopmat
// off (the fused kernels' fp32-arithmetic fallback): "fused_step_time_ratio_coopmat_over_fallback".
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "io/json.hpp"
#include "kernels/attention.hpp"
#include "kernels/flash_attention.hpp"
#include "kernels/peak.hpp"
#include "runtime/context_access.hpp"
#include "runtime/device.hpp"
#include "vktrain/context.hpp"
#include "vktrain/error.hpp"
#include "vktrain/model.hpp"
#include "vktrain/trainer.hpp"

namespace vk = vktrain::kernels;
using vktrain::kernels::DType;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The best wall-clock time of `repeats` submissions of what `record` records (after one warm-up).
double time_sequence(vktrain::runtime::Device& dev, int repeats,
                     const std::function<void(vktrain::runtime::Sequence&)>& record) {
    double best = 1e30;
    for (int i = 0; i <= repeats; ++i) {
        vktrain::runtime::Sequence seq(dev);
        seq.begin();
        record(seq);
        seq.end();
        const auto start = std::chrono::steady_clock::now();
        seq.submit_and_wait();
        if (i > 0) best = std::min(best, seconds_since(start));
    }
    return best;
}

vktrain::runtime::Buffer buffer(vktrain::runtime::Device& dev, uint64_t floats, float value) {
    vktrain::runtime::Buffer b(dev, std::max<uint64_t>(floats, 1) * 4, vktrain::runtime::MemoryKind::readback, "bench");
    std::vector<float> v(size_t(std::max<uint64_t>(floats, 1)));
    for (size_t i = 0; i < v.size(); ++i) v[i] = value * float(int((i * 2654435761u) % 2001) - 1000) / 1000.0f;
    b.write(v.data(), v.size() * 4);
    return b;
}

vk::MatRef ref(const vktrain::runtime::Buffer& b, uint64_t count, DType t = DType::f32) {
    return vk::MatRef{&b, t, 1, uint32_t(count), 0};
}

struct StepTiming {
    double peak_bytes = 0, step_seconds = 0, loss = 0;
};

// A one-block GPT at `context` tokens, batch `batch`, on a fresh Context with the given attention path.
// coopmat false: ContextOptions::allow_coopmat off (mixed precision: the fused kernels' fp32-arithmetic fallback).
StepTiming train_step(const std::string& device, bool fused, uint32_t context, uint32_t batch, uint32_t heads,
                      uint32_t width, int steps, vktrain::Precision precision, bool coopmat = true) {
    vktrain::ContextOptions o;
    o.device_name = device;
    o.cache_dir = "none";
    o.allow_coopmat = coopmat;
    o.allow_fused_attention = fused;
    o.fused_attention_min_score_bytes = 0; // every node fused: the automatic choice keeps small score matrices unfused
    vktrain::Context ctx(o);
    vktrain::GptOptions g;
    g.vocab = 64;
    g.layers = 1;
    g.heads = heads;
    g.width = width;
    g.context = context;
    vktrain::TrainerOptions to;
    to.batch_size = batch;
    to.precision = precision;
    to.seed = 1;
    vktrain::Trainer t(ctx, vktrain::Model::gpt(g), to);
    std::vector<int32_t> ids(size_t(batch) * context), targets(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
        ids[i] = int32_t((i * 7 + 3) % g.vocab);
        targets[i] = int32_t((i * 7 + 10) % g.vocab);
    }
    const std::vector<const void*> in{ids.data(), targets.data()};
    StepTiming r;
    r.loss = t.step(in, batch).loss; // warm-up: pipelines, GEMM paths
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; ++i) t.step(in, batch);
    r.step_seconds = seconds_since(start) / steps;
    r.peak_bytes = double(ctx.peak_allocated_bytes());
    return r;
}

} // namespace

int main(int argc, char** argv) {
    std::string out, device;
    uint32_t context = 2048, batch = 8, heads = 2, width = 128;
    int steps = 2, repeats = 2;
    bool kernels = true, unfused = true;
    vktrain::Precision precision = vktrain::Precision::fp32;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const bool has_value = i + 1 < argc;
        const auto number = [&](uint32_t& v) { v = uint32_t(std::max(1, std::atoi(argv[++i]))); };
        if (a == "--out" && has_value)
            out = argv[++i];
        else if (a == "--device" && has_value)
            device = argv[++i];
        else if (a == "--context" && has_value)
            number(context);
        else if (a == "--batch" && has_value)
            number(batch);
        else if (a == "--heads" && has_value)
            number(heads);
        else if (a == "--width" && has_value)
            number(width);
        else if (a == "--steps" && has_value)
            steps = std::max(1, std::atoi(argv[++i]));
        else if (a == "--repeats" && has_value)
            repeats = std::max(1, std::atoi(argv[++i]));
        else if (a == "--precision" && has_value) {
            const std::string p = argv[++i];
            if (p != "fp32" && p != "mixed") {
                std::fprintf(stderr, "vktrain_bench_attention: error: --precision takes fp32 or mixed, got '%s'\n",
                             p.c_str());
                return 2;
            }
            precision = p == "fp32" ? vktrain::Precision::fp32 : vktrain::Precision::mixed;
        } else if (a == "--no-kernels")
            kernels = false;
        else if (a == "--no-unfused")
            unfused = false;
        else {
            std::fprintf(stderr, "vktrain_bench_attention: error: unknown argument '%s'\n", a.c_str());
            return 2;
        }
    }
    if (width % heads != 0) {
        std::fprintf(stderr, "vktrain_bench_attention: error: --heads %u does not divide --width %u\n", heads, width);
        return 2;
    }
    try {
        vktrain::io::Json doc = vktrain::io::Json::object();
        vktrain::ContextOptions o;
        o.device_name = device;
        o.cache_dir = "none";
        {
            vktrain::Context ctx(o);
            auto& dev = vktrain::detail::ContextAccess::device(ctx);
            const auto& info = ctx.device_info();
            std::printf("device: %s (%s %s)\n", info.name.c_str(), info.driver_name.c_str(), info.driver_info.c_str());
            doc["device"] = info.name;
            doc["driver"] = info.driver_name + " " + info.driver_info;
            const vk::PeakResult fma32 = vk::measure_fma_peak(dev, false);
            std::printf("ceiling: fma fp32 %.1f GFLOP/s (%s)\n", fma32.value, fma32.config.c_str());
            doc["fma_f32_gflops"] = fma32.value;
            if (kernels) {
                vk::AttentionShape s;
                s.batch = batch;
                s.seq = context;
                s.heads = heads;
                s.head_size = width / heads;
                s.causal = true;
                const uint64_t rows = uint64_t(batch) * context, c = s.channels();
                const auto qkv = buffer(dev, rows * 3 * c, 1.0f), o_buf = buffer(dev, rows * c, 0.0f),
                           dout = buffer(dev, rows * c, 0.5f), dqkv = buffer(dev, rows * 3 * c, 0.0f),
                           lse = buffer(dev, uint64_t(batch) * heads * context, 0.0f);
                const vk::AttentionQkv in = vk::fused_qkv(s, ref(qkv, rows * 3 * c));
                const vk::AttentionQkv d = vk::fused_qkv(s, ref(dqkv, rows * 3 * c));
                const double fwd = time_sequence(dev, repeats, [&](vktrain::runtime::Sequence& seq) {
                    vk::record_flash_attention(dev, seq, s, in, ref(o_buf, rows * c), ref(lse, lse.size() / 4));
                });
                const double bwd = time_sequence(dev, repeats, [&](vktrain::runtime::Sequence& seq) {
                    vk::record_flash_attention_backward(dev, seq, s, in, ref(o_buf, rows * c), ref(lse, lse.size() / 4),
                                                        ref(dout, rows * c), &d.q, &d.k, &d.v, false);
                });
                // Causal: T(T+1)/2 visible scores per (sample, head); 2 flops per multiply-add. Forward: QKᵀ and PV;
                // backward: the recomputed QKᵀ, dP = dO·Vᵀ, dQ, dK and dV (the kernels recompute QKᵀ and dP once
                // more in the dk/dv pass: not counted, so the fraction is of useful work).
                const double pairs = double(batch) * heads * context * (context + 1.0) / 2.0;
                const double fwd_flops = 2 * 2 * pairs * s.head_size, bwd_flops = 5 * 2 * pairs * s.head_size;
                double ufwd = 0, ubwd = 0;
                if (unfused) {
                    const uint64_t sc = s.score_elements();
                    const auto sb = buffer(dev, sc, 0.0f), pb = buffer(dev, sc, 0.0f), dpb = buffer(dev, sc, 0.0f),
                               dsb = buffer(dev, sc, 0.0f);
                    const vk::AttentionPaths paths = vk::AttentionPaths::all(vktrain::GemmPath::fp32);
                    ufwd = time_sequence(dev, repeats, [&](vktrain::runtime::Sequence& seq) {
                        vk::record_attention(dev, seq, s, paths, ref(qkv, rows * 3 * c), ref(sb, sc), ref(pb, sc),
                                             ref(o_buf, rows * c));
                    });
                    ubwd = time_sequence(dev, repeats, [&](vktrain::runtime::Sequence& seq) {
                        vk::record_attention_backward(dev, seq, s, paths, ref(qkv, rows * 3 * c), ref(pb, sc),
                                                      ref(dout, rows * c), ref(dpb, sc), ref(dsb, sc),
                                                      ref(dqkv, rows * 3 * c), false);
                    });
                }
                std::printf("kernels (fp32, causal, batch %u, T %u, %u heads of %u):\n", batch, context, heads,
                            s.head_size);
                std::printf("  fused forward   %9.1f ms %8.2f GFLOP/s %5.1f%% of fma; unfused %9.1f ms (ratio %.2f)\n",
                            fwd * 1e3, fwd_flops / fwd * 1e-9, 100 * fwd_flops / fwd * 1e-9 / fma32.value, ufwd * 1e3,
                            unfused ? fwd / ufwd : 0.0);
                std::printf("  fused backward  %9.1f ms %8.2f GFLOP/s %5.1f%% of fma; unfused %9.1f ms (ratio %.2f)\n",
                            bwd * 1e3, bwd_flops / bwd * 1e-9, 100 * bwd_flops / bwd * 1e-9 / fma32.value, ubwd * 1e3,
                            unfused ? bwd / ubwd : 0.0);
                vktrain::io::Json k = vktrain::io::Json::object();
                k["batch"] = batch;
                k["context"] = context;
                k["heads"] = heads;
                k["head_size"] = s.head_size;
                k["fused_forward_seconds"] = fwd;
                k["fused_backward_seconds"] = bwd;
                k["fused_forward_gflops"] = fwd_flops / fwd * 1e-9;
                k["fused_backward_gflops"] = bwd_flops / bwd * 1e-9;
                k["fused_forward_fraction_of_fma"] = fwd_flops / fwd * 1e-9 / fma32.value;
                k["fused_backward_fraction_of_fma"] = bwd_flops / bwd * 1e-9 / fma32.value;
                if (unfused) {
                    k["unfused_forward_seconds"] = ufwd;
                    k["unfused_backward_seconds"] = ubwd;
                    k["forward_time_ratio_fused_over_unfused"] = fwd / ufwd;
                    k["backward_time_ratio_fused_over_unfused"] = bwd / ubwd;
                }
                doc["kernels"] = k;
            }
        }
        const char* pname = precision == vktrain::Precision::fp32 ? "fp32" : "mixed";
        std::printf("GPT step (1 block, width %u, %u heads, context %u, batch %u, %s):\n", width, heads, context, batch,
                    pname);
        const StepTiming f = train_step(device, true, context, batch, heads, width, steps, precision);
        std::printf("  fused    peak %10.1f MiB  step %8.2f s  loss %.4f\n", f.peak_bytes / 1048576.0, f.step_seconds,
                    f.loss);
        vktrain::io::Json t = vktrain::io::Json::object();
        t["precision"] = pname;
        t["batch"] = batch;
        t["context"] = context;
        t["heads"] = heads;
        t["width"] = width;
        t["steps"] = steps;
        t["fused_peak_bytes"] = f.peak_bytes;
        t["fused_step_seconds"] = f.step_seconds;
        bool coopmat = false;
        {
            vktrain::ContextOptions co;
            co.device_name = device;
            co.cache_dir = "none";
            coopmat = vktrain::Context(co).coopmat_available();
        }
        if (precision == vktrain::Precision::mixed && coopmat) {
            const StepTiming fb = train_step(device, true, context, batch, heads, width, steps, precision, false);
            std::printf("  fused, coopmat off: step %8.2f s  loss %.4f; coopmat / fallback step time %.3f\n",
                        fb.step_seconds, fb.loss, f.step_seconds / fb.step_seconds);
            t["fused_fallback_step_seconds"] = fb.step_seconds;
            t["fused_step_time_ratio_coopmat_over_fallback"] = f.step_seconds / fb.step_seconds;
        }
        if (unfused) {
            // The unfused path may not run at all where the fused one does (a score matrix beyond the device's
            // largest binding): recorded as such, not a failure of the run.
            StepTiming u;
            std::string error;
            try {
                u = train_step(device, false, context, batch, heads, width, steps, precision);
            } catch (const vktrain::Error& e) {
                error = e.what();
            }
            if (!error.empty()) {
                std::printf("  unfused  cannot run: %s\n", error.c_str());
                t["unfused_error"] = error;
            } else {
                std::printf("  unfused  peak %10.1f MiB  step %8.2f s  loss %.4f\n", u.peak_bytes / 1048576.0,
                            u.step_seconds, u.loss);
                std::printf("  fused / unfused: peak memory %.3f, step time %.3f\n", f.peak_bytes / u.peak_bytes,
                            f.step_seconds / u.step_seconds);
                t["unfused_peak_bytes"] = u.peak_bytes;
                t["unfused_step_seconds"] = u.step_seconds;
                t["peak_memory_ratio_fused_over_unfused"] = f.peak_bytes / u.peak_bytes;
                t["step_time_ratio_fused_over_unfused"] = f.step_seconds / u.step_seconds;
            }
        }
        doc["gpt_step"] = t;
        if (!out.empty()) vktrain::io::write_json_file(out, doc);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "vktrain_bench_attention: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
