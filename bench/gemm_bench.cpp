// GEMM throughput per path (fp32, tiled fp16, cooperative matrix) for the three training forms on
// square and MLP-shaped problems. Writes JSON (machine-readable) to --out and a table to stdout.
//   vktrain_bench_gemm [--out FILE] [--device NAME] [--sizes 256,512] [--repeats N]
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "io/json.hpp"
#include "kernels/gemm_autotune.hpp"
#include "runtime/device.hpp"
#include "vktrain/context.hpp"

using vktrain::GemmPath;
using vktrain::kernels::DType;
using vktrain::kernels::GemmShape;

int main(int argc, char** argv) {
    std::string out, device;
    std::vector<uint32_t> sizes = {256, 512, 1024};
    int repeats = 5;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const bool has_value = i + 1 < argc;
        if (a == "--out" && has_value)
            out = argv[++i];
        else if (a == "--device" && has_value)
            device = argv[++i];
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
        vktrain::ContextOptions o;
        o.device_name = device;
        o.cache_dir = "none";
        vktrain::Context ctx(o);
        auto& dev = ctx.device();
        const auto& info = ctx.device_info();
        std::vector<GemmShape> shapes;
        for (uint32_t s : sizes) shapes.push_back({false, false, s, s, s, DType::f32});
        // The default MLP recipe's training GEMMs (batch 128, 784-256-128-10).
        shapes.push_back({false, true, 128, 256, 784, DType::f16});
        shapes.push_back({true, false, 256, 784, 128, DType::f32});
        shapes.push_back({false, false, 128, 256, 128, DType::f16});

        vktrain::io::Json results = vktrain::io::Json::array();
        std::printf("device: %s (%s %s)\n%-36s %-11s %10s %10s\n", info.name.c_str(), info.driver_name.c_str(),
                    info.driver_info.c_str(), "shape", "path", "us", "GFLOP/s");
        for (const GemmShape& base : shapes)
            for (GemmPath path : {GemmPath::fp32, GemmPath::tiled_fp16, GemmPath::coopmat}) {
                if (path == GemmPath::coopmat && !ctx.coopmat_available()) continue;
                if (path != GemmPath::fp32 && !ctx.fp16_available()) continue;
                GemmShape s = base;
                if (path == GemmPath::fp32) s.out = DType::f32;
                const double us = vktrain::kernels::time_gemm(dev, path, s, repeats);
                const double gflops = 2.0 * s.m * s.n * s.k / (us * 1e3);
                std::printf("%-36s %-11s %10.1f %10.2f\n", s.key().c_str(), vktrain::to_string(path), us, gflops);
                vktrain::io::Json r = vktrain::io::Json::object();
                r["shape"] = s.key();
                r["path"] = vktrain::to_string(path);
                r["microseconds"] = us;
                r["gflops"] = gflops;
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
            doc["results"] = results;
            vktrain::io::write_json_file(out, doc);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "vktrain_bench_gemm: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
