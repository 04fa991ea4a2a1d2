#include "kernels/gemm_autotune.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>

#include "io/json.hpp"
#include "kernels/gemm.hpp"
#include "runtime/device.hpp"

namespace vktrain::kernels {
namespace {

std::mutex g_cache_mutex; // serialises read-modify-write of cache files within this process

std::string cache_path(const runtime::Device& device) {
    if (device.cache_dir().empty()) return {};
    return device.cache_dir() + "/gemm-paths-" + device.cache_key() + ".json";
}

std::string us(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f us", v);
    return buf;
}

} // namespace

std::string GemmShape::key() const {
    const char* form = trans_a ? "AtB" : trans_b ? "ABt" : "AB";
    return detail::concat(form, ":m=", m, ",n=", n, ",k=", k, ",out=", dtype_name(out));
}

double time_gemm(runtime::Device& device, GemmPath path, const GemmShape& s, int repeats) {
    const DType in = path == GemmPath::fp32 ? DType::f32 : DType::f16;
    const uint32_t a_rows = s.trans_a ? s.k : s.m, a_cols = s.trans_a ? s.m : s.k;
    const uint32_t b_rows = s.trans_b ? s.n : s.k, b_cols = s.trans_b ? s.k : s.n;
    runtime::Buffer a(device, uint64_t(a_rows) * a_cols * dtype_size(in) + 4, runtime::MemoryKind::device, "tune A");
    runtime::Buffer b(device, uint64_t(b_rows) * b_cols * dtype_size(in) + 4, runtime::MemoryKind::device, "tune B");
    runtime::Buffer c(device, uint64_t(s.m) * s.n * dtype_size(s.out) + 4, runtime::MemoryKind::device, "tune C");
    runtime::Sequence seq(device, 2);
    seq.begin();
    seq.fill(a, 0);
    seq.fill(b, 0);
    const uint32_t t0 = seq.timestamp();
    for (int i = 0; i < repeats; ++i)
        record_gemm(device, seq, path, MatRef{&a, in, a_rows, a_cols}, s.trans_a, MatRef{&b, in, b_rows, b_cols},
                    s.trans_b, MatRef{&c, s.out, s.m, s.n});
    const uint32_t t1 = seq.timestamp();
    seq.end();
    seq.submit_and_wait(); // warm-up: first execution pays lazy driver work
    const auto start = std::chrono::steady_clock::now();
    seq.submit_and_wait();
    const double host_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
    const double gpu_ns = seq.elapsed_ns(t0, t1);
    return (gpu_ns > 0 ? gpu_ns / 1000.0 : host_us) / repeats;
}

GemmChoice choose_gemm_path(runtime::Device& device, GemmPath requested, const GemmShape& shape) {
    GemmChoice choice;
    if (requested == GemmPath::coopmat || requested == GemmPath::tiled_fp16 || requested == GemmPath::fp32) {
        if (requested == GemmPath::coopmat)
            VKT_CHECK(device.coopmat_enabled(), "GEMM path coopmat was requested but '", device.caps().info.name,
                      "' has no usable VK_KHR_cooperative_matrix (or it was forbidden)");
        choice.path = requested;
        choice.reason = std::string("forced by the options (") + to_string(requested) + ")";
        return choice;
    }
    if (!device.coopmat_enabled()) {
        choice.path = GemmPath::tiled_fp16;
        choice.reason = device.caps().coopmat_usable() ? "cooperative matrix forbidden by the options"
                                                       : "device has no usable VK_KHR_cooperative_matrix";
        return choice;
    }

    std::lock_guard<std::mutex> lock(g_cache_mutex);
    const std::string path = cache_path(device);
    io::Json cache = io::Json::object();
    if (!path.empty() && std::filesystem::exists(path)) {
        try {
            cache = io::read_json_file(path);
            if (!cache.is_object()) cache = io::Json::object();
        } catch (const std::exception& e) {
            device.logger().warning(std::string("ignoring unreadable GEMM path cache: ") + e.what());
            cache = io::Json::object();
        }
    }
    const std::string key = shape.key();
    if (const io::Json* hit = cache.find(key); hit && hit->is_object() && hit->contains("path")) {
        const std::string p = hit->at("path").as_string();
        if (p == "coopmat" || p == "tiled-fp16") {
            choice.path = p == "coopmat" ? GemmPath::coopmat : GemmPath::tiled_fp16;
            choice.coopmat_us = hit->at("coopmat_us").as_number();
            choice.tiled_us = hit->at("tiled_us").as_number();
            choice.cached = true;
            choice.reason =
                "auto (cached measurement): coopmat " + us(choice.coopmat_us) + " vs tiled-fp16 " + us(choice.tiled_us);
            return choice;
        }
    }
    choice.coopmat_us = time_gemm(device, GemmPath::coopmat, shape);
    choice.tiled_us = time_gemm(device, GemmPath::tiled_fp16, shape);
    choice.path = choice.coopmat_us <= choice.tiled_us ? GemmPath::coopmat : GemmPath::tiled_fp16;
    choice.reason = "auto (measured): coopmat " + us(choice.coopmat_us) + " vs tiled-fp16 " + us(choice.tiled_us);
    if (!path.empty()) {
        io::Json entry = io::Json::object();
        entry["path"] = to_string(choice.path);
        entry["coopmat_us"] = choice.coopmat_us;
        entry["tiled_us"] = choice.tiled_us;
        cache[key] = entry;
        try {
            std::error_code ec;
            std::filesystem::create_directories(device.cache_dir(), ec);
            io::write_json_file(path, cache);
        } catch (const std::exception& e) {
            device.logger().warning(std::string("could not write the GEMM path cache: ") + e.what());
        }
    }
    return choice;
}

} // namespace vktrain::kernels
