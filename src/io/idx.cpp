// IDX reader (http://yann.lecun.com/exdb/mnist/ format): big-endian magic 0x0000TTNN (TT = data type, only 0x08
// unsigned byte here; NN = number of dimensions), NN big-endian uint32 dimensions, then the data. zlib's gz*
// functions read gzip and plain files alike, so both are accepted without sniffing.
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

#include "common/check.hpp"
#include "vktrain/data.hpp"

namespace vktrain {

namespace {

// Each gzread call takes an unsigned length; 1 MiB chunks keep calls cheap and let truncated or hostile headers
// fail after reading what is there instead of allocating what the header claims up front.
constexpr size_t read_chunk = size_t{1} << 20;

class IdxFile {
public:
    explicit IdxFile(std::string path) : m_path(std::move(path)) {
        std::error_code ec;
        VKT_CHECK(!std::filesystem::is_directory(m_path, ec), m_path, ": cannot open: is a directory");
        errno = 0;
        m_file = gzopen(m_path.c_str(), "rb");
        VKT_CHECK(m_file != nullptr, m_path, ": cannot open: ", errno != 0 ? std::strerror(errno) : "out of memory");
        // A larger buffer than zlib's 8 KiB default roughly halves the time spent in read calls.
        gzbuffer(m_file, 1u << 18);
    }
    ~IdxFile() {
        if (m_file != nullptr) gzclose_r(m_file);
    }
    IdxFile(const IdxFile&) = delete;
    IdxFile& operator=(const IdxFile&) = delete;

    const std::string& path() const { return m_path; }
    const std::vector<size_t>& dims() const { return m_dims; }

    // Reads and validates the header; expected_dims is the required number of dimensions, described by `shape`
    // (e.g. "N x rows x cols") in the error message.
    void read_header(size_t expected_dims, const char* shape) {
        unsigned char magic[4];
        const size_t got = read(magic, sizeof(magic));
        VKT_CHECK(got > 0, m_path, ": empty file, expected an IDX header");
        VKT_CHECK(got == sizeof(magic), m_path, ": truncated: file ends inside the IDX header");
        if (magic[0] != 0 || magic[1] != 0) {
            char hex[16];
            std::snprintf(hex, sizeof(hex), "0x%02X%02X%02X%02X", magic[0], magic[1], magic[2], magic[3]);
            VKT_FAIL(m_path, ": bad magic ", hex, " (not an IDX file)");
        }
        if (magic[2] != 0x08) {
            char hex[8];
            std::snprintf(hex, sizeof(hex), "0x%02X", magic[2]);
            VKT_FAIL(m_path, ": unsupported IDX data type ", hex, " (only 0x08, unsigned byte, is supported)");
        }
        VKT_CHECK(magic[3] == expected_dims, m_path, ": expected ", expected_dims, " dimension",
                  expected_dims == 1 ? "" : "s", " (", shape, "), got ", static_cast<int>(magic[3]));
        std::vector<unsigned char> raw(4 * expected_dims);
        VKT_CHECK(read(raw.data(), raw.size()) == raw.size(), m_path, ": truncated: file ends inside the IDX header");
        m_dims.resize(expected_dims);
        for (size_t i = 0; i < expected_dims; ++i) {
            const unsigned char* b = &raw[4 * i];
            m_dims[i] = (size_t{b[0]} << 24) | (size_t{b[1]} << 16) | (size_t{b[2]} << 8) | size_t{b[3]};
        }
    }

    // Reads exactly `size` bytes of data following the header. When `whole_file`, also checks that nothing
    // follows and that the gzip stream ends properly (which is when zlib verifies its CRC).
    std::vector<uint8_t> read_data(size_t size, bool whole_file) {
        std::vector<uint8_t> data;
        data.reserve(std::min(size, size_t{64} << 20));
        size_t total = 0;
        while (total < size) {
            const size_t chunk = std::min(read_chunk, size - total);
            data.resize(total + chunk);
            const size_t got = read(data.data() + total, chunk);
            total += got;
            if (got < chunk) break;
        }
        if (total < size) {
            VKT_FAIL(m_path, ": truncated: expected ", size, " bytes of data, got ", total,
                     stream_truncated() ? " (the gzip stream ends early)" : "");
        }
        if (whole_file) {
            unsigned char extra = 0;
            VKT_CHECK(read(&extra, 1) == 0, m_path, ": trailing garbage after the expected ", size, " bytes of data");
            VKT_CHECK(!stream_truncated(), m_path, ": truncated gzip stream (it ends before the gzip trailer)");
        }
        return data;
    }

private:
    // Reads up to size bytes; fewer only at the end of the input. Throws on read or decompression errors.
    size_t read(void* buffer, size_t size) {
        auto* out = static_cast<unsigned char*>(buffer);
        size_t total = 0;
        while (total < size) {
            const auto chunk = static_cast<unsigned>(std::min(read_chunk, size - total));
            errno = 0;
            const int got = gzread(m_file, out + total, chunk);
            check_stream();
            VKT_CHECK(got >= 0, m_path, ": read error");
            total += static_cast<size_t>(got);
            if (static_cast<unsigned>(got) < chunk) break;
        }
        return total;
    }

