// Character-level text data: a corpus read from files as Unicode code points, its vocabulary (the sorted set of
// code points), and next-character training windows. Every failure throws vktrain::Error with a one-line message
// naming the file and the problem.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vktrain {

struct TextCorpus {
    std::u32string text;              // the decoded files, concatenated with nothing between them
    std::vector<std::string> files;   // the files read, in order
    std::vector<std::string> skipped; // "name: reason" for files of a folder that were left out
};

// `path` is a file or a folder. A file must be valid UTF-8 without NUL bytes. A folder contributes every regular
// file directly in it (not a symlink, not named *.dat or *.u8: the fortune index files and links), file names
// sorted bytewise; files that are not valid UTF-8 or contain a NUL byte are left out and listed in `skipped`. An
// empty result is an error.
TextCorpus load_text_corpus(const std::string& path);

// "/usr/share/games/fortunes" (Debian's fortunes package)
const char* default_text_dir();

// Strict UTF-8 (no overlong forms, surrogates or values above U+10FFFF); `what` names the source in errors, which
// give the byte offset.
std::u32string decode_utf8(const std::string& bytes, const std::string& what);
std::string encode_utf8(const std::u32string& text);

class CharVocabulary {
public:
    CharVocabulary() = default;
    explicit CharVocabulary(const std::u32string& text);         // the sorted set of its code points
    static CharVocabulary from_utf8(const std::string& symbols); // the to_utf8() form (sorted, distinct)

    uint32_t size() const { return uint32_t(m_symbols.size()); }
    int32_t id(char32_t c) const; // -1 when not in the vocabulary
    char32_t symbol(int32_t id) const;
    // Throws naming the first character that is not in the vocabulary.
    std::vector<int32_t> encode(const std::u32string& text) const;
    std::string decode(const std::vector<int32_t>& ids) const; // UTF-8
    std::string to_utf8() const;                               // every symbol in order
    const std::u32string& symbols() const { return m_symbols; }

private:
    std::u32string m_symbols;
};

// The recipe's split: the first floor(train_fraction · size) characters train, the rest validate.
struct TextSplit {
    std::u32string train, validation;
};
TextSplit split_text(const std::u32string& text, double train_fraction = 0.9);

// Next-token training windows over a token sequence: window i starts at a pseudo-random offset drawn from
// (seed, i) alone, so a resumed run draws the same windows without saved generator state. inputs get `context`
// tokens from the offset and targets the `context` tokens one position later.
class TextWindows {
public:
    // Throws unless tokens hold at least context + 1 tokens (a window and its last target).
    TextWindows(const std::vector<int32_t>& tokens, uint32_t context, uint64_t seed);
    // Fills count windows (count × context ids each) for windows [first, first + count).
    void random(uint64_t first, uint32_t count, int32_t* inputs, int32_t* targets) const;
    uint64_t offset(uint64_t window) const;
    // The windows at offsets 0, context, 2·context, ... that fit (each token predicted once): how many, and one.
    uint64_t sequential_count() const;
    void sequential(uint64_t window, int32_t* inputs, int32_t* targets) const;

private:
    const std::vector<int32_t>& m_tokens;
    uint32_t m_context;
    uint64_t m_seed;
};

} // namespace vktrain
