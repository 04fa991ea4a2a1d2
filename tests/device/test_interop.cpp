// vulkan_interop.hpp: an application creates its own VkInstance and VkDevice (here with volk's loader
// entry points, as an application would with its own loader), hands them to vktrain, trains a step, and
// destroys them itself after the Context is gone. With VKTRAIN_TEST_VALIDATION=1 the application's
// instance has the validation layer and a messenger that fails the test on any message, so vktrain's use
// of an adopted device is validated too.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "device/support.hpp"
#include "runtime/context_access.hpp"
#include "vktrain/trainer.hpp"
#include "vktrain/vulkan_interop.hpp"
#include "error_text.hpp"

namespace {

using vkt_test::error_of;

bool env_flag(const char* name) {
    const char* v = std::getenv(name);
    return v && v[0] != '\0' && std::strcmp(v, "0") != 0;
}

VKAPI_ATTR VkBool32 VKAPI_CALL app_debug_callback(VkDebugUtilsMessageSeverityFlagBitsEXT,
                                                  VkDebugUtilsMessageTypeFlagsEXT,
                                                  const VkDebugUtilsMessengerCallbackDataEXT* data, void*) {
    ADD_FAILURE() << "Vulkan validation (application messenger): "
                  << (data && data->pMessage ? data->pMessage : "(no message)");
    return VK_FALSE;
}

template <typename F>
F load(PFN_vkGetInstanceProcAddr gipa, VkInstance instance, const char* name) {
    auto f = reinterpret_cast<F>(gipa(instance, name));
    if (!f) throw std::runtime_error(std::string("no ") + name);
    return f;
}

// What an embedding application does: its own instance (validation per VKTRAIN_TEST_VALIDATION), the
// test device, a device with the features vktrain can use enabled where supported, and one queue.
struct AppVulkan {
    PFN_vkGetInstanceProcAddr gipa = nullptr;
    uint32_t api_version = 0;
    VkInstance instance = VK_NULL_HANDLE;
    VkDebugUtilsMessengerEXT messenger = VK_NULL_HANDLE;
    VkPhysicalDevice physical = VK_NULL_HANDLE;
    VkDevice device = VK_NULL_HANDLE;
    uint32_t family = UINT32_MAX;
    uint32_t family_count = 0;
    uint32_t non_compute_family = UINT32_MAX;
    vktrain::VulkanHandles handles;
    bool coopmat_enabled = false;

    PFN_vkDestroyInstance destroy_instance = nullptr;
    PFN_vkDestroyDebugUtilsMessengerEXT destroy_messenger = nullptr;
    PFN_vkDestroyDevice destroy_device = nullptr;
    PFN_vkDeviceWaitIdle device_wait_idle = nullptr;

