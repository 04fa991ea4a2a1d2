// Tokenizers (include/vktrain/tokenizer.hpp) on a small byte-level BPE written by the test: exact round trips of
// random UTF-8, GPT-2's pre-tokenisation seen through merges that would cross its boundaries, streaming at every cut
// equal to encoding at once, tokenizer.json equal to vocab.json + merges.txt, serialisation, and one-line errors.
// (Ids against an independent implementation with GPT-2's real files: tests/python/gpt2_tokenizer.sh.)
#include <gtest/gtest.h>

#include <functional>
#include <random>

#include "host/scratch_dir.hpp"
#include "io/json.hpp"
#include "text/tokenizers.hpp"
#include "vktrain/error.hpp"
#include "vktrain/tokenizer.hpp"

namespace {

using vktrain::io::Json;

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const vktrain::Error& e) {
        const std::string m = e.what();
        return m.substr(0, m.rfind(" (")); // without the " (file:line)" suffix
    }
    return "(no error)";
}

std::string utf8(char32_t c) {
    std::string s;
    if (c < 0x80) {
        s.push_back(char(c));
    } else if (c < 0x800) {
        s += {char(0xC0 | (c >> 6)), char(0x80 | (c & 0x3F))};
    } else if (c < 0x10000) {
        s += {char(0xE0 | (c >> 12)), char(0x80 | ((c >> 6) & 0x3F)), char(0x80 | (c & 0x3F))};
    } else {
        s += {char(0xF0 | (c >> 18)), char(0x80 | ((c >> 12) & 0x3F)), char(0x80 | ((c >> 6) & 0x3F)),
              char(0x80 | (c & 0x3F))};
    }
    return s;
}

// GPT-2's byte symbols (bytes_to_unicode).
std::string symbol(unsigned b) {
    static const std::vector<char32_t> map = [] {
        std::vector<char32_t> m(256);
        char32_t next = 256;
        for (unsigned i = 0; i < 256; ++i) {
            const bool printable = (i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE);
            m[i] = printable ? char32_t(i) : next++;
        }
        return m;
    }();
    return utf8(map[b]);
}

// 256 byte tokens (id = byte), merges that would join across pre-token boundaries if the pattern were wrong
// (space+space, letter+digit, "'"+"s", "e"+"!"), and <|endoftext|>.
struct SmallBpe {
    std::string vocab_json, merges_txt;
    std::vector<std::pair<std::string, std::string>> merges;
    SmallBpe() {
        const std::string sp = symbol(' '), nl = symbol('\n');
        merges = {{sp, "t"},
                  {"h", "e"},
                  {sp + "t", "he"},
                  {"i", "n"},
                  {sp, sp},
                  {sp + sp, sp + sp},
                  {"'", "s"},
                  {"a", "1"},
                  {"e", "!"},
                  {sp, "a"},
                  {nl, nl},
                  {"in", "g"},
                  {"1", "2"},
                  {sp, "'"},
                  {sp, "1"},
                  {"'", "r"},
                  {symbol(0xC3), symbol(0xA9)},
                  {symbol(0xC3) + symbol(0xA9), "t"}};
        Json vocab = Json::object();
        for (unsigned b = 0; b < 256; ++b) vocab[symbol(b)] = b;
        int id = 256;
        merges_txt = "#version: 0.2\n";
        for (const auto& [a, b] : merges) {
            if (!vocab.contains(a + b)) vocab[a + b] = id++;
            merges_txt += a + " " + b + "\n";
        }
        vocab["<|endoftext|>"] = id;
        vocab_json = vocab.dump();
    }
    std::unique_ptr<vktrain::Tokenizer> load() const { return vktrain::gpt2_tokenizer(vocab_json, merges_txt); }
};

std::vector<std::string> tokens_of(const vktrain::Tokenizer& t, const std::string& text) {
    std::vector<std::string> out;
    for (const int32_t id : t.encode(text)) out.push_back(t.decode({id}));
    return out;
}

