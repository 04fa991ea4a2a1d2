#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "vktrain/data.hpp"
#include "vktrain/error.hpp"
#include "error_text.hpp"

namespace {

using Bytes = std::vector<unsigned char>;

// IDX bytes: magic 0x0000 TT NN, big-endian dims, payload.
Bytes idx_bytes(const std::vector<uint32_t>& dims, const Bytes& payload, unsigned char type = 0x08) {
    Bytes out = {0, 0, type, static_cast<unsigned char>(dims.size())};
    for (const uint32_t d : dims) {
        for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<unsigned char>(d >> shift));
    }
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
}

// Deterministic, mildly compressible pixels so gzip produces real Huffman blocks.
Bytes pixels(size_t count) {
    Bytes out(count);
    uint32_t state = 12345;
    for (size_t i = 0; i < count; ++i) {
        state = state * 1664525u + 1013904223u;
        out[i] = static_cast<unsigned char>((state >> 24) & 0xF0);
    }
    return out;
}

Bytes labels_for(size_t count, size_t classes) {
    Bytes out(count);
    for (size_t i = 0; i < count; ++i) out[i] = static_cast<unsigned char>(i % classes);
    return out;
}

class Idx : public ::testing::Test {
protected:
    void SetUp() override {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        m_dir = std::filesystem::temp_directory_path() /
                ("vktrain-test-idx-" + std::to_string(::getpid()) + "-" + info->name());
        std::filesystem::remove_all(m_dir);
        std::filesystem::create_directories(m_dir);
    }
    void TearDown() override { std::filesystem::remove_all(m_dir); }

    std::string write_raw(const std::string& name, const Bytes& bytes) {
        const std::string path = (m_dir / name).string();
        std::ofstream(path, std::ios::binary)
            .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        return path;
    }

    std::string write_gz(const std::string& name, const Bytes& bytes) {
        const std::string path = (m_dir / name).string();
        gzFile file = gzopen(path.c_str(), "wb");
        EXPECT_NE(file, nullptr);
        EXPECT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
        EXPECT_EQ(gzclose(file), Z_OK);
        return path;
    }

    static Bytes read_file(const std::string& path) {
        std::ifstream in(path, std::ios::binary);
        return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }

    // Loads and returns the error message, failing the test if nothing is thrown.
    static std::string load_error(const std::string& images, const std::string& labels, size_t limit = 0) {
        try {
            vktrain::load_idx_dataset(images, labels, limit);
        } catch (const vktrain::Error& e) {
            return e.what();
        }
        ADD_FAILURE() << "expected vktrain::Error";
        return "";
    }

    std::filesystem::path m_dir;
};

TEST_F(Idx, ReadsGzipAndRawFiles) {
    const Bytes image_data = pixels(5 * 3 * 4);
    const Bytes label_data = {3, 0, 1, 2, 1};
    for (const bool gz : {true, false}) {
        SCOPED_TRACE(gz ? "gzip" : "raw");
        const Bytes images_idx = idx_bytes({5, 3, 4}, image_data);
        const Bytes labels_idx = idx_bytes({5}, label_data);
        const std::string images = gz ? write_gz("i.gz", images_idx) : write_raw("i", images_idx);
        const std::string labels = gz ? write_gz("l.gz", labels_idx) : write_raw("l", labels_idx);
        const vktrain::Dataset d = vktrain::load_idx_dataset(images, labels);
        EXPECT_EQ(d.count, 5u);
        EXPECT_EQ(d.features, 12u);
        EXPECT_EQ(d.classes, 4u); // max label + 1
        ASSERT_EQ(d.x.size(), 60u);
        for (size_t i = 0; i < d.x.size(); ++i) EXPECT_EQ(d.x[i], static_cast<float>(image_data[i]) / 255.0f);
        EXPECT_EQ(d.labels, (std::vector<int32_t>{3, 0, 1, 2, 1}));

        const vktrain::Dataset first = vktrain::load_idx_dataset(images, labels, 2);
        EXPECT_EQ(first.count, 2u);
        EXPECT_EQ(first.classes, 4u);
        EXPECT_EQ(first.x, std::vector<float>(d.x.begin(), d.x.begin() + 24));
        EXPECT_EQ(first.labels, (std::vector<int32_t>{3, 0}));
        EXPECT_EQ(vktrain::load_idx_dataset(images, labels, 100).count, 5u); // limit above count: everything
    }
}

