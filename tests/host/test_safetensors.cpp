#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "io/json.hpp"
#include "io/safetensors.hpp"
#include "vktrain/error.hpp"
#include "error_text.hpp"

namespace {

using vktrain::io::NamedTensor;
using Bytes = std::vector<unsigned char>;
using Metadata = std::vector<std::pair<std::string, std::string>>;

uint32_t bits_of(float value) {
    uint32_t bits = 0;
    std::memcpy(&bits, &value, sizeof(bits));
    return bits;
}

float float_of(uint32_t bits) {
    float value = 0.0f;
    std::memcpy(&value, &bits, sizeof(value));
    return value;
}

void append_le(Bytes& out, uint64_t value, int size) {
    for (int i = 0; i < size; ++i) out.push_back(static_cast<unsigned char>(value >> (8 * i)));
}

// A safetensors file from a header text and raw data, with the header length field overridable.
Bytes make_file(const std::string& header, const Bytes& data, uint64_t header_length = UINT64_MAX) {
    Bytes out;
    append_le(out, header_length == UINT64_MAX ? header.size() : header_length, 8);
    out.insert(out.end(), header.begin(), header.end());
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

class Safetensors : public ::testing::Test {
protected:
    void SetUp() override {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        m_dir = std::filesystem::temp_directory_path() /
                ("vktrain-test-safetensors-" + std::to_string(::getpid()) + "-" + info->name());
        std::filesystem::remove_all(m_dir);
        std::filesystem::create_directories(m_dir);
    }
    void TearDown() override { std::filesystem::remove_all(m_dir); }

    std::string path(const std::string& name) const { return (m_dir / name).string(); }

    std::string write_raw(const std::string& name, const Bytes& bytes) const {
        const std::string p = path(name);
        std::ofstream(p, std::ios::binary)
            .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        return p;
    }

    static Bytes read_raw(const std::string& p) {
        std::ifstream in(p, std::ios::binary);
        return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }

    // The message of the vktrain::Error thrown by reading p; fails the test when nothing is thrown.
    static std::string read_error(const std::string& p) {
        try {
            vktrain::io::read_safetensors(p);
        } catch (const vktrain::Error& e) {
            return e.what();
        }
        ADD_FAILURE() << "expected vktrain::Error reading " << p;
        return "";
    }

    std::filesystem::path m_dir;
};

std::vector<NamedTensor> sample_tensors() {
    std::vector<NamedTensor> tensors;
    tensors.push_back({"layers.0.weight", {2, 3}, {1.0f, -2.5f, 3.25f, 0.0f, -0.0f, 1e-40f}});
    tensors.push_back({"scale", {}, {0.125f}}); // 0-d scalar
    tensors.push_back({"layers.0.bias", {1}, {std::numeric_limits<float>::infinity()}});
    tensors.push_back({"empty", {0, 4}, {}});
    tensors.push_back({"special",
                       {4},
                       {-std::numeric_limits<float>::infinity(), float_of(0x7FC01234u), float_of(0xFF800001u),
                        std::numeric_limits<float>::max()}});
    std::vector<float> big(100000);
    for (size_t i = 0; i < big.size(); ++i) big[i] = std::sin(static_cast<float>(i)) * 1e3f;
    tensors.push_back({"big", {100, 10, 100}, big});
    return tensors;
}

TEST_F(Safetensors, RoundTripIsBitExact) {
    const std::vector<NamedTensor> tensors = sample_tensors();
    const Metadata metadata = {{"format", "pt"}, {"epoch", "3"}, {"note", "quote\" and \xc3\xa9"}};
    const std::string p = path("model.safetensors");
    vktrain::io::write_safetensors(p, tensors, metadata);

    Metadata read_metadata = {{"stale", "entry"}};
    const std::vector<NamedTensor> back = vktrain::io::read_safetensors(p, &read_metadata);
    EXPECT_EQ(read_metadata, metadata);
    ASSERT_EQ(back.size(), tensors.size());
    for (size_t t = 0; t < tensors.size(); ++t) {
        SCOPED_TRACE(tensors[t].name);
        EXPECT_EQ(back[t].name, tensors[t].name); // same order as written
        EXPECT_EQ(back[t].shape, tensors[t].shape);
        ASSERT_EQ(back[t].data.size(), tensors[t].data.size());
        for (size_t i = 0; i < tensors[t].data.size(); ++i) {
            ASSERT_EQ(bits_of(back[t].data[i]), bits_of(tensors[t].data[i])) << "element " << i;
        }
    }
    // Without metadata requested it still reads; no temporary file is left next to the output.
    EXPECT_EQ(vktrain::io::read_safetensors(p).size(), tensors.size());
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(m_dir), std::filesystem::directory_iterator()), 1);
}

