#include "kernels/gemm_autotune.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <mutex>

#include "io/json.hpp"
#include "kernels/gemm.hpp"
#include "runtime/device.hpp"

namespace vktrain::kernels {
namespace {

std::mutex g_cache_mutex; // serialises read-modify-write of cache files within this process

// cache_dir/<what>-<device key>.json ("" where caching is off).
std::string cache_path(const runtime::Device& device, const char* what = "gemm-paths") {
    if (device.cache_dir().empty()) return {};
    return device.cache_dir() + "/" + what + "-" + device.cache_key() + ".json";
}

// A cache file's object (empty when missing or unreadable: a cache never stops a run).
io::Json read_cache(const runtime::Device& device, const std::string& path) {
    if (path.empty() || !std::filesystem::exists(path)) return io::Json::object();
    try {
        io::Json cache = io::read_json_file(path);
        if (cache.is_object()) return cache;
    } catch (const std::exception& e) {
        device.logger().warning_once("cache-read:" + path, "ignoring unreadable cache " + path + ": " + e.what());
    }
    return io::Json::object();
}

void write_cache(const runtime::Device& device, const std::string& path, const io::Json& cache) {
    if (path.empty()) return;
    try {
        std::error_code ec;
        std::filesystem::create_directories(device.cache_dir(), ec);
        io::write_json_file(path, cache);
    } catch (const std::exception& e) {
        // Once per context: every later choice would fail the same way (a read-only or missing home, say).
        device.logger().warning_once("cache-write:" + device.cache_dir(),
                                     "could not write the cache " + path + ": " + e.what() +
                                         " (vktrain runs without saving its caches; later failures in " +
                                         device.cache_dir() + " are not reported)");
    }
}

std::string us(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f us", v);
    return buf;
}

runtime::Buffer scratch(runtime::Device& device, uint64_t elements, DType t, const char* name) {
    return runtime::Buffer(device, elements * dtype_size(t) + 4, runtime::MemoryKind::device, name);
}

// requested ∧ supported ∧ worthwhile for one problem named `key`; `time` measures a path in microseconds.
GemmChoice choose_path(runtime::Device& device, GemmPath requested, const std::string& key,
                       const std::function<double(GemmPath)>& time) {
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
    io::Json cache = read_cache(device, path);
    // A cache never stops a run: an entry of the wrong shape (valid JSON, wrong types) is measured again and
    // replaced, with a warning naming the file.
    if (const io::Json* hit = cache.find(key)) {
        try {
            const std::string p = hit->at("path").as_string();
            VKT_CHECK(p == "coopmat" || p == "tiled-fp16", "unknown path '", p, "'");
            const double c = hit->at("coopmat_us").as_number(), t = hit->at("tiled_us").as_number();
            choice.path = p == "coopmat" ? GemmPath::coopmat : GemmPath::tiled_fp16;
            choice.coopmat_us = c;
            choice.tiled_us = t;
            choice.cached = true;
            choice.reason =
                "auto (cached measurement): coopmat " + us(choice.coopmat_us) + " vs tiled-fp16 " + us(choice.tiled_us);
            return choice;
        } catch (const std::exception& e) {
            device.logger().warning("ignoring malformed entry '" + key + "' of the GEMM path cache " + path + ": " +
                                    e.what());
        }
    }
    choice.coopmat_us = time(GemmPath::coopmat);
    choice.tiled_us = time(GemmPath::tiled_fp16);
    choice.path = choice.coopmat_us <= choice.tiled_us ? GemmPath::coopmat : GemmPath::tiled_fp16;
    choice.reason = "auto (measured): coopmat " + us(choice.coopmat_us) + " vs tiled-fp16 " + us(choice.tiled_us);
    io::Json entry = io::Json::object();
    entry["path"] = to_string(choice.path);
    entry["coopmat_us"] = choice.coopmat_us;
    entry["tiled_us"] = choice.tiled_us;
    cache[key] = entry;
    write_cache(device, path, cache);
    return choice;
}

} // namespace

std::string GemmShape::key() const {
    const char* form = trans_a ? "AtB" : trans_b ? "ABt" : "AB";
    std::string key = detail::concat(form, ":m=", m, ",n=", n, ",k=", k, ",out=", dtype_name(out));
    if (batch != 1) key += detail::concat(",batch=", batch);
    if (lda != 0 || ldb != 0 || ldc != 0) key += detail::concat(",ld=", lda, "/", ldb, "/", ldc);
    return key;
}

GemmShape gemm_shape(const GemmDesc& d) {
    GemmShape s;
    s.trans_a = d.trans_a;
    s.trans_b = d.trans_b;
    s.m = d.c.mat.rows;
    s.n = d.c.mat.cols;
    s.k = d.trans_a ? d.a.mat.rows : d.a.mat.cols;
    s.out = d.c.mat.dtype;
    s.batch = d.outer * d.inner;
    const auto ld = [](const GemmOperand& o) {
        return o.mat.rows > 1 && o.row_stride() != o.mat.cols ? uint32_t(o.row_stride()) : 0u;
    };
    s.lda = ld(d.a);
    s.ldb = ld(d.b);
    s.ldc = ld(d.c);
    return s;
}

namespace {

// How time_gemm lays `s` out (buffers not yet set): items one after the other from element 0, each with its shape's
// leading dimensions.
GemmDesc shape_desc(GemmPath path, const GemmShape& s) {
    const DType in = path == GemmPath::fp32 ? DType::f32 : DType::f16;
    const uint32_t a_rows = s.trans_a ? s.k : s.m, a_cols = s.trans_a ? s.m : s.k;
    const uint32_t b_rows = s.trans_b ? s.n : s.k, b_cols = s.trans_b ? s.k : s.n;
    const auto op = [&](DType t, uint32_t rows, uint32_t cols, uint32_t ld) {
        const uint64_t row = ld != 0 ? ld : cols;
        return GemmOperand{MatRef{nullptr, t, rows, cols}, row, uint64_t(rows) * row, 0};
    };
    GemmDesc d;
    d.a = op(in, a_rows, a_cols, s.lda);
    d.b = op(in, b_rows, b_cols, s.ldb);
    d.c = op(s.out, s.m, s.n, s.ldc);
    d.trans_a = s.trans_a;
    d.trans_b = s.trans_b;
    d.outer = std::max(s.batch, 1u);
    return d;
}

} // namespace

double time_gemm(runtime::Device& device, GemmPath path, const GemmShape& s, int repeats, uint32_t tile) {
    const DType in = path == GemmPath::fp32 ? DType::f32 : DType::f16;
    const uint32_t items = std::max(s.batch, 1u);
    GemmDesc d = shape_desc(path, s);
    runtime::Buffer a = scratch(device, d.a.stride_outer * items, in, "tune A");
    runtime::Buffer b = scratch(device, d.b.stride_outer * items, in, "tune B");
    runtime::Buffer c = scratch(device, d.c.stride_outer * items, s.out, "tune C");
    d.a.mat.buffer = &a;
    d.b.mat.buffer = &b;
    d.c.mat.buffer = &c;
    return time_recorded(device, {&a, &b}, repeats,
                         [&](runtime::Sequence& seq) { record_gemm_strided(device, seq, path, d, tile); });
}

GemmChoice choose_gemm_path(runtime::Device& device, GemmPath requested, const GemmShape& shape) {
    return choose_path(device, requested, shape.key(), [&](GemmPath path) { return time_gemm(device, path, shape); });
}

std::vector<GemmConfig> gemm_shape_configs(const runtime::Device& device, GemmPath path, const GemmShape& s) {
    // As record_gemm_strided decides for time_gemm's layout (B bound from its first element).
    return gemm_configs(device, path, path == GemmPath::fp32 ? DType::f32 : s.out, s.m, s.n, s.k,
                        gemm_vec4_b(shape_desc(path, s), 0));
}

namespace {

// choose_gemm_tile and choose_conv_tile: `configs` of the problem named `key` in the tile cache, `time(i)` the
// microseconds of configs[i]. `budgeted` problems (convolutions: a ResNet has dozens) stop being measured once this
// device has spent k_tile_tuning_budget_s on them: they run the default tiles, uncached, and are tuned on a later run.
TileChoice choose_tile(runtime::Device& device, const std::vector<GemmConfig>& configs, const std::string& key,
                       const std::function<double(uint32_t)>& time, bool budgeted) {
    TileChoice choice;
    choice.name = configs.front().tile_name();
    if (configs.size() == 1) {
        choice.reason = "the only tiles";
        return choice;
    }
    std::lock_guard<std::mutex> lock(g_cache_mutex);
    const std::string file = cache_path(device, "gemm-tiles");
    const auto pick = [&](const std::string& name, const char* how) {
        for (uint32_t i = 0; i < configs.size(); ++i)
            if (configs[i].tile_name() == name) {
                choice.tile = i;
                choice.name = name;
                choice.cached = true;
                choice.reason = how;
                return true;
            }
        return false;
    };
    if (auto memo = device.tile_memo().find(key);
        memo != device.tile_memo().end() && pick(memo->second, "tuned (measured earlier in this process)"))
        return choice;
    io::Json cache = read_cache(device, file);
    if (const io::Json* hit = cache.find(key)) {
        // An entry naming tiles this build does not list (or of the wrong shape) is measured again.
        const io::Json* name = hit->is_object() ? hit->find("tile") : nullptr;
        if (name && name->is_string() && pick(name->as_string(), "tuned (cached measurement)")) {
            device.tile_memo()[key] = choice.name;
            return choice;
        }
    }
    if (budgeted && device.tile_tuning_seconds() >= k_tile_tuning_budget_s) {
        choice.reason = detail::concat("default (this device's ", k_tile_tuning_budget_s,
                                       " s tile-tuning budget is spent: tuned on a later run)");
        return choice;
    }
    const auto start = std::chrono::steady_clock::now();
    // Every configuration is timed once; those within k_retime_margin of the fastest (at most k_retimed of them)
    // once more, keeping the better of their two timings: a CPU device shares its cores with the rest of the
    // machine, and a configuration far behind after one timing does not win on a second. Timing everything twice
    // (before) cost twice as long for the same choices within noise (bench/conv_bench.cpp's --tuning check).
    choice.us.resize(configs.size());
    for (uint32_t i = 0; i < configs.size(); ++i) choice.us[i] = time(i);
    std::vector<uint32_t> order(configs.size());
    for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return choice.us[a] < choice.us[b]; });
    const double first = choice.us[order.front()];
    for (size_t r = 0; r < order.size() && r < k_retimed && choice.us[order[r]] <= first * k_retime_margin; ++r)
        choice.us[order[r]] = std::min(choice.us[order[r]], time(order[r]));
    io::Json times = io::Json::object();
    double best = 0;
    for (uint32_t i = 0; i < configs.size(); ++i) {
        times[configs[i].tile_name()] = choice.us[i];
        if (i == 0 || choice.us[i] < best) {
            best = choice.us[i];
            choice.tile = i;
        }
    }
    if (budgeted)
        device.tile_tuning_seconds() += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    choice.name = configs[choice.tile].tile_name();
    choice.reason = "tuned (measured): " + us(best) + " vs the default's " + us(choice.us.front());
    io::Json entry = io::Json::object();
    entry["tile"] = choice.name;
    entry["us"] = times;
    device.tile_memo()[key] = choice.name;
    cache[key] = entry;
    write_cache(device, file, cache);
    return choice;
}

} // namespace

