// The streamed corpus (load_text_tokens): exactly the tokens, vocabulary, files and errors of decoding the whole
// corpus at once, for every chunk size (so every UTF-8 sequence is split at every position); tokens stored at the
// narrowest width; and the memory it holds is the token array plus a chunk.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "host/scratch_dir.hpp"
#include "io/text_stream.hpp"
#include "vktrain/error.hpp"
#include "vktrain/text.hpp"

namespace {

namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const vktrain::Error& e) {
        const std::string m = e.what();
        return m.substr(0, m.rfind(" (")); // without the " (file:line)" suffix
    }
    return "(no error)";
}

class TempDir : public vkt_test::ScratchDir {
public:
    TempDir() : ScratchDir("text-stream") {}
};

// Text with sequences of every length (1-4 bytes) at every alignment, and punctuation, digits and line breaks.
std::string varied_utf8() {
    const char* pieces[] = {"a",
                            "\xc3\xa9",
                            "\xe2\x82\xac",
                            "\xf0\x9f\x98\x80",
                            " ",
                            "\xd0\x96",
                            "\n",
                            "\xe6\x97\xa5",
                            "Z",
                            "\xf4\x8f\xbf\xbf",
                            "1",
                            "\xc2\x80",
                            "\xef\xbf\xbd",
                            ","};
    std::string s;
    for (int i = 0; i < 60; ++i) s += pieces[(i * 7 + i / 3) % 14];
    return s;
}

// The reference: the whole corpus decoded at once, its vocabulary, and the ids of every character.
struct Reference {
    std::vector<int32_t> ids;
    std::u32string symbols;
    std::vector<std::string> files, skipped;
};
Reference reference(const std::string& path) {
    const vktrain::TextCorpus c = vktrain::load_text_corpus(path);
    const vktrain::CharVocabulary v(c.text);
    return {v.encode(c.text), v.symbols(), c.files, c.skipped};
}

TEST(TextStream, EveryChunkSizeDecodesLikeTheWholeFile) {
    TempDir d;
    const std::string text = varied_utf8();
    const std::string path = d.write("t", text);
    const std::u32string whole = vktrain::decode_utf8(text, "t");
    for (size_t chunk = 1; chunk <= text.size() + 1; ++chunk) {
        std::u32string streamed;
        uint64_t next_offset = 0;
        std::string reason;
        ASSERT_TRUE(vktrain::io::stream_utf8_file(
            path, chunk,
            [&](const vktrain::io::TextChunk& c) {
                EXPECT_EQ(c.byte_offset, next_offset);
                EXPECT_EQ(vktrain::decode_utf8(std::string(c.utf8), "chunk"), std::u32string(c.chars));
                next_offset += c.utf8.size();
                streamed += c.chars;
            },
            reason))
            << reason;
        ASSERT_EQ(streamed, whole) << "chunk " << chunk;
    }
}

TEST(TextStream, EveryChunkSizeGivesTheWholeFilesError) {
    TempDir d;
    const std::string good = varied_utf8();
    // Each defect at several positions, so that chunk boundaries fall before, inside and after it.
    const std::vector<std::string> defects = {
        "\xff",     "\xc3",         "\xe2\x82",         "\xf0\x9f\x98",       "\xc3(", "\xe2\x28\xac",
        "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", std::string("\0", 1), "\x80",  "\xf8\x88\x80\x80\x80"};
    for (const std::string& defect : defects)
        for (const size_t at : {size_t(0), size_t(1), size_t(7), size_t(30), good.size()}) {
            // At the end the defect is also the last thing in the file (a truncated sequence is then an error).
            std::string bytes = good;
            size_t cut = std::min(at, bytes.size());
            while (cut > 0 && (static_cast<unsigned char>(bytes[cut]) & 0xC0) == 0x80) --cut; // a boundary
            bytes.insert(cut, defect);
            const std::string path = d.write("bad", bytes);
            const std::string expected = error_of([&] { vktrain::decode_utf8(bytes, path); });
            ASSERT_NE(expected, "(no error)");
            for (size_t chunk = 1; chunk <= 9; ++chunk) {
                vktrain::TextLoadOptions o;
                o.chunk_bytes = chunk;
                EXPECT_EQ(error_of([&] { vktrain::load_text_tokens(path, o); }), expected)
                    << "defect at " << cut << ", chunk " << chunk;
            }
            EXPECT_EQ(error_of([&] { vktrain::load_text_corpus(path); }), expected);
        }
}

