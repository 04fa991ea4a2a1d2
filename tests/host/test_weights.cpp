// read_weights (vktrain/weights.hpp): every safetensors dtype reported as a view of one memory map (no copy of the
// file, measured), conversion to fp32, files that cannot be mapped, bad files; parameters_for's checks and the
// caches it zero-fills; gpt_options from an architecture.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "io/json.hpp"
#include "io/safetensors.hpp"
#include "vktrain/weights.hpp"

namespace {

using vktrain::ElementType;
using vktrain::Model;
using vktrain::TensorView;
using vktrain::WeightsFile;
using Bytes = std::vector<unsigned char>;

#define EXPECT_CONTAINS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

void append_le(Bytes& out, uint64_t value, int size) {
    for (int i = 0; i < size; ++i) out.push_back(static_cast<unsigned char>(value >> (8 * i)));
}

uint64_t bits_of(double v) {
    uint64_t b;
    std::memcpy(&b, &v, 8);
    return b;
}
uint32_t bits_of(float v) {
    uint32_t b;
    std::memcpy(&b, &v, 4);
    return b;
}

// A file from (name, dtype, shape, raw bytes) entries laid out in order, and metadata.
struct Raw {
    std::string name, dtype;
    std::vector<int64_t> shape;
    Bytes data;
};
Bytes make_file(const std::vector<Raw>& tensors, const std::vector<std::pair<std::string, std::string>>& metadata) {
    vktrain::io::Json header = vktrain::io::Json::object();
    if (!metadata.empty()) {
        vktrain::io::Json m = vktrain::io::Json::object();
        for (const auto& [k, v] : metadata) m[k] = v;
        header["__metadata__"] = m;
    }
    Bytes data;
    for (const Raw& t : tensors) {
        vktrain::io::Json e = vktrain::io::Json::object();
        e["dtype"] = t.dtype;
        vktrain::io::Json s = vktrain::io::Json::array();
        for (int64_t d : t.shape) s.push_back(d);
        e["shape"] = s;
        vktrain::io::Json o = vktrain::io::Json::array();
        o.push_back(uint64_t(data.size()));
        o.push_back(uint64_t(data.size() + t.data.size()));
        e["data_offsets"] = o;
        header[t.name] = e;
        data.insert(data.end(), t.data.begin(), t.data.end());
    }
    const std::string text = header.dump(false);
    Bytes out;
    append_le(out, text.size(), 8);
    out.insert(out.end(), text.begin(), text.end());
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

class Weights : public ::testing::Test {
protected:
    void SetUp() override {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        m_dir = std::filesystem::temp_directory_path() /
                ("vktrain-test-weights-" + std::to_string(::getpid()) + "-" + info->name());
        std::filesystem::remove_all(m_dir);
        std::filesystem::create_directories(m_dir);
    }
    void TearDown() override { std::filesystem::remove_all(m_dir); }
    std::string path(const std::string& name) const { return (m_dir / name).string(); }
    std::string write(const std::string& name, const Bytes& bytes) const {
        std::ofstream f(path(name), std::ios::binary);
        f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
        return path(name);
    }

private:
    std::filesystem::path m_dir;
};

std::vector<Raw> every_dtype() {
    std::vector<Raw> t(10);
    t[0] = {"f64", "F64", {2}, {}};
    append_le(t[0].data, bits_of(0.1), 8); // rounds to the nearest float
    append_le(t[0].data, bits_of(-1e300), 8);
    t[1] = {"f32", "F32", {2, 1}, {}};
    append_le(t[1].data, bits_of(1.5f), 4);
    append_le(t[1].data, bits_of(-0.0f), 4);
    t[2] = {"f16", "F16", {2}, {}};
    append_le(t[2].data, 0x3C00, 2); // 1
    append_le(t[2].data, 0x0001, 2); // 2^-24
    t[3] = {"bf16", "BF16", {}, {}};
    append_le(t[3].data, 0xC040, 2); // -3
    t[4] = {"i64", "I64", {3}, {}};
    append_le(t[4].data, uint64_t(-5), 8);
    append_le(t[4].data, (uint64_t(1) << 24) + 1, 8); // rounds to 2^24
    append_le(t[4].data, 123456789, 8);
    t[5] = {"i32", "I32", {1}, {}};
    append_le(t[5].data, uint32_t(-7), 4);
    t[6] = {"i16", "I16", {1}, {}};
    append_le(t[6].data, uint16_t(-300), 2);
    t[7] = {"i8", "I8", {2}, {0x80, 0x7F}};
    t[8] = {"u8", "U8", {1}, {0xFF}};
    t[9] = {"bool", "BOOL", {3}, {0, 1, 2}};
    return t;
}

// Every dtype comes back with its type and shape, its bytes where the file has them (one mapping: the distance
// between two views is the distance in the file), and converts to fp32 exactly (or to the nearest float).
TEST_F(Weights, ReportsEveryDtypeAsAViewOfOneMapping) {
    const std::vector<Raw> raw = every_dtype();
    const std::string p = write("all.safetensors", make_file(raw, {{"format", "pt"}, {"my_key", "my value"}}));
    const WeightsFile f = vktrain::read_weights(p);
    EXPECT_TRUE(f.mapped());
    EXPECT_EQ(f.path(), p);
    ASSERT_EQ(f.tensors().size(), raw.size());
    const ElementType types[] = {ElementType::f64, ElementType::f32,    ElementType::f16, ElementType::bf16,
                                 ElementType::i64, ElementType::i32,    ElementType::i16, ElementType::i8,
                                 ElementType::u8,  ElementType::boolean};
    const auto* first = static_cast<const unsigned char*>(f.tensors()[0].data);
    size_t offset = 0;
    for (size_t i = 0; i < raw.size(); ++i) {
        const TensorView& t = f.tensors()[i];
        EXPECT_EQ(t.name, raw[i].name);
        EXPECT_EQ(t.type, types[i]) << t.name;
        EXPECT_EQ(vktrain::to_string(t.type), raw[i].dtype);
        EXPECT_EQ(t.shape, raw[i].shape);
        EXPECT_EQ(t.bytes, raw[i].data.size());
        EXPECT_EQ(t.elements() * vktrain::element_size(t.type), t.bytes);
        EXPECT_EQ(static_cast<const unsigned char*>(t.data), first + offset) << t.name << " is not in the mapping";
        EXPECT_EQ(std::memcmp(t.data, raw[i].data.data(), t.bytes), 0) << t.name;
        EXPECT_EQ(f.find(raw[i].name), &t);
        offset += raw[i].data.size();
    }
    EXPECT_EQ(f.tensor("f64").to_f32(), (std::vector<float>{0.1f, -std::numeric_limits<float>::infinity()}));
    const auto f32 = f.tensor("f32").to_f32();
    EXPECT_EQ(f32[0], 1.5f);
    EXPECT_EQ(bits_of(f32[1]), 0x80000000u);
    EXPECT_EQ(f.tensor("f16").to_f32(), (std::vector<float>{1.0f, std::ldexp(1.0f, -24)}));
    EXPECT_EQ(f.tensor("bf16").to_f32(), std::vector<float>{-3.0f});
    EXPECT_EQ(f.tensor("i64").to_f32(), (std::vector<float>{-5.0f, 16777216.0f, 123456792.0f}));
    EXPECT_EQ(f.tensor("i32").to_f32(), std::vector<float>{-7.0f});
    EXPECT_EQ(f.tensor("i16").to_f32(), std::vector<float>{-300.0f});
    EXPECT_EQ(f.tensor("i8").to_f32(), (std::vector<float>{-128.0f, 127.0f}));
    EXPECT_EQ(f.tensor("u8").to_f32(), std::vector<float>{255.0f});
    EXPECT_EQ(f.tensor("bool").to_f32(), (std::vector<float>{0.0f, 1.0f, 1.0f}));
    // A piece of a tensor, for streaming.
    float piece[2] = {0, 0};
    f.tensor("i64").to_f32(piece, 1, 2);
    EXPECT_EQ(piece[0], 16777216.0f);
    EXPECT_EQ(piece[1], 123456792.0f);
    EXPECT_THROW(f.tensor("i64").to_f32(piece, 2, 2), vktrain::Error);
    // Metadata in file order, and by key.
    EXPECT_EQ(f.metadata(), (vktrain::CheckpointMetadata{{"format", "pt"}, {"my_key", "my value"}}));
    ASSERT_NE(f.metadata_value("my_key"), nullptr);
    EXPECT_EQ(*f.metadata_value("my_key"), "my value");
    EXPECT_EQ(f.metadata_value("vktrain_graph"), nullptr);
    EXPECT_EQ(f.find("nope"), nullptr);
    try {
        f.tensor("nope");
        ADD_FAILURE() << "no error";
    } catch (const vktrain::Error& e) {
        EXPECT_CONTAINS(e.what(), p + ": no tensor 'nope'");
    }
    // Views stay valid when the file object moves.
    WeightsFile moved = vktrain::read_weights(p);
    const void* data = moved.tensor("u8").data;
    WeightsFile other = std::move(moved);
    EXPECT_EQ(other.tensor("u8").data, data);
    EXPECT_EQ(other.tensor("u8").to_f32(), std::vector<float>{255.0f});
}

// Anonymous (not file-backed) memory this process holds, in kB.
long rss_anon_kb() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("RssAnon:", 0) == 0) return std::stol(line.substr(8));
    return -1;
}

