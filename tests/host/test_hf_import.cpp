// Hugging Face import/export without a device or PyTorch (the PyTorch parity tests are tests/python/check_hf_gpt2.py):
// the streaming safetensors writer, GptOptions' activation and sequence, a GPT-2 folder written here in Hugging
// Face's names and layouts imported (values transposed where Conv1D stores [in, out]) and exported back bit for bit,
// the export of a GPT that was never imported, and the one-line errors.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io/json.hpp"
#include "io/safetensors.hpp"
#include "scratch_dir.hpp"
#include "vktrain/error.hpp"
#include "vktrain/import.hpp"
#include "vktrain/tokenizer.hpp"
#include "vktrain/weights.hpp"
#include "error_text.hpp"

namespace {

using vkt_test::error_of;

using vktrain::io::NamedTensor;

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

// A tiny GPT-2 (vocab 11, 8 positions, width 4, 2 heads, 1 layer, MLP 6) with every value distinct, under Hugging
// Face's names ("transformer." prefixed, or not) and Conv1D layouts.
struct Gpt2Folder {
    std::vector<NamedTensor> tensors;
    vktrain::io::Json config = vktrain::io::Json::object();
};

Gpt2Folder tiny_gpt2(bool prefix, int64_t vocab = 11) {
    Gpt2Folder f;
    f.config["model_type"] = "gpt2";
    f.config["vocab_size"] = double(vocab);
    f.config["n_positions"] = 8;
    f.config["n_embd"] = 4;
    f.config["n_layer"] = 1;
    f.config["n_head"] = 2;
    f.config["n_inner"] = 6;
    const std::string p = prefix ? "transformer." : "";
    float next = 0.001f;
    const auto t = [&](const std::string& name, std::vector<int64_t> shape) {
        size_t n = 1;
        for (int64_t d : shape) n *= size_t(d);
        std::vector<float> v(n);
        for (float& x : v) x = (next += 0.001f);
        f.tensors.push_back({p + name, std::move(shape), std::move(v)});
    };
    t("wte.weight", {vocab, 4});
    t("wpe.weight", {8, 4});
    t("h.0.ln_1.weight", {4});
    t("h.0.ln_1.bias", {4});
    t("h.0.attn.c_attn.weight", {4, 12}); // Conv1D: [in, out]
    t("h.0.attn.c_attn.bias", {12});
    t("h.0.attn.c_proj.weight", {4, 4});
    t("h.0.attn.c_proj.bias", {4});
    t("h.0.ln_2.weight", {4});
    t("h.0.ln_2.bias", {4});
    t("h.0.mlp.c_fc.weight", {4, 6});
    t("h.0.mlp.c_fc.bias", {6});
    t("h.0.mlp.c_proj.weight", {6, 4});
    t("h.0.mlp.c_proj.bias", {4});
    t("ln_f.weight", {4});
    t("ln_f.bias", {4});
    return f;
}

void write_folder(const std::string& dir, const Gpt2Folder& f) {
    std::filesystem::create_directories(dir);
    vktrain::io::write_json_file(dir + "/config.json", f.config);
    vktrain::io::write_safetensors(dir + "/model.safetensors", f.tensors, {{"format", "pt"}});
}

const NamedTensor& by_name(const std::vector<NamedTensor>& ts, const std::string& name) {
    for (const NamedTensor& t : ts)
        if (t.name == name) return t;
    throw std::runtime_error("no tensor " + name);
}

TEST(SafetensorsWriter, WritesPiecesAndRefusesAnIncompleteFile) {
    vkt_test::ScratchDir dir("st-writer");
    const std::string path = dir.path() + "/w.safetensors";
    {
        vktrain::io::SafetensorsWriter w(path, {{"a", {2, 3}}, {"b", {}}}, {{"k", "v"}});
        const float a[] = {1, 2, 3, 4, 5, 6}, b[] = {7};
        w.write(a, 4);
        w.write(a + 4, 2);
        w.write(b, 1);
        EXPECT_CONTAINS(error_of([&] { w.write(b, 1); }), "8 values written, the tensors hold 7");
        w.commit();
    }
    std::vector<std::pair<std::string, std::string>> meta;
    const std::vector<NamedTensor> back = vktrain::io::read_safetensors(path, &meta);
    ASSERT_EQ(back.size(), 2u);
    EXPECT_EQ(back[0].data, (std::vector<float>{1, 2, 3, 4, 5, 6}));
    EXPECT_EQ(back[1].data, std::vector<float>{7});
    EXPECT_EQ(meta, (std::vector<std::pair<std::string, std::string>>{{"k", "v"}}));

    const std::string half = dir.path() + "/half.safetensors";
    {
        vktrain::io::SafetensorsWriter w(half, {{"a", {4}}});
        const float a[] = {1, 2};
        w.write(a, 2);
        EXPECT_CONTAINS(error_of([&] { w.commit(); }), "only 2 of the tensors' 4 values were written");
    }
    EXPECT_FALSE(std::filesystem::exists(half));
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1); // no temporary left
}

