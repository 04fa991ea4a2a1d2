// Character-level text data: a corpus read from files as Unicode code points, its vocabulary (the sorted set of
// code points), and next-character training windows. Every failure throws vktrain::Error with a one-line message
// naming the file and the problem.
//
// Two ways to load a corpus: load_text_tokens streams the files into one token array (what training uses: about
// one byte of memory per character for vocabularies of up to 256 symbols), load_text_corpus decodes them into a
// std::u32string (four bytes per character).
#pragma once

#include <cstdint>
#include <memory>
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

// A token sequence stored at the narrowest width that holds every id of its vocabulary: 1 byte per token for up to
// 256 symbols, 2 for up to 65,536, else 4. Move-only (a corpus's tokens are the largest thing the host holds).
class TokenArray {
public:
    TokenArray() = default;
    explicit TokenArray(uint64_t vocabulary_size); // ids in [0, vocabulary_size); at most 2^31
    TokenArray(TokenArray&&) noexcept = default;
    TokenArray& operator=(TokenArray&&) noexcept = default;
    TokenArray(const TokenArray&) = delete;
    TokenArray& operator=(const TokenArray&) = delete;

    static uint32_t width_for(uint64_t vocabulary_size); // bytes per token: 1, 2 or 4

    uint64_t vocabulary_size() const { return m_vocabulary; }
    uint32_t width() const { return m_width; }
    uint64_t size() const { return m_size; }
    uint64_t bytes() const { return m_capacity * m_width; } // allocated
    void reserve(uint64_t tokens);
    void push_back(int32_t id);                    // throws unless 0 <= id < vocabulary_size
    void append(const int32_t* ids, size_t count); // the same for count ids
    int32_t operator[](uint64_t i) const;
    // Tokens [first, first + count) widened to int32; throws when the range is out of bounds.
    void copy(uint64_t first, uint64_t count, int32_t* out) const;
    std::vector<int32_t> to_vector() const;
    const unsigned char* data() const { return m_data.get(); } // size() tokens of width() bytes, native byte order

private:
    std::unique_ptr<unsigned char[]> m_data;
    uint64_t m_vocabulary = 0, m_size = 0, m_capacity = 0;
    uint32_t m_width = 4;
};

// Tokens [first, first + count) of an array, which must outlive the span.
struct TokenSpan {
    const TokenArray* tokens = nullptr;
    uint64_t first = 0, count = 0;
    uint64_t size() const { return count; }
};

// split_text's split, of tokens: the first floor(train_fraction · size) train, the rest validate.
struct TokenSplit {
    TokenSpan train, validation;
};
TokenSplit split_tokens(const TokenArray& tokens, double train_fraction = 0.9);

// A corpus as character tokens: the same files, rules and errors as load_text_corpus, and vocabulary ==
// CharVocabulary(corpus.text), tokens == vocabulary.encode(corpus.text), but streamed: the files are read twice in
// chunks (once to validate them and count their characters, once to tokenise), so the memory held is the token
// array plus a chunk. Fails up front, with a one-line error, when the token array would not fit the host's
// available memory.
struct TextTokens {
    TokenArray tokens;
    CharVocabulary vocabulary;
    std::vector<std::string> files;   // the files read, in order
    std::vector<std::string> skipped; // "name: reason" for files of a folder that were left out
};
struct TextLoadOptions {
    size_t chunk_bytes = size_t(1) << 20; // bytes read at a time (at least 1)
};
TextTokens load_text_tokens(const std::string& path, const TextLoadOptions& options = {});

// Next-token training windows over a token sequence: window i starts at a pseudo-random offset drawn from
// (seed, i) alone, so a resumed run draws the same windows without saved generator state. inputs get `context`
// tokens from the offset and targets the `context` tokens one position later.
class TextWindows {
public:
    // Throws unless tokens hold at least context + 1 tokens (a window and its last target). The tokens are not
    // copied: they must outlive the windows.
    TextWindows(const std::vector<int32_t>& tokens, uint32_t context, uint64_t seed);
    TextWindows(const TokenSpan& tokens, uint32_t context, uint64_t seed);
    // Fills count windows (count × context ids each) for windows [first, first + count).
    void random(uint64_t first, uint32_t count, int32_t* inputs, int32_t* targets) const;
    uint64_t offset(uint64_t window) const;
    // The windows at offsets 0, context, 2·context, ... that fit (each token predicted once): how many, and one.
    uint64_t sequential_count() const;
    void sequential(uint64_t window, int32_t* inputs, int32_t* targets) const;

private:
    void tokens(uint64_t first, uint32_t count, int32_t* out) const;

    const std::vector<int32_t>* m_vector = nullptr; // one of the two
    TokenSpan m_span;
    uint64_t m_size;
    uint32_t m_context;
    uint64_t m_seed;
};

} // namespace vktrain
