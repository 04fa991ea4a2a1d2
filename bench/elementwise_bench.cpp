// Element-wise kernels (the gradient scan, the input cast, ReLU forward and backward, bias add) and the row
// kernels (LayerNorm and RMSNorm forward and backward, softmax forward and backward, causal or not) as GB/s against
// the device's copy bandwidth measured in the same run, at the sizes of the models vktrain trains. Writes JSON.
// GB/s counts the bytes that must move: every input read once and every output written once.
//   vktrain_bench_elementwise [--device NAME] [--repeats N] [--caps C1,C2,...] [--only elementwise|rows] [--out FILE]
// --caps also times each kernel with each of these caps on workgroups (Device::element_group_cap), for tuning.
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "io/json.hpp"
#include "kernels/attention.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/layer_norm.hpp"
#include "kernels/timing.hpp"
#include "kernels/peak.hpp"
#include "runtime/context_access.hpp"
#include "runtime/device.hpp"
#include "runtime/memory.hpp"
#include "vktrain/context.hpp"

namespace {

using vktrain::kernels::DType;
using vktrain::kernels::MatRef;
namespace rt = vktrain::runtime;
namespace k = vktrain::kernels;

struct Args {
    std::string device, out;
    int repeats = 20;
    std::vector<uint32_t> caps;           // --caps: also time these workgroup caps (a sweep)
    bool elementwise = true, rows = true; // --only: one of the two groups
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "vktrain_bench_elementwise: %s\nusage: vktrain_bench_elementwise [--device NAME] "
                 "[--repeats N] [--caps LIST] [--only elementwise|rows] [--out FILE]\n",
                 why);
    std::exit(2);
}

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string s = argv[i];
        if (i + 1 >= argc) usage(("missing value after " + s).c_str());
        const char* v = argv[++i];
        if (s == "--device") {
            a.device = v;
        } else if (s == "--out") {
            a.out = v;
        } else if (s == "--only") {
            if (std::strcmp(v, "elementwise") != 0 && std::strcmp(v, "rows") != 0)
                usage("--only takes elementwise or rows");
            a.elementwise = std::strcmp(v, "elementwise") == 0;
            a.rows = !a.elementwise;
        } else if (s == "--caps") {
            for (const char* q = v; *q;) {
                char* end = nullptr;
                const unsigned long c = std::strtoul(q, &end, 10);
                if (end == q || c < 1 || c > 65535 || (*end && *end != ','))
                    usage("--caps needs numbers in [1, 65535], comma-separated");
                a.caps.push_back(uint32_t(c));
                q = *end ? end + 1 : end;
            }
        } else if (s == "--repeats") {
            char* end = nullptr;
            const long n = std::strtol(v, &end, 10);
            if (!end || *end || n < 1 || n > 10000) usage("--repeats needs an integer in [1, 10000]");
            a.repeats = int(n);
        } else {
            usage(("unknown option " + s).c_str());
        }
    }
    return a;
}

// One timed row kernel (or the kernels of one op direction as a training step runs them).
struct RowCase {
    std::string op;
    double bytes; // inputs read once + outputs written once
    std::function<void(rt::Sequence&)> record;
};

