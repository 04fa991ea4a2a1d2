// An application that compiles VulkanMemoryAllocator itself (as many Vulkan applications do) and links vktrain:
// building this executable is the test (vktrain's own VMA lives in namespace vktrain_vma with prefixed C entry
// points, so there are no duplicate definitions); running it checks the two allocators' entry points differ.
#include <volk.h>

#define VMA_STATIC_VULKAN_FUNCTIONS 0
#define VMA_DYNAMIC_VULKAN_FUNCTIONS 1
#define VMA_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wparentheses"
#endif
#include <vk_mem_alloc.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include <cstdio>

#include "vktrain/vktrain.hpp"

int main(int argc, char**) {
    // Referenced (never run) so the linker pulls vktrain's device and memory code into this executable.
    if (argc > 100) {
        vktrain::Context context;
        std::printf("%s\n", context.device_info().name.c_str());
    }
    std::printf("application VMA at %p links beside vktrain\n", reinterpret_cast<void*>(&vmaCreateAllocator));
    return 0;
}
