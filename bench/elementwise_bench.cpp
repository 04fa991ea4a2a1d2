// Element-wise kernels (the gradient scan, the input cast, ReLU forward and backward, bias add) as GB/s against the
// device's copy bandwidth measured in the same run, at the sizes of the models vktrain trains. Writes JSON.
//   vktrain_bench_elementwise [--device NAME] [--repeats N] [--caps C1,C2,...] [--out FILE]
// --caps also times each kernel with each of these caps on workgroups (Device::element_group_cap), for tuning.
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "io/json.hpp"
#include "kernels/elementwise.hpp"
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
    std::vector<uint32_t> caps; // --caps: also time these workgroup caps (a sweep)
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "vktrain_bench_elementwise: %s\nusage: vktrain_bench_elementwise [--device NAME] "
                 "[--repeats N] [--caps LIST] [--out FILE]\n",
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