TEST_F(Safetensors, FileLayout) {
    const std::string p = path("layout.safetensors");
    vktrain::io::write_safetensors(p, {{"a", {2}, {1.0f, 2.0f}}, {"b", {}, {-1.0f}}}, {{"k", "v"}});
    const Bytes bytes = read_raw(p);
    uint64_t header_length = 0;
    for (int i = 0; i < 8; ++i) header_length |= uint64_t{bytes[static_cast<size_t>(i)]} << (8 * i);
    EXPECT_EQ(header_length % 8, 0u); // data section is 8-byte aligned
    ASSERT_EQ(bytes.size(), 8 + header_length + 12);
    const std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_length));
    const vktrain::io::Json json = vktrain::io::Json::parse(header);
    EXPECT_EQ(json.dump(), R"({"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[],"data_offsets":[8,12]}})");
    const size_t data = 8 + header_length;
    EXPECT_EQ(Bytes(bytes.begin() + data, bytes.end()),
              (Bytes{0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x80, 0xBF})); // little-endian
}

TEST_F(Safetensors, WriteReplacesExistingFileAtomically) {
    const std::string p = path("w.safetensors");
    vktrain::io::write_safetensors(p, {{"x", {1}, {1.0f}}});
    const Bytes before = read_raw(p);
    // Invalid input fails before touching the existing file.
    EXPECT_THROW(vktrain::io::write_safetensors(p, {{"x", {2}, {1.0f}}}), vktrain::Error);
    EXPECT_EQ(read_raw(p), before);
    vktrain::io::write_safetensors(p, {{"y", {2}, {3.0f, 4.0f}}});
    EXPECT_EQ(vktrain::io::read_safetensors(p).at(0).name, "y");
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(m_dir), std::filesystem::directory_iterator()), 1);
}

// A writer killed mid-write leaves "<path>.tmp-<pid>"; the next write of that path removes the leftovers of
// processes that no longer exist and keeps those of live ones (pid 1 is always alive).
TEST_F(Safetensors, WriteRemovesStaleTemporaries) {
    const std::string p = path("s.safetensors");
    const std::string dead = p + ".tmp-999999999", alive = p + ".tmp-1",
                      other = path("other.safetensors.tmp-999999999");
    for (const std::string& f : {dead, alive, other}) std::ofstream(f) << "partial";
    vktrain::io::write_safetensors(p, {{"x", {1}, {1.0f}}});
    EXPECT_FALSE(std::filesystem::exists(dead));
    EXPECT_TRUE(std::filesystem::exists(alive));
    EXPECT_TRUE(std::filesystem::exists(other)); // another file's temporaries are not ours to remove
    const std::string report = path("r.json"), dead_json = report + ".tmp-999999998";
    std::ofstream(dead_json) << "{";
    vktrain::io::write_json_file(report, vktrain::io::Json::object());
    EXPECT_FALSE(std::filesystem::exists(dead_json));
}

// A full disk: the error names the file the user asked for (not the temporary) and says the disk is full, the
// temporary is gone and an existing file is unchanged. The temporary "<path>.tmp-<pid>" is made a link to /dev/full,
// whose writes fail with ENOSPC, so the failure is deterministic.
TEST_F(Safetensors, AFullDiskNamesTheUsersPath) {
    if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
    const std::string p = path("w.safetensors"), r = path("r.json");
    vktrain::io::write_safetensors(p, {{"x", {1}, {1.0f}}});
    std::ofstream(r) << "{}\n";
    const auto error_of = [](const std::function<void()>& write) -> std::string {
        try {
            write();
        } catch (const vktrain::Error& e) {
            return e.what();
        }
        return "(no error)";
    };
    const std::vector<float> big(1 << 16, 2.0f); // more than stdio buffers: the write itself fails
    for (const std::string& target : {p, r}) {
        const std::string temp = target + ".tmp-" + std::to_string(::getpid());
        std::filesystem::create_symlink("/dev/full", temp);
        const std::string error = error_of([&] {
            if (target == p)
                vktrain::io::write_safetensors(p, {{"x", {int64_t(big.size())}, big}});
            else
                vktrain::io::write_json_file(r, vktrain::io::Json::array());
        });
        EXPECT_EQ(error.rfind(target + ": ", 0), 0u) << error;
        EXPECT_CONTAINS(error, "the disk is full");
        EXPECT_EQ(error.find(".tmp-"), std::string::npos) << error;
        EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(temp))) << "the temporary is left";
    }
    EXPECT_EQ(vktrain::io::read_safetensors(p).at(0).data, std::vector<float>{1.0f});
    std::ifstream in(r);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "{}\n");
}