TEST(TextStream, TokensAndVocabularyMatchTheDecodedCorpus) {
    TempDir d;
    d.write("a", varied_utf8());
    d.write("b", "plain ascii\n");
    d.write("c.dat", "index");
    d.write("d", "valid start \xe2\x82\xac then bad \xff");       // skipped, after characters of its own
    d.write("e", "\xf0\x9f\x98\x81 only in a skipped file \xc3"); // truncated at the end: skipped
    d.write("f", "");                                             // empty: contributes nothing
    d.write("g", std::string("x\0y", 3));
    d.write("h", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e and more \xd0\x96");
    const Reference ref = reference(d.path());
    for (const size_t chunk :
         {size_t(1), size_t(2), size_t(3), size_t(4), size_t(5), size_t(7), size_t(64), size_t(1) << 20}) {
        vktrain::TextLoadOptions o;
        o.chunk_bytes = chunk;
        const vktrain::TextTokens t = vktrain::load_text_tokens(d.path(), o);
        EXPECT_EQ(t.tokens.to_vector(), ref.ids) << "chunk " << chunk;
        EXPECT_EQ(t.vocabulary.symbols(), ref.symbols);
        EXPECT_EQ(t.files, ref.files);
        EXPECT_EQ(t.skipped, ref.skipped);
    }
    // Characters of skipped files are in no vocabulary (the emoji U+1F601 occurs only in "e").
    EXPECT_EQ(ref.symbols.find(U'\U0001F601'), std::u32string::npos);
    ASSERT_EQ(ref.skipped.size(), 3u);
    EXPECT_NE(ref.skipped[0].find("d: invalid UTF-8 lead byte 0xff"), std::string::npos);

    // The same errors as load_text_corpus for what is not a corpus.
    const std::string empty = d.write("empty.txt", "");
    for (const std::string& p : {empty, d.path() + "/none", d.path() + "/d"})
        EXPECT_EQ(error_of([&] { vktrain::load_text_tokens(p); }), error_of([&] { vktrain::load_text_corpus(p); }));
}

TEST(TextStream, TokensUseTheNarrowestWidth) {
    EXPECT_EQ(vktrain::TokenArray::width_for(1), 1u);
    EXPECT_EQ(vktrain::TokenArray::width_for(256), 1u);
    EXPECT_EQ(vktrain::TokenArray::width_for(257), 2u);
    EXPECT_EQ(vktrain::TokenArray::width_for(65536), 2u);
    EXPECT_EQ(vktrain::TokenArray::width_for(65537), 4u);
    TempDir d;
    // 300 and 70,000 distinct code points: 2 and 4 bytes per token, ids exactly the reference's.
    for (const uint32_t distinct : {300u, 70000u}) {
        std::u32string text;
        for (uint32_t i = 0; i < distinct; ++i) {
            uint32_t cp = 0x20 + (i * 7919u) % distinct; // every one once, in scrambled order
            if (cp >= 0xD800) cp += 0x800;               // no surrogates
            text += char32_t(cp);
        }
        const std::string path = d.write("w" + std::to_string(distinct), vktrain::encode_utf8(text));
        const vktrain::TextTokens t = vktrain::load_text_tokens(path);
        EXPECT_EQ(t.vocabulary.size(), distinct);
        EXPECT_EQ(t.tokens.width(), distinct <= 65536 ? 2u : 4u);
        EXPECT_EQ(t.tokens.to_vector(), reference(path).ids);
    }
    vktrain::TokenArray a(10);
    EXPECT_EQ(a.width(), 1u);
    for (int32_t i = 0; i < 1000; ++i) a.push_back(i % 10);
    EXPECT_EQ(a.size(), 1000u);
    EXPECT_EQ(a[999], 9);
    EXPECT_NE(error_of([&] { a.push_back(10); }).find("token id 10 is outside the vocabulary of 10"),
              std::string::npos);
    EXPECT_NE(error_of([&] { a.push_back(-1); }).find("token id -1"), std::string::npos);
    int32_t out[4];
    EXPECT_NE(error_of([&] { a.copy(998, 4, out); }).find("tokens [998, 1002) of 1000"), std::string::npos);
}

TEST(TextStream, WindowsOverATokenSpanMatchWindowsOverIds) {
    std::vector<int32_t> ids(5000);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 31) % 300);
    vktrain::TokenArray tokens(300);
    tokens.append(ids.data(), ids.size());
    const vktrain::TokenSplit split = vktrain::split_tokens(tokens, 0.9);
    ASSERT_EQ(split.train.size(), 4500u); // floor(0.9 · 5000), as split_text
    ASSERT_EQ(split.validation.first, 4500u);
    const std::vector<int32_t> train(ids.begin(), ids.begin() + 4500), val(ids.begin() + 4500, ids.end());
    for (const auto& [span, vec] : {std::make_pair(split.train, &train), std::make_pair(split.validation, &val)}) {
        const vktrain::TextWindows a(span, 16, 9), b(*vec, 16, 9);
        std::vector<int32_t> ai(4 * 16), at(4 * 16), bi(4 * 16), bt(4 * 16);
        a.random(3, 4, ai.data(), at.data());
        b.random(3, 4, bi.data(), bt.data());
        EXPECT_EQ(ai, bi);
        EXPECT_EQ(at, bt);
        ASSERT_EQ(a.sequential_count(), b.sequential_count());
        a.sequential(a.sequential_count() - 1, ai.data(), at.data());
        b.sequential(b.sequential_count() - 1, bi.data(), bt.data());
        EXPECT_EQ(ai, bi);
        EXPECT_EQ(at, bt);
    }
    EXPECT_NE(error_of([&] {
                  vktrain::TextWindows(vktrain::TokenSpan{&tokens, 4990, 10}, 16, 1);
              }).find("needs at least 17 tokens of text, the split has 10"),
              std::string::npos);
}

