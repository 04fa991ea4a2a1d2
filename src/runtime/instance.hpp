// The Vulkan instance: loader through volk, optional validation layer routed to the logger, and the
// instance-level functions in a per-instance table (no process-wide function pointers are relied on).
#pragma once

#include <memory>
#include <vector>

#include "runtime/logger.hpp"
#include "runtime/vk.hpp"

namespace vktrain::runtime {

#define VKT_INSTANCE_FUNCTIONS(X)                                                                                      \
    X(vkDestroyInstance)                                                                                               \
    X(vkEnumeratePhysicalDevices)                                                                                      \
    X(vkGetPhysicalDeviceProperties)                                                                                   \
    X(vkGetPhysicalDeviceProperties2)                                                                                  \
    X(vkGetPhysicalDeviceFeatures2)                                                                                    \
    X(vkGetPhysicalDeviceQueueFamilyProperties)                                                                        \
    X(vkGetPhysicalDeviceMemoryProperties)                                                                             \
    X(vkEnumerateDeviceExtensionProperties)                                                                            \
    X(vkCreateDevice)                                                                                                  \
    X(vkGetDeviceProcAddr)

struct InstanceFunctions {
#define VKT_DECLARE(name) PFN_##name name = nullptr;
    VKT_INSTANCE_FUNCTIONS(VKT_DECLARE)
#undef VKT_DECLARE
    PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR = nullptr;
    PFN_vkCreateDebugUtilsMessengerEXT vkCreateDebugUtilsMessengerEXT = nullptr;
    PFN_vkDestroyDebugUtilsMessengerEXT vkDestroyDebugUtilsMessengerEXT = nullptr;
};

class Instance {
public:
    Instance(bool validation, const Logger* logger);
    // Adopts an application's instance (not destroyed here).
    Instance(VkInstance instance, PFN_vkGetInstanceProcAddr get_proc, const Logger* logger);
    ~Instance();
    Instance(const Instance&) = delete;
    Instance& operator=(const Instance&) = delete;

    VkInstance handle() const { return m_instance; }
    const InstanceFunctions& fn() const { return m_fn; }
    PFN_vkGetInstanceProcAddr get_instance_proc_addr() const { return m_get_proc; }
    std::vector<VkPhysicalDevice> physical_devices() const;
    bool validation() const { return m_messenger != VK_NULL_HANDLE; }

private:
    void load_functions();

    const Logger* m_logger;
    VkInstance m_instance = VK_NULL_HANDLE;
    bool m_owned = true;
    PFN_vkGetInstanceProcAddr m_get_proc = nullptr;
    InstanceFunctions m_fn;
    VkDebugUtilsMessengerEXT m_messenger = VK_NULL_HANDLE;
};

} // namespace vktrain::runtime
