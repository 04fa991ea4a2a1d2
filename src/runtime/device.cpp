#include "runtime/device.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "common/parallel.hpp"
#include "runtime/memory.hpp"
#include "runtime/pipeline.hpp"
#include "vktrain/vulkan_interop.hpp"

namespace vktrain::runtime {
namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return s;
}

// volk fills a device table through its process-wide vkGetDeviceProcAddr pointer; it is pointed at the
// device's instance's own vkGetDeviceProcAddr for the duration of the load, under this lock.
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
    choose_paths(options);

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
    finish_setup(options, 0);
}

Device::Device(const VulkanHandles& h, const ContextOptions& options)
    : m_logger(options.log, options.log_level), m_owns_device(false) {
    VKT_CHECK(h.instance != VK_NULL_HANDLE, "adopt_vulkan: VulkanHandles::instance is VK_NULL_HANDLE");
    VKT_CHECK(h.get_instance_proc_addr != nullptr, "adopt_vulkan: VulkanHandles::get_instance_proc_addr is null");
    VKT_CHECK(h.physical_device != VK_NULL_HANDLE, "adopt_vulkan: VulkanHandles::physical_device is VK_NULL_HANDLE");
    VKT_CHECK(h.device != VK_NULL_HANDLE, "adopt_vulkan: VulkanHandles::device is VK_NULL_HANDLE");
    VKT_CHECK(h.instance_api_version >= VK_API_VERSION_1_2, "adopt_vulkan: the instance was created for Vulkan ",
              VK_API_VERSION_MAJOR(h.instance_api_version), ".", VK_API_VERSION_MINOR(h.instance_api_version),
              " (VulkanHandles::instance_api_version); vktrain needs 1.2 or newer");
    m_instance = std::make_unique<Instance>(h.instance, h.get_instance_proc_addr, &m_logger);
    const InstanceFunctions& ifn = m_instance->fn();

    const auto physicals = m_instance->physical_devices();
    const auto found = std::find(physicals.begin(), physicals.end(), h.physical_device);
    VKT_CHECK(found != physicals.end(), "adopt_vulkan: VulkanHandles::physical_device is not one of the ",
              physicals.size(), " physical device(s) of VulkanHandles::instance");
    m_physical = h.physical_device;
    m_caps = query_caps(*m_instance, m_physical, uint32_t(found - physicals.begin()));
    DeviceInfo& info = m_caps.info;
    VKT_CHECK(m_caps.api_version >= VK_API_VERSION_1_2, "adopt_vulkan: device '", info.name, "' supports Vulkan ",
              info.api_version, "; vktrain needs 1.2 or newer");

    uint32_t family_count = 0;
    ifn.vkGetPhysicalDeviceQueueFamilyProperties(m_physical, &family_count, nullptr);
    std::vector<VkQueueFamilyProperties> families(family_count);
    ifn.vkGetPhysicalDeviceQueueFamilyProperties(m_physical, &family_count, families.data());
    VKT_CHECK(h.queue_family_index < family_count, "adopt_vulkan: queue family ", h.queue_family_index,
              " is out of range: device '", info.name, "' has ", family_count, " queue famil",
              family_count == 1 ? "y" : "ies");
    const VkQueueFamilyProperties& family = families[h.queue_family_index];
    VKT_CHECK(family.queueFlags & VK_QUEUE_COMPUTE_BIT, "adopt_vulkan: queue family ", h.queue_family_index,
              " of device '", info.name, "' has no compute support (VK_QUEUE_COMPUTE_BIT)");
    VKT_CHECK(h.queue_index < family.queueCount, "adopt_vulkan: queue index ", h.queue_index,
              " is out of range: queue family ", h.queue_family_index, " has ", family.queueCount, " queue(s)");

    // What vktrain may use: enabled by the application ∧ supported, at the lower of the two API versions.
    m_caps.api_version = std::min(m_caps.api_version, h.instance_api_version);
    const bool v13 = m_caps.api_version >= VK_API_VERSION_1_3;
    info.storage_buffer_16bit = info.storage_buffer_16bit && h.storage_buffer_16bit_access;
    info.shader_float16 = info.shader_float16 && h.shader_float16;
    info.coopmat_feature = info.coopmat_feature && h.cooperative_matrix;
    info.subgroup_size_control = v13 && info.subgroup_size_control && h.subgroup_size_control;
    if (!info.subgroup_size_control) info.min_subgroup_size = info.max_subgroup_size = info.subgroup_size;
    m_caps.vulkan_memory_model = m_caps.vulkan_memory_model && h.vulkan_memory_model;
    m_caps.maintenance4 = v13 && m_caps.maintenance4 && h.maintenance4;
    m_caps.compute_full_subgroups = false; // not reported by the application; nothing relies on it
    m_caps.queue_family = h.queue_family_index;
    m_caps.timestamp_valid_bits = family.timestampValidBits;
    VkPhysicalDeviceProperties props{};
    ifn.vkGetPhysicalDeviceProperties(m_physical, &props);
    info.timestamps = family.timestampValidBits > 0 && props.limits.timestampComputeAndGraphics;
    choose_paths(options);
    if (options.device_index >= 0 || !options.device_name.empty() || options.validation)
        m_logger.info("adopt_vulkan: ContextOptions::device_index, device_name and validation are ignored (the "
                      "application chose the device and created the instance)");

    m_device = h.device;
    finish_setup(options, h.queue_index);
}

