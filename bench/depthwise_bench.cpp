// Depthwise convolutions (shaders/depthwise_conv.comp) on MobileNetV2's depthwise layer shapes, in each direction
// and on each available path: the kernel's time against the per-group GEMM (a second context on the same device with
// ContextOptions::allow_depthwise_kernel false), its
// achieved GB/s as a fraction of the copy-bandwidth ceiling (a depthwise layer does ~9 multiply-adds per element it
// moves: memory-bound), and beside it a dense 3x3 convolution of the same activation size (C -> C channels, same
// plane and stride) as achieved GFLOP/s over the compute ceiling (fp32 fma, or the coopmat peak on that path); both
// ceilings measured in this run (src/kernels/peak.cpp). "efficiency ratio" = the depthwise fraction over the dense
// one. Optionally (--train-step) a MobileNetV2 training step (images/s) with the kernel and with the forced GEMM.
// Writes JSON to --out and a table to stdout.
//   vktrain_bench_depthwise [--out FILE] [--device NAME] [--batch 8] [--repeats 3] [--scale 1] [--no-dense]
//                           [--paths fp32,tiled-fp16,coopmat] [--layers 0,8] [--train-step HxW] [--train-steps 3]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "io/json.hpp"
#include "kernels/conv.hpp"
#include "kernels/gemm_autotune.hpp"
#include "vktrain/model.hpp"
#include "vktrain/trainer.hpp"

using vktrain::GemmPath;
using vktrain::kernels::ConvDirection;
using vktrain::kernels::ConvProblem;
using vktrain::kernels::DType;
namespace vk = vktrain::kernels;