using Tokens = std::vector<std::string>;

TEST(Tokenizer, Gpt2PreTokenisationKeepsMergesInsideItsPieces) {
    const auto t = SmallBpe().load();
    EXPECT_EQ(t->kind(), "gpt2-bpe");
    EXPECT_EQ(t->special_tokens().eos, int32_t(t->vocabulary_size()) - 1);
    EXPECT_EQ(t->decode({t->special_tokens().eos}), "<|endoftext|>");
    EXPECT_EQ(tokens_of(*t, " the"), (Tokens{" the"}));
    // A space joins the word after it; a run of spaces before a word gives its last space to the word.
    EXPECT_EQ(tokens_of(*t, "a     the"), (Tokens{"a", "    ", " the"}));
    EXPECT_EQ(tokens_of(*t, "a  "), (Tokens{"a", "  "}));         // white space at the end stays one run
    EXPECT_EQ(tokens_of(*t, "\n\nx"), (Tokens{"\n", "\n", "x"})); // its last character alone, as in GPT-2
    EXPECT_EQ(tokens_of(*t, "x\n\n"), (Tokens{"x", "\n\n"}));
    // Letters, numbers and other characters are separate pieces: no "a1", "e!" token though the merges exist.
    EXPECT_EQ(tokens_of(*t, "a12e!"), (Tokens{"a", "12", "e", "!"}));
    EXPECT_EQ(tokens_of(*t, " 1"), (Tokens{" 1"}));
    // Contractions (lower case only), and an apostrophe after a space.
    EXPECT_EQ(tokens_of(*t, "it's"), (Tokens{"i", "t", "'s"}));
    EXPECT_EQ(tokens_of(*t, "IT'S"), (Tokens{"I", "T", "'", "S"}));
    EXPECT_EQ(tokens_of(*t, " 's"), (Tokens{" '", "s"}));
    // Unicode letters are letters (é is one piece with t), an emoji is neither letter nor number.
    EXPECT_EQ(tokens_of(*t, "\xc3\xa9t"), (Tokens{"\xc3\xa9t"}));
    EXPECT_EQ(t->encode("\xc3\xa9t").size(), 1u);
    EXPECT_EQ(tokens_of(*t, "in\xf0\x9f\x98\x80ing"), (Tokens{"in", "\xf0", "\x9f", "\x98", "\x80", "ing"}));
    EXPECT_EQ(std::string(vktrain::tokenizer_unicode_version()), "14.0.0");
}

// Random text over a mix of ASCII, white space, apostrophes, Latin, CJK, emoji, combining marks and NUL.
std::string random_text(std::mt19937& rng, size_t length) {
    static const char32_t pool[] = {U'a', U'Z', U' ',     U' ',   U'\n',   U'\t',  U'\'',   U's',   U'1', U'!',
                                    0,    U'é', 0x0301,   0x4E2D, 0x1F600, 0x00A0, 0x3000,  0x0663, U'_', U'.',
                                    U'r', U'e', 0x10FFFF, 0xFFFD, 0x0085,  0x2028, 0x1F1FA, 0x200D};
    std::uniform_int_distribution<size_t> pick(0, sizeof(pool) / sizeof(pool[0]) - 1);
    std::uniform_int_distribution<uint32_t> any(1, 0x10FFFF);
    std::string s;
    for (size_t i = 0; i < length; ++i) {
        char32_t c = pool[pick(rng)];
        if (rng() % 8 == 0) {
            c = any(rng);
            if (c >= 0xD800 && c <= 0xDFFF) c = U'x';
        }
        s += utf8(c);
    }
    return s;
}

TEST(Tokenizer, Gpt2RoundTripsRandomUtf8) {
    const auto t = SmallBpe().load();
    std::mt19937 rng(23);
    for (int i = 0; i < 300; ++i) {
        const std::string s = random_text(rng, size_t(rng() % 64));
        const std::vector<int32_t> ids = t->encode(s);
        ASSERT_EQ(t->decode(ids), s) << "case " << i;
        for (const int32_t id : ids) ASSERT_LT(uint64_t(id), t->vocabulary_size());
    }
}

