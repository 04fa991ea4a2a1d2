// Datasets in the IDX format (MNIST, Fashion-MNIST), gzip-compressed or not. Every failure throws
// vktrain::Error with a one-line message naming the file and the problem.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vktrain {

struct Dataset {
    size_t count = 0;
    size_t features = 0; // rows * cols of each image
    size_t classes = 0;
    std::vector<float> x; // count * features, row-major, pixel / 255 in [0, 1]
    std::vector<int32_t> labels;
};

// Reads an unsigned-byte IDX image file (N x rows x cols) and its label file (N). classes is max label + 1 over
// the samples read. limit > 0 reads only the first `limit` samples (the rest of the files is not read, so it is
// also not validated).
Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path, size_t limit = 0);

// Loads the train or test (t10k) split from dir, preferring the .gz files and accepting uncompressed ones.
// classes is always 10 (so a limited subset agrees with the full set); a label >= 10 is an error.
Dataset load_fashion_mnist(const std::string& dir, bool train, size_t limit = 0);

// "/usr/share/datasets/fashion-mnist"
const char* default_fashion_mnist_dir();

} // namespace vktrain