namespace {

struct Layer {
    uint32_t channels, hw, stride;
};

// MobileNetV2's depthwise 3x3 layers at a 112x112 input (224's spatial sizes halved), one per distinct shape.
const Layer k_layers[] = {{32, 56, 1},  {96, 56, 2},  {144, 28, 1}, {144, 28, 2}, {192, 14, 1},
                          {384, 14, 1}, {576, 14, 1}, {576, 14, 2}, {960, 7, 1}};

const char* dir_name(ConvDirection d) {
    return d == ConvDirection::forward ? "fwd" : d == ConvDirection::backward_data ? "bwd_data" : "bwd_weight";
}

double bytes_moved(const ConvProblem& p, GemmPath path) {
    const auto& s = p.shape;
    const double in = path == GemmPath::fp32 ? 4 : 2, out = path == GemmPath::fp32 || p.out == DType::f32 ? 4 : 2;
    const double x = double(s.n) * s.c_in * s.h * s.w, y = double(s.n) * s.c_out * s.out_h() * s.out_w();
    const double w = double(s.c_out) * (s.c_in / s.groups) * s.kh * s.kw;
    switch (p.direction) {
    case ConvDirection::forward: return in * (x + w) + out * y;
    case ConvDirection::backward_data: return in * (y + w) + out * x;
    case ConvDirection::backward_weight: return in * (y + x) + out * w;
    }
    return 0;
}

double flops(const ConvProblem& p) {
    const auto& s = p.shape;
    return 2.0 * s.n * s.c_out * s.out_h() * s.out_w() * (s.c_in / s.groups) * s.kh * s.kw;
}

// A MobileNetV2 training step at height x width, batch `batch`: images/s over `steps` steps after one warm-up.
double train_images_per_second(vktrain::Context& ctx, uint32_t hw, uint32_t batch, int steps, GemmPath path) {
    vktrain::MobilenetOptions mo;
    mo.classes = 10;
    mo.height = mo.width = hw;
    const vktrain::Model model = vktrain::Model::mobilenet(mo);
    vktrain::TrainerOptions to;
    to.precision = path == GemmPath::fp32 ? vktrain::Precision::fp32 : vktrain::Precision::mixed;
    to.gemm_path = path == GemmPath::fp32 ? GemmPath::auto_select : path;
    to.batch_size = batch;
    vktrain::Trainer t(ctx, model, to);
    std::vector<float> x(size_t(batch) * 3 * hw * hw);
    for (size_t i = 0; i < x.size(); ++i) x[i] = float((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    std::vector<int32_t> labels(batch);
    for (uint32_t i = 0; i < batch; ++i) labels[i] = int32_t(i % 10);
    t.step(x.data(), labels.data(), batch); // warm-up: pipelines, path choices
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; ++i) t.step(x.data(), labels.data(), batch);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return double(batch) * steps / seconds;
}

} // namespace

int main(int argc, char** argv) {
    std::string out, device, train;
    uint32_t batch = 8, scale = 1;
    int repeats = 3, train_steps = 3;
    bool dense = true;
    std::vector<size_t> layers; // indices into k_layers; empty: all
    std::vector<GemmPath> paths = {GemmPath::fp32, GemmPath::tiled_fp16, GemmPath::coopmat};
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const bool has_value = i + 1 < argc;
        if (a == "--out" && has_value)
            out = argv[++i];
        else if (a == "--device" && has_value)
            device = argv[++i];
        else if (a == "--batch" && has_value)
            batch = uint32_t(std::max(1, std::atoi(argv[++i])));
        else if (a == "--scale" && has_value)
            scale = uint32_t(std::max(1, std::atoi(argv[++i])));
        else if (a == "--repeats" && has_value)
            repeats = std::max(1, std::atoi(argv[++i]));
        else if (a == "--layers" && has_value) {
            for (char* t = std::strtok(argv[++i], ","); t; t = std::strtok(nullptr, ",")) {
                const size_t l = size_t(std::atoi(t));
                if (l >= std::size(k_layers)) {
                    std::fprintf(stderr, "vktrain_bench_depthwise: error: --layers takes indices below %zu\n",
                                 std::size(k_layers));
                    return 2;
                }
                layers.push_back(l);
            }
        } else if (a == "--no-dense")
            dense = false;
        else if (a == "--train-step" && has_value)
            train = argv[++i];
        else if (a == "--train-steps" && has_value)
            train_steps = std::max(1, std::atoi(argv[++i]));
        else if (a == "--paths" && has_value) {
            std::string error;
            if (!vkt_bench::parse_paths(argv[++i], paths, error)) {
                std::fprintf(stderr, "vktrain_bench_depthwise: error: %s\n", error.c_str());
                return 2;
            }
        } else {
            std::fprintf(stderr, "vktrain_bench_depthwise: error: unknown argument '%s'\n", a.c_str());
            return 2;
        }
    }
    try {
        // The same device twice: with the depthwise kernel and without it (ContextOptions::allow_depthwise_kernel
        // false: the per-group GEMM it replaces).
        vktrain::Context ctx(vkt_bench::bench_options(device));
        vktrain::ContextOptions gemm_options = vkt_bench::bench_options(device);
        gemm_options.allow_depthwise_kernel = false;
        vktrain::Context gemm_ctx(gemm_options);
        auto& dev = vkt_bench::device_of(ctx);
        auto& gemm_dev = vkt_bench::device_of(gemm_ctx);
        const auto& info = ctx.device_info();
        vkt_bench::print_device(ctx);
        vkt_bench::CeilingSet measured;
        measured.copy = true;
        const vkt_bench::Ceilings ceil = vkt_bench::measure_ceilings(dev, measured);

        vktrain::io::Json results = vktrain::io::Json::array();
        std::printf("%-22s %-10s %-10s %10s %10s %7s %8s %6s %10s %8s %6s %6s\n", "layer", "direction", "path", "dw us",
                    "gemm us", "speedup", "GB/s", "bw", "dense us", "GFLOP/s", "cmp", "ratio");
        for (GemmPath path : paths) {
            if (!vkt_bench::path_available(ctx, path)) continue;
            const double compute_ceiling = ceil.compute(path);
            for (size_t li = 0; li < std::size(k_layers); ++li)
                for (ConvDirection dir :
                     {ConvDirection::forward, ConvDirection::backward_data, ConvDirection::backward_weight}) {
                    if (!layers.empty() && std::find(layers.begin(), layers.end(), li) == layers.end()) continue;
                    const Layer& l = k_layers[li];
                    ConvProblem p;
                    p.direction = dir;
                    p.out = path == GemmPath::fp32 || dir == ConvDirection::backward_weight ? DType::f32 : DType::f16;
                    auto& s = p.shape;
                    s.n = batch;
                    s.c_in = s.c_out = s.groups = l.channels;
                    s.h = s.w = std::max(1u, l.hw / scale);
                    s.kh = s.kw = 3;
                    s.stride_h = s.stride_w = l.stride;
                    s.pad_h = s.pad_w = 1;
                    double dw_us = 0, gemm_us = 0, dense_us = 0;
                    if (!vk::uses_depthwise_kernel(dev, dir, s))
                        throw vktrain::Error("the depthwise kernel does not take " + p.key());
                    dw_us = vk::time_conv(dev, path, p, repeats);
                    gemm_us = vk::time_conv(gemm_dev, path, p, repeats);
                    ConvProblem d = p;
                    d.shape.groups = 1;
                    if (dense) dense_us = vk::time_conv(dev, path, d, 1);
                    const double gbps = bytes_moved(p, path) / (dw_us * 1e3);
                    const double bw_fraction = gbps / ceil.copy.value;
                    const double dense_gflops = dense ? flops(d) / (dense_us * 1e3) : 0;
                    const double dense_fraction = dense_gflops / compute_ceiling;
                    char layer[64];
                    std::snprintf(layer, sizeof layer, "%ux%ux%u s%u", l.channels, s.h, s.w, l.stride);
                    std::printf("%-22s %-10s %-10s %10.1f %10.1f %6.1fx %8.2f %5.1f%% %10.1f %8.2f %5.1f%% %6.2f\n",
                                layer, dir_name(dir), vktrain::to_string(path), dw_us, gemm_us, gemm_us / dw_us, gbps,
                                100 * bw_fraction, dense_us, dense_gflops, 100 * dense_fraction,
                                dense ? bw_fraction / dense_fraction : 0.0);
                    std::fflush(stdout);
                    vktrain::io::Json r = vktrain::io::Json::object();
                    r["layer"] = layer;
                    r["shape"] = p.key();
                    r["direction"] = dir_name(dir);
                    r["path"] = vktrain::to_string(path);
                    r["depthwise_microseconds"] = dw_us;
                    r["gemm_microseconds"] = gemm_us;
                    r["speedup_over_gemm"] = gemm_us / dw_us;
                    r["depthwise_gbps"] = gbps;
                    r["depthwise_fraction_of_bandwidth"] = bw_fraction;
                    r["depthwise_gflops"] = flops(p) / (dw_us * 1e3);
                    if (dense) {
                        r["dense_shape"] = d.key();
                        r["dense_microseconds"] = dense_us;
                        r["dense_gflops"] = dense_gflops;
                        r["dense_fraction_of_compute"] = dense_fraction;
                        r["efficiency_ratio"] = bw_fraction / dense_fraction;
                    }
                    results.push_back(r);
                }
        }
        vktrain::io::Json training = vktrain::io::Json::array();
        if (!train.empty()) {
            const uint32_t hw = uint32_t(std::max(1, std::atoi(train.c_str())));
            for (GemmPath path : paths) {
                if (!vkt_bench::path_available(ctx, path)) continue;
                const double kernel_ips = train_images_per_second(ctx, hw, batch, train_steps, path);
                const double gemm_ips = train_images_per_second(gemm_ctx, hw, batch, train_steps, path);
                std::printf("mobilenet_v2 %ux%u batch %u training step, %s: %.2f images/s with the depthwise "
                            "kernel, %.2f with the per-group GEMM (%.2fx)\n",
                            hw, hw, batch, vktrain::to_string(path), kernel_ips, gemm_ips, kernel_ips / gemm_ips);
                vktrain::io::Json r = vktrain::io::Json::object();
                r["model"] = "mobilenet_v2";
                r["input"] = std::to_string(hw) + "x" + std::to_string(hw);
                r["batch"] = batch;
                r["steps"] = train_steps;
                r["path"] = vktrain::to_string(path);
                r["depthwise_images_per_second"] = kernel_ips;
                r["gemm_images_per_second"] = gemm_ips;
                r["speedup"] = kernel_ips / gemm_ips;
                training.push_back(r);
            }
        }
        if (!out.empty()) {
            vktrain::io::Json doc = vktrain::io::Json::object();
            doc["device"] = info.name;
            doc["driver"] = info.driver_name + " " + info.driver_info;
            doc["batch"] = batch;
            doc["repeats"] = repeats;
            doc["ceilings"] = ceil.json();
            doc["results"] = results;
            doc["training"] = training;
            vktrain::io::write_json_file(out, doc);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "vktrain_bench_depthwise: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
