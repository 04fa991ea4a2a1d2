// Model architectures from JSON (weights files record them): shape inference and every op's argument checks.
#include <string>

#include "fuzz_common.hpp"
#include "vktrain/model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    vkt_fuzz::expect_clean([&] {
        const vktrain::Model m = vktrain::Model::from_json(std::string(reinterpret_cast<const char*>(data), size));
        (void)m.parameters();
        (void)vktrain::Model::from_json(m.to_json());
    });
    return 0;
}
