// GEMM throughput per path (fp32, tiled fp16, cooperative matrix) for the three training forms on
// square and MLP-shaped problems, and the CNN recipe's convolutions (implicit GEMM) in their three
// directions. Every GEMM is timed with each tile configuration its path has on the device (what per-shape
// tuning chooses among, kernels::gemm_configs); the best is the result, the default's time is kept beside it.
// Writes JSON (machine-readable) to --out and a table to stdout.
//   vktrain_bench_gemm [--out FILE] [--device NAME] [--sizes 256,512] [--repeats N] [--conv-batch N]
//                      [--tiled-loop auto|shared|registers]   (the loop of the tiled and fp32 paths)
#include <cstdio>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "bench_common.hpp"
#include "io/json.hpp"
#include "kernels/gemm.hpp"
#include "kernels/gemm_autotune.hpp"

using vktrain::GemmPath;
using vktrain::kernels::ConvDirection;
using vktrain::kernels::ConvProblem;
using vktrain::kernels::DType;
using vktrain::kernels::GemmShape;

int main(int argc, char** argv) {
    std::string out, device;
    std::vector<uint32_t> sizes = {256, 512, 1024};
    int repeats = 5;
    uint32_t conv_batch = 32; // 0: no convolutions
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const bool has_value = i + 1 < argc;
        if (a == "--out" && has_value)
            out = argv[++i];
        else if (a == "--device" && has_value)
            device = argv[++i];
        else if (a == "--tiled-loop" && has_value) {
            const std::string v = argv[++i];
            using vktrain::kernels::TiledLoop;
            if (v != "auto" && v != "shared" && v != "registers") {
                std::fprintf(stderr, "vktrain_bench_gemm: error: --tiled-loop takes auto, shared or registers\n");
                return 2;
            }
            vktrain::kernels::force_tiled_loop(v == "shared"      ? TiledLoop::shared_memory
                                               : v == "registers" ? TiledLoop::registers
                                                                  : TiledLoop::automatic);
        } else if (a == "--conv-batch" && has_value)
            conv_batch = uint32_t(std::atoi(argv[++i]));
        else if (a == "--repeats" && has_value)
            repeats = std::max(1, std::atoi(argv[++i]));
        else if (a == "--sizes" && has_value) {
            sizes.clear();
            for (char* t = std::strtok(argv[++i], ","); t; t = std::strtok(nullptr, ","))
                sizes.push_back(uint32_t(std::atoi(t)));
        } else {
            std::fprintf(stderr, "vktrain_bench_gemm: error: unknown argument '%s'\n", a.c_str());
            return 2;
        }
    }
    try {
        vktrain::Context ctx(vkt_bench::bench_options(device));
        auto& dev = vkt_bench::device_of(ctx);
        const auto& info = ctx.device_info();
        vkt_bench::print_device(ctx);
        std::vector<GemmShape> shapes;
        for (uint32_t s : sizes) shapes.push_back({false, false, s, s, s, DType::f32});
        // The default MLP recipe's training GEMMs (batch 128, 784-256-128-10).
        shapes.push_back({false, true, 128, 256, 784, DType::f16});
        shapes.push_back({true, false, 256, 784, 128, DType::f32});
        shapes.push_back({false, false, 128, 256, 128, DType::f16});
        // Self-attention (issue 12): B·H = 128 (sample, head) items of T = 128 positions and head size 32, read
        // from qkv rows of 3C = 384 (4 heads) and written to output rows of C = 128: S = Q·Kᵀ (fp32), O = P·V.
        shapes.push_back({false, true, 128, 128, 32, DType::f32, 128, 384, 384, 0});
        shapes.push_back({false, false, 128, 32, 128, DType::f16, 128, 0, 384, 128});

        // The device's own ceilings, in this run: every GEMM is also given as a fraction of the one its
        // arithmetic runs at (fp32 fma for the fp32 and tiled paths, which accumulate in fp32; the coopmat peak).
        vkt_bench::CeilingSet measured;
        measured.fma_f16 = measured.copy = true;
        const vkt_bench::Ceilings ceil = vkt_bench::measure_ceilings(dev, measured);
        const auto ceiling_of = [&](GemmPath path) { return ceil.compute(path); };

        vktrain::io::Json results = vktrain::io::Json::array();
        std::printf("%-36s %-11s %10s %10s %8s\n", "shape", "path", "us", "GFLOP/s", "ceiling");
        for (const GemmShape& base : shapes)
            for (GemmPath path : {GemmPath::fp32, GemmPath::tiled_fp16, GemmPath::coopmat}) {
                if (!vkt_bench::path_available(ctx, path)) continue;
                GemmShape s = base;
                if (path == GemmPath::fp32) s.out = DType::f32;
                // Every tile configuration of the path (what tuning chooses among); the best is the result.
                const auto configs = vktrain::kernels::gemm_shape_configs(dev, path, s);
                vktrain::io::Json tiles = vktrain::io::Json::object();
                double us = 0, default_us = 0;
                std::string best;
                for (uint32_t t = 0; t < configs.size(); ++t) {
                    const double u = vktrain::kernels::time_gemm(dev, path, s, repeats, t);
                    tiles[configs[t].tile_name()] = u;
                    if (t == 0) default_us = u;
                    if (t == 0 || u < us) {
                        us = u;
                        best = configs[t].tile_name();
                    }
                }
                const double flops = 2.0 * s.m * s.n * s.k * s.batch;
                const double gflops = flops / (us * 1e3);
                std::printf("%-36s %-11s %10.1f %10.2f %7.1f%%  %s (default %.1f us)\n", s.key().c_str(),
                            vktrain::to_string(path), us, gflops, 100.0 * gflops / ceiling_of(path), best.c_str(),
                            default_us);
                vktrain::io::Json r = vktrain::io::Json::object();
                r["shape"] = s.key();
                r["path"] = vktrain::to_string(path);
                r["microseconds"] = us;
                r["gflops"] = gflops;
                r["fraction_of_ceiling"] = gflops / ceiling_of(path);
                r["tiles"] = best;
                r["default_microseconds"] = default_us;
                r["default_fraction_of_ceiling"] = flops / (default_us * 1e3) / ceiling_of(path);
                r["all_tiles_microseconds"] = tiles;
                results.push_back(r);
            }
        // The CNN recipe's convolutions: 1->32 on 28x28 and 32->64 on 14x14, 5x5 with padding 2.
        std::vector<ConvProblem> convs;
        for (const auto& [c_in, hw, c_out] : {std::tuple{1u, 28u, 32u}, std::tuple{32u, 14u, 64u}})
            for (ConvDirection dir :
                 {ConvDirection::forward, ConvDirection::backward_data, ConvDirection::backward_weight}) {
                if (conv_batch == 0 || (dir == ConvDirection::backward_data && c_in == 1))
                    continue; // no dx of the input
                ConvProblem p;
                p.direction = dir;
                p.shape.n = conv_batch;
                p.shape.c_in = c_in;
                p.shape.h = p.shape.w = hw;
                p.shape.c_out = c_out;
                p.shape.kh = p.shape.kw = 5;
                p.shape.pad_h = p.shape.pad_w = 2;
                p.out = dir == ConvDirection::backward_weight ? DType::f32 : DType::f16;
                convs.push_back(p);
            }
        for (const ConvProblem& base : convs)
            for (GemmPath path : {GemmPath::fp32, GemmPath::tiled_fp16, GemmPath::coopmat}) {
                if (!vkt_bench::path_available(ctx, path)) continue;
                ConvProblem p = base;
                if (path == GemmPath::fp32) p.out = DType::f32;
                const auto& s = p.shape;
                const double us = vktrain::kernels::time_conv(dev, path, p, repeats);
                const double flops = 2.0 * s.n * s.c_out * s.out_h() * s.out_w() * (s.c_in / s.groups) * s.kh * s.kw;
                const double gflops = flops / (us * 1e3);
                std::printf("%-36s %-11s %10.1f %10.2f %7.1f%%\n", p.key().c_str(), vktrain::to_string(path), us,
                            gflops, 100.0 * gflops / ceiling_of(path));
                vktrain::io::Json r = vktrain::io::Json::object();
                r["shape"] = p.key();
                r["path"] = vktrain::to_string(path);
                r["microseconds"] = us;
                r["gflops"] = gflops;
                r["fraction_of_ceiling"] = gflops / ceiling_of(path);
                results.push_back(r);
            }
        if (!out.empty()) {
            vktrain::io::Json doc = vktrain::io::Json::object();
            doc["device"] = info.name;
            doc["driver"] = info.driver_name + " " + info.driver_info;
            doc["coopmat_shapes"] = vktrain::io::Json::array();
            for (const auto& c : info.coopmat_shapes)
                doc["coopmat_shapes"].push_back(std::to_string(c.m) + "x" + std::to_string(c.n) + "x" +
                                                std::to_string(c.k) + " " + c.a_type + "*" + c.b_type + "+" + c.c_type +
                                                "->" + c.result_type + " " + c.scope);
            doc["repeats"] = repeats;
            doc["ceilings"] = ceil.json();
            doc["results"] = results;
            vktrain::io::write_json_file(out, doc);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "vktrain_bench_gemm: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