// Encoding piece by piece through encode_settled, cut at every code point boundary (and in 1-code-point pieces),
// gives encode()'s ids: what the corpus reader relies on.
TEST(Tokenizer, StreamingAtEveryCutEqualsEncodingAtOnce) {
    const auto t = SmallBpe().load();
    const auto streamed = [&](const std::vector<std::string>& pieces) {
        std::vector<int32_t> ids;
        std::string pending;
        for (const std::string& p : pieces) {
            pending += p;
            pending.erase(0, t->encode_settled(pending, ids));
        }
        t->encode(pending, ids);
        return ids;
    };
    std::mt19937 rng(5);
    std::vector<std::string> texts = {"it's  the    'reel 're 'll a12  \n\n  x", "'r", "'re", " ' ", "a   "};
    for (int i = 0; i < 40; ++i) texts.push_back(random_text(rng, 40));
    for (const std::string& s : texts) {
        const std::vector<int32_t> whole = t->encode(s);
        std::vector<size_t> starts; // code point starts
        for (size_t i = 0; i < s.size(); ++i)
            if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) starts.push_back(i);
        starts.push_back(s.size());
        for (size_t k = 1; k + 1 < starts.size(); ++k)
            ASSERT_EQ(streamed({s.substr(0, starts[k]), s.substr(starts[k])}), whole) << s << " cut at " << starts[k];
        std::vector<std::string> singles;
        for (size_t k = 0; k + 1 < starts.size(); ++k)
            singles.push_back(s.substr(starts[k], starts[k + 1] - starts[k]));
        ASSERT_EQ(streamed(singles), whole) << s;
    }
}

TEST(Tokenizer, TokenizerJsonFolderAndSerialisationGiveTheSameIds) {
    const SmallBpe bpe;
    vkt_test::ScratchDir dir("tokenizer");
    dir.write("vocab.json", bpe.vocab_json);
    dir.write("merges.txt", bpe.merges_txt);
    const auto from_folder = vktrain::load_tokenizer(dir.path());

    // tokenizer.json as Hugging Face writes GPT-2's (merges as "a b" strings, and as [a, b] pairs since 0.20).
    for (const bool pairs : {false, true}) {
        Json merges = Json::array();
        for (const auto& [a, b] : bpe.merges)
            merges.push_back(pairs ? Json(Json::Array{Json(a), Json(b)}) : Json(a + " " + b));
        Json j = Json::object();
        j["version"] = "1.0";
        Json added = Json::object();
        added["id"] = from_folder->vocabulary_size() - 1;
        added["content"] = "<|endoftext|>";
        added["special"] = true;
        j["added_tokens"] = Json(Json::Array{added});
        j["normalizer"] = nullptr;
        Json pre = Json::object();
        pre["type"] = "ByteLevel";
        pre["add_prefix_space"] = false;
        pre["trim_offsets"] = true;
        pre["use_regex"] = true;
        j["pre_tokenizer"] = pre;
        Json model = Json::object();
        model["type"] = "BPE";
        model["dropout"] = nullptr;
        model["vocab"] = Json::parse(bpe.vocab_json);
        model["merges"] = merges;
        j["model"] = model;
        vkt_test::ScratchDir hf("tokenizer-json");
        const std::string path = hf.write("tokenizer.json", j.dump());
        const auto from_json = vktrain::load_tokenizer(pairs ? path : hf.path());
        const std::string text = "it's the 12 \xc3\xa9t\n\n  in!";
        EXPECT_EQ(from_json->encode(text), from_folder->encode(text));
        EXPECT_EQ(from_json->special_tokens().all.size(), 1u);
        EXPECT_EQ(from_json->special_tokens().eos, from_folder->special_tokens().eos);

        // A pre-tokenizer that is not GPT-2's is refused by name.
        j["pre_tokenizer"]["add_prefix_space"] = true;
        hf.write("tokenizer.json", j.dump());
        EXPECT_NE(error_of([&] { vktrain::load_tokenizer(hf.path()); }).find("pre_tokenizer.add_prefix_space"),
                  std::string::npos);
    }

    // The serialised form (a model file's metadata) gives the same tokenizer back.
    const auto back = vktrain::tokenizer_from_string(from_folder->serialize(), "model.safetensors");
    const std::string text = "a     the it's 12 e!";
    EXPECT_EQ(back->encode(text), from_folder->encode(text));
    EXPECT_EQ(back->vocabulary_size(), from_folder->vocabulary_size());
    const auto chars = vktrain::char_tokenizer(vktrain::CharVocabulary(U"abc "));
    const auto chars_back = vktrain::tokenizer_from_string(chars->serialize());
    EXPECT_EQ(chars_back->kind(), "char");
    EXPECT_EQ(chars_back->encode("cab a"), (std::vector<int32_t>{3, 1, 2, 0, 1}));
    EXPECT_EQ(chars_back->decode({3, 1, 2}), "cab");
}

