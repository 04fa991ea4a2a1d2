// Training checkpoints (safetensors with vktrain's metadata and optimizer tensors) and the architecture they record.
#include "fuzz_common.hpp"
#include "train/checkpoint.hpp"
#include "vktrain/trainer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const vkt_fuzz::TempFile file(data, size);
    vkt_fuzz::expect_clean([&] { vktrain::train::read_checkpoint(file.path()); });
    vkt_fuzz::expect_clean([&] { vktrain::load_model(file.path()); });
    return 0;
}
