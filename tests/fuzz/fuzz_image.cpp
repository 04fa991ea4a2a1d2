// PNG and JPEG decoding (libpng and libjpeg-turbo behind error handlers that longjmp): any bytes either decode or
// throw vktrain::Error; a decoded image also goes through the eval and training transforms.
#include "fuzz_common.hpp"
#include "vktrain/images.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    vkt_fuzz::expect_clean([&] {
        const vktrain::Image image = vktrain::decode_image(data, size, "fuzz.png");
        // Small outputs keep the transforms cheap next to the decoding being fuzzed.
        if (uint64_t{image.width} * image.height > (1u << 20)) return;
        float out[3 * 8 * 8];
        vktrain::transform_image(image, vktrain::ImageTransform::eval(9, 8), 0, out);
        vktrain::transform_image(image, vktrain::ImageTransform::train(8), size, out);
    });
    return 0;
}