// Opening a 64 MiB file maps it: the process's anonymous memory does not grow by the file's size (a copy would),
// and a piece converted from the middle is right.
TEST_F(Weights, MapsTheFileInsteadOfCopyingIt) {
    if (rss_anon_kb() < 0) GTEST_SKIP() << "no RssAnon in /proc/self/status";
    const uint64_t n = uint64_t(16) << 20; // 16M floats
    const std::string p = path("big.safetensors");
    {
        const std::string header = R"({"w":{"dtype":"F32","shape":[)" + std::to_string(n) + R"(],"data_offsets":[0,)" +
                                   std::to_string(n * 4) + "]}}";
        Bytes head;
        append_le(head, header.size(), 8);
        head.insert(head.end(), header.begin(), header.end());
        std::ofstream f(p, std::ios::binary);
        f.write(reinterpret_cast<const char*>(head.data()), std::streamsize(head.size()));
        std::vector<float> chunk(1 << 20);
        for (uint64_t start = 0; start < n; start += chunk.size()) {
            for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = float(start + i);
            f.write(reinterpret_cast<const char*>(chunk.data()), std::streamsize(chunk.size() * 4));
        }
    }
    const long before = rss_anon_kb();
    const WeightsFile f = vktrain::read_weights(p);
    const long after = rss_anon_kb();
    EXPECT_TRUE(f.mapped());
    EXPECT_LT(after - before, 8 * 1024) << "read_weights grew anonymous memory by " << after - before << " kB";
    float piece[3];
    f.tensor("w").to_f32(piece, 5'000'000, 3);
    EXPECT_EQ(piece[0], 5'000'000.0f);
    EXPECT_EQ(piece[2], 5'000'002.0f);
}

