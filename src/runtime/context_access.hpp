// The library's access to a Context's device, which the public API does not expose.
#pragma once

#include <memory>

#include "vktrain/context.hpp"

namespace vktrain::detail {

struct ContextAccess {
    static runtime::Device& device(Context& c) { return c.device(); }
    static const runtime::Device& device(const Context& c) { return c.device(); }
    static std::shared_ptr<runtime::Device> shared_device(const Context& c) { return c.shared_device(); }
};

} // namespace vktrain::detail
