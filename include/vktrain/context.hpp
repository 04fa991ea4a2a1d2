// A vktrain context: one Vulkan instance + device (owned, or adopted through vulkan_interop.hpp), its
// capabilities, memory allocator and pipeline cache. Several contexts may coexist; nothing is global.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vktrain/error.hpp"

namespace vktrain {

// One entry of vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR.
struct CoopMatShape {
    uint32_t m = 0, n = 0, k = 0;
    std::string a_type, b_type, c_type, result_type; // "f16", "f32", "s8", ...
    std::string scope;                               // "subgroup", "workgroup", ...
    bool saturating = false;
};

struct DeviceInfo {
    uint32_t index = 0;
    std::string name;
    std::string type; // discrete, integrated, virtual, cpu, other
    std::string driver_name, driver_info;
    uint32_t vendor_id = 0, device_id = 0, driver_version = 0;
    std::string api_version;     // "1.4.305"
    bool shader_float16 = false; // fp16 arithmetic in shaders
    bool storage_buffer_16bit = false;
    uint32_t subgroup_size = 0, min_subgroup_size = 0, max_subgroup_size = 0;
    bool subgroup_size_control = false;
    uint32_t max_shared_memory = 0;
    uint32_t max_workgroup_invocations = 0;
    bool timestamps = false;
    bool coopmat_extension = false; // VK_KHR_cooperative_matrix listed
    bool coopmat_feature = false;   // ...and its cooperativeMatrix feature bit set
    std::vector<CoopMatShape> coopmat_shapes;
    uint64_t device_memory_bytes = 0; // the largest device-local memory heap
    bool unified_memory = false;      // integrated GPU or CPU device whose device-local memory the host can map
};

// Which GEMM implementation a mixed-precision run may use. auto_select measures the candidates on
// first use (cached per device and driver) and keeps the fastest.
enum class GemmPath { auto_select, coopmat, tiled_fp16, fp32 };
const char* to_string(GemmPath path);

struct ContextOptions {
    int device_index = -1;            // >= 0: pick this physical device
    std::string device_name;          // non-empty: first device whose name contains this (case-insensitive)
    bool validation = false;          // enable VK_LAYER_KHRONOS_validation; its messages go to the log callback
    bool allow_coopmat = true;        // false forbids VK_KHR_cooperative_matrix even where supported
    bool allow_fp16 = true;           // false forces every path to fp32
    bool allow_unified_memory = true; // false keeps staging copies of weights and gradients even on unified memory
    bool tune_gemm_tiles = true;      // time each GEMM shape's tile configurations once (cached in cache_dir) and
                                      // run the fastest; false runs the device's default tiles
    std::string cache_dir;            // pipeline cache and GEMM-path choices; "" = $VKTRAIN_CACHE_DIR or
                                      // $XDG_CACHE_HOME/vktrain or ~/.cache/vktrain; "none" disables caching
    LogCallback log;                  // nullptr: warnings and errors to stderr
    LogLevel log_level = LogLevel::warning;
    // false runs attention unfused everywhere (the T x T score matrix materialised); true (the default) allows the
    // fused kernels (kernels/flash_attention.hpp) wherever the head size allows, for the attention nodes that
    // fused_attention_min_score_bytes selects.
    bool allow_fused_attention = true;
    // Attention nodes whose unfused score matrix (batch · heads · T² fp32 values) is smaller than this run unfused:
    // there the strided GEMMs are faster than the fused kernels today (measured on lavapipe: 1.5x at the GPT
    // recipe's context 128). Larger ones, and any the device could not bind unfused (maxStorageBufferRange), run
    // fused, in memory linear in the context. 0 fuses every node the head size allows.
    uint64_t fused_attention_min_score_bytes = uint64_t(64) << 20;
    // false runs depthwise convolutions (groups = c_in > 1) as one GEMM per group, like other grouped convolutions;
    // true (the default) runs them on their own kernel (shaders/depthwise_conv.comp) wherever the shape fits it.
    bool allow_depthwise_kernel = true;
    // false builds every graph unfused (one kernel per op: for comparisons and benchmarks); true (the default) lets
    // the IR's fusions (src/graph/fusion.hpp) fold a ReLU or GELU into its Linear's GEMM, and a residual add into
    // the following LayerNorm / RMSNorm, wherever they can prove it safe. The values are the same bits either way.
    bool allow_fusion = true;
};

namespace runtime {
class Device;
}
namespace detail {
struct ContextAccess; // the library's own access to the device (src/runtime/context_access.hpp)
}
struct VulkanHandles; // vktrain/vulkan_interop.hpp

class Context {
public:
    explicit Context(const ContextOptions& options = {});
    ~Context();
    Context(Context&&) noexcept;
    Context& operator=(Context&&) noexcept;
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    const DeviceInfo& device_info() const;
    // What this context may use: requested ∧ supported.
    bool coopmat_available() const;
    bool fp16_available() const;
    // Weights and gradients live in memory both sides map (no staging copies): unified memory devices.
    bool unified_memory_available() const;
    // Depthwise convolutions may run on their own kernel (ContextOptions::allow_depthwise_kernel ∧ 16 KiB of
    // shared memory); each shape is still checked against the kernel's limits.
    bool depthwise_kernel_available() const;
    // Bytes of device memory vktrain holds now / at most since the context was made.
    uint64_t allocated_bytes() const;
    uint64_t peak_allocated_bytes() const;

private:
    friend struct detail::ContextAccess;
    runtime::Device& device();
    const runtime::Device& device() const;
    std::shared_ptr<runtime::Device> shared_device() const; // keeps the device alive (trainers may outlive us)

    friend Context adopt_vulkan(const VulkanHandles& handles, const ContextOptions& options);
    explicit Context(std::unique_ptr<runtime::Device> device);
    std::shared_ptr<runtime::Device> m_device; // shared with the trainers made on it (they may outlive the Context)
};

// Every Vulkan device the loader reports, with capabilities (no device is created).
std::vector<DeviceInfo> list_devices(const ContextOptions& options = {});

} // namespace vktrain
