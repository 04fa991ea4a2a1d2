// Device capabilities, resolved once per physical device into one struct. Everything that chooses a
// path (fp16, cooperative matrix, subgroup size, shared memory) reads it; nothing re-queries Vulkan.
#pragma once

#include <string>
#include <vector>

#include "runtime/instance.hpp"
#include "vktrain/context.hpp"

namespace vktrain::runtime {

struct DeviceCaps {
    DeviceInfo info;                    // what the public API reports
    uint32_t api_version = 0;           // VkPhysicalDeviceProperties::apiVersion
    uint32_t queue_family = UINT32_MAX; // first family with compute
    uint32_t timestamp_valid_bits = 0;
    float timestamp_period_ns = 0.0f;
    uint8_t pipeline_cache_uuid[VK_UUID_SIZE] = {};
    uint64_t min_storage_buffer_offset_alignment = 0;
    uint32_t max_push_constants_size = 0;
    uint64_t max_storage_buffer_range = 0; // bytes one storage-buffer descriptor may cover
    uint32_t max_workgroup_count[3] = {0, 0, 0};
    // Features we may enable.
    bool vulkan_memory_model = false;
    bool maintenance4 = false;
    bool compute_full_subgroups = false;
    bool portability_subset = false;
    // A cooperative-matrix shape usable by the mixed GEMM: A, B f16, C and result f32, subgroup scope.
    std::vector<CoopMatShape> coopmat_f16_f32_shapes;

    // Cooperative matrix is usable at all (extension + feature bit + what its shaders need).
    bool coopmat_usable() const;
};

DeviceCaps query_caps(const Instance& instance, VkPhysicalDevice physical, uint32_t index);

// Device-local memory the host maps at full speed on the largest heap: integrated GPUs and CPU devices.
bool is_unified_memory(VkPhysicalDeviceType type, const VkPhysicalDeviceMemoryProperties& memory);

// discrete > integrated > virtual > cpu > other; a higher score is preferred.
int device_type_score(const std::string& type);

} // namespace vktrain::runtime
