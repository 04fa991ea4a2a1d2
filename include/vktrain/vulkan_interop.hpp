// Opt-in interop for applications that already have a VkInstance and VkDevice: hand them to vktrain
// instead of letting it create its own. The only public header with Vulkan types; it includes the
// application's <vulkan/vulkan_core.h> (vktrain is built against 1.3.255 or newer, for
// VK_KHR_cooperative_matrix), with or without VK_NO_PROTOTYPES. vktrain calls Vulkan only through
// vkGetInstanceProcAddr below, never through the application's (or its loader's) global symbols.
//
// Lifetime: vktrain never destroys adopted handles. Destroy the Context (and every Trainer made from
// it) before destroying the VkDevice or VkInstance. vktrain does destroy what it creates on the device
// (memory, buffers, pipelines, pipeline cache, command pools) when the Context goes.
//
// Queue: vktrain submits to (and, when the Context is destroyed, waits on) the given queue holding its
// own lock only. Vulkan queues are externally synchronised, so the application must not use that
// VkQueue while a vktrain call may be running (give vktrain a queue of its own where the family has
// several). vktrain never calls vkDeviceWaitIdle on an adopted device.
//
// Capabilities: a feature is used only if the application enabled it on the device, the device supports
// it and the options allow it (enabled ∧ supported ∧ allowed). Context::device_info() reports the
// adopted physical device with its feature fields narrowed accordingly. The effective API version is the
// lower of instance_api_version and the device's; vktrain needs 1.2. Cooperative matrix needs Vulkan
// 1.3 with maintenance4, vulkanMemoryModel, shaderFloat16, storageBuffer16BitAccess and
// VK_KHR_cooperative_matrix with its cooperativeMatrix feature, all enabled; mixed precision needs
// storageBuffer16BitAccess. If VK_KHR_portability_subset is listed, the application must have enabled it.
//
// ContextOptions: device_index and device_name are ignored (the application chose the device), and so is
// validation: the application owns instance creation, so the validation layer is on exactly when it
// enabled it, and its messages go to the application's own debug messenger, not to
// ContextOptions::log. allow_coopmat, allow_fp16, cache_dir, log and log_level apply as usual.
#pragma once

#include <cstdint>

#include <vulkan/vulkan_core.h>

#include "vktrain/context.hpp"

namespace vktrain {

struct VulkanHandles {
    VkInstance instance = VK_NULL_HANDLE;
    VkPhysicalDevice physical_device = VK_NULL_HANDLE;          // one of the instance's physical devices
    VkDevice device = VK_NULL_HANDLE;                           // created from physical_device
    uint32_t queue_family_index = 0;                            // a family with VK_QUEUE_COMPUTE_BIT
    uint32_t queue_index = 0;                                   // a queue the application created in that family
    PFN_vkGetInstanceProcAddr get_instance_proc_addr = nullptr; // the one the instance was created with
    uint32_t instance_api_version = 0; // VkApplicationInfo::apiVersion the instance was created with

    // Features the application ENABLED when it created the device (not merely supported):
    bool storage_buffer_16bit_access = false; // storageBuffer16BitAccess
    bool shader_float16 = false;              // shaderFloat16
    bool vulkan_memory_model = false;         // vulkanMemoryModel
    bool maintenance4 = false;                // maintenance4 (Vulkan 1.3 feature)
    bool cooperative_matrix = false;          // VK_KHR_cooperative_matrix enabled with its cooperativeMatrix feature
    bool subgroup_size_control = false;       // subgroupSizeControl (Vulkan 1.3 feature)
};

// A Context on the application's device and queue. Throws vktrain::Error on invalid handles (null, a
// physical device not of this instance, a queue family out of range or without compute, Vulkan < 1.2).
Context adopt_vulkan(const VulkanHandles& handles, const ContextOptions& options = {});

} // namespace vktrain