TileChoice choose_gemm_tile(runtime::Device& device, GemmPath path, const GemmShape& shape) {
    return choose_tile(
        device, gemm_shape_configs(device, path, shape), std::string(to_string(path)) + "|" + shape.key(),
        [&](uint32_t i) { return time_gemm(device, path, shape, 3, i); }, false);
}

TileChoice choose_conv_tile(runtime::Device& device, GemmPath path, const ConvProblem& problem) {
    return choose_tile(
        device, conv_configs(device, path, problem.direction, problem.shape, problem.out),
        std::string(to_string(path)) + "|" + problem.key(),
        // One repetition per timing (after the warm-up): a convolution of a real model's batch
        // runs long enough to time once, and a ResNet has dozens of distinct problems to tune.
        [&](uint32_t i) { return time_conv(device, path, problem, 1, i); }, true);
}

std::string ConvProblem::key() const {
    const Conv2dShape& s = shape;
    return detail::concat(to_string(direction), ":n=", s.n, ",c=", s.c_in, ",h=", s.h, ",w=", s.w, ",oc=", s.c_out,
                          ",k=", s.kh, "x", s.kw, ",s=", s.stride_h, "x", s.stride_w, ",p=", s.pad_h, "x", s.pad_w,
                          ",d=", s.dil_h, "x", s.dil_w, ",g=", s.groups, ",out=", dtype_name(out));
}