// The memory the load holds: the token array (1 byte per character here) plus chunk buffers, measured as the growth
// of this process's peak resident set while loading (Linux: /proc/self/clear_refs resets the peak). Decoding the
// whole corpus held about 18 bytes per byte; the bound allows 2 bytes per byte plus 16 MiB.
TEST(TextStream, LoadingHoldsTheTokensAndAChunk) {
    TempDir d;
    const size_t bytes = size_t(24) << 20;
    std::string text;
    text.reserve(bytes);
    for (size_t i = 0; text.size() < bytes; ++i)
        text += "the quick brown fox jumps over the lazy dog " + std::to_string(i % 97) + "\n";
    const std::string path = d.write("big.txt", text);
    std::string().swap(text);

    const auto status_kib = [](const char* key) -> long {
        std::ifstream f("/proc/self/status");
        std::string line;
        while (std::getline(f, line))
            if (line.rfind(key, 0) == 0) return std::stol(line.substr(std::string(key).size()));
        return -1;
    };
    std::ofstream reset("/proc/self/clear_refs");
    reset << "5"; // resets VmHWM to the current VmRSS
    reset.close();
    const long rss_before = status_kib("VmRSS:");
    if (!reset || rss_before < 0 || status_kib("VmHWM:") > rss_before + 1024)
        GTEST_SKIP() << "this kernel cannot reset the peak resident set (/proc/self/clear_refs)";

    const vktrain::TextTokens t = vktrain::load_text_tokens(path);
    const long peak_growth = (status_kib("VmHWM:") - rss_before) * 1024;
    EXPECT_EQ(t.tokens.width(), 1u);
    EXPECT_EQ(t.tokens.bytes(), t.tokens.size()); // exactly one byte per character allocated
    EXPECT_GE(t.tokens.size(), bytes);
    EXPECT_LE(peak_growth, long(2 * bytes + (size_t(16) << 20)))
        << "loading " << bytes << " bytes grew the peak resident set by " << peak_growth << " bytes";
}

} // namespace