// LayerNorm, RMSNorm and softmax at the GPT recipe's shapes (LayerNorm 4096 rows (batch 32 x context 128) of
// width 128; attention scores 32 x 4 heads x 128 rows of 128) and a 124M model's (4096 rows of 768; scores of
// 12 heads x 1024 rows of 1024), each in fp32 and, where the device has it, fp16 storage. Best of three.
void row_kernels(rt::Device& dev, double copy, int repeats, bool f16, vktrain::io::Json& results) {
    struct Shape {
        const char* what;
        uint32_t rows, cols;
        bool softmax;
    };
    const std::vector<Shape> shapes = {{"gpt-recipe", 4096, 128, false},
                                       {"124M", 4096, 768, false},
                                       {"gpt-recipe", 16384, 128, true},
                                       {"124M", 12288, 1024, true}};
    std::vector<DType> types = {DType::f32};
    if (f16) types.push_back(DType::f16);
    for (const Shape& sh : shapes)
        for (DType t : types) {
            const uint32_t rows = sh.rows, cols = sh.cols;
            const uint64_t n = uint64_t(rows) * cols;
            const double e = t == DType::f16 ? 2.0 : 4.0, dn = double(n), dr = double(rows), dc = double(cols);
            rt::Buffer x(dev, n * 4 + 16, rt::MemoryKind::device, "x");
            rt::Buffer y(dev, n * 4 + 16, rt::MemoryKind::device, "y");
            rt::Buffer z(dev, n * 4 + 16, rt::MemoryKind::device, "z");
            rt::Buffer w(dev, uint64_t(cols) * 8 + 16, rt::MemoryKind::device, "weight");
            rt::Buffer stats(dev, uint64_t(rows) * 8 + 16, rt::MemoryKind::device, "stats");
            rt::Buffer grads(dev, uint64_t(cols) * 8 + 16, rt::MemoryKind::device, "grads");
            const MatRef xm{&x, t, rows, cols, 0}, ym{&y, t, rows, cols, 0}, zm{&z, t, rows, cols, 0};
            const MatRef weight{&w, t, 1, cols, 0}, bias{&w, t, 1, cols, cols};
            const MatRef mean{&stats, DType::f32, rows, 1, 0}, rstd{&stats, DType::f32, rows, 1, rows};
            const MatRef dw{&grads, DType::f32, 1, cols, 0}, db{&grads, DType::f32, 1, cols, cols};
            std::vector<RowCase> cases;
            if (!sh.softmax) {
                for (const k::NormKind kind : {k::NormKind::layer, k::NormKind::rms}) {
                    const bool ln = kind == k::NormKind::layer;
                    const std::string name = ln ? "layer_norm" : "rms_norm";
                    const k::RowNorm s{kind, rows, cols, 1e-5f};
                    const MatRef* b = ln ? &bias : nullptr;
                    const MatRef* m = ln ? &mean : nullptr;
                    const double params = (ln ? 2.0 : 1.0) * dc, nstats = (ln ? 2.0 : 1.0) * dr;
                    // forward: x, weight (, bias) in; y, mean (LayerNorm), rstd out
                    cases.push_back(
                        {name + "_forward", 2 * e * dn + e * params + 4 * nstats, [&, s, b, m](rt::Sequence& q) {
                             k::record_layer_norm(dev, q, s, xm, &weight, b, ym, m, rstd);
                         }});
                    // backward: x, dy, weight, statistics in; dx, dweight (, dbias) out, as a step runs it
                    cases.push_back({name + "_backward", 3 * e * dn + e * dc + 4 * nstats + 4 * params,
                                     [&, s, ln, m](rt::Sequence& q) {
                                         k::record_layer_norm_backward(dev, q, s, xm, ym, &weight, m, rstd, zm);
                                         k::record_layer_norm_weight_grad(dev, q, s, xm, ym, m, rstd, dw);
                                         if (ln) k::record_bias_grad(dev, q, ym, db);
                                     }});
                }
            } else {
                // Attention's scores and their gradient are fp32 scratch; p and dx have the storage type.
                const MatRef s32{&x, DType::f32, rows, cols, 0}, dp32{&z, DType::f32, rows, cols, 0};
                for (const bool causal : {false, true}) {
                    // A causal row reads and writes its visible part only, and writes its masked part.
                    const double vis = causal ? (dc + 1) / (2 * dc) : 1.0;
                    const std::string c = causal ? "_causal" : "";
                    cases.push_back({"softmax" + c + "_forward", 4 * vis * dn + e * dn, [&, causal](rt::Sequence& q) {
                                         k::record_softmax(dev, q, s32, ym, 0.125f, causal);
                                     }});
                    cases.push_back(
                        {"softmax" + c + "_backward", (4 + e) * vis * dn + e * dn, [&, causal](rt::Sequence& q) {
                             const MatRef dx{&x, t, rows, cols, 0};
                             k::record_softmax_backward(dev, q, ym, dp32, dx, 0.125f, causal);
                         }});
                }
            }
            for (const RowCase& c : cases) {
                // The device's cap on workgroups (LayerNorm and RMSNorm loop rows on a CPU device) against one
                // workgroup per row, interleaved three times, best of each.
                const uint32_t cap = dev.element_group_cap();
                double us = 1e30, uncapped = 1e30;
                for (int rep = 0; rep < 3; ++rep) {
                    dev.set_element_group_cap(65535);
                    uncapped = std::min(uncapped, k::time_recorded(dev, {&x, &y, &z, &w, &stats}, repeats, c.record));
                    dev.set_element_group_cap(cap);
                    us = std::min(us, k::time_recorded(dev, {&x, &y, &z, &w, &stats}, repeats, c.record));
                }
                const double gbs = c.bytes / (us * 1e3);
                std::printf("  %-24s %-10s %s %5ux%-6u %9.1f us  %7.2f GB/s  %.3f of copy  (%.1f us with one "
                            "workgroup per row)\n",
                            c.op.c_str(), sh.what, t == DType::f16 ? "f16" : "f32", rows, cols, us, gbs,
                            copy > 0 ? gbs / copy : 0.0, uncapped);
                vktrain::io::Json r = vktrain::io::Json::object();
                r["op"] = c.op;
                r["shape"] = sh.what;
                r["storage"] = t == DType::f16 ? "f16" : "f32";
                r["rows"] = rows;
                r["cols"] = cols;
                r["us"] = us;
                r["gb_s"] = gbs;
                r["fraction_of_copy"] = copy > 0 ? gbs / copy : 0.0;
                r["group_cap"] = cap;
                r["us_one_workgroup_per_row"] = uncapped;
                results.push_back(r);
            }
        }
}

} // namespace

