#include "train/trainer_setup.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/check.hpp"
#include "common/host_memory.hpp"
#include "runtime/device.hpp"
#include "train/device_update.hpp"

namespace vktrain::train {

namespace {

std::string gib(uint64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(1ull << 30));
    return buf;
}

} // namespace

// The initial value of one parameter or buffer. A fixed generator and our own float mapping keep it identical on
// every platform; default_init is PyTorch's Linear/Conv2d default U(+-1/sqrt(fan_in)).
void init_values(float* out, const graph::ParamSlot& s, std::mt19937_64& rng) {
    const auto uniform01 = [&] { return double(rng() >> 11) * 0x1.0p-53; }; // [0, 1)
    const Init& init = s.info.init;
    switch (init.kind) {
    case InitKind::default_init: {
        const double bound = 1.0 / std::sqrt(double(std::max<uint32_t>(s.info.fan_in, 1)));
        for (uint64_t i = 0; i < s.count; ++i) out[i] = float((2.0 * uniform01() - 1.0) * bound);
        return;
    }
    case InitKind::zeros: std::fill(out, out + s.count, 0.0f); return;
    case InitKind::ones: std::fill(out, out + s.count, 1.0f); return;
    case InitKind::constant: std::fill(out, out + s.count, init.a); return;
    case InitKind::uniform:
        for (uint64_t i = 0; i < s.count; ++i) out[i] = float(init.a + (double(init.b) - init.a) * uniform01());
        return;
    case InitKind::normal:
        for (uint64_t i = 0; i < s.count; ++i) { // Box-Muller, one value per pair of draws
            const double u1 = 1.0 - uniform01(), u2 = uniform01();
            out[i] = float(init.a + init.b * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
        }
        return;
    }
}

// Whether the options ask for the bucketed update pipeline (train/pipelined_update.hpp).
uint32_t update_buckets(const TrainerOptions& o, const graph::Layout& l) {
    if (o.max_grad_norm > 0.0f) return 1; // clipping needs every gradient before any update
    if (o.update_buckets > 0) return o.update_buckets;
    // Automatic: each bucket costs a submission, a fence and a drained pipeline; on lavapipe 25 that cost more than
    // overlapping the 0.4 ms update of the 235k-parameter MLP saved (bench/results/2026-12-02/ab-update-*.txt).
    return l.grad_count >= (uint64_t(1) << 20) ? 4u : 1u;
}

// Where the optimizer runs (TrainerOptions::update_location), decided before anything is allocated.
Location choose_location(runtime::Device& device, const graph::Layout& l, const TrainerOptions& o) {
    const bool asked = o.update_location == UpdateLocation::device;
    if (o.inference_only) return {UpdateLocation::host, "inference only: no update"};
    if (o.update_location == UpdateLocation::host) return {UpdateLocation::host, "requested"};
    if (o.max_grad_norm > 0.0f) {
        VKT_CHECK(!asked, "update_location device cannot clip gradients (max_grad_norm > 0): the norm is formed on "
                          "the host; use host or automatic");
        return {UpdateLocation::host, "max_grad_norm > 0: clipping needs the gradients' norm on the host"};
    }
    if (l.grad_count >= (1ull << 31)) {
        VKT_CHECK(!asked, "update_location device takes at most 2^31 trainable parameters, the model has ",
                  l.grad_count);
        return {UpdateLocation::host, "over 2^31 trainable parameters"};
    }
    if (asked) return {UpdateLocation::device, "requested"};
    if (device.unified_memory_enabled())
        return {UpdateLocation::host, "unified memory: no gradient readback or weight upload to save, and the host "
                                      "update overlaps the backward pass"};
    if (device.caps().info.type == "cpu") return {UpdateLocation::host, "a CPU device: its work runs on the host"};
    const UpdateTiming t = time_update_locations(device, o.optimizer, l.grad_count, o.precision == Precision::mixed);
    char text[160];
    std::snprintf(text, sizeof text, "measured: %.0f us on the device vs %.0f us on the host (update and transfers)",
                  t.device_us, t.host_us);
    return {t.device_us < t.host_us ? UpdateLocation::device : UpdateLocation::host, text};
}

// Refuses, before anything is allocated, a model whose parameters, gradients, staging and optimizer state (plus
// `arena` bytes of activations once planned) cannot fit: a clear error instead of an allocation failure deep
// inside, or the kernel's out-of-memory killer (on CPU devices such as lavapipe, device memory is host memory).
uint64_t check_memory(const runtime::Device& device, const graph::Layout& l, const TrainerOptions& o,
                      UpdateLocation where, uint64_t arena) {
    const uint64_t esz = o.precision == Precision::mixed ? 2 : 4;
    const bool training = !o.inference_only;
    const uint64_t grads = training ? l.grad_count * 4 : 0;
    const uint64_t on_device = l.weight_count * esz + grads + l.state_count * 4 + arena +
                               (where == UpdateLocation::device ? device_update_bytes(l, o.optimizer) : 0);
    // Staging (trainable weights only: frozen ones live on the device alone) and readback; on unified memory the host
    // maps the device's own weights and gradients instead.
    const uint64_t visible = (device.unified_memory_enabled() ? 0 : l.master_count * esz + grads) + l.state_count * 4;
    const uint64_t state_per = o.optimizer.kind == OptimizerKind::adamw ? 8 : (o.optimizer.momentum > 0 ? 4 : 0);
    uint64_t host = l.master_count * 4 + (training ? l.grad_count * state_per : 0);
    if (training && update_buckets(o, l) > 1 && where == UpdateLocation::host)
        host += l.master_count * 4 + l.grad_count * state_per; // the second banks
    const DeviceInfo& info = device.caps().info;
    const bool cpu = info.type == "cpu";
    const std::string what = arena ? "weights, gradients, staging and activations" : "weights, gradients and staging";
    if (!cpu && info.device_memory_bytes)
        VKT_CHECK(on_device <= info.device_memory_bytes, "the model needs about ", gib(on_device),
                  " of device memory (", what, ") but the largest memory heap of '", info.name, "' holds ",
                  gib(info.device_memory_bytes), "; use a smaller model or batch size");
    // 10% and 256 MiB of slack for what is not counted (buffers of the programs, copies while loading, the process).
    const uint64_t counted = host + visible + (cpu ? on_device : 0);
    const uint64_t need = counted + counted / 10 + (256ull << 20);
    const uint64_t available = available_host_memory();
    if (available)
        VKT_CHECK(need <= available, "the model needs about ", gib(need), " of host memory (fp32 master weights",
                  training ? ", optimizer state" : "",
                  cpu ? ", and the device's memory: '" + info.name + "' is a CPU" : "", cpu ? " device" : "", ") but ",
                  gib(available), " are available; use a smaller model or batch size");
    return need;
}

} // namespace vktrain::train