// A pipe cannot be mapped: the file is read into memory once, with the same result.
TEST_F(Weights, ReadsAFileThatCannotBeMapped) {
    const Bytes bytes = make_file(every_dtype(), {{"k", "v"}});
    const std::string fifo = path("fifo.safetensors");
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    std::thread writer([&] {
        std::ofstream f(fifo, std::ios::binary);
        f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    });
    const WeightsFile f = vktrain::read_weights(fifo);
    writer.join();
    EXPECT_FALSE(f.mapped());
    ASSERT_EQ(f.tensors().size(), 10u);
    EXPECT_EQ(f.tensor("i8").to_f32(), (std::vector<float>{-128.0f, 127.0f}));
    EXPECT_EQ(*f.metadata_value("k"), "v");
}

std::string read_error(const std::string& p) {
    try {
        vktrain::read_weights(p);
    } catch (const vktrain::Error& e) {
        return e.what();
    }
    return "(no error)";
}

TEST_F(Weights, RefusesBadFilesWithOneLine) {
    std::vector<Raw> fp8{{"q", "F8_E4M3", {1}, {0}}};
    const std::string p = write("fp8.safetensors", make_file(fp8, {}));
    EXPECT_CONTAINS(read_error(p), p + ": tensor \"q\": unsupported dtype \"F8_E4M3\" (supported: F64, F32, F16, BF16, "
                                       "I64, I32, I16, I8, U8, BOOL)");
    std::vector<Raw> shortdata{{"a", "I64", {2}, Bytes(12, 0)}};
    const std::string s = write("short.safetensors", make_file(shortdata, {}));
    EXPECT_CONTAINS(read_error(s), s + ": tensor \"a\": 12 bytes of data do not match shape [2] of I64");
    EXPECT_CONTAINS(read_error(path("missing.safetensors")), "missing.safetensors: cannot open");
    EXPECT_CONTAINS(read_error(path("")), "is a directory");
    const std::string empty = write("empty.safetensors", {});
    EXPECT_CONTAINS(read_error(empty), "file size 0 is smaller than the 8-byte header length");
    // The private fp32 reader (checkpoints) keeps to float types.
    try {
        vktrain::io::read_safetensors(s);
    } catch (const vktrain::Error& e) {
        EXPECT_CONTAINS(e.what(), "12 bytes of data");
    }
}