void Device::choose_paths(const ContextOptions& options) {
    m_fp16_enabled = options.allow_fp16 && m_caps.info.storage_buffer_16bit;
    m_coopmat_enabled = options.allow_coopmat && m_fp16_enabled && m_caps.coopmat_usable();
    m_unified_enabled = options.allow_unified_memory && m_caps.info.unified_memory;
    // The depthwise kernel stages 16 KiB in shared memory (kernels::plan_depthwise checks each shape's fit).
    m_depthwise_enabled = options.allow_depthwise_kernel && m_caps.info.max_shared_memory >= 16384;
    m_fusion_enabled = options.allow_fusion;
    // The fused attention kernels need Vulkan 1.1 and 16 KiB of shared memory (every device has both); whether a
    // shape fits them (head size) is decided per node (kernels::flash_attention_supported).
    m_fused_attention_min_bytes = options.fused_attention_min_score_bytes;
    if (m_caps.max_storage_buffer_range != 0)
        m_fused_attention_min_bytes = std::min(m_fused_attention_min_bytes, m_caps.max_storage_buffer_range);
    if (!options.allow_fused_attention || m_caps.info.max_shared_memory < 16384)
        m_fused_attention_min_bytes = UINT64_MAX;
    m_tune_tiles = options.tune_gemm_tiles;
    // The threads a CPU device runs workgroups on: lavapipe's LP_NUM_THREADS where set, else one per core.
    auto threads = uint32_t(std::min<size_t>(host_threads(), 1024));
    if (const char* lp = std::getenv("LP_NUM_THREADS"); lp && m_caps.info.type == "cpu") {
        char* end = nullptr;
        const unsigned long v = std::strtoul(lp, &end, 10);
        if (end != lp && *end == '\0') threads = uint32_t(std::clamp<unsigned long>(v, 1, 1024));
    }
    m_element_group_cap = m_caps.info.type == "cpu" ? std::min(65535u, std::max(16u, 8u * threads)) : 65535u;
}

// Shared by both constructors once m_device exists: function table, queue, allocator, pipeline cache.
// Owned: on failure the device is destroyed again (the destructor does not run for a throwing constructor).
void Device::finish_setup(const ContextOptions& options, uint32_t queue_index) {
    try {
        {
            // Through the instance's own vkGetDeviceProcAddr (the application's, when adopted), not
            // whatever volk's process-wide pointer holds.
            std::lock_guard<std::mutex> lock(g_volk_mutex);
            const PFN_vkGetDeviceProcAddr saved = vkGetDeviceProcAddr;
            vkGetDeviceProcAddr = m_instance->fn().vkGetDeviceProcAddr;
            volkLoadDeviceTable(&m_fn, m_device);
            vkGetDeviceProcAddr = saved;
        }
        VKT_CHECK(m_fn.vkGetDeviceQueue && m_fn.vkQueueSubmit && m_fn.vkDestroyDevice,
                  "vkGetDeviceProcAddr returned no core device functions");
        m_fn.vkGetDeviceQueue(m_device, m_caps.queue_family, queue_index, &m_queue);
        VKT_CHECK(m_queue != VK_NULL_HANDLE, "vkGetDeviceQueue returned no queue (family ", m_caps.queue_family,
                  ", index ", queue_index, ")");
        m_allocator = create_allocator(*this, *m_instance);
        m_cache_dir = resolve_cache_dir(options.cache_dir);
        m_pipelines = std::make_unique<PipelineCache>(*this);
    } catch (...) {
        release();
        throw;
    }
    const DeviceInfo& info = m_caps.info;
    m_logger.info(detail::concat("device: ", info.name, " (", info.driver_name, " ", info.driver_info, "), ",
                                 m_owns_device ? "" : "adopted, ", "coopmat ", m_coopmat_enabled ? "on" : "off",
                                 ", fp16 ", m_fp16_enabled ? "on" : "off"));
}

// Waits for vktrain's work, then destroys what vktrain created; an adopted VkDevice is left alone, and
// only vktrain's queue is waited on (vkDeviceWaitIdle would race with the application's other queues).
void Device::release() noexcept {
    if (m_device != VK_NULL_HANDLE) {
        if (m_owns_device && m_fn.vkDeviceWaitIdle) {
            m_fn.vkDeviceWaitIdle(m_device);
        } else if (!m_owns_device && m_queue != VK_NULL_HANDLE && m_fn.vkQueueWaitIdle) {
            std::lock_guard<std::mutex> lock(m_queue_mutex);
            m_fn.vkQueueWaitIdle(m_queue);
        }
    }
    m_pipelines.reset();
    if (m_allocator) destroy_allocator(m_allocator);
    m_allocator = nullptr;
    if (m_allocated.load() != 0)
        m_logger.warning(
            detail::concat(m_allocated.load(), " bytes of device memory still allocated at device destruction"));
    if (m_owns_device && m_device != VK_NULL_HANDLE) {
        if (m_fn.vkDestroyDevice) {
            m_fn.vkDestroyDevice(m_device, nullptr);
        } else if (auto destroy = reinterpret_cast<PFN_vkDestroyDevice>(
                       m_instance->fn().vkGetDeviceProcAddr(m_device, "vkDestroyDevice"))) {
            destroy(m_device, nullptr);
        }
    }
    m_device = VK_NULL_HANDLE;
}

Device::~Device() {
    release();
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