TEST_F(Idx, PixelScaling) {
    Bytes all(256);
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<unsigned char>(i);
    const std::string images = write_raw("i", idx_bytes({1, 16, 16}, all));
    const std::string labels = write_raw("l", idx_bytes({1}, {0}));
    const vktrain::Dataset d = vktrain::load_idx_dataset(images, labels);
    EXPECT_EQ(d.x.front(), 0.0f);
    EXPECT_EQ(d.x.back(), 1.0f);
    EXPECT_EQ(d.x[51], 0.2f);
    EXPECT_EQ(d.classes, 1u);
}

TEST_F(Idx, MissingAndEmptyFiles) {
    const std::string labels = write_raw("l", idx_bytes({1}, {0}));
    const std::string missing = (m_dir / "missing.gz").string();
    EXPECT_CONTAINS(load_error(missing, labels), missing + ": cannot open: No such file or directory");
    EXPECT_CONTAINS(load_error(m_dir.string(), labels), m_dir.string() + ": cannot open: is a directory");
    const std::string empty = write_raw("empty", {});
    EXPECT_CONTAINS(load_error(empty, labels), empty + ": empty file");
    const std::string short_header = write_raw("short", {0, 0, 8});
    EXPECT_CONTAINS(load_error(short_header, labels), short_header + ": truncated: file ends inside the IDX header");
    const std::string short_dims = write_raw("short-dims", {0, 0, 8, 3, 0, 0, 0, 1, 0, 0});
    EXPECT_CONTAINS(load_error(short_dims, labels), short_dims + ": truncated: file ends inside the IDX header");
}

TEST_F(Idx, HeaderErrors) {
    const std::string labels = write_raw("l", idx_bytes({2}, {0, 1}));
    const std::string images = write_raw("i", idx_bytes({2, 2, 2}, pixels(8)));

    Bytes bad_magic = idx_bytes({2, 2, 2}, pixels(8));
    bad_magic[0] = 0x1f;
    bad_magic[1] = 0x8c;
    const std::string bad_magic_path = write_raw("bad-magic", bad_magic);
    EXPECT_CONTAINS(load_error(bad_magic_path, labels), bad_magic_path + ": bad magic 0x1F8C0803 (not an IDX file)");

    const std::string float_path = write_raw("float", idx_bytes({2, 2, 2}, Bytes(32), 0x0D));
    EXPECT_CONTAINS(load_error(float_path, labels),
                    float_path + ": unsupported IDX data type 0x0D (only 0x08, unsigned byte, is supported)");

    const std::string two_dim = write_raw("two-dim", idx_bytes({2, 4}, pixels(8)));
    EXPECT_CONTAINS(load_error(two_dim, labels), two_dim + ": expected 3 dimensions (N x rows x cols), got 2");

    const std::string two_dim_labels = write_raw("labels-2d", idx_bytes({2, 1}, {0, 1}));
    EXPECT_CONTAINS(load_error(images, two_dim_labels), two_dim_labels + ": expected 1 dimension (N), got 2");

    const std::string three_labels = write_raw("l3", idx_bytes({3}, {0, 1, 2}));
    EXPECT_CONTAINS(load_error(images, three_labels), images + ": has 2 images but " + three_labels + " has 3 labels");

    const std::string no_images = write_raw("none", idx_bytes({0, 2, 2}, {}));
    const std::string no_labels = write_raw("none-l", idx_bytes({0}, {}));
    EXPECT_CONTAINS(load_error(no_images, no_labels), no_images + ": contains no images");
    const std::string zero_rows = write_raw("zero-rows", idx_bytes({2, 0, 2}, {}));
    EXPECT_CONTAINS(load_error(zero_rows, labels), zero_rows + ": empty image size 0 x 2");
}