TEST(GptOptions, ActivationAndSequenceRoundTrip) {
    vktrain::GptOptions g;
    g.vocab = 13;
    g.layers = 1;
    g.width = 8;
    g.heads = 2;
    g.context = 16;
    g.activation = vktrain::GptActivation::gelu_tanh;
    g.sequence = 5;
    const vktrain::Model m = vktrain::Model::gpt(g);
    EXPECT_EQ(m.nodes()[size_t(m.inputs()[0])].shape, std::vector<int64_t>{5});
    const vktrain::GptOptions back = vktrain::gpt_options(vktrain::Model::from_json(m.to_json()));
    EXPECT_EQ(back.activation, vktrain::GptActivation::gelu_tanh);
    EXPECT_EQ(back.sequence, 5u);
    EXPECT_EQ(back.context, 16u);
    const vktrain::GptOptions plain = vktrain::gpt_options(vktrain::Model::gpt(vktrain::GptOptions{13}));
    EXPECT_EQ(plain.activation, vktrain::GptActivation::gelu);
    EXPECT_EQ(plain.sequence, 0u);
    g.sequence = 17;
    EXPECT_CONTAINS(error_of([&] { vktrain::Model::gpt(g); }), "sequence 17 is longer than the context 16");
}

TEST(HfImport, Gpt2TransposesConv1DAndExportsBitForBit) {
    for (const bool prefix : {true, false}) {
        vkt_test::ScratchDir dir(prefix ? "hf-gpt2-prefix" : "hf-gpt2-bare");
        const Gpt2Folder f = tiny_gpt2(prefix);
        write_folder(dir.path() + "/in", f);
        const std::string file = dir.path() + "/gpt2.safetensors";
        const vktrain::ImportResult r = vktrain::import_hf(dir.path() + "/in", file);
        EXPECT_EQ(r.model_type, "gpt2");
        EXPECT_EQ(r.tensors, 16u);
        const vktrain::GptOptions g = vktrain::gpt_options(r.model);
        EXPECT_TRUE(g.tied);
        EXPECT_EQ(g.activation, vktrain::GptActivation::gelu_tanh); // GPT2Config's default, gelu_new
        EXPECT_EQ(g.mlp, 6u);
        EXPECT_EQ(g.context, 8u);

        const vktrain::WeightsFile w = vktrain::read_weights(file);
        const vktrain::Model m = vktrain::load_model(w);
        const std::vector<vktrain::Parameter> values = vktrain::parameters_for(m, w); // Trainer::load's checks
        const std::string p = prefix ? "transformer." : "";
        const NamedTensor& fc = by_name(f.tensors, p + "h.0.mlp.c_fc.weight"); // [4 in, 6 out]
        for (const vktrain::Parameter& v : values) {
            if (v.name != "transformer.h.0.mlp.c_fc.weight") continue;
            ASSERT_EQ(v.shape, (std::vector<int64_t>{6, 4}));
            for (size_t o = 0; o < 6; ++o)
                for (size_t i = 0; i < 4; ++i) EXPECT_EQ(v.data[o * 4 + i], fc.data[i * 6 + o]);
        }

        vktrain::export_hf(file, dir.path() + "/out");
        const std::vector<NamedTensor> back = vktrain::io::read_safetensors(dir.path() + "/out/model.safetensors");
        ASSERT_EQ(back.size(), f.tensors.size());
        for (size_t i = 0; i < back.size(); ++i) { // the source's names and order, values bit for bit
            EXPECT_EQ(back[i].name, f.tensors[i].name);
            EXPECT_EQ(back[i].shape, f.tensors[i].shape);
            EXPECT_EQ(0, std::memcmp(back[i].data.data(), f.tensors[i].data.data(), back[i].data.size() * 4));
        }
        EXPECT_EQ(read_file(dir.path() + "/out/config.json"), read_file(dir.path() + "/in/config.json"));
        EXPECT_CONTAINS(error_of([&] { vktrain::export_hf(file, dir.path() + "/out"); }), "already exists");
    }
}

