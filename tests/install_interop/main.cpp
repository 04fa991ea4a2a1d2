// Compiles <vktrain/vulkan_interop.hpp> from the installed package, as an application with its own device would.
#include <cstdio>

#include <vktrain/vulkan_interop.hpp>

int main() {
    vktrain::VulkanHandles h;
    std::printf("interop header ok (VkDevice handle %s)\n", h.device == VK_NULL_HANDLE ? "null" : "set");
    return 0;
}
