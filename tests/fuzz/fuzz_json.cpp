// The JSON reader (GEMM-path caches, reports, model architectures).
#include <string_view>

#include "fuzz_common.hpp"
#include "io/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    vkt_fuzz::expect_clean([&] {
        const auto j = vktrain::io::Json::parse(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
        (void)vktrain::io::Json::parse(j.dump(), "round trip");
    });
    return 0;
}
