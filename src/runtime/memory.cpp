#include "runtime/memory.hpp"

// Everything vk_mem_alloc.h includes, included first, so that its include guards keep them out of the namespace
// below (VMA's classes become vktrain_vma::..., and vma_rename.h prefixes its C entry points: an application that
// compiles VMA itself links with vktrain).
#include <algorithm>
#include <atomic>
#include <bit>
#include <cassert>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <type_traits>
#include <utility>

#include "runtime/device.hpp"
#include "vma_rename.h"

#define VMA_STATIC_VULKAN_FUNCTIONS 0
#define VMA_DYNAMIC_VULKAN_FUNCTIONS 1
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wparentheses"
#endif
#define VMA_IMPLEMENTATION
namespace vktrain_vma {
#include <vk_mem_alloc.h>
} // namespace vktrain_vma
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
using namespace vktrain_vma;

namespace vktrain::runtime {

VmaAllocator_T* create_allocator(Device& device, const Instance& instance) {
    VmaVulkanFunctions functions{};
    functions.vkGetInstanceProcAddr = instance.get_instance_proc_addr();
    functions.vkGetDeviceProcAddr = instance.fn().vkGetDeviceProcAddr;
    VmaAllocatorCreateInfo info{};
    info.physicalDevice = device.physical();
    info.device = device.handle();
    info.instance = instance.handle();
    info.pVulkanFunctions = &functions;
    info.vulkanApiVersion = device.caps().api_version >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : VK_API_VERSION_1_2;
    VmaAllocator allocator = nullptr;
    VK_CHECK(vmaCreateAllocator(&info, &allocator));
    return allocator;
}

void destroy_allocator(VmaAllocator_T* allocator) {
    vmaDestroyAllocator(allocator);
}

Buffer::Buffer(Device& device, uint64_t bytes, MemoryKind kind, const char* name)
    : m_device(&device), m_size(bytes), m_kind(kind) {
    VKT_CHECK(bytes > 0, "zero-sized buffer '", name, "'");
    VkBufferCreateInfo binfo{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    binfo.size = bytes;
    binfo.usage =
        VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    binfo.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
    VmaAllocationCreateInfo ainfo{};
    ainfo.usage = VMA_MEMORY_USAGE_AUTO;
    if (kind == MemoryKind::upload)
        ainfo.flags = VMA_ALLOCATION_CREATE_HOST_ACCESS_SEQUENTIAL_WRITE_BIT | VMA_ALLOCATION_CREATE_MAPPED_BIT;
    else if (kind == MemoryKind::readback)
        ainfo.flags = VMA_ALLOCATION_CREATE_HOST_ACCESS_RANDOM_BIT | VMA_ALLOCATION_CREATE_MAPPED_BIT;
    if (kind == MemoryKind::shared) {
        ainfo.usage = VMA_MEMORY_USAGE_AUTO_PREFER_DEVICE;
        ainfo.flags = VMA_ALLOCATION_CREATE_HOST_ACCESS_RANDOM_BIT | VMA_ALLOCATION_CREATE_MAPPED_BIT;
        ainfo.requiredFlags = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT | VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT;
    }
    VmaAllocationInfo out{};
    const VkResult r = vmaCreateBuffer(device.allocator(), &binfo, &ainfo, &m_buffer, &m_allocation, &out);
    if (r != VK_SUCCESS) VKT_FAIL("allocating ", bytes, " bytes for buffer '", name, "' failed: ", vk_result_name(r));
    if (kind != MemoryKind::device && !out.pMappedData) {
        vmaDestroyBuffer(device.allocator(), m_buffer, m_allocation);
        m_buffer = VK_NULL_HANDLE;
        VKT_FAIL("buffer '", name, "' (", bytes, " bytes) could not be mapped for the host");
    }
    m_mapped = out.pMappedData;
    m_allocated = out.size;
    m_device->on_allocate(m_allocated);
}

Buffer::~Buffer() {
    release();
}

void Buffer::release() noexcept {
    if (m_buffer != VK_NULL_HANDLE) {
        vmaDestroyBuffer(m_device->allocator(), m_buffer, m_allocation);
        m_device->on_free(m_allocated);
    }
    m_buffer = VK_NULL_HANDLE;
    m_allocation = nullptr;
    m_mapped = nullptr;
}

Buffer::Buffer(Buffer&& o) noexcept {
    *this = std::move(o);
}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
    if (this != &o) {
        release();
        m_device = std::exchange(o.m_device, nullptr);
        m_buffer = std::exchange(o.m_buffer, VK_NULL_HANDLE);
        m_allocation = std::exchange(o.m_allocation, nullptr);
        m_size = std::exchange(o.m_size, 0);
        m_allocated = std::exchange(o.m_allocated, 0);
        m_kind = o.m_kind;
        m_mapped = std::exchange(o.m_mapped, nullptr);
    }
    return *this;
}

void Buffer::write(const void* src, uint64_t bytes, uint64_t offset) {
    VKT_CHECK(m_mapped, "buffer is not host-visible");
    VKT_CHECK(offset + bytes <= m_size, "write of ", bytes, " bytes at ", offset, " overruns a ", m_size,
              "-byte buffer");
    std::memcpy(static_cast<char*>(m_mapped) + offset, src, bytes);
    flush(offset, bytes);
}

void Buffer::read(void* dst, uint64_t bytes, uint64_t offset) const {
    VKT_CHECK(m_mapped, "buffer is not host-visible");
    VKT_CHECK(offset + bytes <= m_size, "read of ", bytes, " bytes at ", offset, " overruns a ", m_size,
              "-byte buffer");
    invalidate(offset, bytes);
    std::memcpy(dst, static_cast<const char*>(m_mapped) + offset, bytes);
}

void Buffer::flush(uint64_t offset, uint64_t bytes) {
    VK_CHECK(vmaFlushAllocation(m_device->allocator(), m_allocation, offset, bytes));
}

void Buffer::invalidate(uint64_t offset, uint64_t bytes) const {
    VK_CHECK(vmaInvalidateAllocation(m_device->allocator(), m_allocation, offset, bytes));
}

} // namespace vktrain::runtime
