// The logical device: one compute queue, a per-device function table (volk), the VMA allocator, the
// pipeline cache and the counters tests and reports read (memory peak, dispatches per kernel). Either
// created here (with its own instance) or adopted from the application (vktrain/vulkan_interop.hpp).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "runtime/caps.hpp"
#include "runtime/instance.hpp"
#include "runtime/logger.hpp"
#include "vktrain/context.hpp"

namespace vktrain_vma { // VulkanMemoryAllocator, compiled in its own namespace (memory.cpp)
struct VmaAllocator_T;
} // namespace vktrain_vma

namespace vktrain::runtime {

class PipelineCache;

class Device {
public:
    explicit Device(const ContextOptions& options);
    // Adopts the application's instance, device and queue; they are not destroyed here.
    Device(const VulkanHandles& handles, const ContextOptions& options);
    ~Device();
    Device(const Device&) = delete;
    Device& operator=(const Device&) = delete;

    const VolkDeviceTable& fn() const { return m_fn; }
    VkDevice handle() const { return m_device; }
    VkPhysicalDevice physical() const { return m_physical; }
    VkQueue queue() const { return m_queue; }
    vktrain_vma::VmaAllocator_T* allocator() const { return m_allocator; }
    const DeviceCaps& caps() const { return m_caps; }
    const Logger& logger() const { return m_logger; }
    PipelineCache& pipelines() { return *m_pipelines; }
    const std::string& cache_dir() const { return m_cache_dir; }
    bool validation() const { return m_instance->validation(); }

    // Effective capabilities: requested ∧ supported.
    bool coopmat_enabled() const { return m_coopmat_enabled; }
    bool fp16_enabled() const { return m_fp16_enabled; }
    // Attention nodes with a smaller unfused score matrix run unfused (ContextOptions::fused_attention_min_score_bytes,
    // capped by the largest buffer range the device binds, which the unfused path cannot exceed); UINT64_MAX: every
    // node unfused (ContextOptions::allow_fused_attention off).
    uint64_t fused_attention_min_score_bytes() const { return m_fused_attention_min_bytes; }
    bool unified_memory_enabled() const { return m_unified_enabled; }
    bool depthwise_kernel_enabled() const { return m_depthwise_enabled; } // ContextOptions::allow_depthwise_kernel
    bool fusion_enabled() const { return m_fusion_enabled; }              // ContextOptions::allow_fusion
    // Programs time the tile configurations of each GEMM shape on its path (kernels::choose_gemm_tile).
    bool tune_tiles_enabled() const { return m_tune_tiles; }
    // Tile choices made on this device so far ("<path>|<shape key>" -> tile name), so that programs sharing it
    // measure a shape once even without a cache directory. Guarded by kernels' tuning lock.
    std::map<std::string, std::string>& tile_memo() { return m_tile_memo; }
    // Seconds spent timing convolution tiles on this device (kernels::k_tile_tuning_budget_s bounds it).
    double& tile_tuning_seconds() { return m_tile_tuning_seconds; }
    // Most workgroups a grid-stride element-wise kernel is given (kernels::element_groups). A CPU device such as
    // lavapipe runs each workgroup as one call of the compiled shader on one of its threads, and that fixed cost per
    // call dominated element-wise kernels: 8 workgroups per host thread, each looping, ran them 2-3.5x faster
    // (bench/elementwise_bench.cpp). GPUs get one invocation per element.
    uint32_t element_group_cap() const { return m_element_group_cap; }
    void set_element_group_cap(uint32_t cap) { m_element_group_cap = cap < 1 ? 1 : cap > 65535 ? 65535 : cap; } // tests

    // A stable key for per-device caches: vendor, device, driver version and pipeline-cache UUID.
    std::string cache_key() const;

    // Memory accounting, fed by Buffer.
    void on_allocate(uint64_t bytes);
    void on_free(uint64_t bytes);
    uint64_t allocated_bytes() const { return m_allocated.load(); }
    uint64_t peak_allocated_bytes() const { return m_peak.load(); }

    // Executed dispatches per kernel variant name (counted when a sequence finishes on the queue).
    void count_dispatches(const std::map<std::string, uint64_t>& counts);
    uint64_t dispatch_count(const std::string& prefix) const; // sum over variants starting with prefix

    // Serialises queue submissions (a VkQueue must be externally synchronised).
    std::mutex& queue_mutex() { return m_queue_mutex; }

    bool adopted() const { return !m_owns_device; }

private:
    void choose_paths(const ContextOptions& options);
    void finish_setup(const ContextOptions& options, uint32_t queue_index);
    void release() noexcept;

    Logger m_logger;
    std::unique_ptr<Instance> m_instance;
    VkPhysicalDevice m_physical = VK_NULL_HANDLE;
    DeviceCaps m_caps;
    VkDevice m_device = VK_NULL_HANDLE;
    bool m_owns_device = true; // false: adopted, the application destroys it
    VolkDeviceTable m_fn{};
    VkQueue m_queue = VK_NULL_HANDLE;
    vktrain_vma::VmaAllocator_T* m_allocator = nullptr;
    std::unique_ptr<PipelineCache> m_pipelines;
    std::string m_cache_dir;
    bool m_coopmat_enabled = false;
    bool m_fp16_enabled = false;
    uint64_t m_fused_attention_min_bytes = UINT64_MAX;
    bool m_unified_enabled = false;
    bool m_depthwise_enabled = false;
    bool m_fusion_enabled = true;
    bool m_tune_tiles = true;
    std::map<std::string, std::string> m_tile_memo;
    double m_tile_tuning_seconds = 0;
    uint32_t m_element_group_cap = 65535;
    std::atomic<uint64_t> m_allocated{0};
    std::atomic<uint64_t> m_peak{0};
    mutable std::mutex m_count_mutex;
    std::map<std::string, uint64_t> m_dispatch_counts;
    std::mutex m_queue_mutex;
};

// Picks the physical device: by index, by name substring, else discrete > integrated > virtual > cpu.
uint32_t choose_physical_device(const std::vector<DeviceCaps>& all, const ContextOptions& options);

std::string resolve_cache_dir(const std::string& requested);

} // namespace vktrain::runtime