TEST(Tokenizer, ErrorsNameTheFileLineIdOrByte) {
    const SmallBpe bpe;
    const auto t = bpe.load();
    EXPECT_EQ(error_of([&] { t->encode("ab\xff"); }), "text: invalid UTF-8 (byte 0xff) at byte 2");
    EXPECT_EQ(error_of([&] { t->encode("ab\xc3"); }),
              "text: invalid UTF-8 (a sequence cut short by the end) at byte 2");
    EXPECT_EQ(error_of([&] { t->encode("\xed\xa0\x80"); }),
              "text: invalid UTF-8 (an overlong form, a surrogate or a value above U+10FFFF) at byte 0");
    EXPECT_EQ(error_of([&] {
                  t->decode({1, int32_t(t->vocabulary_size())});
              }),
              "token id " + std::to_string(t->vocabulary_size()) + " is not in the vocabulary of " +
                  std::to_string(t->vocabulary_size()) + " tokens");
    EXPECT_EQ(error_of([&] { t->decode({-1}); }),
              "token id -1 is not in the vocabulary of " + std::to_string(t->vocabulary_size()) + " tokens");
    EXPECT_EQ(error_of([&] { vktrain::gpt2_tokenizer(bpe.vocab_json, "#version: 0.2\nh e\nbad\n", "m/"); }),
              "m/merges.txt line 3: expected two tokens separated by one space, got \"bad\"");
    EXPECT_EQ(error_of([&] { vktrain::gpt2_tokenizer(bpe.vocab_json, "x y\n"); }),
              "merges.txt: merge 1 (\"x y\") names a token that is not in vocab.json");
    EXPECT_EQ(error_of([&] { vktrain::gpt2_tokenizer("{\"a\": 0}", ""); }),
              "vocab.json: the vocabulary has no token for byte 0 (\"\xc4\x80\"): not a byte-level BPE vocabulary");
    EXPECT_NE(error_of([&] { vktrain::gpt2_tokenizer("{\"a\": 0", ""); }).find("vocab.json: JSON parse error"),
              std::string::npos);
    vkt_test::ScratchDir empty("tokenizer-empty");
    EXPECT_EQ(error_of([&] { vktrain::load_tokenizer(empty.path()); }),
              empty.path() + ": no tokenizer files (tokenizer.model, tokenizer.json, or vocab.json and merges.txt)");
    EXPECT_EQ(error_of([&] { vktrain::load_tokenizer(empty.path() + "/nope"); }),
              empty.path() + "/nope: no such tokenizer folder");
    const auto chars = vktrain::char_tokenizer(vktrain::CharVocabulary(U"ab"));
    EXPECT_EQ(error_of([&] { chars->encode("abc"); }),
              "character \"c\" at byte 2 is not in the vocabulary of 2 characters");
}

} // namespace