    AppVulkan() {
        vkt_test::context(); // the library has initialised volk's loader (vkGetInstanceProcAddr) by now
        gipa = vkGetInstanceProcAddr;
        if (!gipa) throw std::runtime_error("volk has no vkGetInstanceProcAddr");
        const bool validation = env_flag("VKTRAIN_TEST_VALIDATION");
        uint32_t loader_version = VK_API_VERSION_1_0;
        if (auto eiv = reinterpret_cast<PFN_vkEnumerateInstanceVersion>(gipa(nullptr, "vkEnumerateInstanceVersion")))
            eiv(&loader_version);
        api_version = loader_version >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : VK_API_VERSION_1_2;

        VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
        app.pApplicationName = "vktrain interop test";
        app.apiVersion = api_version;
        std::vector<const char*> layers, extensions;
        if (validation) {
            layers.push_back("VK_LAYER_KHRONOS_validation");
            extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
        }
        VkDebugUtilsMessengerCreateInfoEXT mi{VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
        mi.messageSeverity =
            VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
        mi.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                         VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
        mi.pfnUserCallback = app_debug_callback;
        VkInstanceCreateInfo ii{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
        ii.pNext = validation ? &mi : nullptr;
        ii.pApplicationInfo = &app;
        ii.enabledLayerCount = uint32_t(layers.size());
        ii.ppEnabledLayerNames = layers.data();
        ii.enabledExtensionCount = uint32_t(extensions.size());
        ii.ppEnabledExtensionNames = extensions.data();
        auto create_instance = load<PFN_vkCreateInstance>(gipa, nullptr, "vkCreateInstance");
        if (create_instance(&ii, nullptr, &instance) != VK_SUCCESS) throw std::runtime_error("vkCreateInstance failed");
        destroy_instance = load<PFN_vkDestroyInstance>(gipa, instance, "vkDestroyInstance");
        if (validation) {
            auto create_messenger =
                load<PFN_vkCreateDebugUtilsMessengerEXT>(gipa, instance, "vkCreateDebugUtilsMessengerEXT");
            destroy_messenger =
                load<PFN_vkDestroyDebugUtilsMessengerEXT>(gipa, instance, "vkDestroyDebugUtilsMessengerEXT");
            if (create_messenger(instance, &mi, nullptr, &messenger) != VK_SUCCESS)
                throw std::runtime_error("vkCreateDebugUtilsMessengerEXT failed");
        }

        // The test device: the one the shared test context chose (VKTRAIN_TEST_DEVICE), found by name.
        auto enumerate = load<PFN_vkEnumeratePhysicalDevices>(gipa, instance, "vkEnumeratePhysicalDevices");
        auto properties = load<PFN_vkGetPhysicalDeviceProperties>(gipa, instance, "vkGetPhysicalDeviceProperties");
        uint32_t count = 0;
        enumerate(instance, &count, nullptr);
        std::vector<VkPhysicalDevice> physicals(count);
        enumerate(instance, &count, physicals.data());
        for (VkPhysicalDevice p : physicals) {
            VkPhysicalDeviceProperties props{};
            properties(p, &props);
            if (vkt_test::context().device_info().name == props.deviceName) {
                physical = p;
                break;
            }
        }
        if (physical == VK_NULL_HANDLE)
            throw std::runtime_error("the test device is not on the application's instance");
        VkPhysicalDeviceProperties props{};
        properties(physical, &props);
        const uint32_t effective = std::min(props.apiVersion, api_version);
        const bool v13 = effective >= VK_API_VERSION_1_3;

        auto queue_families = load<PFN_vkGetPhysicalDeviceQueueFamilyProperties>(
            gipa, instance, "vkGetPhysicalDeviceQueueFamilyProperties");
        queue_families(physical, &family_count, nullptr);
        std::vector<VkQueueFamilyProperties> families(family_count);
        queue_families(physical, &family_count, families.data());
        for (uint32_t i = 0; i < family_count; ++i) {
            if ((families[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && family == UINT32_MAX) family = i;
            if (!(families[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && non_compute_family == UINT32_MAX)
                non_compute_family = i;
        }
        if (family == UINT32_MAX) throw std::runtime_error("no compute queue family");

        auto enumerate_exts =
            load<PFN_vkEnumerateDeviceExtensionProperties>(gipa, instance, "vkEnumerateDeviceExtensionProperties");
        uint32_t ext_count = 0;
        enumerate_exts(physical, nullptr, &ext_count, nullptr);
        std::vector<VkExtensionProperties> exts(ext_count);
        enumerate_exts(physical, nullptr, &ext_count, exts.data());
        auto has_ext = [&](const char* name) {
            for (const auto& e : exts)
                if (std::strcmp(e.extensionName, name) == 0) return true;
            return false;
        };
        const bool coopmat_ext = has_ext(VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME);

        // Supported features (the coopmat feature bit is checked, not just the extension name).
        VkPhysicalDeviceFeatures2 feats{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
        VkPhysicalDeviceVulkan11Features f11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
        VkPhysicalDeviceVulkan12Features f12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
        VkPhysicalDeviceVulkan13Features f13{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
        VkPhysicalDeviceCooperativeMatrixFeaturesKHR fcm{
            VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR};
        feats.pNext = &f11;
        f11.pNext = &f12;
        void** tail = &f12.pNext;
        if (v13) {
            *tail = &f13;
            tail = &f13.pNext;
        }
        if (coopmat_ext) *tail = &fcm;
        load<PFN_vkGetPhysicalDeviceFeatures2>(gipa, instance, "vkGetPhysicalDeviceFeatures2")(physical, &feats);

        // Enable exactly these (everything else off), and tell vktrain.
        VkPhysicalDeviceFeatures2 en{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
        VkPhysicalDeviceVulkan11Features e11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
        VkPhysicalDeviceVulkan12Features e12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
        VkPhysicalDeviceVulkan13Features e13{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
        VkPhysicalDeviceCooperativeMatrixFeaturesKHR ecm{
            VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR};
        en.pNext = &e11;
        e11.pNext = &e12;
        e11.storageBuffer16BitAccess = f11.storageBuffer16BitAccess;
        e12.shaderFloat16 = f12.shaderFloat16;
        e12.vulkanMemoryModel = f12.vulkanMemoryModel;
        tail = &e12.pNext;
        if (v13) {
            e13.maintenance4 = f13.maintenance4;
            e13.subgroupSizeControl = f13.subgroupSizeControl;
            *tail = &e13;
            tail = &e13.pNext;
        }
        std::vector<const char*> dev_exts;
        coopmat_enabled = coopmat_ext && fcm.cooperativeMatrix == VK_TRUE;
        if (coopmat_enabled) {
            ecm.cooperativeMatrix = VK_TRUE;
            *tail = &ecm;
            dev_exts.push_back(VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME);
        }
        if (has_ext("VK_KHR_portability_subset")) dev_exts.push_back("VK_KHR_portability_subset");

        const float priority = 1.0f;
        VkDeviceQueueCreateInfo qi{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
        qi.queueFamilyIndex = family;
        qi.queueCount = 1;
        qi.pQueuePriorities = &priority;
        VkDeviceCreateInfo di{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
        di.pNext = &en;
        di.queueCreateInfoCount = 1;
        di.pQueueCreateInfos = &qi;
        di.enabledExtensionCount = uint32_t(dev_exts.size());
        di.ppEnabledExtensionNames = dev_exts.data();
        if (load<PFN_vkCreateDevice>(gipa, instance, "vkCreateDevice")(physical, &di, nullptr, &device) != VK_SUCCESS)
            throw std::runtime_error("vkCreateDevice failed");
        auto gdpa = load<PFN_vkGetDeviceProcAddr>(gipa, instance, "vkGetDeviceProcAddr");
        destroy_device = reinterpret_cast<PFN_vkDestroyDevice>(gdpa(device, "vkDestroyDevice"));
        device_wait_idle = reinterpret_cast<PFN_vkDeviceWaitIdle>(gdpa(device, "vkDeviceWaitIdle"));

        handles.instance = instance;
        handles.physical_device = physical;
        handles.device = device;
        handles.queue_family_index = family;
        handles.queue_index = 0;
        handles.get_instance_proc_addr = gipa;
        handles.instance_api_version = api_version;
        handles.storage_buffer_16bit_access = e11.storageBuffer16BitAccess == VK_TRUE;
        handles.shader_float16 = e12.shaderFloat16 == VK_TRUE;
        handles.vulkan_memory_model = e12.vulkanMemoryModel == VK_TRUE;
        handles.maintenance4 = v13 && e13.maintenance4 == VK_TRUE;
        handles.cooperative_matrix = coopmat_enabled;
        handles.subgroup_size_control = v13 && e13.subgroupSizeControl == VK_TRUE;
    }

    ~AppVulkan() {
        if (device != VK_NULL_HANDLE) destroy_device(device, nullptr);
        if (messenger != VK_NULL_HANDLE) destroy_messenger(instance, messenger, nullptr);
        if (instance != VK_NULL_HANDLE) destroy_instance(instance, nullptr);
    }
    AppVulkan(const AppVulkan&) = delete;
    AppVulkan& operator=(const AppVulkan&) = delete;
};

// vktrain's own log: validation is the application's business here, so only warnings and errors show.
vktrain::ContextOptions adopt_options() {
    vktrain::ContextOptions o = vkt_test::context_options();
    o.validation = false; // ignored when adopting; the application's instance has the layer
    return o;
}

float train_one_step(vktrain::Context& ctx) {
    const auto model = vktrain::Model::mlp(16, {8}, 4);
    vktrain::TrainerOptions opt;
    opt.precision = ctx.fp16_available() ? vktrain::Precision::mixed : vktrain::Precision::fp32;
    opt.batch_size = 8;
    vktrain::Trainer trainer(ctx, model, opt);
    const auto x = vkt_test::random_values(8 * 16, 7);
    const std::vector<int32_t> labels = {0, 1, 2, 3, 3, 2, 1, 0};
    return trainer.step(x.data(), labels.data(), 8).loss;
}

TEST(Interop, AdoptedDeviceTrainsAndIsLeftToTheApplication) {
    AppVulkan app;
    const auto& shared = vkt_test::context();
    {
        vktrain::Context ctx = vktrain::adopt_vulkan(app.handles, adopt_options());
        const auto& info = ctx.device_info();
        EXPECT_EQ(info.name, shared.device_info().name);
        EXPECT_EQ(info.vendor_id, shared.device_info().vendor_id);
        EXPECT_EQ(info.device_id, shared.device_info().device_id);
        EXPECT_EQ(info.driver_version, shared.device_info().driver_version);
        EXPECT_FALSE(vktrain::detail::ContextAccess::device(ctx).validation()); // vktrain made no messenger of its own
        EXPECT_EQ(vktrain::detail::ContextAccess::device(ctx).handle(), app.device);
        EXPECT_EQ(vktrain::detail::ContextAccess::device(ctx).physical(), app.physical);

        // Every feature vktrain uses was enabled where supported, so it can do what an owned context does.
        EXPECT_EQ(ctx.fp16_available(), shared.fp16_available());
        EXPECT_EQ(ctx.coopmat_available(), shared.coopmat_available());
        EXPECT_TRUE(!ctx.coopmat_available() || app.coopmat_enabled);
        if (vkt_test::expect_coopmat()) {
            EXPECT_TRUE(app.coopmat_enabled);
            EXPECT_TRUE(ctx.coopmat_available());
        }

        const float loss = train_one_step(ctx);
        EXPECT_TRUE(std::isfinite(loss)) << loss;
        EXPECT_GT(loss, 0.0f);
        EXPECT_GT(ctx.peak_allocated_bytes(), 0u);
    }
    // The Context is gone; the application's device and instance are still alive and usable.
    EXPECT_EQ(app.device_wait_idle(app.device), VK_SUCCESS);
    vktrain::Context again = vktrain::adopt_vulkan(app.handles, adopt_options());
    EXPECT_TRUE(std::isfinite(train_one_step(again)));
}

// Effective capability = enabled by the application ∧ supported ∧ allowed by the options.
TEST(Interop, FeaturesTheApplicationDidNotEnableAreNotUsed) {
    AppVulkan app;
    vktrain::VulkanHandles h = app.handles;
    h.cooperative_matrix = false;
    {
        vktrain::Context ctx = vktrain::adopt_vulkan(h, adopt_options());
        EXPECT_FALSE(ctx.coopmat_available());
        EXPECT_EQ(ctx.fp16_available(), app.handles.storage_buffer_16bit_access);
    }
    h.storage_buffer_16bit_access = false;
    {
        vktrain::Context ctx = vktrain::adopt_vulkan(h, adopt_options());
        EXPECT_FALSE(ctx.fp16_available());
        EXPECT_FALSE(ctx.device_info().storage_buffer_16bit);
        EXPECT_TRUE(std::isfinite(train_one_step(ctx))); // fp32
    }
    auto o = adopt_options();
    o.allow_coopmat = false;
    vktrain::Context ctx = vktrain::adopt_vulkan(app.handles, o);
    EXPECT_FALSE(ctx.coopmat_available());
}

TEST(Interop, BadHandlesAreClearErrors) {
    AppVulkan app;
    const auto adopt = [&](const vktrain::VulkanHandles& h) {
        return error_of([&] { vktrain::Context c = vktrain::adopt_vulkan(h, adopt_options()); });
    };
    auto h = app.handles;
    h.device = VK_NULL_HANDLE;
    EXPECT_NE(adopt(h).find("VulkanHandles::device is VK_NULL_HANDLE"), std::string::npos) << adopt(h);
    h = app.handles;
    h.instance = VK_NULL_HANDLE;
    EXPECT_NE(adopt(h).find("VulkanHandles::instance is VK_NULL_HANDLE"), std::string::npos) << adopt(h);
    h = app.handles;
    h.physical_device = VK_NULL_HANDLE;
    EXPECT_NE(adopt(h).find("VulkanHandles::physical_device is VK_NULL_HANDLE"), std::string::npos) << adopt(h);
    h = app.handles;
    h.get_instance_proc_addr = nullptr;
    EXPECT_NE(adopt(h).find("get_instance_proc_addr is null"), std::string::npos) << adopt(h);

    h = app.handles;
    h.queue_family_index = app.family_count + 3;
    EXPECT_NE(adopt(h).find("queue family " + std::to_string(app.family_count + 3) + " is out of range"),
              std::string::npos)
        << adopt(h);
    if (app.non_compute_family != UINT32_MAX) {
        h.queue_family_index = app.non_compute_family;
        EXPECT_NE(adopt(h).find("has no compute support"), std::string::npos) << adopt(h);
    }
    h = app.handles;
    h.queue_index = 1000;
    EXPECT_NE(adopt(h).find("queue index 1000 is out of range"), std::string::npos) << adopt(h);

    h = app.handles;
    h.instance_api_version = VK_API_VERSION_1_1;
    EXPECT_NE(adopt(h).find("vktrain needs 1.2 or newer"), std::string::npos) << adopt(h);

    // A physical device of another instance (the shared test context's).
    h = app.handles;
    h.physical_device = vkt_test::device().physical();
    EXPECT_NE(adopt(h).find("is not one of the"), std::string::npos) << adopt(h);

    // The application's device survived all of that.
    EXPECT_EQ(app.device_wait_idle(app.device), VK_SUCCESS);
}

} // namespace
