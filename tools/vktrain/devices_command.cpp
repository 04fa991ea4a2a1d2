// `vktrain devices`: every Vulkan device the loader reports, with the capabilities that decide which GEMM path a
// mixed-precision run can take.
#include <cstdio>
#include <string>

#include "args.hpp"
#include "commands.hpp"
#include "util.hpp"
#include "vktrain/vktrain.hpp"

namespace vktrain::cli {

namespace {

const char* yes_no(bool value) {
    return value ? "yes" : "no";
}

// The index of the device a default Context picks, or -1 when that cannot be determined. Opening a context is the
// only way to know for sure, since the choice rules live in the library.
long default_device_index(bool validation) {
    try {
        DeviceArgs d;
        d.validation = validation;
        ContextOptions o = context_options(d);
        // Asking is not worth warnings on stderr (they would repeat what the listing shows).
        o.log = [](LogLevel, LogSource, const std::string&) {};
        Context context(o);
        return long(context.device_info().index);
    } catch (const std::exception&) {
        return -1;
    }
}

std::string hex(uint32_t value) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "0x%04x", value);
    return buf;
}

void print_device(const DeviceInfo& d, bool is_default) {
    std::printf("device %u: %s%s\n", d.index, d.name.c_str(), is_default ? "  (default)" : "");
    const auto row = [](const char* key, const std::string& value) { std::printf("  %-22s %s\n", key, value.c_str()); };
    row("type", d.type);
    row("driver", d.driver_name + (d.driver_info.empty() ? "" : " (" + d.driver_info + ")"));
    row("vendor / device id", hex(d.vendor_id) + " / " + hex(d.device_id));
    row("Vulkan API", d.api_version);
    row("fp16 arithmetic", yes_no(d.shader_float16));
    row("16-bit storage", yes_no(d.storage_buffer_16bit));
    row("subgroup size", std::to_string(d.subgroup_size) + " (min " + std::to_string(d.min_subgroup_size) + ", max " +
                             std::to_string(d.max_subgroup_size) + ", size control " + yes_no(d.subgroup_size_control) +
                             ")");
    row("shared memory", std::to_string(d.max_shared_memory) + " bytes");
    row("max workgroup size", std::to_string(d.max_workgroup_invocations) + " invocations");
    row("timestamps", yes_no(d.timestamps));
    row("unified memory", std::string(yes_no(d.unified_memory)) + (d.unified_memory ? " (no staging copies)" : ""));
    row("cooperative matrix", std::string("extension ") + yes_no(d.coopmat_extension) + ", feature " +
                                  yes_no(d.coopmat_feature) + ", " + std::to_string(d.coopmat_shapes.size()) +
                                  " shapes");
    for (const CoopMatShape& s : d.coopmat_shapes) {
        std::printf("    %ux%ux%u  %s x %s -> %s  result %s  %s%s\n", s.m, s.n, s.k, s.a_type.c_str(), s.b_type.c_str(),
                    s.c_type.c_str(), s.result_type.c_str(), s.scope.c_str(), s.saturating ? "  saturating" : "");
    }
}

} // namespace

int run_devices(const std::vector<std::string>& args) {
    const DevicesArgs a = parse_devices_args(args);
    if (a.help) {
        std::fputs(devices_usage(), stdout);
        return 0;
    }
    DeviceArgs d;
    d.validation = a.validation;
    const std::vector<DeviceInfo> devices = list_devices(context_options(d));
    if (devices.empty()) throw Error("no Vulkan devices found (is a Vulkan driver installed?)");
    const long default_index = default_device_index(a.validation);
    for (size_t i = 0; i < devices.size(); ++i) {
        if (i > 0) std::printf("\n");
        print_device(devices[i], long(devices[i].index) == default_index);
    }
    return 0;
}

} // namespace vktrain::cli