TEST_F(Safetensors, WriteErrors) {
    const std::string p = path("bad.safetensors");
    auto write_error = [&](const std::vector<NamedTensor>& tensors, const Metadata& metadata = {}) -> std::string {
        try {
            vktrain::io::write_safetensors(p, tensors, metadata);
        } catch (const vktrain::Error& e) {
            return e.what();
        }
        ADD_FAILURE() << "expected vktrain::Error";
        return "";
    };
    EXPECT_CONTAINS(write_error({{"w", {2, 3}, {1.0f}}}),
                    p + ": tensor \"w\": shape [2, 3] needs 6 elements, data has 1");
    EXPECT_CONTAINS(write_error({{"w", {1}, {1.0f}}, {"w", {1}, {2.0f}}}), p + ": duplicate tensor name \"w\"");
    EXPECT_CONTAINS(write_error({{"", {1}, {1.0f}}}), p + ": tensor 0 has an empty name");
    EXPECT_CONTAINS(write_error({{"__metadata__", {1}, {1.0f}}}), "\"__metadata__\" is reserved");
    EXPECT_CONTAINS(write_error({{"w", {-1}, {}}}), p + ": tensor \"w\": invalid shape [-1]");
    EXPECT_CONTAINS(write_error({}, {{"k", "a"}, {"k", "b"}}), p + ": duplicate metadata key \"k\"");
    EXPECT_FALSE(std::filesystem::exists(p));
    const std::string nowhere = path("no-such-dir/x.safetensors");
    try {
        vktrain::io::write_safetensors(nowhere, {{"w", {1}, {1.0f}}});
        ADD_FAILURE() << "expected vktrain::Error";
    } catch (const vktrain::Error& e) {
        EXPECT_CONTAINS(e.what(), nowhere + ".tmp-");
        EXPECT_CONTAINS(e.what(), ": cannot create: No such file or directory");
    }
}

TEST_F(Safetensors, ReadsF16AndBF16) {
    // F16: 1, -2, 65504 (max), 2^-24 (smallest subnormal), largest subnormal, inf, -inf, NaN, -0, 0.1 (rounded).
    const uint16_t halves[] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x7C00, 0xFC00, 0x7E00, 0x8000, 0x2E66};
    // BF16: 1, -3, 2^-133 (subnormal), NaN.
    const uint16_t bfloats[] = {0x3F80, 0xC040, 0x0001, 0x7FC0};
    Bytes data;
    for (const uint16_t h : halves) append_le(data, h, 2);
    for (const uint16_t b : bfloats) append_le(data, b, 2);
    append_le(data, bits_of(7.5f), 4);
    std::string header = R"({"__metadata__":{"format":"pt"},"h":{"dtype":"F16","shape":[2,5],"data_offsets":[0,20]},)"
                         R"("b":{"shape":[4],"data_offsets":[20,28],"dtype":"BF16"},)"
                         R"("f":{"dtype":"F32","shape":[],"data_offsets":[28,32]}})";
    header.append((8 - header.size() % 8) % 8, ' ');
    const std::string p = write_raw("half.safetensors", make_file(header, data));

    Metadata metadata;
    const std::vector<NamedTensor> tensors = vktrain::io::read_safetensors(p, &metadata);
    EXPECT_EQ(metadata, (Metadata{{"format", "pt"}}));
    ASSERT_EQ(tensors.size(), 3u);
    EXPECT_EQ(tensors[0].name, "h");
    EXPECT_EQ(tensors[0].shape, (std::vector<int64_t>{2, 5}));
    const std::vector<float>& h = tensors[0].data;
    ASSERT_EQ(h.size(), 10u);
    EXPECT_EQ(h[0], 1.0f);
    EXPECT_EQ(h[1], -2.0f);
    EXPECT_EQ(h[2], 65504.0f);
    EXPECT_EQ(h[3], std::ldexp(1.0f, -24));
    EXPECT_EQ(h[4], std::ldexp(1023.0f, -24));
    EXPECT_EQ(h[5], std::numeric_limits<float>::infinity());
    EXPECT_EQ(h[6], -std::numeric_limits<float>::infinity());
    EXPECT_TRUE(std::isnan(h[7]));
    EXPECT_EQ(bits_of(h[8]), 0x80000000u);
    EXPECT_EQ(h[9], 0.0999755859375f);
    const std::vector<float>& b = tensors[1].data;
    ASSERT_EQ(b.size(), 4u);
    EXPECT_EQ(b[0], 1.0f);
    EXPECT_EQ(b[1], -3.0f);
    EXPECT_EQ(bits_of(b[2]), 0x00010000u);
    EXPECT_TRUE(std::isnan(b[3]));
    EXPECT_EQ(tensors[2].shape, std::vector<int64_t>{});
    EXPECT_EQ(tensors[2].data, std::vector<float>{7.5f});
}

