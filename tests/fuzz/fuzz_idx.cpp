// IDX image and label files (Fashion-MNIST): the same bytes as both, gzip or not.
#include "fuzz_common.hpp"
#include "vktrain/data.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const vkt_fuzz::TempFile images(data, size, ".images"), labels(data, size, ".labels");
    vkt_fuzz::expect_clean([&] { vktrain::load_idx_dataset(images.path(), labels.path(), 64); });
    return 0;
}
