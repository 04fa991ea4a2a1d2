#include "runtime/vk.hpp"

#include <cstring>
#include <string>

namespace vktrain::runtime {

const char* vk_result_name(VkResult result) {
    switch (result) {
#define VKT_CASE(x)                                                                                                    \
    case x: return #x;
        VKT_CASE(VK_SUCCESS)
        VKT_CASE(VK_NOT_READY)
        VKT_CASE(VK_TIMEOUT)
        VKT_CASE(VK_INCOMPLETE)
        VKT_CASE(VK_ERROR_OUT_OF_HOST_MEMORY)
        VKT_CASE(VK_ERROR_OUT_OF_DEVICE_MEMORY)
        VKT_CASE(VK_ERROR_INITIALIZATION_FAILED)
        VKT_CASE(VK_ERROR_DEVICE_LOST)
        VKT_CASE(VK_ERROR_MEMORY_MAP_FAILED)
        VKT_CASE(VK_ERROR_LAYER_NOT_PRESENT)
        VKT_CASE(VK_ERROR_EXTENSION_NOT_PRESENT)
        VKT_CASE(VK_ERROR_FEATURE_NOT_PRESENT)
        VKT_CASE(VK_ERROR_INCOMPATIBLE_DRIVER)
        VKT_CASE(VK_ERROR_TOO_MANY_OBJECTS)
        VKT_CASE(VK_ERROR_FORMAT_NOT_SUPPORTED)
        VKT_CASE(VK_ERROR_FRAGMENTED_POOL)
        VKT_CASE(VK_ERROR_UNKNOWN)
        VKT_CASE(VK_ERROR_OUT_OF_POOL_MEMORY)
        VKT_CASE(VK_ERROR_INVALID_EXTERNAL_HANDLE)
        VKT_CASE(VK_ERROR_FRAGMENTATION)
        VKT_CASE(VK_PIPELINE_COMPILE_REQUIRED)
#undef VKT_CASE
    default: return "VK_ERROR_(unrecognised)";
    }
}

void throw_vk_error(VkResult result, const char* call, const char* file, int line) {
    std::string name(call);
    const size_t paren = name.find('(');
    if (paren != std::string::npos) name.resize(paren);
    detail::throw_error(file, line, detail::concat(name, " failed: ", vk_result_name(result), " (", int(result), ")"));
}

} // namespace vktrain::runtime
