#include "runtime/pipeline.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "kernels/spirv_table.hpp"
#include "runtime/device.hpp"

namespace vktrain::runtime {
namespace {

std::string kernel_key(const KernelDesc& d) {
    std::string key = d.variant;
    for (uint32_t s : d.spec) key += detail::concat(":", s);
    key += detail::concat("/", d.bindings, "/", d.push_size, "/", d.required_subgroup_size);
    return key;
}

} // namespace

PipelineCache::PipelineCache(Device& device) : m_device(device) {
    std::vector<char> data;
    const std::string path = file_path();
    if (!path.empty()) {
        std::ifstream in(path, std::ios::binary);
        if (in) data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    VkPipelineCacheCreateInfo info{VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
    // Drivers validate the header (vendor, device, UUID) and ignore data that is not theirs.
    info.initialDataSize = data.size();
    info.pInitialData = data.empty() ? nullptr : data.data();
    if (m_device.fn().vkCreatePipelineCache(m_device.handle(), &info, nullptr, &m_cache) != VK_SUCCESS) {
        m_device.logger().warning("pipeline cache file " + path + " was rejected; starting an empty cache");
        info.initialDataSize = 0;
        info.pInitialData = nullptr;
        VK_CHECK(m_device.fn().vkCreatePipelineCache(m_device.handle(), &info, nullptr, &m_cache));
    }
}

PipelineCache::~PipelineCache() {
    try {
        save();
    } catch (const std::exception& e) {
        m_device.logger().warning_once("cache-write:" + m_device.cache_dir(),
                                       std::string("could not save the pipeline cache: ") + e.what());
    }
    const auto& fn = m_device.fn();
    for (auto& [key, k] : m_kernels) {
        fn.vkDestroyPipeline(m_device.handle(), k->pipeline, nullptr);
        fn.vkDestroyPipelineLayout(m_device.handle(), k->layout, nullptr);
        fn.vkDestroyDescriptorSetLayout(m_device.handle(), k->set_layout, nullptr);
    }
    fn.vkDestroyPipelineCache(m_device.handle(), m_cache, nullptr);
}

std::string PipelineCache::file_path() const {
    if (m_device.cache_dir().empty()) return {};
    return m_device.cache_dir() + "/pipelines-" + m_device.cache_key() + ".bin";
}

void PipelineCache::save() const {
    const std::string path = file_path();
    if (path.empty()) return;
    size_t size = 0;
    VK_CHECK(m_device.fn().vkGetPipelineCacheData(m_device.handle(), m_cache, &size, nullptr));
    std::vector<char> data(size);
    VK_CHECK(m_device.fn().vkGetPipelineCacheData(m_device.handle(), m_cache, &size, data.data()));
    std::error_code ec;
    std::filesystem::create_directories(m_device.cache_dir(), ec);
    const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out.write(data.data(), std::streamsize(size));
        if (!out) {
            std::remove(tmp.c_str());
            VKT_FAIL("cannot write ", tmp);
        }
    }
    std::filesystem::rename(tmp, path, ec);
    VKT_CHECK(!ec, "cannot rename ", tmp, " to ", path, ": ", ec.message());
}

size_t PipelineCache::size() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_kernels.size();
}

const Kernel& PipelineCache::get(const KernelDesc& desc) {
    std::lock_guard<std::mutex> lock(m_mutex);
    const std::string key = kernel_key(desc);
    if (auto it = m_kernels.find(key); it != m_kernels.end()) return *it->second;

    const kernels::SpirvBlob* blob = kernels::find_spirv(desc.variant);
    VKT_CHECK(blob, "no shader variant '", desc.variant, "' was built into this library");
    VKT_CHECK(desc.push_size <= m_device.caps().max_push_constants_size, "push constants of ", desc.push_size,
              " bytes exceed the device limit");
    const auto& fn = m_device.fn();
    VkDevice dev = m_device.handle();
    auto k = std::make_unique<Kernel>();
    k->variant = desc.variant;
    k->bindings = desc.bindings;
    k->push_size = desc.push_size;

    std::vector<VkDescriptorSetLayoutBinding> binds(desc.bindings);
    for (uint32_t i = 0; i < desc.bindings; ++i) {
        binds[i].binding = i;
        binds[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
        binds[i].descriptorCount = 1;
        binds[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
    }
    VkDescriptorSetLayoutCreateInfo dsl{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
    dsl.bindingCount = desc.bindings;
    dsl.pBindings = binds.data();
    VK_CHECK(fn.vkCreateDescriptorSetLayout(dev, &dsl, nullptr, &k->set_layout));

    VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0, desc.push_size};
    VkPipelineLayoutCreateInfo pl{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
    pl.setLayoutCount = 1;
    pl.pSetLayouts = &k->set_layout;
    pl.pushConstantRangeCount = desc.push_size ? 1 : 0;
    pl.pPushConstantRanges = desc.push_size ? &range : nullptr;
    if (fn.vkCreatePipelineLayout(dev, &pl, nullptr, &k->layout) != VK_SUCCESS) {
        fn.vkDestroyDescriptorSetLayout(dev, k->set_layout, nullptr);
        VKT_FAIL("vkCreatePipelineLayout failed for ", desc.variant);
    }

    VkShaderModuleCreateInfo sm{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
    sm.codeSize = blob->word_count * sizeof(uint32_t);
    sm.pCode = blob->words;
    VkShaderModule module = VK_NULL_HANDLE;
    VkResult r = fn.vkCreateShaderModule(dev, &sm, nullptr, &module);
    if (r == VK_SUCCESS) {
        std::vector<VkSpecializationMapEntry> entries(desc.spec.size());
        for (uint32_t i = 0; i < entries.size(); ++i) entries[i] = {i, i * 4u, 4u};
        VkSpecializationInfo spec{uint32_t(entries.size()), entries.data(), desc.spec.size() * 4, desc.spec.data()};
        VkPipelineShaderStageRequiredSubgroupSizeCreateInfo rss{
            VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO};
        rss.requiredSubgroupSize = desc.required_subgroup_size;
        VkComputePipelineCreateInfo ci{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
        ci.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
        ci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
        ci.stage.module = module;
        ci.stage.pName = "main";
        ci.stage.pSpecializationInfo = entries.empty() ? nullptr : &spec;
        if (desc.required_subgroup_size) ci.stage.pNext = &rss;
        ci.layout = k->layout;
        r = fn.vkCreateComputePipelines(dev, m_cache, 1, &ci, nullptr, &k->pipeline);
        fn.vkDestroyShaderModule(dev, module, nullptr);
    }
    if (r != VK_SUCCESS) {
        fn.vkDestroyPipelineLayout(dev, k->layout, nullptr);
        fn.vkDestroyDescriptorSetLayout(dev, k->set_layout, nullptr);
        VKT_FAIL("creating the compute pipeline for '", desc.variant, "' failed: ", vk_result_name(r));
    }
    const Kernel& ref = *k;
    m_kernels.emplace(key, std::move(k));
    return ref;
}

} // namespace vktrain::runtime