    // gzread may return the bytes it decoded before hitting corruption, so the error state is checked after
    // every call, not only when it returns -1.
    void check_stream() {
        int errnum = Z_OK;
        const char* message = gzerror(m_file, &errnum);
        if (errnum == Z_OK || errnum == Z_BUF_ERROR) return; // Z_BUF_ERROR: stream cut short, handled by callers
        if (errnum == Z_ERRNO) VKT_FAIL(m_path, ": read error: ", errno != 0 ? std::strerror(errno) : "I/O error");
        if (errnum == Z_MEM_ERROR) VKT_FAIL(m_path, ": out of memory while decompressing");
        // zlib prefixes its message with the path; drop that so the path appears once.
        std::string text = message != nullptr ? message : "unknown error";
        const std::string prefix = m_path + ": ";
        if (text.compare(0, prefix.size(), prefix) == 0) text.erase(0, prefix.size());
        VKT_FAIL(m_path, ": corrupt gzip stream: ", text);
    }

    bool stream_truncated() const {
        int errnum = Z_OK;
        gzerror(m_file, &errnum);
        return errnum == Z_BUF_ERROR;
    }

    std::string m_path;
    gzFile m_file = nullptr;
    std::vector<size_t> m_dims;
};

// fixed_classes == 0: classes = max label + 1; otherwise every label must be below fixed_classes.
Dataset load_idx(const std::string& images_path, const std::string& labels_path, size_t limit, size_t fixed_classes) {
    // Both headers first, so a mismatched pair fails before 47 MB are decompressed.
    IdxFile images(images_path);
    images.read_header(3, "N x rows x cols");
    IdxFile labels(labels_path);
    labels.read_header(1, "N");

    const size_t image_count = images.dims()[0];
    const size_t rows = images.dims()[1];
    const size_t cols = images.dims()[2];
    const size_t label_count = labels.dims()[0];
    VKT_CHECK(image_count == label_count, images_path, ": has ", image_count, " images but ", labels_path, " has ",
              label_count, " labels");
    VKT_CHECK(image_count > 0, images_path, ": contains no images");
    VKT_CHECK(rows > 0 && cols > 0, images_path, ": empty image size ", rows, " x ", cols);

    const bool whole_file = limit == 0 || limit >= image_count;
    const size_t count = whole_file ? image_count : limit;
    const size_t features = rows * cols; // both < 2^32, so this cannot overflow a 64-bit size_t
    VKT_CHECK(features <= std::numeric_limits<size_t>::max() / count, images_path, ": image data size overflows");

    Dataset dataset;
    dataset.count = count;
    dataset.features = features;

    const std::vector<uint8_t> label_bytes = labels.read_data(count, whole_file);
    uint8_t max_label = 0;
    for (size_t i = 0; i < count; ++i) {
        if (fixed_classes != 0 && label_bytes[i] >= fixed_classes) {
            VKT_FAIL(labels_path, ": label ", static_cast<int>(label_bytes[i]), " at index ", i,
                     " is out of range for ", fixed_classes, " classes");
        }
        max_label = std::max(max_label, label_bytes[i]);
    }
    dataset.classes = fixed_classes != 0 ? fixed_classes : size_t{max_label} + 1; // <= 256 since labels are bytes
    dataset.labels.assign(label_bytes.begin(), label_bytes.end());

    const std::vector<uint8_t> pixels = images.read_data(count * features, whole_file);
    // Division rather than multiplication by 1/255 so values match torchvision's ToTensor bit for bit.
    std::array<float, 256> scale{};
    for (size_t i = 0; i < scale.size(); ++i) scale[i] = static_cast<float>(i) / 255.0f;
    dataset.x.resize(pixels.size());
    for (size_t i = 0; i < pixels.size(); ++i) dataset.x[i] = scale[pixels[i]];
    return dataset;
}

std::string find_split_file(const std::string& dir, const std::string& name) {
    const std::filesystem::path base(dir);
    std::error_code ec;
    for (const std::string& candidate : {name + ".gz", name}) {
        const std::filesystem::path path = base / candidate;
        if (std::filesystem::exists(path, ec)) return path.string();
        // Not "not found" when the folder cannot be searched (no permission): say why.
        VKT_CHECK(!ec, path.string(), ": cannot look for the file: ", ec.message());
    }
    VKT_FAIL(dir, ": Fashion-MNIST file not found: neither ", name, ".gz nor ", name, " exists");
}

} // namespace

Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path, size_t limit) {
    return load_idx(images_path, labels_path, limit, 0);
}

Dataset load_fashion_mnist(const std::string& dir, bool train, size_t limit) {
    const std::string prefix = train ? "train" : "t10k";
    const std::string images = find_split_file(dir, prefix + "-images-idx3-ubyte");
    const std::string labels = find_split_file(dir, prefix + "-labels-idx1-ubyte");
    return load_idx(images, labels, limit, 10);
}

const char* default_fashion_mnist_dir() {
    return "/usr/share/datasets/fashion-mnist";
}

} // namespace vktrain