// ---- parameters_for ----

vktrain::GptOptions tiny_gpt() {
    vktrain::GptOptions g;
    g.vocab = 5;
    g.layers = 2;
    g.heads = 2;
    g.width = 4;
    g.context = 3;
    return g;
}

// The tensors of `model` (every persistent one; `skip` left out), element i of tensor k = k + i / 1000.
std::vector<vktrain::io::NamedTensor> tensors_of(const Model& model, const std::string& skip = "") {
    std::vector<vktrain::io::NamedTensor> out;
    size_t k = 0;
    for (const vktrain::ParameterInfo& p : model.parameters()) {
        if (!p.persistent || p.name == skip) continue;
        uint64_t n = 1;
        for (int64_t d : p.shape) n *= uint64_t(d);
        vktrain::io::NamedTensor t{p.name, p.shape, std::vector<float>(n)};
        for (size_t i = 0; i < n; ++i) t.data[i] = float(k) + float(i) / 1000.0f;
        out.push_back(t);
        ++k;
    }
    return out;
}

// The decoder's key/value caches are buffers that are not persistent: a file of the training GPT's weights gives
// the decoder every tensor, with the caches zero-filled; a checkpoint's optimizer state is skipped.
TEST_F(Weights, ParametersForFillsCachesAndSkipsOptimizerState) {
    const Model gpt = Model::gpt(tiny_gpt()), decoder = Model::gpt_decoder(tiny_gpt());
    size_t caches = 0;
    for (const vktrain::ParameterInfo& p : decoder.parameters()) {
        const bool cache = p.name.find(".attn.cache.") != std::string::npos;
        EXPECT_EQ(p.persistent, !cache) << p.name;
        caches += cache ? 1 : 0;
    }
    EXPECT_EQ(caches, 4u);
    for (const vktrain::ParameterInfo& p : gpt.parameters()) EXPECT_TRUE(p.persistent) << p.name;
    auto tensors = tensors_of(gpt);
    tensors.push_back({"optimizer.exp_avg.0", {5, 4}, std::vector<float>(20, 1.0f)});
    vktrain::io::write_safetensors(path("gpt.safetensors"), tensors);
    const WeightsFile f = vktrain::read_weights(path("gpt.safetensors"));
    const std::vector<vktrain::Parameter> got = vktrain::parameters_for(decoder, f);
    const auto infos = decoder.parameters();
    ASSERT_EQ(got.size(), infos.size());
    for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].name, infos[i].name);
        EXPECT_EQ(got[i].shape, infos[i].shape);
        if (!infos[i].persistent) {
            EXPECT_EQ(got[i].data, std::vector<float>(12, 0.0f)) << got[i].name; // [context, width]
            continue;
        }
        const vktrain::io::NamedTensor* want = nullptr;
        for (const auto& t : tensors)
            if (t.name == got[i].name) want = &t;
        ASSERT_NE(want, nullptr) << got[i].name;
        EXPECT_EQ(got[i].data, want->data) << got[i].name;
    }
    // The same file for the training GPT: every tensor in its order.
    EXPECT_EQ(vktrain::parameters_for(gpt, f).size(), gpt.parameters().size());
}

