// Dense convolutions (implicit GEMM, shaders/conv.comp) in their three directions on every path the device offers:
// the CNN recipe's two 5x5 layers at its batch, and ResNet-18's 7x7 stem, 3x3 and 1x1 layers (stride 1 and 2) at a
// small input, plus a 1x1 stride-1 (pointwise) layer. Each is given as GFLOP/s and as a fraction of the device's
// fp32 FMA ceiling measured in this run by the same binary (src/kernels/peak.cpp, as vktrain_bench_gemm and
// vktrain_bench_depthwise do), and, on the coopmat path, of the cooperative-matrix peak too; a 1024^3 GEMM on
// the same path (best of its tile configurations) is the reference a convolution should approach. The summary
// gives the median fraction per path and direction. A strided data gradient (split by stride phase,
// kernels::uses_stride_phases) is also timed as the single gather over every tap it replaced, in the same run. Each
// convolution is timed with every tile configuration its path has (what choose_conv_tile picks among; --default-tiles:
// the default only) and the best is its result. The data gradient of a model's first layer (the images) is left out:
// training never computes it. Writes JSON to --out and a table to stdout.
//   vktrain_bench_conv [--out FILE] [--device NAME] [--repeats 3] [--cnn-batch 128] [--resnet-batch 8]
//                      [--paths fp32,tiled-fp16,coopmat] [--only cnn|resnet] [--no-gemm] [--default-tiles]
//                      [--tuning]   (also: the tiles start-up tuning picks, as a multiple of the best's time)
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "io/json.hpp"
#include "kernels/conv.hpp"
#include "kernels/gemm_autotune.hpp"

using vktrain::GemmPath;
using vktrain::kernels::ConvDirection;
using vktrain::kernels::ConvProblem;
using vktrain::kernels::DType;
namespace vk = vktrain::kernels;

namespace {

struct Layer {
    const char* name;
    const char* model; // "cnn" or "resnet"
    uint32_t c_in, hw, c_out, k, stride, pad;
};

// The CNN recipe (vktrain train --model cnn): 1->32 on 28x28 and 32->64 on 14x14, 5x5 with padding 2. ResNet-18 at
// a 64x64 input: the stem, a 3x3 of each stage width, the strided 3x3 and 1x1 (downsample) layers entering stage 2,
// and a pointwise 1x1 stride-1 layer (MobileNet-style) for the path without gathers.
const Layer k_layers[] = {
    {"cnn.conv1", "cnn", 1, 28, 32, 5, 1, 2},
    {"cnn.conv2", "cnn", 32, 14, 64, 5, 1, 2},
    {"resnet.stem", "resnet", 3, 64, 64, 7, 2, 3},
    {"resnet.l1.3x3", "resnet", 64, 16, 64, 3, 1, 1},
    {"resnet.l2.3x3s2", "resnet", 64, 16, 128, 3, 2, 1},
    {"resnet.l2.1x1s2", "resnet", 64, 16, 128, 1, 2, 0},
    {"resnet.l2.3x3", "resnet", 128, 8, 128, 3, 1, 1},
    {"resnet.l3.3x3", "resnet", 256, 4, 256, 3, 1, 1},
    {"pointwise.1x1", "resnet", 128, 8, 256, 1, 1, 0},
};

const char* dir_name(ConvDirection d) {
    return d == ConvDirection::forward ? "fwd" : d == ConvDirection::backward_data ? "bwd_data" : "bwd_weight";
}

double conv_flops(const ConvProblem& p) {
    const auto& s = p.shape;
    return 2.0 * s.n * s.c_out * s.out_h() * s.out_w() * (s.c_in / s.groups) * s.kh * s.kw;
}

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const size_t h = v.size() / 2;
    return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

} // namespace

