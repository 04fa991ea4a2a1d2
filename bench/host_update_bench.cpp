// Host update throughput: what a mixed-precision step does on the CPU between the backward pass and the next
// forward (unscale + AdamW on the fp32 master weights, then the fp16 copy the device reads), at 1M, 10M and 124M
// parameters, as GB/s of memory traffic against the same machine's memcpy bandwidth measured in the same run.
// Writes JSON to --out and a table to stdout.
//   vktrain_bench_host [--out FILE] [--sizes 1,10,124] (millions of parameters) [--repeats N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/half.hpp"
#include "io/json.hpp"
#include "train/gradients.hpp"
#include "train/optimizer.hpp"

namespace {

double best_seconds(int repeats, const std::function<void()>& f) {
    double best = 1e30;
    for (int i = 0; i < repeats; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
}

} // namespace

int main(int argc, char** argv) {
    std::string out;
    std::vector<size_t> sizes = {1, 10, 124};
    int repeats = 3;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--out" && i + 1 < argc)
            out = argv[++i];
        else if (a == "--repeats" && i + 1 < argc)
            repeats = std::max(1, std::atoi(argv[++i]));
        else if (a == "--sizes" && i + 1 < argc) {
            sizes.clear();
            for (char* t = std::strtok(argv[++i], ","); t; t = std::strtok(nullptr, ",")) {
                char* end = nullptr;
                const unsigned long v = std::strtoul(t, &end, 10);
                if (end == t || *end != '\0' || t[0] == '-' || v == 0 || v > 4000) {
                    std::fprintf(stderr,
                                 "vktrain_bench_host: error: --sizes takes millions of parameters, 1 to 4000\n");
                    return 2;
                }
                sizes.push_back(v);
            }
        } else {
            std::fprintf(stderr, "vktrain_bench_host: error: unknown argument '%s'\n", a.c_str());
            return 2;
        }
    }
    try {
        vktrain::io::Json results = vktrain::io::Json::array();
        std::printf("%-10s %-28s %10s %9s %8s\n", "params", "work", "ms", "GB/s", "memcpy");
        for (size_t millions : sizes) {
            const size_t n = millions * 1000000;
            std::vector<float> params(n, 0.01f), grads(n), copy(n);
            for (size_t i = 0; i < n; ++i) grads[i] = float(int(i % 1999) - 999) * 65536.0f * 1e-6f; // scaled
            std::vector<uint16_t> halves(n);
            vktrain::OptimizerOptions o;
            o.kind = vktrain::OptimizerKind::adamw;
            o.learning_rate = 1e-3f;
            o.weight_decay = 0.01f;
            vktrain::train::Optimizer opt(o, {n});
            const float inv = 1.0f / 65536.0f;
            // Bytes moved (read + written), so every row compares with memcpy's 2 x 4 bytes per element.
            const double memcpy_s = best_seconds(repeats, [&] { std::memcpy(copy.data(), params.data(), n * 4); });
            const double memcpy_gbs = 8.0 * double(n) / memcpy_s * 1e-9;
            struct Row {
                const char* name;
                double bytes_per_param;
                std::function<void()> run;
            };
            const Row rows[] = {
                {"memcpy (fp32)", 8.0, [&] { std::memcpy(copy.data(), params.data(), n * 4); }},
                // AdamW reads p, g, m, v and writes p, m, v.
                {"adamw (unscale + update)", 28.0, [&] { opt.step({params.data()}, {grads.data()}, inv); }},
                {"fp16 pack", 6.0, [&] { vktrain::floats_to_halves(params.data(), halves.data(), n); }},
                {"adamw + fp16 pack", 34.0,
                 [&] {
                     opt.step({params.data()}, {grads.data()}, inv);
                     vktrain::floats_to_halves(params.data(), halves.data(), n);
                 }},
                // What a mixed-precision step runs: one pass that also writes the fp16 copy.
                {"adamw with fp16 (fused)", 30.0,
                 [&] { opt.step({params.data()}, {grads.data()}, inv, 1.0f, {halves.data()}); }},
                // The global gradient norm (reported every step; the clip coefficient when clipping).
                {"gradient norm", 4.0, [&] { (void)vktrain::train::global_l2_norm({grads.data()}, {n}, inv); }},
            };
            for (const Row& r : rows) {
                const double s = r.name == rows[0].name ? memcpy_s : best_seconds(repeats, r.run);
                const double gbs = r.bytes_per_param * double(n) / s * 1e-9;
                std::printf("%-10zu %-28s %10.2f %9.2f %7.2fx\n", n, r.name, s * 1e3, gbs, gbs / memcpy_gbs);
                vktrain::io::Json j = vktrain::io::Json::object();
                j["params"] = double(n);
                j["work"] = r.name;
                j["milliseconds"] = s * 1e3;
                j["gb_per_s"] = gbs;
                j["fraction_of_memcpy"] = gbs / memcpy_gbs;
                results.push_back(j);
            }
        }
        if (!out.empty()) {
            vktrain::io::Json doc = vktrain::io::Json::object();
            doc["hardware_threads"] = double(std::thread::hardware_concurrency());
            doc["repeats"] = repeats;
            doc["results"] = results;
            vktrain::io::write_json_file(out, doc);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "vktrain_bench_host: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