TEST(HfImport, ExportsAGptThatWasNeverImported) {
    vkt_test::ScratchDir dir("hf-native");
    vktrain::GptOptions g;
    g.vocab = 7;
    g.layers = 1;
    g.width = 4;
    g.heads = 2;
    g.context = 3;
    const vktrain::Model m = vktrain::Model::gpt(g); // untied, exact GELU
    std::vector<NamedTensor> ts;
    float next = 0.5f;
    for (const vktrain::ParameterInfo& p : m.parameters()) {
        size_t n = 1;
        for (int64_t d : p.shape) n *= size_t(d);
        std::vector<float> v(n);
        for (float& x : v) x = (next += 0.25f);
        ts.push_back({p.name, p.shape, std::move(v)});
    }
    const std::string file = dir.path() + "/native.safetensors";
    vktrain::io::write_safetensors(file, ts, {{"vktrain_graph", m.to_json()}});
    vktrain::export_hf(file, dir.path() + "/hf");
    const vktrain::io::Json c = vktrain::io::read_json_file(dir.path() + "/hf/config.json");
    EXPECT_EQ(c.at("activation_function").as_string(), "gelu");
    EXPECT_FALSE(c.at("tie_word_embeddings").as_bool());
    EXPECT_EQ(c.at("n_inner").as_int64(), 16);
    // And back in: the same model and values.
    const vktrain::ImportResult r = vktrain::import_hf(dir.path() + "/hf", dir.path() + "/again.safetensors");
    EXPECT_EQ(r.model.to_json(), m.to_json());
    const vktrain::WeightsFile again = vktrain::read_weights(dir.path() + "/again.safetensors");
    for (const NamedTensor& t : ts) EXPECT_EQ(again.tensor(t.name).to_f32(), t.data) << t.name;
}

TEST(HfImport, OneLineErrorsNameTheFieldOrTensor) {
    vkt_test::ScratchDir dir("hf-errors");
    const std::string in = dir.path() + "/in", out = dir.path() + "/o.safetensors";
    const auto import_error = [&](const Gpt2Folder& f) {
        std::filesystem::remove_all(in);
        write_folder(in, f);
        return error_of([&] { vktrain::import_hf(in, out); });
    };
    Gpt2Folder f = tiny_gpt2(true);
    f.config["model_type"] = "llama2";
    EXPECT_CONTAINS(import_error(f), "config.json: model_type \"llama2\" is not supported (supported: gpt2, llama)");
    f = tiny_gpt2(true);
    f.config["scale_attn_weights"] = false;
    EXPECT_CONTAINS(import_error(f), "scale_attn_weights false is not supported");
    f = tiny_gpt2(true);
    f.config["n_head"] = 3;
    EXPECT_CONTAINS(import_error(f), "n_embd 4 is not a multiple of n_head 3");
    f = tiny_gpt2(true);
    f.config["n_layer"] = 4000000000.0;
    EXPECT_CONTAINS(import_error(f), "field \"n_layer\" is 4000000000, outside [1, 4096]");
    f = tiny_gpt2(true);
    f.config["n_layer"] = 2;
    EXPECT_CONTAINS(import_error(f), "missing tensor 'transformer.h.1.ln_1.weight'");
    f = tiny_gpt2(true);
    f.config["vocab_size"] = 1.5;
    EXPECT_CONTAINS(import_error(f), "field \"vocab_size\" must be an integer, got 1.5");
    f = tiny_gpt2(true);
    f.tensors.erase(f.tensors.begin() + 4);
    EXPECT_CONTAINS(import_error(f), "missing tensor 'transformer.h.0.attn.c_attn.weight'");
    f = tiny_gpt2(true);
    f.tensors[1].shape = {4, 8};
    EXPECT_CONTAINS(import_error(f), "tensor 'transformer.wpe.weight' has shape [4, 8], config.json implies [8, 4]");
    f = tiny_gpt2(true);
    f.tensors[2].data[1] = std::numeric_limits<float>::infinity();
    EXPECT_CONTAINS(import_error(f), "tensor 'transformer.h.0.ln_1.weight' holds inf at element 1");
    f = tiny_gpt2(true);
    f.tensors.push_back({"transformer.h.0.attn.bias", {1, 1, 8, 8}, std::vector<float>(64, 1.0f)});
    f.tensors.push_back({"transformer.h.0.attn.masked_bias", {}, {-1e4f}});
    std::filesystem::remove_all(in);
    write_folder(in, f);
    EXPECT_EQ(vktrain::import_hf(in, out).skipped,
              (std::vector<std::string>{"transformer.h.0.attn.bias", "transformer.h.0.attn.masked_bias"}));

    // Shards: the index must agree with the files.
    std::filesystem::remove_all(in);
    std::filesystem::create_directories(in);
    f = tiny_gpt2(true);
    vktrain::io::write_json_file(in + "/config.json", f.config);
    const std::vector<NamedTensor> a(f.tensors.begin(), f.tensors.begin() + 8),
        b(f.tensors.begin() + 8, f.tensors.end());
    vktrain::io::write_safetensors(in + "/a.safetensors", a);
    vktrain::io::write_safetensors(in + "/b.safetensors", b);
    vktrain::io::Json map = vktrain::io::Json::object();
    for (const NamedTensor& t : a) map[t.name] = "a.safetensors";
    for (const NamedTensor& t : b) map[t.name] = "b.safetensors";
    vktrain::io::Json index = vktrain::io::Json::object();
    index["weight_map"] = map;
    vktrain::io::write_json_file(in + "/model.safetensors.index.json", index);
    EXPECT_EQ(vktrain::import_hf(in, out).source_files.size(), 2u);
    index["weight_map"]["transformer.ln_f.bias"] = "a.safetensors";
    vktrain::io::write_json_file(in + "/model.safetensors.index.json", index);
    EXPECT_CONTAINS(error_of([&] { vktrain::import_hf(in, out); }),
                    "b.safetensors: tensor 'transformer.ln_f.bias' is here, but model.safetensors.index.json puts it "
                    "in a.safetensors");
    EXPECT_CONTAINS(error_of([&] { vktrain::import_hf(dir.path() + "/nope", out); }), "not a folder");
}

} // namespace