namespace {

// A corpus streamed through load_text_tokens with a BPE gives the ids of encoding each file whole, for chunk sizes
// down to one byte (a pre-token never splits across chunks), and folder rules as for characters.
TEST(Tokenizer, CorpusStreamingEqualsEncodingEachFileWhole) {
    const auto t = SmallBpe().load();
    vkt_test::ScratchDir dir("tokenizer-corpus");
    std::mt19937 rng(11);
    std::string a = "it's the    'reel 're a12  \n\n  x \xc3\xa9t\xc3\xa9 in\xf0\x9f\x98\x80ing  ";
    for (int i = 0; i < 20; ++i) a += random_text(rng, 30);
    std::string b;
    for (char& c : b = random_text(rng, 200))
        if (c == 0) c = ' '; // the corpus reader refuses NUL bytes
    for (char& c : a)
        if (c == 0) c = ' ';
    dir.write("a.txt", a);
    dir.write("b.txt", b);
    dir.write("c.bin", "ok\xff");
    std::vector<int32_t> whole = t->encode(a);
    const std::vector<int32_t> wb = t->encode(b);
    whole.insert(whole.end(), wb.begin(), wb.end());
    for (const size_t chunk : {size_t(1), size_t(2), size_t(3), size_t(7), size_t(64), size_t(1) << 20}) {
        const vktrain::TextTokens got = vktrain::load_text_tokens(dir.path(), *t, {chunk});
        ASSERT_EQ(got.tokens.to_vector(), whole) << "chunk " << chunk;
        ASSERT_EQ(got.files.size(), 2u);
        ASSERT_EQ(got.skipped.size(), 1u);
        EXPECT_EQ(got.tokens.width(), 2u); // a vocabulary over 256 tokens
    }
    EXPECT_NE(error_of([&] { vktrain::load_text_tokens(dir.path() + "/c.bin", *t); }).find("invalid UTF-8"),
              std::string::npos);
}

} // namespace

namespace {

// A SentencePiece model travels in a model file's metadata as base64 (JSON strings are UTF-8).
TEST(Tokenizer, Base64RoundTripsEveryByteAndRefusesBadText) {
    std::string bytes;
    for (int i = 0; i < 256; ++i) bytes.push_back(char(i));
    for (size_t n = 0; n <= bytes.size(); n += (n < 8 ? 1 : 37)) {
        const std::string part = bytes.substr(bytes.size() - n);
        const std::string text = vktrain::text::base64_encode(part);
        EXPECT_EQ(text.size() % 4, 0u);
        EXPECT_EQ(vktrain::text::base64_decode(text, "b"), part) << n;
    }
    EXPECT_EQ(vktrain::text::base64_encode("Man"), "TWFu");
    EXPECT_EQ(vktrain::text::base64_encode("Ma"), "TWE=");
    EXPECT_EQ(error_of([] { vktrain::text::base64_decode("TWF", "m"); }),
              "m: base64 text of 3 characters (not a multiple of 4)");
    EXPECT_EQ(error_of([] { vktrain::text::base64_decode("TW=u", "m"); }), "m: invalid base64 at character 3");
    EXPECT_EQ(error_of([] { vktrain::text::base64_decode("T*Fu", "m"); }), "m: invalid base64 at character 1");
    // Bytes that are not a SentencePiece model, through the serialised form, name the metadata.
    const std::string bad = std::string("{\"kind\":\"sentencepiece\",\"files\":{\"tokenizer.model.base64\":\"") +
                            vktrain::text::base64_encode("not a model") + "\"}}";
    const std::string e = error_of([&] { vktrain::tokenizer_from_string(bad, "w.safetensors"); });
    EXPECT_EQ(e.rfind("w.safetensors: tokenizer.model: ", 0), 0u) << e;
}

} // namespace
