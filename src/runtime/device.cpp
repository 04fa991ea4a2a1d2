#include "runtime/device.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "runtime/memory.hpp"
#include "runtime/pipeline.hpp"

namespace vktrain::runtime {
namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return s;
}

// volk fills a device table through the loader's vkGetDeviceProcAddr, which it keeps in a process-wide
// pointer; setting it is idempotent (every instance of one loader yields the same trampoline).
std::mutex g_volk_mutex;

} // namespace

uint32_t choose_physical_device(const std::vector<DeviceCaps>& all, const ContextOptions& options) {
    VKT_CHECK(!all.empty(), "no Vulkan device found (is a Vulkan driver such as mesa-vulkan-drivers installed?)");
    if (options.device_index >= 0) {
        VKT_CHECK(size_t(options.device_index) < all.size(), "device index ", options.device_index,
                  " is out of range: ", all.size(), " device(s) found (see `vktrain devices`)");
        return uint32_t(options.device_index);
    }
    if (!options.device_name.empty()) {
        const std::string want = lower(options.device_name);
        for (size_t i = 0; i < all.size(); ++i)
            if (lower(all[i].info.name).find(want) != std::string::npos) return uint32_t(i);
        VKT_FAIL("no Vulkan device name contains '", options.device_name, "' (see `vktrain devices`)");
    }
    uint32_t best = 0;
    for (uint32_t i = 1; i < all.size(); ++i)
        if (device_type_score(all[i].info.type) > device_type_score(all[best].info.type)) best = i;
    return best;
}

std::string resolve_cache_dir(const std::string& requested) {
    if (requested == "none") return {};
    if (!requested.empty()) return requested;
    if (const char* env = std::getenv("VKTRAIN_CACHE_DIR")) return env[0] && std::strcmp(env, "none") ? env : "";
    if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && xdg[0]) return std::string(xdg) + "/vktrain";
    if (const char* home = std::getenv("HOME"); home && home[0]) return std::string(home) + "/.cache/vktrain";
    return {};
}

