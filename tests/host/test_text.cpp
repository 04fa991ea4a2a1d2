// Character-level text data: strict UTF-8, the corpus rules for a folder (regular files only, no *.dat / *.u8,
// invalid ones skipped, sorted, concatenated), the vocabulary, and training / validation windows.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "host/scratch_dir.hpp"
#include "vktrain/error.hpp"
#include "vktrain/text.hpp"
#include "error_text.hpp"

namespace {

using vkt_test::error_of;

namespace fs = std::filesystem;

class TempDir : public vkt_test::ScratchDir {
public:
    TempDir() : ScratchDir("text") {}
};

TEST(Text, DecodesStrictUtf8AndRoundTrips) {
    const std::string s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\n"; // a é € 😀 newline
    const std::u32string t = vktrain::decode_utf8(s, "x");
    EXPECT_EQ(t, std::u32string(U"a\u00e9\u20ac\U0001F600\n"));
    EXPECT_EQ(vktrain::encode_utf8(t), s);
    EXPECT_NE(error_of([] { vktrain::decode_utf8("ab\xff", "f"); }).find("f: invalid UTF-8 lead byte 0xff at byte 2"),
              std::string::npos);
    EXPECT_NE(error_of([] { vktrain::decode_utf8("\xc3", "f"); }).find("truncated"), std::string::npos);
    EXPECT_NE(error_of([] { vktrain::decode_utf8("\xc0\x80", "f"); }).find("overlong"), std::string::npos);
    EXPECT_NE(error_of([] { vktrain::decode_utf8("\xed\xa0\x80", "f"); }).find("surrogate"), std::string::npos);
    EXPECT_NE(error_of([] { vktrain::decode_utf8(std::string("a\0b", 3), "f"); }).find("NUL byte at byte 1"),
              std::string::npos);
}

TEST(Text, FolderCorpusFollowsTheRules) {
    TempDir d;
    d.write("b", "second\n");
    d.write("a", "first \xc3\xa9\n");
    d.write("a.dat", "index");
    d.write("c.u8", "not this");
    d.write("d", "bad \xff");
    d.write(std::string("e"), std::string("nul\0", 4));
    fs::create_directory(fs::path(d.path()) / "sub");
    d.write("sub/f", "nested");
    fs::create_symlink(fs::path(d.path()) / "b", fs::path(d.path()) / "link");
    const vktrain::TextCorpus c = vktrain::load_text_corpus(d.path());
    EXPECT_EQ(c.text, std::u32string(U"first \u00e9\nsecond\n"));
    ASSERT_EQ(c.files.size(), 2u);
    EXPECT_EQ(fs::path(c.files[0]).filename(), "a");
    ASSERT_EQ(c.skipped.size(), 2u);
    EXPECT_NE(c.skipped[0].find("d: invalid UTF-8"), std::string::npos);
    EXPECT_NE(c.skipped[1].find("e: NUL byte"), std::string::npos);

    // A single file must be valid; an empty corpus or a folder without text is an error.
    EXPECT_NE(error_of([&] { vktrain::load_text_corpus(d.path() + "/d"); }).find("invalid UTF-8"), std::string::npos);
    const std::string empty = d.write("empty.txt", "");
    EXPECT_NE(error_of([&] { vktrain::load_text_corpus(empty); }).find("the corpus is empty"), std::string::npos);
    EXPECT_NE(error_of([&] { vktrain::load_text_corpus(d.path() + "/sub/none"); }).find("no such file"),
              std::string::npos);
}

TEST(Text, VocabularyIsTheSortedSetOfCodePoints) {
    const vktrain::CharVocabulary v(U"hello, w\u00f6rld");
    EXPECT_EQ(v.symbols(), std::u32string(U" ,dehlorw\u00f6"));
    EXPECT_EQ(v.id(U'h'), 4);
    EXPECT_EQ(v.id(U'z'), -1);
    const auto ids = v.encode(U"w\u00f6rld");
    EXPECT_EQ(v.decode(ids), "w\xc3\xb6rld");
    EXPECT_EQ(vktrain::CharVocabulary::from_utf8(v.to_utf8()).symbols(), v.symbols());
    EXPECT_NE(error_of([&] { v.encode(U"hi"); }).find("character i (U+69) at position 1"), std::string::npos);
    EXPECT_THROW(vktrain::CharVocabulary::from_utf8("ba"), vktrain::Error);
}

TEST(Text, WindowsAreSeededAndValidationCoversEachTokenOnce) {
    std::vector<int32_t> tokens(1000);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t(i);
    const vktrain::TextWindows w(tokens, 16, 7);
    std::vector<int32_t> in(3 * 16), target(3 * 16);
    w.random(5, 3, in.data(), target.data());
    std::set<uint64_t> offsets;
    for (uint32_t i = 0; i < 3; ++i) {
        const uint64_t off = w.offset(5 + i);
        offsets.insert(off);
        EXPECT_LE(off + 17, tokens.size());
        for (uint32_t t = 0; t < 16; ++t) {
            EXPECT_EQ(in[i * 16 + t], int32_t(off + t));
            EXPECT_EQ(target[i * 16 + t], int32_t(off + t + 1));
        }
    }
    EXPECT_EQ(offsets.size(), 3u);
    EXPECT_EQ(vktrain::TextWindows(tokens, 16, 7).offset(6), w.offset(6)); // same seed, same windows
    EXPECT_NE(vktrain::TextWindows(tokens, 16, 8).offset(6), w.offset(6));
    // Every offset in range is drawn eventually, none outside.
    std::set<uint64_t> all;
    for (uint64_t i = 0; i < 200000; ++i) all.insert(w.offset(i));
    EXPECT_EQ(all.size(), tokens.size() - 16);

    EXPECT_EQ(w.sequential_count(), 62u); // 62 * 16 + 1 = 993 <= 1000 < 63 * 16 + 1
    w.sequential(61, in.data(), target.data());
    EXPECT_EQ(in[0], 61 * 16);
    EXPECT_EQ(target[15], 62 * 16);
    std::vector<int32_t> short_text(16);
    EXPECT_NE(error_of([&] { vktrain::TextWindows(short_text, 16, 1); }).find("needs at least 17 tokens"),
              std::string::npos);
}

} // namespace