TEST_F(Idx, TruncatedAndTrailingData) {
    const std::string labels = write_raw("l", idx_bytes({2}, {0, 1}));
    const Bytes full = idx_bytes({2, 28, 28}, pixels(2 * 784));

    const std::string raw = write_raw("raw", Bytes(full.begin(), full.end() - 100));
    EXPECT_CONTAINS(load_error(raw, labels), raw + ": truncated: expected 1568 bytes of data, got 1468");
    // With a limit only the first samples are needed, so a truncated tail does not matter.
    EXPECT_EQ(vktrain::load_idx_dataset(raw, labels, 1).count, 1u);

    const std::string gz = write_gz("data.gz", Bytes(full.begin(), full.end() - 100));
    EXPECT_CONTAINS(load_error(gz, labels), gz + ": truncated: expected 1568 bytes of data, got 1468");

    // A gzip file cut short: the data stops early and zlib reports the missing end of the stream.
    const std::string whole_gz = write_gz("whole.gz", full);
    const Bytes compressed = read_file(whole_gz);
    const std::string cut = write_raw("cut.gz", Bytes(compressed.begin(), compressed.begin() + 200));
    EXPECT_CONTAINS(load_error(cut, labels), cut + ": truncated: expected 1568 bytes of data, got ");
    EXPECT_CONTAINS(load_error(cut, labels), "(the gzip stream ends early)");
    // Cut inside the 8-byte gzip trailer: every data byte is there but the stream is incomplete.
    const std::string no_trailer = write_raw("no-trailer.gz", Bytes(compressed.begin(), compressed.end() - 4));
    EXPECT_CONTAINS(load_error(no_trailer, labels), no_trailer + ": truncated gzip stream");

    Bytes longer = full;
    longer.push_back(7);
    const std::string trailing = write_raw("trailing", longer);
    EXPECT_CONTAINS(load_error(trailing, labels),
                    trailing + ": trailing garbage after the expected 1568 bytes of data");
    const std::string trailing_gz = write_gz("trailing.gz", longer);
    EXPECT_CONTAINS(load_error(trailing_gz, labels), trailing_gz + ": trailing garbage");
    const Bytes label_bytes = idx_bytes({2}, {0, 1, 1});
    const std::string trailing_labels = write_gz("trailing-labels.gz", label_bytes);
    EXPECT_CONTAINS(load_error(whole_gz, trailing_labels), trailing_labels + ": trailing garbage");
}

TEST_F(Idx, CorruptGzipStream) {
    const std::string labels = write_raw("l", idx_bytes({20}, labels_for(20, 10)));
    const std::string good = write_gz("good.gz", idx_bytes({20, 28, 28}, pixels(20 * 784)));
    ASSERT_EQ(vktrain::load_idx_dataset(good, labels).count, 20u);
    Bytes compressed = read_file(good);
    ASSERT_GT(compressed.size(), 200u);
    for (size_t i = compressed.size() / 2; i < compressed.size() / 2 + 8; ++i) compressed[i] ^= 0x5A;
    const std::string bad = write_raw("bad.gz", compressed);
    EXPECT_CONTAINS(load_error(bad, labels), bad + ": corrupt gzip stream: ");

    // A flipped byte in the stored CRC: the data decodes fine but the integrity check must still fail.
    Bytes bad_crc = read_file(good);
    bad_crc[bad_crc.size() - 6] ^= 1;
    const std::string crc = write_raw("crc.gz", bad_crc);
    EXPECT_CONTAINS(load_error(crc, labels), crc + ": corrupt gzip stream: incorrect data check");
}