Device::Device(const ContextOptions& options)
    : m_logger(options.log, options.log_level), m_instance(std::make_unique<Instance>(options.validation, &m_logger)) {
    const auto physicals = m_instance->physical_devices();
    std::vector<DeviceCaps> all;
    for (uint32_t i = 0; i < physicals.size(); ++i) all.push_back(query_caps(*m_instance, physicals[i], i));
    const uint32_t chosen = choose_physical_device(all, options);
    m_physical = physicals[chosen];
    m_caps = all[chosen];
    const DeviceInfo& info = m_caps.info;
    VKT_CHECK(m_caps.queue_family != UINT32_MAX, "device '", info.name, "' has no compute queue");
    VKT_CHECK(m_caps.api_version >= VK_API_VERSION_1_2, "device '", info.name, "' supports Vulkan ", info.api_version,
              "; vktrain needs 1.2 or newer");

    m_fp16_enabled = options.allow_fp16 && info.storage_buffer_16bit;
    m_coopmat_enabled = options.allow_coopmat && m_fp16_enabled && m_caps.coopmat_usable();

    // Features: enable what a path needs and the device has.
    VkPhysicalDeviceFeatures2 feats{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    VkPhysicalDeviceVulkan11Features f11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
    VkPhysicalDeviceVulkan12Features f12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceVulkan13Features f13{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
    VkPhysicalDeviceCooperativeMatrixFeaturesKHR fcm{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR};
    feats.pNext = &f11;
    f11.pNext = &f12;
    f11.storageBuffer16BitAccess = m_fp16_enabled ? VK_TRUE : VK_FALSE;
    f12.shaderFloat16 = info.shader_float16 && m_fp16_enabled ? VK_TRUE : VK_FALSE;
    f12.vulkanMemoryModel = m_caps.vulkan_memory_model ? VK_TRUE : VK_FALSE;
    void** tail = &f12.pNext;
    if (m_caps.api_version >= VK_API_VERSION_1_3) {
        f13.maintenance4 = m_caps.maintenance4 ? VK_TRUE : VK_FALSE;
        f13.subgroupSizeControl = info.subgroup_size_control ? VK_TRUE : VK_FALSE;
        f13.computeFullSubgroups = m_caps.compute_full_subgroups ? VK_TRUE : VK_FALSE;
        *tail = &f13;
        tail = &f13.pNext;
    }
    std::vector<const char*> extensions;
    if (m_coopmat_enabled) {
        fcm.cooperativeMatrix = VK_TRUE;
        *tail = &fcm;
        extensions.push_back(VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME);
    }
    if (m_caps.portability_subset) extensions.push_back("VK_KHR_portability_subset");

    const float priority = 1.0f;
    VkDeviceQueueCreateInfo qinfo{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
    qinfo.queueFamilyIndex = m_caps.queue_family;
    qinfo.queueCount = 1;
    qinfo.pQueuePriorities = &priority;
    VkDeviceCreateInfo dinfo{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
    dinfo.pNext = &feats;
    dinfo.queueCreateInfoCount = 1;
    dinfo.pQueueCreateInfos = &qinfo;
    dinfo.enabledExtensionCount = uint32_t(extensions.size());
    dinfo.ppEnabledExtensionNames = extensions.data();
    VK_CHECK(m_instance->fn().vkCreateDevice(m_physical, &dinfo, nullptr, &m_device));
    {
        std::lock_guard<std::mutex> lock(g_volk_mutex);
        volkLoadInstanceOnly(m_instance->handle());
        volkLoadDeviceTable(&m_fn, m_device);
    }
    m_fn.vkGetDeviceQueue(m_device, m_caps.queue_family, 0, &m_queue);
    m_allocator = create_allocator(*this, *m_instance);
    m_cache_dir = resolve_cache_dir(options.cache_dir);
    m_pipelines = std::make_unique<PipelineCache>(*this);
    m_logger.info(detail::concat("device: ", info.name, " (", info.driver_name, " ", info.driver_info, "), coopmat ",
                                 m_coopmat_enabled ? "on" : "off", ", fp16 ", m_fp16_enabled ? "on" : "off"));
}

Device::~Device() {
    if (m_device != VK_NULL_HANDLE) m_fn.vkDeviceWaitIdle(m_device);
    m_pipelines.reset();
    if (m_allocator) destroy_allocator(m_allocator);
    if (m_allocated.load() != 0)
        m_logger.warning(
            detail::concat(m_allocated.load(), " bytes of device memory still allocated at device destruction"));
    if (m_device != VK_NULL_HANDLE) m_fn.vkDestroyDevice(m_device, nullptr);
}

std::string Device::cache_key() const {
    std::string uuid;
    static const char* hex = "0123456789abcdef";
    for (uint8_t b : m_caps.pipeline_cache_uuid) {
        uuid += hex[b >> 4];
        uuid += hex[b & 15];
    }
    return detail::concat(std::hex, m_caps.info.vendor_id, "-", m_caps.info.device_id, "-", m_caps.info.driver_version,
                          "-", uuid);
}

void Device::on_allocate(uint64_t bytes) {
    const uint64_t now = m_allocated.fetch_add(bytes) + bytes;
    uint64_t peak = m_peak.load();
    while (now > peak && !m_peak.compare_exchange_weak(peak, now)) {
    }
}

void Device::on_free(uint64_t bytes) {
    m_allocated.fetch_sub(bytes);
}

void Device::count_dispatches(const std::map<std::string, uint64_t>& counts) {
    std::lock_guard<std::mutex> lock(m_count_mutex);
    for (const auto& [name, n] : counts) m_dispatch_counts[name] += n;
}

uint64_t Device::dispatch_count(const std::string& prefix) const {
    std::lock_guard<std::mutex> lock(m_count_mutex);
    uint64_t total = 0;
    for (const auto& [name, n] : m_dispatch_counts)
        if (name.compare(0, prefix.size(), prefix) == 0) total += n;
    return total;
}

} // namespace vktrain::runtime
