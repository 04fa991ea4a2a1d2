// safetensors weights files and their metadata.
#include "fuzz_common.hpp"
#include "io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const vkt_fuzz::TempFile file(data, size);
    vkt_fuzz::expect_clean([&] {
        std::vector<std::pair<std::string, std::string>> metadata;
        vktrain::io::read_safetensors(file.path(), &metadata);
    });
    return 0;
}
