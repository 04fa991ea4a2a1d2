#include <algorithm>
#include "runtime/caps.hpp"

#include <cstring>

namespace vktrain::runtime {
namespace {

const char* component_name(VkComponentTypeKHR t) {
    switch (t) {
    case VK_COMPONENT_TYPE_FLOAT16_KHR: return "f16";
    case VK_COMPONENT_TYPE_FLOAT32_KHR: return "f32";
    case VK_COMPONENT_TYPE_FLOAT64_KHR: return "f64";
    case VK_COMPONENT_TYPE_SINT8_KHR: return "s8";
    case VK_COMPONENT_TYPE_SINT16_KHR: return "s16";
    case VK_COMPONENT_TYPE_SINT32_KHR: return "s32";
    case VK_COMPONENT_TYPE_SINT64_KHR: return "s64";
    case VK_COMPONENT_TYPE_UINT8_KHR: return "u8";
    case VK_COMPONENT_TYPE_UINT16_KHR: return "u16";
    case VK_COMPONENT_TYPE_UINT32_KHR: return "u32";
    case VK_COMPONENT_TYPE_UINT64_KHR: return "u64";
    default: return "other";
    }
}

const char* scope_name(VkScopeKHR s) {
    switch (s) {
    case VK_SCOPE_DEVICE_KHR: return "device";
    case VK_SCOPE_WORKGROUP_KHR: return "workgroup";
    case VK_SCOPE_SUBGROUP_KHR: return "subgroup";
    case VK_SCOPE_QUEUE_FAMILY_KHR: return "queue_family";
    default: return "other";
    }
}

const char* type_name(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu";
    default: return "other";
    }
}

std::string version_string(uint32_t v) {
    return detail::concat(VK_API_VERSION_MAJOR(v), ".", VK_API_VERSION_MINOR(v), ".", VK_API_VERSION_PATCH(v));
}

} // namespace

bool is_unified_memory(VkPhysicalDeviceType type, const VkPhysicalDeviceMemoryProperties& memory) {
    // Integrated GPUs and CPU devices share the host's memory. A discrete GPU's host-visible device-local
    // window (resizable BAR) is not counted: host reads from it cross the bus uncached.
    if (type != VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU && type != VK_PHYSICAL_DEVICE_TYPE_CPU) return false;
    uint32_t largest = UINT32_MAX;
    for (uint32_t h = 0; h < memory.memoryHeapCount; ++h)
        if ((memory.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) &&
            (largest == UINT32_MAX || memory.memoryHeaps[h].size > memory.memoryHeaps[largest].size))
            largest = h;
    const VkMemoryPropertyFlags want = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT | VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT;
    for (uint32_t t = 0; t < memory.memoryTypeCount; ++t)
        if (memory.memoryTypes[t].heapIndex == largest && (memory.memoryTypes[t].propertyFlags & want) == want)
            return true;
    return false;
}

int device_type_score(const std::string& type) {
    if (type == "discrete") return 4;
    if (type == "integrated") return 3;
    if (type == "virtual") return 2;
    if (type == "cpu") return 1;
    return 0;
}

bool DeviceCaps::coopmat_usable() const {
    // The coopmat shaders are SPIR-V 1.6 (Vulkan 1.3) with a spec-constant workgroup size (LocalSizeId,
    // which needs maintenance4), fp16 arithmetic and the Vulkan memory model.
    return info.coopmat_extension && info.coopmat_feature && !coopmat_f16_f32_shapes.empty() &&
           api_version >= VK_API_VERSION_1_3 && maintenance4 && vulkan_memory_model && info.shader_float16 &&
           info.storage_buffer_16bit;
}