double time_conv(runtime::Device& device, GemmPath path, const ConvProblem& problem, int repeats, uint32_t tile,
                 bool stride_phases) {
    const Conv2dShape& s = problem.shape;
    s.validate();
    const DType in = path == GemmPath::fp32 ? DType::f32 : DType::f16;
    const DType out = path == GemmPath::fp32 ? DType::f32 : problem.out;
    const uint32_t x_cols = s.c_in * s.h * s.w, y_cols = s.c_out * s.out_h() * s.out_w();
    const uint32_t w_cols = s.c_in / s.groups * s.kh * s.kw;
    const MatRef x_shape{nullptr, in, s.n, x_cols}, y_shape{nullptr, in, s.n, y_cols},
        w_shape{nullptr, in, s.c_out, w_cols};
    // The operands of this direction (see record_conv2d): in0, in1 -> out.
    MatRef refs[3] = {x_shape, w_shape, y_shape};
    if (problem.direction == ConvDirection::backward_data) {
        refs[0] = y_shape;
        refs[2] = x_shape;
    } else if (problem.direction == ConvDirection::backward_weight) {
        refs[0] = y_shape;
        refs[1] = x_shape;
        refs[2] = w_shape;
    }
    refs[2].dtype = out;
    runtime::Buffer in0 = scratch(device, refs[0].count(), in, "tune conv in0");
    runtime::Buffer in1 = scratch(device, refs[1].count(), in, "tune conv in1");
    runtime::Buffer res = scratch(device, refs[2].count(), out, "tune conv out");
    refs[0].buffer = &in0;
    refs[1].buffer = &in1;
    refs[2].buffer = &res;
    return time_recorded(device, {&in0, &in1}, repeats, [&](runtime::Sequence& seq) {
        record_conv2d(device, seq, path, problem.direction, s, refs[0], refs[1], refs[2], false, tile, stride_phases);
    });
}

GemmChoice choose_conv_path(runtime::Device& device, GemmPath requested, const ConvProblem& problem) {
    problem.shape.validate();
    if (requested == GemmPath::auto_select && device.fp16_enabled() &&
        uses_depthwise_kernel(device, problem.direction, problem.shape)) {
        // Both fp16 paths run the same depthwise kernel (there is no GEMM to put on cooperative matrices).
        GemmChoice choice;
        choice.path = GemmPath::tiled_fp16;
        choice.reason = "depthwise kernel (the same on both fp16 paths)";
        return choice;
    }
    return choose_path(device, requested, problem.key(),
                       [&](GemmPath path) { return time_conv(device, path, problem); });
}

} // namespace vktrain::kernels