TEST_F(Weights, ParametersForRefusesWhatLoadRefuses) {
    const Model gpt = Model::gpt(tiny_gpt());
    const auto error = [&](const std::vector<vktrain::io::NamedTensor>& tensors) {
        const std::string p = path("bad.safetensors");
        vktrain::io::write_safetensors(p, tensors);
        try {
            vktrain::parameters_for(gpt, vktrain::read_weights(p));
        } catch (const vktrain::Error& e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    const std::string p = path("bad.safetensors");
    EXPECT_CONTAINS(error(tensors_of(gpt, "lm_head.weight")), p + ": tensor 'lm_head.weight' is missing");
    auto extra = tensors_of(gpt);
    extra.push_back({"lm_head.bias", {5}, std::vector<float>(5, 0.0f)});
    EXPECT_CONTAINS(error(extra), p + ": tensor 'lm_head.bias' is not a parameter or buffer of the model");
    auto shaped = tensors_of(gpt);
    shaped[0].shape = {4, 5};
    EXPECT_CONTAINS(error(shaped), "tensor 'transformer.wte.weight' has shape [4, 5], the model's is [5, 4]");
    auto nan = tensors_of(gpt);
    nan[1].data[3] = std::nanf("");
    EXPECT_CONTAINS(error(nan), "tensor 'transformer.wpe.weight' holds nan at element 3");
}

// ---- gpt_options ----

TEST(GptOptions, ComeBackFromTheArchitecture) {
    vktrain::GptOptions g = tiny_gpt();
    g.mlp = 10;
    g.tied = true;
    g.eps = 1e-6f;
    for (const Model& m : {Model::gpt(g), Model::gpt_decoder(g), Model::from_json(Model::gpt(g).to_json())}) {
        const vktrain::GptOptions back = vktrain::gpt_options(m);
        EXPECT_EQ(back.vocab, g.vocab);
        EXPECT_EQ(back.layers, g.layers);
        EXPECT_EQ(back.heads, g.heads);
        EXPECT_EQ(back.width, g.width);
        EXPECT_EQ(back.context, g.context);
        EXPECT_EQ(back.mlp, g.mlp);
        EXPECT_EQ(back.tied, g.tied);
        EXPECT_EQ(back.eps, g.eps);
    }
    g.tied = false;
    g.mlp = 0;
    EXPECT_EQ(vktrain::gpt_options(Model::gpt(g)).mlp, 4 * g.width); // the width it has
    EXPECT_FALSE(vktrain::gpt_options(Model::gpt(g)).tied);
}

std::string options_error(const Model& m) {
    try {
        vktrain::gpt_options(m);
    } catch (const vktrain::Error& e) {
        return e.what();
    }
    return "(no error)";
}

TEST(GptOptions, RefuseAnotherGraph) {
    EXPECT_CONTAINS(options_error(Model::mlp(4, {3}, 2)), "not a GPT of Model::gpt's shape");
    // The GPT's architecture with a head bias: the node that differs is named.
    vktrain::io::Json j = vktrain::io::Json::parse(Model::gpt(tiny_gpt()).to_json(), "test");
    for (vktrain::io::Json& n : j["nodes"].as_array())
        if (n["name"].as_string() == "lm_head") n["attrs"]["bias"] = 1;
    EXPECT_CONTAINS(options_error(Model::from_json(j.dump())),
                    "('lm_head', linear) differs from the GPT of its options");
}

} // namespace