DeviceCaps query_caps(const Instance& instance, VkPhysicalDevice physical, uint32_t index) {
    const InstanceFunctions& fn = instance.fn();
    DeviceCaps caps;
    DeviceInfo& info = caps.info;
    info.index = index;

    uint32_t ext_count = 0;
    VK_CHECK(fn.vkEnumerateDeviceExtensionProperties(physical, nullptr, &ext_count, nullptr));
    std::vector<VkExtensionProperties> exts(ext_count);
    VK_CHECK(fn.vkEnumerateDeviceExtensionProperties(physical, nullptr, &ext_count, exts.data()));
    auto has_ext = [&](const char* name) {
        for (const auto& e : exts)
            if (std::strcmp(e.extensionName, name) == 0) return true;
        return false;
    };
    info.coopmat_extension = has_ext(VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME);
    caps.portability_subset = has_ext("VK_KHR_portability_subset");

    VkPhysicalDeviceMemoryProperties memory{};
    fn.vkGetPhysicalDeviceMemoryProperties(physical, &memory);
    for (uint32_t h = 0; h < memory.memoryHeapCount; ++h)
        if (memory.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
            info.device_memory_bytes = std::max<uint64_t>(info.device_memory_bytes, memory.memoryHeaps[h].size);

    VkPhysicalDeviceProperties base{};
    fn.vkGetPhysicalDeviceProperties(physical, &base);
    caps.api_version = base.apiVersion;
    info.unified_memory = is_unified_memory(base.deviceType, memory);
    const bool v13 = base.apiVersion >= VK_API_VERSION_1_3;

    VkPhysicalDeviceProperties2 props{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    VkPhysicalDeviceVulkan11Properties p11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_PROPERTIES};
    VkPhysicalDeviceDriverProperties driver{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceSubgroupSizeControlProperties ssc{
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES};
    props.pNext = &p11;
    p11.pNext = &driver;
    if (v13) driver.pNext = &ssc;
    fn.vkGetPhysicalDeviceProperties2(physical, &props);

    VkPhysicalDeviceFeatures2 feats{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    VkPhysicalDeviceVulkan11Features f11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
    VkPhysicalDeviceVulkan12Features f12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceVulkan13Features f13{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
    VkPhysicalDeviceCooperativeMatrixFeaturesKHR fcm{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR};
    feats.pNext = &f11;
    f11.pNext = &f12;
    void** tail = &f12.pNext;
    if (v13) {
        *tail = &f13;
        tail = &f13.pNext;
    }
    if (info.coopmat_extension) *tail = &fcm;
    fn.vkGetPhysicalDeviceFeatures2(physical, &feats);

    info.name = base.deviceName;
    info.type = type_name(base.deviceType);
    info.driver_name = driver.driverName;
    info.driver_info = driver.driverInfo;
    info.vendor_id = base.vendorID;
    info.device_id = base.deviceID;
    info.driver_version = base.driverVersion;
    info.api_version = version_string(base.apiVersion);
    info.shader_float16 = f12.shaderFloat16 == VK_TRUE;
    info.storage_buffer_16bit = f11.storageBuffer16BitAccess == VK_TRUE;
    info.subgroup_size = p11.subgroupSize;
    info.subgroup_size_control = v13 && f13.subgroupSizeControl == VK_TRUE;
    info.min_subgroup_size = info.subgroup_size_control ? ssc.minSubgroupSize : p11.subgroupSize;
    info.max_subgroup_size = info.subgroup_size_control ? ssc.maxSubgroupSize : p11.subgroupSize;
    info.max_shared_memory = base.limits.maxComputeSharedMemorySize;
    info.max_workgroup_invocations = base.limits.maxComputeWorkGroupInvocations;
    info.coopmat_feature = info.coopmat_extension && fcm.cooperativeMatrix == VK_TRUE;
    caps.vulkan_memory_model = f12.vulkanMemoryModel == VK_TRUE;
    caps.maintenance4 = v13 && f13.maintenance4 == VK_TRUE;
    caps.compute_full_subgroups = v13 && f13.computeFullSubgroups == VK_TRUE;
    caps.min_storage_buffer_offset_alignment = base.limits.minStorageBufferOffsetAlignment;
    caps.max_push_constants_size = base.limits.maxPushConstantsSize;
    caps.max_storage_buffer_range = base.limits.maxStorageBufferRange;
    for (int i = 0; i < 3; ++i) caps.max_workgroup_count[i] = base.limits.maxComputeWorkGroupCount[i];
    caps.timestamp_period_ns = base.limits.timestampPeriod;
    std::memcpy(caps.pipeline_cache_uuid, base.pipelineCacheUUID, VK_UUID_SIZE);

    uint32_t qcount = 0;
    fn.vkGetPhysicalDeviceQueueFamilyProperties(physical, &qcount, nullptr);
    std::vector<VkQueueFamilyProperties> queues(qcount);
    fn.vkGetPhysicalDeviceQueueFamilyProperties(physical, &qcount, queues.data());
    for (uint32_t i = 0; i < qcount; ++i) {
        if (queues[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
            caps.queue_family = i;
            caps.timestamp_valid_bits = queues[i].timestampValidBits;
            break;
        }
    }
    info.timestamps = caps.timestamp_valid_bits > 0 && base.limits.timestampComputeAndGraphics;

    if (info.coopmat_extension && fn.vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR) {
        uint32_t n = 0;
        VK_CHECK(fn.vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR(physical, &n, nullptr));
        std::vector<VkCooperativeMatrixPropertiesKHR> list(n, {VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR});
        VK_CHECK(fn.vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR(physical, &n, list.data()));
        for (uint32_t i = 0; i < n; ++i) {
            const auto& p = list[i];
            CoopMatShape s;
            s.m = p.MSize;
            s.n = p.NSize;
            s.k = p.KSize;
            s.a_type = component_name(p.AType);
            s.b_type = component_name(p.BType);
            s.c_type = component_name(p.CType);
            s.result_type = component_name(p.ResultType);
            s.scope = scope_name(p.scope);
            s.saturating = p.saturatingAccumulation == VK_TRUE;
            info.coopmat_shapes.push_back(s);
            if (p.AType == VK_COMPONENT_TYPE_FLOAT16_KHR && p.BType == VK_COMPONENT_TYPE_FLOAT16_KHR &&
                p.CType == VK_COMPONENT_TYPE_FLOAT32_KHR && p.ResultType == VK_COMPONENT_TYPE_FLOAT32_KHR &&
                p.scope == VK_SCOPE_SUBGROUP_KHR)
                caps.coopmat_f16_f32_shapes.push_back(s);
        }
    }
    return caps;
}

} // namespace vktrain::runtime
