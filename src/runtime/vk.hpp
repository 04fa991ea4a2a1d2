// The one way vktrain's sources include Vulkan: volk (with its symbols renamed so they never clash with
// the host application's Vulkan use) plus a checked-call macro that carries file:line.
#pragma once

#include "volk_rename.h"
#include <volk.h>

#include "common/check.hpp"

namespace vktrain::runtime {

const char* vk_result_name(VkResult result);

[[noreturn]] void throw_vk_error(VkResult result, const char* call, const char* file, int line);

} // namespace vktrain::runtime

// Every VkResult is checked: a failure throws vktrain::Error("vkFoo failed: VK_ERROR_... (file:line)").
#define VK_CHECK(call)                                                                                                 \
    do {                                                                                                               \
        VkResult vkt_result_ = (call);                                                                                 \
        if (vkt_result_ != VK_SUCCESS) ::vktrain::runtime::throw_vk_error(vkt_result_, #call, __FILE__, __LINE__);     \
    } while (0)
