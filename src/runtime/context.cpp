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

Context::Context(const ContextOptions& options) : m_device(std::make_unique<runtime::Device>(options)) {}
Context::Context(std::unique_ptr<runtime::Device> device) : m_device(std::move(device)) {}
Context::~Context() = default;
Context::Context(Context&&) noexcept = default;
Context& Context::operator=(Context&&) noexcept = default;

const DeviceInfo& Context::device_info() const {
    return m_device->caps().info;
}
bool Context::coopmat_available() const {
    return m_device->coopmat_enabled();
}
bool Context::fp16_available() const {
    return m_device->fp16_enabled();
}
uint64_t Context::allocated_bytes() const {
    return m_device->allocated_bytes();
}
uint64_t Context::peak_allocated_bytes() const {
    return m_device->peak_allocated_bytes();
}
runtime::Device& Context::device() {
    return *m_device;
}
const runtime::Device& Context::device() const {
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
