#include "runtime/instance.hpp"

#include <cstring>
#include <mutex>
#include <string>

namespace vktrain::runtime {
namespace {

// volk's loader handle is process-wide by nature (one libvulkan per process); opening it is idempotent.
VkResult initialize_loader() {
    static std::once_flag once;
    static VkResult result = VK_ERROR_INITIALIZATION_FAILED;
    std::call_once(once, [] { result = volkInitialize(); });
    return result;
}

VKAPI_ATTR VkBool32 VKAPI_CALL debug_callback(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                              VkDebugUtilsMessageTypeFlagsEXT,
                                              const VkDebugUtilsMessengerCallbackDataEXT* data, void* user) {
    const auto* logger = static_cast<const Logger*>(user);
    const LogLevel level = (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT)     ? LogLevel::error
                           : (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) ? LogLevel::warning
                                                                                          : LogLevel::info;
    logger->log(level, LogSource::validation, data && data->pMessage ? data->pMessage : "(no message)");
    return VK_FALSE;
}

bool has_layer(const char* name) {
    uint32_t count = 0;
    VK_CHECK(vkEnumerateInstanceLayerProperties(&count, nullptr));
    std::vector<VkLayerProperties> layers(count);
    VK_CHECK(vkEnumerateInstanceLayerProperties(&count, layers.data()));
    for (const auto& l : layers)
        if (std::strcmp(l.layerName, name) == 0) return true;
    return false;
}

bool has_instance_extension(const char* name) {
    uint32_t count = 0;
    VK_CHECK(vkEnumerateInstanceExtensionProperties(nullptr, &count, nullptr));
    std::vector<VkExtensionProperties> exts(count);
    VK_CHECK(vkEnumerateInstanceExtensionProperties(nullptr, &count, exts.data()));
    for (const auto& e : exts)
        if (std::strcmp(e.extensionName, name) == 0) return true;
    return false;
}

} // namespace

Instance::Instance(bool validation, const Logger* logger) : m_logger(logger) {
    VKT_CHECK(initialize_loader() == VK_SUCCESS,
              "no Vulkan loader found (libvulkan.so.1); install a Vulkan driver, e.g. mesa-vulkan-drivers");
    m_get_proc = vkGetInstanceProcAddr;
    const uint32_t loader_version = volkGetInstanceVersion();
    VKT_CHECK(loader_version >= VK_API_VERSION_1_2, "the Vulkan loader is version ",
              VK_API_VERSION_MAJOR(loader_version), ".", VK_API_VERSION_MINOR(loader_version),
              "; vktrain needs 1.2 or newer");

    std::vector<const char*> layers, extensions;
    if (validation) {
        VKT_CHECK(has_layer("VK_LAYER_KHRONOS_validation"),
                  "validation was requested but VK_LAYER_KHRONOS_validation is not installed "
                  "(Debian: vulkan-validationlayers)");
        layers.push_back("VK_LAYER_KHRONOS_validation");
        extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
    }
    VkInstanceCreateFlags flags = 0;
    if (has_instance_extension(VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME)) {
        // MoltenVK (macOS/iOS) only lists its devices when the application opts in.
        extensions.push_back(VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME);
        flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
    }

    VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
    app.pApplicationName = "vktrain";
    app.pEngineName = "vktrain";
    app.apiVersion = loader_version >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : VK_API_VERSION_1_2;

    VkDebugUtilsMessengerCreateInfoEXT messenger_info{VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
    messenger_info.messageSeverity =
        VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
    messenger_info.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                                 VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                                 VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
    messenger_info.pfnUserCallback = debug_callback;
    messenger_info.pUserData = const_cast<Logger*>(m_logger);

    VkInstanceCreateInfo info{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
    info.pNext = validation ? &messenger_info : nullptr; // also catches messages during create/destroy
    info.flags = flags;
    info.pApplicationInfo = &app;
    info.enabledLayerCount = uint32_t(layers.size());
    info.ppEnabledLayerNames = layers.data();
    info.enabledExtensionCount = uint32_t(extensions.size());
    info.ppEnabledExtensionNames = extensions.data();
    VK_CHECK(vkCreateInstance(&info, nullptr, &m_instance));
    load_functions();
    if (validation) {
        VKT_CHECK(m_fn.vkCreateDebugUtilsMessengerEXT, "VK_EXT_debug_utils did not load");
        VkResult r = m_fn.vkCreateDebugUtilsMessengerEXT(m_instance, &messenger_info, nullptr, &m_messenger);
        if (r != VK_SUCCESS) {
            m_fn.vkDestroyInstance(m_instance, nullptr);
            throw_vk_error(r, "vkCreateDebugUtilsMessengerEXT", __FILE__, __LINE__);
        }
    }
}

Instance::Instance(VkInstance instance, PFN_vkGetInstanceProcAddr get_proc, const Logger* logger)
    : m_logger(logger), m_instance(instance), m_owned(false), m_get_proc(get_proc) {
    VKT_CHECK(instance != VK_NULL_HANDLE && get_proc != nullptr, "adopted VkInstance or vkGetInstanceProcAddr is null");
    load_functions();
}

void Instance::load_functions() {
#define VKT_LOAD(name)                                                                                                 \
    m_fn.name = reinterpret_cast<PFN_##name>(m_get_proc(m_instance, #name));                                           \
    VKT_CHECK(m_fn.name != nullptr, "the Vulkan loader has no " #name);
    VKT_INSTANCE_FUNCTIONS(VKT_LOAD)
#undef VKT_LOAD
    m_fn.vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR =
        reinterpret_cast<PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR>(
            m_get_proc(m_instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR"));
    m_fn.vkCreateDebugUtilsMessengerEXT =
        reinterpret_cast<PFN_vkCreateDebugUtilsMessengerEXT>(m_get_proc(m_instance, "vkCreateDebugUtilsMessengerEXT"));
    m_fn.vkDestroyDebugUtilsMessengerEXT = reinterpret_cast<PFN_vkDestroyDebugUtilsMessengerEXT>(
        m_get_proc(m_instance, "vkDestroyDebugUtilsMessengerEXT"));
}

Instance::~Instance() {
    if (m_messenger != VK_NULL_HANDLE) m_fn.vkDestroyDebugUtilsMessengerEXT(m_instance, m_messenger, nullptr);
    if (m_owned && m_instance != VK_NULL_HANDLE) m_fn.vkDestroyInstance(m_instance, nullptr);
}

std::vector<VkPhysicalDevice> Instance::physical_devices() const {
    uint32_t count = 0;
    VK_CHECK(m_fn.vkEnumeratePhysicalDevices(m_instance, &count, nullptr));
    std::vector<VkPhysicalDevice> devices(count);
    VK_CHECK(m_fn.vkEnumeratePhysicalDevices(m_instance, &count, devices.data()));
    devices.resize(count);
    return devices;
}

} // namespace vktrain::runtime