TEST_F(Idx, FashionMnistLayout) {
    const std::string dir = m_dir.string();
    // Missing directory / files.
    try {
        vktrain::load_fashion_mnist(dir, true);
        ADD_FAILURE() << "expected vktrain::Error";
    } catch (const vktrain::Error& e) {
        EXPECT_CONTAINS(e.what(), dir + ": Fashion-MNIST file not found: neither train-images-idx3-ubyte.gz nor "
                                        "train-images-idx3-ubyte exists");
    }
    // Uncompressed test split next to a gzip train split.
    write_raw("t10k-images-idx3-ubyte", idx_bytes({4, 2, 2}, pixels(16)));
    write_raw("t10k-labels-idx1-ubyte", idx_bytes({4}, {0, 1, 0, 1}));
    write_gz("train-images-idx3-ubyte.gz", idx_bytes({3, 2, 2}, pixels(12)));
    write_gz("train-labels-idx1-ubyte.gz", idx_bytes({3}, {9, 0, 10}));
    const vktrain::Dataset test = vktrain::load_fashion_mnist(dir, false);
    EXPECT_EQ(test.count, 4u);
    EXPECT_EQ(test.classes, 10u); // fixed, even though only labels 0 and 1 occur
    try {
        vktrain::load_fashion_mnist(dir, true);
        ADD_FAILURE() << "expected vktrain::Error";
    } catch (const vktrain::Error& e) {
        EXPECT_CONTAINS(e.what(), (m_dir / "train-labels-idx1-ubyte.gz").string() +
                                      ": label 10 at index 2 is out of range for 10 classes");
    }
    EXPECT_EQ(vktrain::load_fashion_mnist(dir, true, 2).count, 2u); // the bad label is beyond the limit
}

TEST(FashionMnist, RealTestSplit) {
    const std::string dir = vktrain::default_fashion_mnist_dir();
    EXPECT_EQ(dir, "/usr/share/datasets/fashion-mnist");
    if (!std::filesystem::is_directory(dir)) GTEST_SKIP() << "Fashion-MNIST not installed at " << dir;
    const vktrain::Dataset d = vktrain::load_fashion_mnist(dir, false);
    EXPECT_EQ(d.count, 10000u);
    EXPECT_EQ(d.features, 784u);
    EXPECT_EQ(d.classes, 10u);
    ASSERT_EQ(d.x.size(), d.count * d.features);
    ASSERT_EQ(d.labels.size(), d.count);
    float lo = 1.0f;
    float hi = 0.0f;
    for (const float v : d.x) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
    }
    EXPECT_EQ(lo, 0.0f);
    EXPECT_EQ(hi, 1.0f);
    std::array<size_t, 10> histogram{};
    for (const int32_t label : d.labels) {
        ASSERT_GE(label, 0);
        ASSERT_LT(label, 10);
        ++histogram[static_cast<size_t>(label)];
    }
    for (const size_t n : histogram) EXPECT_EQ(n, 1000u);
}

TEST(FashionMnist, RealTrainSplit) {
    const std::string dir = vktrain::default_fashion_mnist_dir();
    if (!std::filesystem::is_directory(dir)) GTEST_SKIP() << "Fashion-MNIST not installed at " << dir;
    const vktrain::Dataset d = vktrain::load_fashion_mnist(dir, true);
    EXPECT_EQ(d.count, 60000u);
    EXPECT_EQ(d.features, 784u);
    std::array<size_t, 10> histogram{};
    for (const int32_t label : d.labels) ++histogram[static_cast<size_t>(label)];
    for (const size_t n : histogram) EXPECT_EQ(n, 6000u);
    const vktrain::Dataset head = vktrain::load_fashion_mnist(dir, true, 100);
    EXPECT_EQ(head.count, 100u);
    EXPECT_EQ(head.x, std::vector<float>(d.x.begin(), d.x.begin() + 100 * 784));
}

} // namespace