TEST_F(Safetensors, CorruptFiles) {
    const std::string good = path("good.safetensors");
    vktrain::io::write_safetensors(good, {{"w", {2, 2}, {1, 2, 3, 4}}, {"b", {2}, {5, 6}}});
    const Bytes bytes = read_raw(good);

    const std::string truncated = write_raw("truncated.safetensors", Bytes(bytes.begin(), bytes.end() - 4));
    EXPECT_CONTAINS(read_error(truncated),
                    truncated + ": tensor \"b\": data_offsets [16, 24] out of range of the 20-byte data section");

    const std::string tiny = write_raw("tiny.safetensors", Bytes{1, 2, 3});
    EXPECT_CONTAINS(read_error(tiny),
                    tiny + ": not a safetensors file: file size 3 is smaller than the 8-byte header length");

    Bytes too_long = bytes;
    for (size_t i = 0; i < 8; ++i) too_long[i] = static_cast<unsigned char>(uint64_t{1000000000000} >> (8 * i));
    const std::string long_path = write_raw("long.safetensors", too_long);
    EXPECT_CONTAINS(read_error(long_path), long_path +
                                               ": not a safetensors file: header length 1000000000000 exceeds "
                                               "file size " +
                                               std::to_string(bytes.size()));

    const std::string bad_json = write_raw("json.safetensors", make_file(R"({"w": {"dtype": "F32",})", {}));
    EXPECT_CONTAINS(read_error(bad_json), bad_json + ": safetensors header: JSON parse error at byte 22");

    const std::string not_object = write_raw("array.safetensors", make_file("[1, 2]  ", {}));
    EXPECT_CONTAINS(read_error(not_object), not_object + ": safetensors header is a JSON array, expected an object");

    const Bytes data(16);
    const std::string out_of_range =
        write_raw("range.safetensors", make_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})", data));
    EXPECT_CONTAINS(read_error(out_of_range),
                    out_of_range + ": tensor \"w\": data_offsets [8, 24] out of range of the 16-byte data section");

    const std::string overlap =
        write_raw("overlap.safetensors", make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                                   R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                                   data));
    EXPECT_CONTAINS(read_error(overlap), overlap + ": tensors \"a\" and \"b\" have overlapping data_offsets");

    const std::string size_mismatch =
        write_raw("size.safetensors", make_file(R"({"a":{"dtype":"F16","shape":[3],"data_offsets":[0,8]}})", data));
    EXPECT_CONTAINS(read_error(size_mismatch),
                    size_mismatch + ": tensor \"a\": 8 bytes of data do not match shape [3] of F16");

    const std::string duplicate =
        write_raw("dup.safetensors", make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                               R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                               data));
    EXPECT_CONTAINS(read_error(duplicate), duplicate + ": safetensors header: JSON parse error at byte 54: "
                                                       "duplicate key \"a\"");

    const std::string dtype =
        write_raw("dtype.safetensors", make_file(R"({"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", data));
    EXPECT_CONTAINS(read_error(dtype), dtype + ": tensor \"a\": unsupported dtype \"I64\" (supported: F32, F16, BF16)");

    const std::string negative = write_raw(
        "negative.safetensors", make_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", data));
    EXPECT_CONTAINS(read_error(negative), negative + ": tensor \"a\" shape dimension is -1, expected a non-negative");

    const std::string reversed =
        write_raw("reversed.safetensors", make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", data));
    EXPECT_CONTAINS(read_error(reversed), reversed + ": tensor \"a\": data_offsets [8, 4] are reversed");

    const std::string missing_field =
        write_raw("missing.safetensors", make_file(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", data));
    EXPECT_CONTAINS(read_error(missing_field), missing_field + ": tensor \"a\": missing or non-array \"shape\"");

    const std::string bad_metadata =
        write_raw("metadata.safetensors", make_file(R"({"__metadata__":{"epoch":3}})", {}));
    EXPECT_CONTAINS(read_error(bad_metadata),
                    bad_metadata + ": metadata \"epoch\" is a JSON number, expected a string");

    const std::string missing = path("missing.safetensors.nope");
    EXPECT_CONTAINS(read_error(missing), missing + ": cannot open: No such file or directory");
}

} // namespace
