// Compute pipelines made from the embedded SPIR-V, keyed by variant + specialization constants, with a
// VkPipelineCache persisted per device and driver (so the driver's shader compile is paid once).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/vk.hpp"

namespace vktrain::runtime {

class Device;

struct KernelDesc {
    std::string variant;                 // a row name of shaders/variants.txt
    uint32_t bindings = 0;               // storage buffers at bindings 0..n-1
    uint32_t push_size = 0;              // bytes of push constants
    std::vector<uint32_t> spec;          // specialization constants with ids 0..n-1
    uint32_t required_subgroup_size = 0; // 0: the driver's choice
};

struct Kernel {
    std::string variant;
    uint32_t bindings = 0;
    uint32_t push_size = 0;
    VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
    VkPipelineLayout layout = VK_NULL_HANDLE;
    VkPipeline pipeline = VK_NULL_HANDLE;
};

class PipelineCache {
public:
    explicit PipelineCache(Device& device);
    ~PipelineCache(); // saves the cache file
    PipelineCache(const PipelineCache&) = delete;
    PipelineCache& operator=(const PipelineCache&) = delete;

    const Kernel& get(const KernelDesc& desc);
    size_t size() const;
    void save() const;
    std::string file_path() const;

private:
    Device& m_device;
    VkPipelineCache m_cache = VK_NULL_HANDLE;
    mutable std::mutex m_mutex;
    std::map<std::string, std::unique_ptr<Kernel>> m_kernels;
};

} // namespace vktrain::runtime
