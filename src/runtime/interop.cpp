// adopt_vulkan: a Context on the application's instance, device and queue (see vktrain/vulkan_interop.hpp).
#include "vktrain/vulkan_interop.hpp"

#include "runtime/device.hpp"

namespace vktrain {

Context adopt_vulkan(const VulkanHandles& handles, const ContextOptions& options) {
    return Context(std::make_unique<runtime::Device>(handles, options));
}

} // namespace vktrain
