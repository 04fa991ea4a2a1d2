// Buffers through VulkanMemoryAllocator: move-only RAII, host-visible ones persistently mapped, every
// allocation counted by the device (peak device memory is a reported number).
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/vk.hpp"

namespace vktrain_vma { // VulkanMemoryAllocator, compiled in its own namespace (memory.cpp)
struct VmaAllocator_T;
struct VmaAllocation_T;
} // namespace vktrain_vma

namespace vktrain::runtime {

class Device;
class Instance;

vktrain_vma::VmaAllocator_T* create_allocator(Device& device, const Instance& instance);
void destroy_allocator(vktrain_vma::VmaAllocator_T* allocator);

enum class MemoryKind {
    device,   // GPU-local; filled by copies and shaders
    upload,   // host-visible, written sequentially by the host, read by the device
    readback, // host-visible and cached, written by the device, read by the host
    shared,   // unified memory: device-local and mapped, read and written by both (never while a submission runs)
};

class Buffer {
public:
    Buffer() = default;
    Buffer(Device& device, uint64_t bytes, MemoryKind kind, const char* name = "");
    ~Buffer();
    Buffer(Buffer&& other) noexcept;
    Buffer& operator=(Buffer&& other) noexcept;
    Buffer(const Buffer&) = delete; // copies of GPU buffers are performance accidents
    Buffer& operator=(const Buffer&) = delete;

    VkBuffer handle() const { return m_buffer; }
    uint64_t size() const { return m_size; }
    MemoryKind kind() const { return m_kind; }
    bool valid() const { return m_buffer != VK_NULL_HANDLE; }
    void* mapped() const { return m_mapped; }

    // Host access for upload/readback/shared buffers (flushes/invalidates non-coherent memory).
    void write(const void* src, uint64_t bytes, uint64_t offset = 0);
    void read(void* dst, uint64_t bytes, uint64_t offset = 0) const;
    void flush(uint64_t offset, uint64_t bytes);            // after writing through mapped()
    void invalidate(uint64_t offset, uint64_t bytes) const; // before reading through mapped()

private:
    void release() noexcept;

    Device* m_device = nullptr;
    VkBuffer m_buffer = VK_NULL_HANDLE;
    vktrain_vma::VmaAllocation_T* m_allocation = nullptr;
    uint64_t m_size = 0;
    uint64_t m_allocated = 0;
    MemoryKind m_kind = MemoryKind::device;
    void* m_mapped = nullptr;
};

} // namespace vktrain::runtime