namespace {

// GPT-2's byte-to-character map (bytes_to_unicode in its encoder.py): printable Latin-1 bytes stand for
// themselves, the others for U+0100 onwards.
std::string byte_symbol(int b) {
    static const std::vector<char32_t> map = [] {
        std::vector<char32_t> m(256, 0);
        int next = 0;
        for (int c = 0; c < 256; ++c) {
            const bool printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
            m[size_t(c)] = printable ? char32_t(c) : char32_t(256 + next++);
        }
        return m;
    }();
    const char32_t c = map[size_t(b)];
    std::string s;
    if (c < 0x80) {
        s.push_back(char(c));
    } else {
        s.push_back(char(0xC0 | (c >> 6)));
        s.push_back(char(0x80 | (c & 0x3F)));
    }
    return s;
}

// A byte-level BPE of 258 tokens: the 256 bytes, "ab" (merge "a b") and "Ġab" (merge "Ġ ab").
void write_tiny_bpe(const std::string& dir) {
    vktrain::io::Json vocab = vktrain::io::Json::object();
    for (int b = 0; b < 256; ++b) vocab[byte_symbol(b)] = double(b);
    vocab["ab"] = 256.0;
    vocab[byte_symbol(' ') + "ab"] = 257.0;
    vktrain::io::write_json_file(dir + "/vocab.json", vocab);
    std::ofstream(dir + "/merges.txt") << "#version: 0.2\na b\n" << byte_symbol(' ') << " ab\n";
}

} // namespace

TEST(HfImport, CarriesTheFoldersTokenizerInAndOut) {
    vkt_test::ScratchDir dir("hf-tokenizer");
    const std::string in = dir.path() + "/in", file = dir.path() + "/gpt2.safetensors";
    write_folder(in, tiny_gpt2(false, 260));
    write_tiny_bpe(in);
    const vktrain::ImportResult r = vktrain::import_hf(in, file);
    EXPECT_EQ(r.tokenizer, "gpt2-bpe");
    const vktrain::WeightsFile w = vktrain::read_weights(file);
    const std::unique_ptr<vktrain::Tokenizer> t = vktrain::tokenizer_from_metadata(w.metadata(), file);
    ASSERT_TRUE(t);
    EXPECT_EQ(t->encode("ab ab"), (std::vector<int32_t>{256, 257}));

    vktrain::export_hf(file, dir.path() + "/out"); // the tokenizer's files come back byte for byte
    for (const char* name : {"vocab.json", "merges.txt"})
        EXPECT_EQ(read_file(dir.path() + "/out/" + name), read_file(in + "/" + name)) << name;
    EXPECT_CONTAINS(error_of([&] { vktrain::export_hf(file, dir.path() + "/out"); }), "already exists");

    vktrain::ImportOptions without;
    without.tokenizer = false;
    EXPECT_EQ(vktrain::import_hf(in, file, without).tokenizer, "");
    EXPECT_EQ(vktrain::read_weights(file).metadata_value(vktrain::tokenizer_metadata_key), nullptr);

    // A tokenizer larger than the model's vocabulary, or one that cannot be read, is refused naming it.
    std::filesystem::remove_all(in);
    write_folder(in, tiny_gpt2(false, 200));
    write_tiny_bpe(in);
    EXPECT_CONTAINS(error_of([&] { vktrain::import_hf(in, file); }), "the tokenizer has 258 tokens, more than");
    EXPECT_CONTAINS(error_of([&] { vktrain::import_hf(in, file); }), "--no-tokenizer");
    std::filesystem::remove(in + "/merges.txt");
    EXPECT_CONTAINS(error_of([&] { vktrain::import_hf(in, file); }), "merges.txt");
    EXPECT_EQ(vktrain::import_hf(in, file, without).tokenizer, "");
}
