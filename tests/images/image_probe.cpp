// The library's image code driven from a script (tests/python/image_folder.py compares its output with PIL and
// torchvision):
//   image_probe folder ROOT OUT RESIZE CROP   scan ROOT; OUT/classes.txt, OUT/samples.tsv (label, path) and per
//                                             sample i: i.rgb (uint32 width, height, then RGB bytes) and i.eval
//                                             ([3, CROP, CROP] float32 of the eval transform), or i.err (the error)
//   image_probe batches ROOT BATCH THREADS SEED eval|train CROP skip|fail
//                                             one shuffled epoch: a line per batch (labels, indices, FNV-1a of the
//                                             floats' bytes), then "skipped PATH<TAB>ERROR" per skipped file
// Errors: one line on stderr, exit 1.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>

#include "vktrain/error.hpp"
#include "vktrain/images.hpp"

namespace {

void write_file(const std::string& path, const void* data, size_t size) {
    std::ofstream f(path, std::ios::binary);
    f.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!f) throw vktrain::Error(path + ": cannot write");
}

int folder(const std::string& root, const std::string& out, uint32_t resize, uint32_t crop) {
    const vktrain::ImageFolder f = vktrain::scan_image_folder(root);
    std::ofstream classes(out + "/classes.txt"), samples(out + "/samples.tsv");
    for (const std::string& c : f.classes) classes << c << "\n";
    const vktrain::ImageTransform t = vktrain::ImageTransform::eval(resize, crop);
    for (size_t i = 0; i < f.files.size(); ++i) {
        samples << f.labels[i] << "\t" << f.files[i] << "\n";
        const std::string base = out + "/" + std::to_string(i);
        try {
            const vktrain::Image image = vktrain::decode_image(f.files[i]);
            std::string bytes(8, '\0');
            std::memcpy(&bytes[0], &image.width, 4);
            std::memcpy(&bytes[4], &image.height, 4);
            bytes.append(reinterpret_cast<const char*>(image.rgb.data()), image.rgb.size());
            write_file(base + ".rgb", bytes.data(), bytes.size());
            std::vector<float> x(size_t(3) * crop * crop);
            vktrain::transform_image(image, t, 0, x.data());
            write_file(base + ".eval", x.data(), x.size() * sizeof(float));
        } catch (const vktrain::Error& e) {
            const std::string message = e.what();
            write_file(base + ".err", message.data(), message.size());
        }
    }
    return 0;
}

int batches(char** argv) {
    vktrain::ImageLoaderOptions o;
    o.batch_size = uint32_t(std::stoul(argv[3]));
    o.threads = uint32_t(std::stoul(argv[4]));
    o.seed = std::stoull(argv[5]);
    const uint32_t crop = uint32_t(std::stoul(argv[7]));
    o.transform = std::string(argv[6]) == "train" ? vktrain::ImageTransform::train(crop)
                                                  : vktrain::ImageTransform::eval(crop + crop / 7, crop);
    o.shuffle = true;
    o.skip_bad_images = std::string(argv[8]) == "skip";
    vktrain::ImageLoader loader(vktrain::scan_image_folder(argv[2]), o);
    loader.start_epoch(0);
    vktrain::ImageBatch b;
    while (loader.next(b)) {
        uint64_t h = 1469598103934665603ull;
        const auto* p = reinterpret_cast<const unsigned char*>(b.x.data());
        for (size_t i = 0; i < b.x.size() * sizeof(float); ++i) h = (h ^ p[i]) * 1099511628211ull;
        std::cout << "batch " << b.count;
        for (uint32_t i = 0; i < b.count; ++i) std::cout << " " << b.labels[i] << ":" << b.indices[i];
        std::cout << " " << std::hex << h << std::dec << "\n";
    }
    for (const vktrain::SkippedImage& s : loader.skipped())
        std::cout << "skipped " << s.path << "\t" << s.error << "\n";
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    try {
        const std::string cmd = argc > 1 ? argv[1] : "";
        if (cmd == "folder" && argc == 6) {
            return folder(argv[2], argv[3], uint32_t(std::stoul(argv[4])), uint32_t(std::stoul(argv[5])));
        }
        if (cmd == "batches" && argc == 9) return batches(argv);
        std::cerr
            << "usage: image_probe folder ROOT OUT RESIZE CROP | batches ROOT BATCH THREADS SEED MODE CROP SKIP\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
}
