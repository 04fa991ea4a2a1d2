#include "vktrain/context.hpp"

#include "runtime/device.hpp"

namespace vktrain {

const char* to_string(GemmPath path) {
    switch (path) {
    case GemmPath::auto_select: return "auto";
    case GemmPath::coopmat: return "coopmat";
    case GemmPath::tiled_fp16: return "tiled-fp16";
    case GemmPath::fp32: return "fp32";
    }
    return "?";
}

Context::Context(const ContextOptions& options) : m_device(std::make_shared<runtime::Device>(options)) {}
Context::Context(std::unique_ptr<runtime::Device> device) : m_device(std::move(device)) {}
Context::~Context() = default;
Context::Context(Context&&) noexcept = default;
Context& Context::operator=(Context&&) noexcept = default;

const DeviceInfo& Context::device_info() const {
    return device().caps().info;
}
bool Context::coopmat_available() const {
    return device().coopmat_enabled();
}
bool Context::fp16_available() const {
    return device().fp16_enabled();
}
bool Context::unified_memory_available() const {
    return device().unified_memory_enabled();
}
bool Context::depthwise_kernel_available() const {
    return device().depthwise_kernel_enabled();
}
uint64_t Context::allocated_bytes() const {
    return device().allocated_bytes();
}
uint64_t Context::peak_allocated_bytes() const {
    return device().peak_allocated_bytes();
}
// A moved-from Context has no device: using it is an error the caller can catch, not a crash.
runtime::Device& Context::device() {
    VKT_CHECK(m_device != nullptr, "this vktrain::Context was moved from and has no device");
    return *m_device;
}
std::shared_ptr<runtime::Device> Context::shared_device() const {
    VKT_CHECK(m_device != nullptr, "this vktrain::Context was moved from and has no device");
    return m_device;
}

const runtime::Device& Context::device() const {
    VKT_CHECK(m_device != nullptr, "this vktrain::Context was moved from and has no device");
    return *m_device;
}

std::vector<DeviceInfo> list_devices(const ContextOptions& options) {
    runtime::Logger logger(options.log, options.log_level);
    runtime::Instance instance(options.validation, &logger);
    std::vector<DeviceInfo> out;
    const auto physicals = instance.physical_devices();
    for (uint32_t i = 0; i < physicals.size(); ++i) out.push_back(runtime::query_caps(instance, physicals[i], i).info);
    return out;
}

} // namespace vktrain
