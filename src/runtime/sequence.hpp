// A recorded command buffer that can be replayed: dispatches, copies and fills, with the barriers
// between them derived from the declared accesses to byte ranges of buffers (read-after-write,
// write-after-read and write-after-write hazards, per range: two ops on disjoint parts of one arena do not
// wait for each other), descriptor sets allocated at record time and shared by every dispatch that binds the same
// ranges with the same layout, and optional timestamps.
// A sequence may be split into segments (one command buffer and fence each, submitted together in order): the host
// can wait for one segment and read what it wrote while the rest still runs.
#pragma once

#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/memory.hpp"
#include "runtime/pipeline.hpp"

namespace vktrain::runtime {

class Device;

enum class Access { read, write, read_write };

// A storage-buffer binding: the descriptor covers `range` bytes of `buffer` from `offset` (VK_WHOLE_SIZE: to the
// end); the offset must be a multiple of the device's minStorageBufferOffsetAlignment (kernels::operand() takes care
// of it). The kernel may touch less than the descriptor covers: hazards are tracked on [used_lo, used_hi) (absolute
// bytes of the buffer; both 0: the whole descriptor range), so descriptors can cover wide windows, shared by many
// dispatches, while two ops on disjoint parts of one window still need no barrier between them.
struct Binding {
    const Buffer* buffer = nullptr;
    Access access = Access::read;
    uint64_t offset = 0;
    uint64_t range = VK_WHOLE_SIZE;
    uint64_t used_lo = 0, used_hi = 0;
};

class Sequence {
public:
    explicit Sequence(Device& device, uint32_t max_timestamps = 0);
    ~Sequence();
    Sequence(const Sequence&) = delete;
    Sequence& operator=(const Sequence&) = delete;

    void begin(); // starts (re-)recording; previous contents are discarded
    void dispatch(const Kernel& kernel, const std::vector<Binding>& bindings, const void* push, uint32_t push_size,
                  uint32_t groups_x, uint32_t groups_y = 1, uint32_t groups_z = 1);
    void copy(const Buffer& src, const Buffer& dst, uint64_t bytes, uint64_t src_offset = 0, uint64_t dst_offset = 0);
    void fill(const Buffer& dst, uint32_t value, uint64_t bytes = VK_WHOLE_SIZE, uint64_t offset = 0);
    uint32_t timestamp(); // returns the query index
    // Ends a segment: everything recorded so far is visible to the host once wait_segment() returns for it.
    void split();
    void end(); // makes every write visible to the host

    uint32_t segments() const { return m_segments; } // of the last recording

    void submit_and_wait(); // replayable any number of times after end()
    // The same in parts: submit() returns at once; wait_segment(i) returns when segments 0..i have finished; wait()
    // when all have. A sequence is submitted again only after wait(); destroying one in flight waits for it.
    void submit();
    void wait_segment(uint32_t segment);
    void wait();
    // Nanoseconds between two timestamps of the last submission (0 when the device has no timestamps).
    double elapsed_ns(uint32_t from, uint32_t to) const;
    size_t dispatch_count() const { return m_dispatches; }
    // Descriptor sets the last recording allocated: one per distinct (layout, bound ranges), not one per dispatch.
    // Some drivers (lavapipe) map memory for every set, and a process may hold only so many maps.
    size_t descriptor_sets() const { return m_sets.size(); }
    uint64_t barrier_count() const { return m_barriers; } // pipeline barriers recorded since begin()

private:
    // An access since the last barrier: bytes [lo, hi) of one buffer.
    struct Pending {
        uint64_t lo = 0, hi = 0;
        VkPipelineStageFlags write_stages = 0;
        VkPipelineStageFlags read_stages = 0;
    };
    bool hazard(VkBuffer buffer, uint64_t lo, uint64_t hi, bool writes) const;
    void track(VkBuffer buffer, uint64_t lo, uint64_t hi, bool reads, bool writes, VkPipelineStageFlags stage);
    void barrier(VkPipelineStageFlags dst_stages);
    void host_barrier();
    void begin_command_buffer();
    void destroy() noexcept;
    VkDescriptorSet allocate_set(VkDescriptorSetLayout layout);
    VkDescriptorSet descriptor_set(const Kernel& kernel, const std::vector<Binding>& bindings);
    void check_map_budget();

    Device& m_device;
    VkCommandPool m_pool = VK_NULL_HANDLE;
    VkCommandBuffer m_cmd = VK_NULL_HANDLE; // the segment being recorded
    std::vector<VkCommandBuffer> m_cmds;    // one per segment, kept for re-recording
    uint32_t m_segments = 0;
    std::vector<VkFence> m_fences; // one per segment
    bool m_in_flight = false;
    VkQueryPool m_queries = VK_NULL_HANDLE;
    uint32_t m_max_timestamps = 0;
    uint32_t m_timestamps = 0;
    std::vector<uint64_t> m_timestamp_values;
    std::vector<VkDescriptorPool> m_desc_pools;
    uint32_t m_sets_in_pool = 0, m_pool_capacity = 0;
    // The sets of this recording by what they bind: the layout, then (buffer, offset, range) per binding.
    struct SetKeyHash {
        size_t operator()(const std::vector<uint64_t>& key) const noexcept;
    };
    std::unordered_map<std::vector<uint64_t>, VkDescriptorSet, SetKeyHash> m_sets;
    std::vector<uint64_t> m_key; // scratch
    size_t m_sets_at_check = 0;
    std::unordered_map<VkBuffer, std::vector<Pending>> m_pending;
    bool m_recording = false;
    bool m_recorded = false;
    size_t m_dispatches = 0;
    uint64_t m_barriers = 0;
    std::map<std::string, uint64_t> m_kernel_counts;
};

} // namespace vktrain::runtime
