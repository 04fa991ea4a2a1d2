#include "runtime/sequence.hpp"

#include <cstdio>
#include <cstring>
#include <mutex>

#include "runtime/device.hpp"

namespace vktrain::runtime {
namespace {
// Pools grow geometrically, so a long recording makes few of them and a short one (a timing run) stays small.
constexpr uint32_t k_first_pool_sets = 32;
constexpr uint32_t k_max_pool_sets = 4096;
constexpr uint32_t k_descriptors_per_set = 8; // a pool's storage-buffer descriptors per set (an average, not a cap)
// Memory maps: checked every k_sets_per_check new sets, each of which may cost one map; what must be left.
constexpr size_t k_sets_per_check = 256;
constexpr long k_map_reserve = 1024; // for everything else the process maps meanwhile
constexpr VkAccessFlags k_all_access =
    VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
} // namespace

Sequence::Sequence(Device& device, uint32_t max_timestamps) : m_device(device), m_max_timestamps(max_timestamps) {
    const auto& fn = m_device.fn();
    VkCommandPoolCreateInfo pinfo{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
    pinfo.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
    pinfo.queueFamilyIndex = m_device.caps().queue_family;
    VK_CHECK(fn.vkCreateCommandPool(m_device.handle(), &pinfo, nullptr, &m_pool));
    VkCommandBufferAllocateInfo ainfo{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    ainfo.commandPool = m_pool;
    ainfo.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ainfo.commandBufferCount = 1;
    VkFenceCreateInfo finfo{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VkResult r = fn.vkAllocateCommandBuffers(m_device.handle(), &ainfo, &m_cmd);
    if (r == VK_SUCCESS) m_cmds.push_back(m_cmd);
    VkFence fence = VK_NULL_HANDLE;
    if (r == VK_SUCCESS) r = fn.vkCreateFence(m_device.handle(), &finfo, nullptr, &fence);
    if (r == VK_SUCCESS) m_fences.push_back(fence);
    if (r == VK_SUCCESS && m_max_timestamps > 0 && m_device.caps().info.timestamps) {
        VkQueryPoolCreateInfo qinfo{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
        qinfo.queryType = VK_QUERY_TYPE_TIMESTAMP;
        qinfo.queryCount = m_max_timestamps;
        r = fn.vkCreateQueryPool(m_device.handle(), &qinfo, nullptr, &m_queries);
    }
    if (r != VK_SUCCESS) {
        destroy();
        throw_vk_error(r, "Sequence::Sequence", __FILE__, __LINE__);
    }
}

Sequence::~Sequence() {
    destroy();
}

void Sequence::destroy() noexcept {
    const auto& fn = m_device.fn();
    VkDevice dev = m_device.handle();
    if (m_in_flight) fn.vkWaitForFences(dev, m_segments, m_fences.data(), VK_TRUE, UINT64_MAX);
    m_in_flight = false;
    for (VkFence f : m_fences) fn.vkDestroyFence(dev, f, nullptr);
    m_fences.clear();
    for (VkDescriptorPool p : m_desc_pools) fn.vkDestroyDescriptorPool(dev, p, nullptr);
    m_desc_pools.clear();
    if (m_queries) fn.vkDestroyQueryPool(dev, m_queries, nullptr);
    if (m_pool) fn.vkDestroyCommandPool(dev, m_pool, nullptr);
    m_queries = VK_NULL_HANDLE;
    m_pool = VK_NULL_HANDLE;
}

VkDescriptorSet Sequence::allocate_set(VkDescriptorSetLayout layout) {
    const auto& fn = m_device.fn();
    for (int attempt = 0; attempt < 2; ++attempt) {
        if (!m_desc_pools.empty() && m_sets_in_pool < m_pool_capacity) {
            VkDescriptorSetAllocateInfo ainfo{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
            ainfo.descriptorPool = m_desc_pools.back();
            ainfo.descriptorSetCount = 1;
            ainfo.pSetLayouts = &layout;
            VkDescriptorSet set = VK_NULL_HANDLE;
            VkResult r = fn.vkAllocateDescriptorSets(m_device.handle(), &ainfo, &set);
            if (r == VK_SUCCESS) {
                ++m_sets_in_pool;
                return set;
            }
            if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL) VK_CHECK(r);
        }
        const uint32_t capacity =
            m_desc_pools.empty() ? k_first_pool_sets : std::min(m_pool_capacity * 2, k_max_pool_sets);
        VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, capacity * k_descriptors_per_set};
        VkDescriptorPoolCreateInfo pinfo{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
        pinfo.maxSets = capacity;
        pinfo.poolSizeCount = 1;
        pinfo.pPoolSizes = &size;
        VkDescriptorPool pool = VK_NULL_HANDLE;
        const VkResult r = fn.vkCreateDescriptorPool(m_device.handle(), &pinfo, nullptr, &pool);
        if (r != VK_SUCCESS)
            VKT_FAIL("could not make a descriptor pool for ", capacity, " more descriptor sets (", m_sets.size(),
                     " distinct ones after ", m_dispatches, " dispatches of this recording): ", vk_result_name(r));
        m_desc_pools.push_back(pool);
        m_sets_in_pool = 0;
        m_pool_capacity = capacity;
    }
    VKT_FAIL("could not allocate a descriptor set");
}

namespace {

template <typename Handle>
uint64_t handle_bits(Handle h) {
    static_assert(sizeof(Handle) <= sizeof(uint64_t), "a Vulkan handle wider than 64 bits");
    uint64_t v = 0;
    std::memcpy(&v, &h, sizeof(h));
    return v;
}

// The bytes [lo, hi) a binding's descriptor covers.
std::pair<uint64_t, uint64_t> byte_range(const Binding& b) {
    const uint64_t size = b.buffer->size();
    const uint64_t hi = b.range == VK_WHOLE_SIZE ? size : b.offset + b.range;
    return {b.offset, hi};
}

// The bytes [lo, hi) a binding's kernel touches (what hazards are tracked on).
std::pair<uint64_t, uint64_t> used_range(const Binding& b) {
    if (b.used_lo == 0 && b.used_hi == 0) return byte_range(b);
    return {b.used_lo, b.used_hi};
}

// The memory maps this process holds and the kernel's limit on them (vm.max_map_count); {0, 0} where unknown.
std::pair<long, long> memory_maps() {
    long limit = 0, held = 0;
#ifdef __linux__
    if (FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r")) {
        if (std::fscanf(f, "%ld", &limit) != 1) limit = 0;
        std::fclose(f);
    }
    if (limit <= 0) return {0, 0};
    FILE* f = std::fopen("/proc/self/maps", "r");
    if (!f) return {0, 0};
    char buf[1 << 14];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0)
        for (size_t i = 0; i < n; ++i) held += buf[i] == '\n';
    std::fclose(f);
#endif
    return {held, limit};
}

} // namespace

size_t Sequence::SetKeyHash::operator()(const std::vector<uint64_t>& key) const noexcept {
    uint64_t h = 1469598103934665603ull; // FNV-1a over the words, then a final mix
    for (uint64_t w : key) h = (h ^ w) * 1099511628211ull;
    return size_t(h ^ (h >> 29));
}

// Some drivers (lavapipe: every set is a separately mapped allocation) crash inside vkAllocateDescriptorSets when the
// process runs out of memory maps; an error that names the limit is better.
void Sequence::check_map_budget() {
    const auto [held, limit] = memory_maps();
    if (limit <= 0 || limit - held >= long(k_sets_per_check) + k_map_reserve) return;
    VKT_FAIL("out of memory maps: this process holds ", held, " of the kernel's limit of ", limit,
             " (vm.max_map_count), and a recording of ", m_dispatches, " dispatches has needed ", m_sets.size(),
             " distinct descriptor sets so far (some drivers map each one); raise vm.max_map_count or use a "
             "smaller model");
}

// One set per distinct (layout, bound ranges) in a recording: sets are written once, before any submission, and never
// changed, so dispatches that bind the same ranges can share one (kernels::operand() binds wide windows so that most
// do).
VkDescriptorSet Sequence::descriptor_set(const Kernel& kernel, const std::vector<Binding>& bindings) {
    m_key.clear();
    m_key.push_back(handle_bits(kernel.set_layout));
    for (const Binding& b : bindings) {
        const auto [lo, hi] = byte_range(b);
        m_key.push_back(handle_bits(b.buffer->handle()));
        m_key.push_back(lo);
        m_key.push_back(hi - lo);
    }
    if (const auto it = m_sets.find(m_key); it != m_sets.end()) return it->second;
    if (m_sets.size() >= m_sets_at_check + k_sets_per_check) {
        m_sets_at_check = m_sets.size();
        check_map_budget();
    }
    const VkDescriptorSet set = allocate_set(kernel.set_layout);
    std::vector<VkDescriptorBufferInfo> infos(bindings.size());
    std::vector<VkWriteDescriptorSet> writes(bindings.size());
    for (size_t i = 0; i < bindings.size(); ++i) {
        const auto [lo, hi] = byte_range(bindings[i]);
        infos[i] = {bindings[i].buffer->handle(), lo, hi - lo};
        writes[i] = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
        writes[i].dstSet = set;
        writes[i].dstBinding = uint32_t(i);
        writes[i].descriptorCount = 1;
        writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
        writes[i].pBufferInfo = &infos[i];
    }
    m_device.fn().vkUpdateDescriptorSets(m_device.handle(), uint32_t(writes.size()), writes.data(), 0, nullptr);
    m_sets.emplace(m_key, set);
    return set;
}

void Sequence::begin() {
    const auto& fn = m_device.fn();
    VKT_CHECK(!m_in_flight, "internal: a sequence re-recorded while in flight");
    for (VkCommandBuffer c : m_cmds) VK_CHECK(fn.vkResetCommandBuffer(c, 0));
    m_cmd = m_cmds[0];
    m_segments = 0;
    for (VkDescriptorPool p : m_desc_pools) fn.vkDestroyDescriptorPool(m_device.handle(), p, nullptr);
    m_desc_pools.clear();
    m_sets_in_pool = 0;
    m_pool_capacity = 0;
    m_sets.clear();
    m_sets_at_check = 0;
    m_pending.clear();
    m_dispatches = 0;
    m_barriers = 0;
    m_kernel_counts.clear();
    m_timestamps = 0;
    begin_command_buffer();
    if (m_queries) fn.vkCmdResetQueryPool(m_cmd, m_queries, 0, m_max_timestamps);
    // Order this replay after everything the host or an earlier submission wrote.
    VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = k_all_access | VK_ACCESS_HOST_WRITE_BIT;
    mb.dstAccessMask = k_all_access;
    fn.vkCmdPipelineBarrier(m_cmd, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT | VK_PIPELINE_STAGE_HOST_BIT,
                            VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, 0, 1, &mb, 0, nullptr, 0, nullptr);
    m_recording = true;
    m_recorded = false;
}

void Sequence::begin_command_buffer() {
    VkCommandBufferBeginInfo binfo{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    VK_CHECK(m_device.fn().vkBeginCommandBuffer(m_cmd, &binfo));
}

namespace {
// The access types a set of stages can perform (the validation layer checks masks against stages).
VkAccessFlags accesses_of(VkPipelineStageFlags stages, bool writes_only) {
    if (stages & VK_PIPELINE_STAGE_ALL_COMMANDS_BIT)
        return writes_only ? VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT : k_all_access;
    VkAccessFlags a = 0;
    if (stages & VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT)
        a |= writes_only ? VK_ACCESS_SHADER_WRITE_BIT : VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
    if (stages & VK_PIPELINE_STAGE_TRANSFER_BIT)
        a |= writes_only ? VK_ACCESS_TRANSFER_WRITE_BIT : VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    return a;
}
} // namespace

void Sequence::barrier(VkPipelineStageFlags dst_stages) {
    VkPipelineStageFlags src = 0, src_writes = 0;
    for (const auto& [buf, list] : m_pending)
        for (const Pending& p : list) {
            src |= p.write_stages | p.read_stages;
            src_writes |= p.write_stages;
        }
    if (src == 0) src = VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT;
    // One global memory barrier covers every pending hazard (read-after-write needs the writes made
    // available; write-after-read only needs the execution dependency).
    VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = accesses_of(src_writes, true);
    mb.dstAccessMask = accesses_of(dst_stages, false);
    m_device.fn().vkCmdPipelineBarrier(m_cmd, src, dst_stages, 0, 1, &mb, 0, nullptr, 0, nullptr);
    m_pending.clear();
    ++m_barriers;
}

// A new access to [lo, hi) conflicts with a pending one that overlaps it when either writes.
bool Sequence::hazard(VkBuffer buffer, uint64_t lo, uint64_t hi, bool writes) const {
    auto it = m_pending.find(buffer);
    if (it == m_pending.end()) return false;
    for (const Pending& p : it->second) {
        if (p.hi <= lo || hi <= p.lo) continue;
        if (p.write_stages) return true;          // RAW or WAW
        if (writes && p.read_stages) return true; // WAR
    }
    return false;
}

void Sequence::track(VkBuffer buffer, uint64_t lo, uint64_t hi, bool reads, bool writes, VkPipelineStageFlags stage) {
    std::vector<Pending>& list = m_pending[buffer];
    for (Pending& p : list)
        if (p.lo == lo && p.hi == hi) { // the same range again (e.g. read by two ops): merge
            if (reads) p.read_stages |= stage;
            if (writes) p.write_stages |= stage;
            return;
        }
    Pending p;
    p.lo = lo;
    p.hi = hi;
    if (reads) p.read_stages = stage;
    if (writes) p.write_stages = stage;
    list.push_back(p);
}

void Sequence::dispatch(const Kernel& kernel, const std::vector<Binding>& bindings, const void* push,
                        uint32_t push_size, uint32_t gx, uint32_t gy, uint32_t gz) {
    VKT_CHECK(m_recording, "dispatch outside begin()/end()");
    VKT_CHECK(bindings.size() == kernel.bindings, kernel.variant, " takes ", kernel.bindings, " buffers, got ",
              bindings.size());
    VKT_CHECK(push_size == kernel.push_size, kernel.variant, " takes ", kernel.push_size,
              " bytes of push constants, got ", push_size);
    if (gx == 0 || gy == 0 || gz == 0) return; // empty problem: nothing to do
    const auto& fn = m_device.fn();

    // Hazards against what is pending since the last barrier.
    bool need = false;
    const uint64_t max_range = m_device.caps().max_storage_buffer_range;
    for (const Binding& b : bindings) {
        VKT_CHECK(b.buffer && b.buffer->valid(), kernel.variant, ": null buffer binding");
        const auto [lo, hi] = byte_range(b);
        VKT_CHECK(lo < hi && hi <= b.buffer->size(), kernel.variant, ": binding [", lo, ", ", hi,
                  ") lies outside its buffer of ", b.buffer->size(), " bytes");
        VKT_CHECK(max_range == 0 || hi - lo <= max_range, kernel.variant, ": a binding of ", hi - lo,
                  " bytes exceeds the device's maxStorageBufferRange (", max_range, " bytes)");
        const auto [used_lo, used_hi] = used_range(b);
        VKT_CHECK(lo <= used_lo && used_lo <= used_hi && used_hi <= hi, "internal: ", kernel.variant,
                  ": a binding uses bytes [", used_lo, ", ", used_hi, ") outside its descriptor's [", lo, ", ", hi,
                  ")");
        need = need || hazard(b.buffer->handle(), used_lo, used_hi, b.access != Access::read);
    }
    if (need) barrier(VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT);

    const VkDescriptorSet set = descriptor_set(kernel, bindings);
    fn.vkCmdBindPipeline(m_cmd, VK_PIPELINE_BIND_POINT_COMPUTE, kernel.pipeline);
    fn.vkCmdBindDescriptorSets(m_cmd, VK_PIPELINE_BIND_POINT_COMPUTE, kernel.layout, 0, 1, &set, 0, nullptr);
    if (push_size) fn.vkCmdPushConstants(m_cmd, kernel.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, push_size, push);
    fn.vkCmdDispatch(m_cmd, gx, gy, gz);
    for (const Binding& b : bindings) {
        const auto [lo, hi] = used_range(b);
        track(b.buffer->handle(), lo, hi, b.access != Access::write, b.access != Access::read,
              VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT);
    }
    ++m_dispatches;
    ++m_kernel_counts[kernel.variant];
}

void Sequence::copy(const Buffer& src, const Buffer& dst, uint64_t bytes, uint64_t src_offset, uint64_t dst_offset) {
    VKT_CHECK(m_recording, "copy outside begin()/end()");
    VKT_CHECK(src_offset + bytes <= src.size() && dst_offset + bytes <= dst.size(), "copy of ", bytes,
              " bytes overruns a buffer");
    if (bytes == 0) return;
    if (hazard(src.handle(), src_offset, src_offset + bytes, false) ||
        hazard(dst.handle(), dst_offset, dst_offset + bytes, true))
        barrier(VK_PIPELINE_STAGE_TRANSFER_BIT);
    VkBufferCopy region{src_offset, dst_offset, bytes};
    m_device.fn().vkCmdCopyBuffer(m_cmd, src.handle(), dst.handle(), 1, &region);
    track(src.handle(), src_offset, src_offset + bytes, true, false, VK_PIPELINE_STAGE_TRANSFER_BIT);
    track(dst.handle(), dst_offset, dst_offset + bytes, false, true, VK_PIPELINE_STAGE_TRANSFER_BIT);
}

void Sequence::fill(const Buffer& dst, uint32_t value, uint64_t bytes, uint64_t offset) {
    VKT_CHECK(m_recording, "fill outside begin()/end()");
    VKT_CHECK(offset <= dst.size(), "fill from byte ", offset, " of a buffer of ", dst.size());
    const uint64_t hi = bytes == VK_WHOLE_SIZE ? dst.size() : offset + bytes;
    if (hazard(dst.handle(), offset, hi, true)) barrier(VK_PIPELINE_STAGE_TRANSFER_BIT);
    m_device.fn().vkCmdFillBuffer(m_cmd, dst.handle(), offset, bytes, value);
    track(dst.handle(), offset, hi, false, true, VK_PIPELINE_STAGE_TRANSFER_BIT);
}

uint32_t Sequence::timestamp() {
    VKT_CHECK(m_recording, "timestamp outside begin()/end()");
    VKT_CHECK(m_timestamps < m_max_timestamps, "more timestamps than the ", m_max_timestamps, " reserved");
    const uint32_t index = m_timestamps++;
    if (m_queries) {
        // Everything recorded so far must finish before the timestamp is taken.
        if (!m_pending.empty()) barrier(VK_PIPELINE_STAGE_ALL_COMMANDS_BIT);
        m_device.fn().vkCmdWriteTimestamp(m_cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, m_queries, index);
    }
    return index;
}

void Sequence::host_barrier() {
    VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    m_device.fn().vkCmdPipelineBarrier(m_cmd, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb,
                                       0, nullptr, 0, nullptr);
}

void Sequence::split() {
    VKT_CHECK(m_recording, "split() outside begin()/end()");
    // The pending accesses stay tracked: the next segment runs after this one on the same queue, so its barriers
    // still order it after what this one wrote.
    host_barrier();
    VK_CHECK(m_device.fn().vkEndCommandBuffer(m_cmd));
    ++m_segments;
    if (m_segments == m_cmds.size()) {
        VkCommandBufferAllocateInfo ainfo{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
        ainfo.commandPool = m_pool;
        ainfo.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
        ainfo.commandBufferCount = 1;
        VkCommandBuffer cmd = VK_NULL_HANDLE;
        VK_CHECK(m_device.fn().vkAllocateCommandBuffers(m_device.handle(), &ainfo, &cmd));
        m_cmds.push_back(cmd);
        VkFenceCreateInfo finfo{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        VkFence fence = VK_NULL_HANDLE;
        VK_CHECK(m_device.fn().vkCreateFence(m_device.handle(), &finfo, nullptr, &fence));
        m_fences.push_back(fence);
    }
    m_cmd = m_cmds[m_segments];
    begin_command_buffer();
}

void Sequence::end() {
    VKT_CHECK(m_recording, "end() without begin()");
    host_barrier();
    m_pending.clear();
    VK_CHECK(m_device.fn().vkEndCommandBuffer(m_cmd));
    ++m_segments;
    m_recording = false;
    m_recorded = true;
}

void Sequence::submit_and_wait() {
    submit();
    wait();
}

void Sequence::submit() {
    VKT_CHECK(m_recorded, "submit of a sequence that was not recorded (call begin()/end())");
    VKT_CHECK(!m_in_flight, "internal: a sequence submitted again before wait()");
    const auto& fn = m_device.fn();
    VK_CHECK(fn.vkResetFences(m_device.handle(), m_segments, m_fences.data()));
    {
        // One submission and fence per segment, in order on one queue. (A timeline semaphore signalled per batch of
        // one submission would do the same with one call, but lavapipe 25 crashed or hung in its queue thread on
        // that; fences are core Vulkan 1.0 and work on every device, adopted ones included.)
        std::lock_guard<std::mutex> lock(m_device.queue_mutex());
        for (uint32_t i = 0; i < m_segments; ++i) {
            VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
            si.commandBufferCount = 1;
            si.pCommandBuffers = &m_cmds[i];
            VK_CHECK(fn.vkQueueSubmit(m_device.queue(), 1, &si, m_fences[i]));
            m_in_flight = true;
        }
    }
}

void Sequence::wait_segment(uint32_t segment) {
    VKT_CHECK(m_in_flight, "internal: wait_segment() without submit()");
    VKT_CHECK(segment < m_segments, "internal: segment ", segment, " of ", m_segments);
    VK_CHECK(m_device.fn().vkWaitForFences(m_device.handle(), 1, &m_fences[segment], VK_TRUE, UINT64_MAX));
}

void Sequence::wait() {
    VKT_CHECK(m_in_flight, "internal: wait() without submit()");
    const auto& fn = m_device.fn();
    VK_CHECK(fn.vkWaitForFences(m_device.handle(), m_segments, m_fences.data(), VK_TRUE, UINT64_MAX));
    m_in_flight = false;
    m_device.count_dispatches(m_kernel_counts);
    if (m_queries && m_timestamps) {
        m_timestamp_values.assign(m_timestamps, 0);
        VK_CHECK(fn.vkGetQueryPoolResults(m_device.handle(), m_queries, 0, m_timestamps,
                                          m_timestamps * sizeof(uint64_t), m_timestamp_values.data(), sizeof(uint64_t),
                                          VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT));
    }
}

double Sequence::elapsed_ns(uint32_t from, uint32_t to) const {
    if (!m_queries || to >= m_timestamp_values.size() || from >= m_timestamp_values.size()) return 0.0;
    const uint32_t bits = m_device.caps().timestamp_valid_bits;
    const uint64_t mask = bits >= 64 ? ~0ull : ((1ull << bits) - 1);
    const uint64_t ticks = (m_timestamp_values[to] - m_timestamp_values[from]) & mask;
    return double(ticks) * double(m_device.caps().timestamp_period_ns);
}

} // namespace vktrain::runtime