int main(int argc, char** argv) {
    const Args args = parse(argc, argv);
    try {
        vktrain::ContextOptions o;
        o.device_name = args.device;
        o.cache_dir = "none";
        vktrain::Context ctx(o);
        rt::Device& dev = vktrain::detail::ContextAccess::device(ctx);
        const bool f16 = dev.fp16_enabled();
        const DType act = f16 ? DType::f16 : DType::f32;
        const double copy = k::measure_copy_bandwidth(dev, 64ull << 20).value;
        std::printf("device %s, copy bandwidth %.1f GB/s, activations %s\n", ctx.device_info().name.c_str(), copy,
                    f16 ? "f16" : "f32");

        vktrain::io::Json results = vktrain::io::Json::array();
        // rows x cols: the MLP's layers at batch 128 (784, 256), its gradients (235,146 parameters), a 4096-wide
        // layer at batch 1024.
        const std::vector<std::pair<uint32_t, uint32_t>> shapes = {{128, 256}, {128, 784}, {1, 235146}, {1024, 4096}};
        for (const auto& [rows, cols] : shapes) {
            if (!args.elementwise) break;
            const uint64_t n = uint64_t(rows) * cols;
            rt::Buffer x(dev, n * 4 + 16, rt::MemoryKind::device, "x");
            rt::Buffer y(dev, n * 4 + 16, rt::MemoryKind::device, "y");
            rt::Buffer z(dev, n * 4 + 16, rt::MemoryKind::device, "z");
            rt::Buffer bias(dev, uint64_t(cols) * 4 + 16, rt::MemoryKind::device, "bias");
            rt::Buffer flag(dev, 16, rt::MemoryKind::readback, "flag");
            const MatRef x32{&x, DType::f32, rows, cols, 0}, xa{&x, act, rows, cols, 0};
            const MatRef ya{&y, act, rows, cols, 0}, za{&z, act, rows, cols, 0};
            const MatRef b{&bias, act, 1, cols, 0};
            struct Case {
                const char* op;
                double bytes; // read + written once each
                std::function<void(rt::Sequence&)> record;
            };
            const double e = f16 ? 2.0 : 4.0;
            const std::vector<Case> cases = {
                {"nonfinite_scan_f32", 4.0 * double(n),
                 [&](rt::Sequence& s) { k::record_nonfinite_scan(dev, s, x32, flag); }},
                {"cast_f32_to_act", (4.0 + e) * double(n), [&](rt::Sequence& s) { k::record_cast(dev, s, x32, ya); }},
                {"relu_forward", 2 * e * double(n),
                 [&](rt::Sequence& s) { k::record_activation(dev, s, k::Activation::relu, xa, ya); }},
                {"relu_backward", 3 * e * double(n),
                 [&](rt::Sequence& s) { k::record_activation_backward(dev, s, k::Activation::relu, xa, ya, za); }},
                {"bias_add", 2 * e * double(n), [&](rt::Sequence& s) { k::record_bias_add(dev, s, ya, b); }},
            };
            for (const Case& c : cases) {
                // The device's own cap on workgroups against one invocation per element (what GPUs get),
                // interleaved three times, best of each.
                const uint32_t cap = dev.element_group_cap();
                double us = 1e30, uncapped = 1e30;
                for (int rep = 0; rep < 3; ++rep) {
                    dev.set_element_group_cap(65535);
                    uncapped = std::min(uncapped, k::time_recorded(dev, {&x, &y, &bias}, args.repeats, c.record));
                    dev.set_element_group_cap(cap);
                    us = std::min(us, k::time_recorded(dev, {&x, &y, &bias}, args.repeats, c.record));
                }
                std::string sweep;
                if (!args.caps.empty()) {
                    std::vector<double> best(args.caps.size(), 1e30);
                    for (int rep = 0; rep < 3; ++rep)
                        for (size_t i = 0; i < args.caps.size(); ++i) {
                            dev.set_element_group_cap(args.caps[i]);
                            best[i] = std::min(best[i], k::time_recorded(dev, {&x, &y, &bias}, args.repeats, c.record));
                        }
                    dev.set_element_group_cap(cap);
                    for (size_t i = 0; i < args.caps.size(); ++i)
                        sweep += "  cap " + std::to_string(args.caps[i]) + ": " + std::to_string(int(best[i])) + " us";
                }
                const double gbs = c.bytes / (us * 1e3);
                if (!sweep.empty()) std::printf("  %-20s %5ux%-6u sweep%s\n", c.op, rows, cols, sweep.c_str());
                std::printf("  %-20s %5ux%-6u %9.1f us  %7.2f GB/s  %.3f of copy  (%u groups at most; %.1f us "
                            "with one invocation per element)\n",
                            c.op, rows, cols, us, gbs, copy > 0 ? gbs / copy : 0.0, cap, uncapped);
                vktrain::io::Json r = vktrain::io::Json::object();
                r["op"] = c.op;
                r["rows"] = rows;
                r["cols"] = cols;
                r["us"] = us;
                r["gb_s"] = gbs;
                r["fraction_of_copy"] = copy > 0 ? gbs / copy : 0.0;
                r["group_cap"] = cap;
                r["us_one_invocation_per_element"] = uncapped;
                results.push_back(r);
            }
        }
        if (args.rows) row_kernels(dev, copy, std::max(1, args.repeats / 4), f16, results);
        if (!args.out.empty()) {
            vktrain::io::Json doc = vktrain::io::Json::object();
            doc["device"] = ctx.device_info().name;
            doc["driver"] = ctx.device_info().driver_name + " " + ctx.device_info().driver_info;
            doc["repeats"] = args.repeats;
            doc["copy_gb_s"] = copy;
            doc["results"] = results;
            vktrain::io::write_json_file(args.out, doc);
        }
    } catch (const std::exception& ex) {
        std::fprintf(stderr, "vktrain_bench_elementwise: error: %s\n", ex.what());
        return 1;
    }
    return 0;
}