int main(int argc, char** argv) {
    std::string out, device, only;
    uint32_t cnn_batch = 128, resnet_batch = 8;
    int repeats = 3;
    bool gemm = true, default_tiles = false, tuning = false;
    std::vector<GemmPath> paths = {GemmPath::fp32, GemmPath::tiled_fp16, GemmPath::coopmat};
    const auto bad = [](const std::string& msg) {
        std::fprintf(stderr, "vktrain_bench_conv: error: %s\n", msg.c_str());
        return 2;
    };
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const bool has_value = i + 1 < argc;
        if (a == "--out" && has_value)
            out = argv[++i];
        else if (a == "--device" && has_value)
            device = argv[++i];
        else if (a == "--repeats" && has_value)
            repeats = std::max(1, std::atoi(argv[++i]));
        else if (a == "--cnn-batch" && has_value)
            cnn_batch = uint32_t(std::max(1, std::atoi(argv[++i])));
        else if (a == "--resnet-batch" && has_value)
            resnet_batch = uint32_t(std::max(1, std::atoi(argv[++i])));
        else if (a == "--only" && has_value) {
            only = argv[++i];
            if (only != "cnn" && only != "resnet") return bad("--only takes cnn or resnet, got '" + only + "'");
        } else if (a == "--no-gemm")
            gemm = false;
        else if (a == "--default-tiles")
            default_tiles = true;
        else if (a == "--tuning")
            tuning = true;
        else if (a == "--paths" && has_value) {
            std::string error;
            if (!vkt_bench::parse_paths(argv[++i], paths, error)) return bad(error);
        } else
            return bad("unknown argument '" + a + "'");
    }
    try {
        vktrain::Context ctx(vkt_bench::bench_options(device));
        auto& dev = vkt_bench::device_of(ctx);
        const auto& info = ctx.device_info();
        vkt_bench::print_device(ctx);
        const vkt_bench::Ceilings ceil = vkt_bench::measure_ceilings(dev);
        const vk::PeakResult &fma32 = ceil.fma_f32, &cm = ceil.coopmat;

        vktrain::io::Json results = vktrain::io::Json::array(), gemms = vktrain::io::Json::array();
        vktrain::io::Json summary = vktrain::io::Json::array();
        std::printf("%-18s %-10s %-11s %11s %9s %8s %8s\n", "layer", "direction", "path", "us", "GFLOP/s", "fma",
                    "coopmat");
        for (GemmPath path : paths) {
            if (!vkt_bench::path_available(ctx, path)) continue;
            std::map<ConvDirection, std::vector<double>> fractions;
            for (const Layer& l : k_layers) {
                if (!only.empty() && only != l.model) continue;
                for (ConvDirection dir :
                     {ConvDirection::forward, ConvDirection::backward_data, ConvDirection::backward_weight}) {
                    if (dir == ConvDirection::backward_data && l.c_in <= 3) continue; // the image needs no dx
                    ConvProblem p;
                    p.direction = dir;
                    // Training writes fp16 activations' gradients and fp32 weight gradients on the fp16 paths.
                    p.out = path == GemmPath::fp32 || dir == ConvDirection::backward_weight ? DType::f32 : DType::f16;
                    auto& s = p.shape;
                    s.n = std::string(l.model) == "cnn" ? cnn_batch : resnet_batch;
                    s.c_in = l.c_in;
                    s.c_out = l.c_out;
                    s.h = s.w = l.hw;
                    s.kh = s.kw = l.k;
                    s.stride_h = s.stride_w = l.stride;
                    s.pad_h = s.pad_w = l.pad;
                    // Every tile configuration (what choose_conv_tile picks among) unless --default-tiles; the
                    // best is the result, the default's time is kept beside it.
                    const auto configs = vk::conv_configs(dev, path, dir, s, p.out);
                    const size_t tried = default_tiles ? 1 : configs.size();
                    double us = 0, default_us = 0;
                    std::string best;
                    std::vector<double> all_us;
                    for (uint32_t t = 0; t < tried; ++t) {
                        const double u = vk::time_conv(dev, path, p, repeats, t);
                        all_us.push_back(u);
                        if (t == 0) default_us = u;
                        if (t == 0 || u < us) {
                            us = u;
                            best = configs[t].tile_name();
                        }
                    }
                    // A strided data gradient runs split by stride phase; its single gather over every tap (what
                    // it replaced) is timed beside it the same way, for the before/after ratio in one run.
                    double gather_us = 0;
                    if (vk::uses_stride_phases(dir, s)) {
                        const size_t gather_tried =
                            default_tiles ? 1 : vk::conv_configs(dev, path, dir, s, p.out, false).size();
                        for (uint32_t t = 0; t < gather_tried; ++t) {
                            const double u = vk::time_conv(dev, path, p, repeats, t, false);
                            if (t == 0 || u < gather_us) gather_us = u;
                        }
                    }
                    // --tuning: what start-up tuning (choose_conv_tile: one timing each, the close ones twice)
                    // picks, and how fast that tile is by this full search's timings. The device's tuning budget is
                    // reset first: this checks the choice, not the cap.
                    std::string tuned;
                    double tuned_us = 0, tuning_s = 0;
                    if (tuning && !default_tiles && configs.size() > 1) {
                        dev.tile_tuning_seconds() = 0;
                        const vk::TileChoice c = vk::choose_conv_tile(dev, path, p);
                        tuned = c.name;
                        tuned_us = all_us[c.tile];
                        tuning_s = dev.tile_tuning_seconds();
                    }
                    const double gflops = conv_flops(p) / (us * 1e3);
                    const double fraction = gflops / fma32.value;
                    fractions[dir].push_back(fraction);
                    const double cm_fraction = path == GemmPath::coopmat && cm.value > 0 ? gflops / cm.value : 0;
                    std::printf("%-18s %-10s %-11s %11.1f %9.2f %7.1f%% %7.1f%%  %s (default %.1f us)", l.name,
                                dir_name(dir), vktrain::to_string(path), us, gflops, 100 * fraction, 100 * cm_fraction,
                                best.c_str(), default_us);
                    if (!tuned.empty())
                        std::printf(" tuning picks %s in %.2f s: %.2fx the best", tuned.c_str(), tuning_s,
                                    tuned_us / us);
                    if (gather_us > 0)
                        std::printf(" stride phases; gather %.1f us = %.1f%%, phases %.2fx faster", gather_us,
                                    100 * conv_flops(p) / (gather_us * 1e3) / fma32.value, gather_us / us);
                    std::printf("\n");
                    std::fflush(stdout);
                    vktrain::io::Json r = vktrain::io::Json::object();
                    r["layer"] = l.name;
                    r["shape"] = p.key();
                    r["direction"] = dir_name(dir);
                    r["path"] = vktrain::to_string(path);
                    r["microseconds"] = us;
                    r["gflops"] = gflops;
                    r["fraction_of_fma_f32"] = fraction;
                    if (path == GemmPath::coopmat) r["fraction_of_coopmat"] = cm_fraction;
                    r["tiles"] = best;
                    r["default_microseconds"] = default_us;
                    r["default_fraction_of_fma_f32"] = conv_flops(p) / (default_us * 1e3) / fma32.value;
                    if (!tuned.empty()) {
                        r["tuned_tiles"] = tuned;
                        r["tuned_over_best"] = tuned_us / us;
                        r["tuning_seconds"] = tuning_s;
                    }
                    if (gather_us > 0) {
                        r["gather_microseconds"] = gather_us;
                        r["gather_fraction_of_fma_f32"] = conv_flops(p) / (gather_us * 1e3) / fma32.value;
                        r["stride_phase_speedup"] = gather_us / us;
                    }
                    results.push_back(r);
                }
            }
            double gemm_fraction = 0;
            if (gemm) {
                // The reference: a square 1024^3 GEMM on this path, the best of its tiles (what tuning would pick).
                vk::GemmShape g{false, false, 1024, 1024, 1024, path == GemmPath::fp32 ? DType::f32 : DType::f16};
                const auto configs = vk::gemm_shape_configs(dev, path, g);
                double us = 0;
                std::string best;
                for (uint32_t t = 0; t < configs.size(); ++t) {
                    const double u = vk::time_gemm(dev, path, g, repeats, t);
                    if (t == 0 || u < us) {
                        us = u;
                        best = configs[t].tile_name();
                    }
                }
                const double gflops = 2.0 * 1024 * 1024 * 1024 / (us * 1e3);
                gemm_fraction = gflops / fma32.value;
                std::printf("%-18s %-10s %-11s %11.1f %9.2f %7.1f%%  %s\n", "gemm 1024^3", "-",
                            vktrain::to_string(path), us, gflops, 100 * gemm_fraction, best.c_str());
                vktrain::io::Json r = vktrain::io::Json::object();
                r["shape"] = g.key();
                r["path"] = vktrain::to_string(path);
                r["microseconds"] = us;
                r["gflops"] = gflops;
                r["fraction_of_fma_f32"] = gemm_fraction;
                r["tiles"] = best;
                gemms.push_back(r);
            }
            for (const auto& [dir, f] : fractions) {
                const double med = median(f);
                std::printf("median %-10s %-11s %5.1f%% of the fp32 FMA ceiling over %zu layers%s\n", dir_name(dir),
                            vktrain::to_string(path), 100 * med, f.size(),
                            gemm ? (" (GEMM 1024^3: " + std::to_string(int(100 * gemm_fraction + 0.5)) + "%)").c_str()
                                 : "");
                vktrain::io::Json r = vktrain::io::Json::object();
                r["direction"] = dir_name(dir);
                r["path"] = vktrain::to_string(path);
                r["layers"] = uint32_t(f.size());
                r["median_fraction_of_fma_f32"] = med;
                if (gemm) r["gemm_1024_fraction_of_fma_f32"] = gemm_fraction;
                summary.push_back(r);
            }
        }
        if (!out.empty()) {
            vktrain::io::Json doc = vktrain::io::Json::object();
            doc["device"] = info.name;
            doc["driver"] = info.driver_name + " " + info.driver_info;
            doc["cnn_batch"] = cnn_batch;
            doc["resnet_batch"] = resnet_batch;
            doc["repeats"] = repeats;
            doc["ceilings"] = ceil.json();
            doc["results"] = results;
            doc["gemm_reference"] = gemms;
            doc["summary"] = summary;
            vktrain::io::write_json_file(out, doc);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "vktrain_bench_conv: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
