// The seam between reading text and tokenising it: a Tokenizer turns the decoded chunks of a corpus's files into ids
// in one TokenArray. Characters are the tokens today (CharTokenizer); a byte-level BPE or SentencePiece tokenizer
// implements the same interface (it may hold back text across chunks, such as an unfinished word, and emit it when
// the file ends). Plain host C++.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/text_stream.hpp"
#include "vktrain/text.hpp"

namespace vktrain::io {

class Tokenizer {
public:
    virtual ~Tokenizer() = default;
    virtual uint64_t vocabulary_size() const = 0;
    // Appends the ids of a chunk (whole code points) to `out`.
    virtual void encode(const TextChunk& chunk, TokenArray& out) = 0;
    // At the end of each file: appends whatever was held back.
    virtual void end_of_file(TokenArray& out) { (void)out; }
};

// A table indexed by code point (0 .. U+10FFFF) that allocates 256 entries at a time, as they are first written:
// a corpus touches a few pages, not 1.1 million entries.
template <typename T>
class CodePointTable {
public:
    CodePointTable() : m_pages(0x110000 / 256) {}
    T& operator[](char32_t c) {
        std::unique_ptr<T[]>& page = m_pages[size_t(c >> 8)];
        if (!page) page.reset(new T[256]()); // zeroed
        return page[c & 0xFF];
    }
    T get(char32_t c) const { // zero when never written
        const std::unique_ptr<T[]>& page = m_pages[size_t(c >> 8)];
        return page ? page[c & 0xFF] : T();
    }
    template <typename F>
    void for_each_nonzero(F f) const { // in code point order
        for (size_t p = 0; p < m_pages.size(); ++p)
            if (m_pages[p])
                for (size_t i = 0; i < 256; ++i)
                    if (m_pages[p][i] != T()) f(char32_t(p * 256 + i), m_pages[p][i]);
    }

private:
    std::vector<std::unique_ptr<T[]>> m_pages;
};

// Characters as tokens: the id of a code point is its rank in the sorted vocabulary. A character outside the
// vocabulary is an error naming it and its byte offset.
class CharTokenizer final : public Tokenizer {
public:
    explicit CharTokenizer(const CharVocabulary& vocabulary);
    uint64_t vocabulary_size() const override { return m_size; }
    void encode(const TextChunk& chunk, TokenArray& out) override;

private:
    CodePointTable<int32_t> m_ids; // id + 1; 0: not in the vocabulary
    uint64_t m_size;
};

} // namespace vktrain::io
