// A corpus streamed into one token array: the memory a training run holds for its text is the tokens (one byte per
// character for small vocabularies) plus a chunk, instead of the bytes, the decoded text, its copies and int32 ids.
#include <algorithm>
#include <cstring>
#include <sstream>

#include "common/check.hpp"
#include "common/host_memory.hpp"
#include "io/text_stream.hpp"
#include "io/tokenizer.hpp"
#include "vktrain/text.hpp"
#include "vktrain/tokenizer.hpp"

namespace vktrain {

namespace {

std::string mib(uint64_t bytes) {
    std::ostringstream s;
    s.precision(1);
    s << std::fixed << double(bytes) / (1024.0 * 1024.0) << " MiB";
    return s.str();
}

std::string code_point_text(char32_t c) {
    std::ostringstream h;
    h << std::hex << std::uppercase << uint32_t(c);
    return encode_utf8(std::u32string(1, c)) + " (U+" + h.str() + ")";
}

} // namespace

// ---- TokenArray

uint32_t TokenArray::width_for(uint64_t vocabulary_size) {
    return vocabulary_size <= (1u << 8) ? 1 : vocabulary_size <= (1u << 16) ? 2 : 4;
}

TokenArray::TokenArray(uint64_t vocabulary_size) : m_vocabulary(vocabulary_size), m_width(width_for(vocabulary_size)) {
    VKT_CHECK(vocabulary_size <= (uint64_t(1) << 31), "a vocabulary of ", vocabulary_size, " tokens exceeds int32 ids");
}

void TokenArray::reserve(uint64_t tokens) {
    if (tokens <= m_capacity) return;
    VKT_CHECK(tokens <= (uint64_t(1) << 62) / m_width, "a token array of ", tokens, " tokens is too large");
    // Not value-initialised: a large allocation's pages cost memory only once tokens are written to them.
    std::unique_ptr<unsigned char[]> data(new unsigned char[size_t(tokens * m_width)]);
    if (m_size) std::memcpy(data.get(), m_data.get(), size_t(m_size * m_width));
    m_data = std::move(data);
    m_capacity = tokens;
}

void TokenArray::push_back(int32_t id) {
    append(&id, 1);
}

void TokenArray::append(const int32_t* ids, size_t count) {
    if (count == 0) return;
    int32_t lo = ids[0], hi = ids[0];
    for (size_t i = 1; i < count; ++i) { // vectorises; the bad id is looked for only when there is one
        lo = std::min(lo, ids[i]);
        hi = std::max(hi, ids[i]);
    }
    if (lo < 0 || uint64_t(hi) >= m_vocabulary) {
        const int32_t* bad =
            std::find_if(ids, ids + count, [&](int32_t id) { return id < 0 || uint64_t(id) >= m_vocabulary; });
        VKT_FAIL("token id ", *bad, " is outside the vocabulary of ", m_vocabulary);
    }
    if (m_size + count > m_capacity) reserve(std::max<uint64_t>({m_size + count, m_capacity + m_capacity / 2, 256}));
    unsigned char* dst = m_data.get() + m_size * m_width;
    if (m_width == 1) {
        for (size_t i = 0; i < count; ++i) dst[i] = static_cast<unsigned char>(ids[i]);
    } else if (m_width == 2) {
        auto* d = reinterpret_cast<uint16_t*>(dst);
        for (size_t i = 0; i < count; ++i) d[i] = static_cast<uint16_t>(ids[i]);
    } else {
        std::memcpy(dst, ids, count * sizeof(int32_t));
    }
    m_size += count;
}

int32_t TokenArray::operator[](uint64_t i) const {
    int32_t id = 0;
    copy(i, 1, &id);
    return id;
}

void TokenArray::copy(uint64_t first, uint64_t count, int32_t* out) const {
    VKT_CHECK(first <= m_size && count <= m_size - first, "tokens [", first, ", ", first + count, ") of ", m_size);
    const unsigned char* src = m_data.get() + first * m_width;
    if (m_width == 1) {
        for (uint64_t i = 0; i < count; ++i) out[i] = int32_t(src[i]);
    } else if (m_width == 2) {
        const auto* s = reinterpret_cast<const uint16_t*>(src);
        for (uint64_t i = 0; i < count; ++i) out[i] = int32_t(s[i]);
    } else if (count) {
        std::memcpy(out, src, size_t(count) * sizeof(int32_t));
    }
}

std::vector<int32_t> TokenArray::to_vector() const {
    std::vector<int32_t> v(static_cast<size_t>(m_size));
    copy(0, m_size, v.data());
    return v;
}

TokenSplit split_tokens(const TokenArray& tokens, double train_fraction) {
    VKT_CHECK(train_fraction > 0.0 && train_fraction < 1.0, "the training fraction must lie in (0, 1), got ",
              train_fraction);
    const uint64_t n = uint64_t(double(tokens.size()) * train_fraction); // as split_text
    return {{&tokens, 0, n}, {&tokens, n, tokens.size() - n}};
}

// ---- CharTokenizer

namespace io {

CharTokenizer::CharTokenizer(const CharVocabulary& vocabulary) : m_size(vocabulary.size()) {
    const std::u32string& symbols = vocabulary.symbols();
    for (size_t i = 0; i < symbols.size(); ++i) m_ids[symbols[i]] = int32_t(i) + 1;
}

void CharTokenizer::encode(const TextChunk& chunk, TokenArray& out) {
    int32_t ids[4096];
    for (size_t done = 0; done < chunk.chars.size();) {
        const size_t n = std::min(sizeof(ids) / sizeof(ids[0]), chunk.chars.size() - done);
        for (size_t i = 0; i < n; ++i) {
            const char32_t c = chunk.chars[done + i];
            const int32_t id = m_ids.get(c) - 1;
            if (id < 0) {
                // The byte offset of the character: the chunk's offset plus the UTF-8 length of what precedes it.
                const std::u32string_view before = chunk.chars.substr(0, done + i);
                VKT_FAIL("character ", code_point_text(c), " at byte ",
                         chunk.byte_offset + encode_utf8(std::u32string(before)).size(),
                         " is not in the vocabulary of ", m_size, " characters");
            }
            ids[i] = id;
        }
        out.append(ids, n);
        done += n;
    }
}

} // namespace io

// ---- load_text_tokens

TextTokens load_text_tokens(const std::string& path, const TextLoadOptions& options) {
    VKT_CHECK(options.chunk_bytes >= 1, "TextLoadOptions::chunk_bytes must be at least 1");
    const io::CorpusFiles files = io::corpus_files(path);
    TextTokens t;

    // Pass 1: validate every file and count its characters per code point. A folder's invalid file is left out,
    // so its counts go into the corpus's table only once the whole file has been read.
    io::CodePointTable<uint64_t> counts;
    uint64_t characters = 0;
    std::vector<size_t> valid;
    std::vector<char32_t> seen; // the code points of the current file, once each
    for (size_t f = 0; f < files.paths.size(); ++f) {
        io::CodePointTable<uint64_t> file_counts;
        seen.clear();
        uint64_t file_characters = 0;
        std::string reason;
        const bool ok = io::stream_utf8_file(
            files.paths[f], options.chunk_bytes,
            [&](const io::TextChunk& chunk) {
                for (const char32_t c : chunk.chars)
                    if (file_counts[c]++ == 0) seen.push_back(c);
                file_characters += chunk.chars.size();
            },
            reason);
        if (!ok) {
            VKT_CHECK(files.folder, path, ": ", reason);
            t.skipped.push_back(files.names[f] + ": " + reason);
            continue;
        }
        for (const char32_t c : seen) counts[c] += file_counts.get(c);
        characters += file_characters;
        valid.push_back(f);
        t.files.push_back(files.paths[f]);
    }
    if (t.files.empty() || characters == 0) io::fail_no_text(path, files, t.skipped);

    std::u32string symbols;
    counts.for_each_nonzero([&](char32_t c, uint64_t) { symbols.push_back(c); });
    t.vocabulary = CharVocabulary(symbols); // already sorted and distinct
    t.tokens = TokenArray(t.vocabulary.size());
    const uint64_t bytes = characters * t.tokens.width();
    const uint64_t available = available_host_memory();
    VKT_CHECK(available == 0 || bytes <= available, path, ": ", characters, " characters need ", mib(bytes),
              " of host memory as tokens, but only ", mib(available), " is available");
    t.tokens.reserve(characters);

    // Pass 2: the same files, tokenised into the array.
    io::CharTokenizer tokenizer(t.vocabulary);
    for (const size_t f : valid) {
        std::string reason;
        bool ok = false;
        try {
            ok = io::stream_utf8_file(
                files.paths[f], options.chunk_bytes,
                [&](const io::TextChunk& chunk) {
                    VKT_CHECK(t.tokens.size() + chunk.chars.size() <= characters, "more characters than before");
                    tokenizer.encode(chunk, t.tokens);
                },
                reason);
            tokenizer.end_of_file(t.tokens);
        } catch (const Error& e) {
            reason = e.what();
        }
        VKT_CHECK(ok, files.paths[f], ": the file changed while it was read (", reason, ")");
    }
    VKT_CHECK(t.tokens.size() == characters, path, ": the corpus changed while it was read (", characters,
              " characters, then ", t.tokens.size(), ")");
    return t;
}

} // namespace vktrain

// ---- load_text_tokens with a tokenizer

namespace vktrain {

namespace {

// The seam's adapter: a file's chunks are appended to the unsettled tail and what is settled is encoded, so a
// pre-token never splits across chunks and the memory held is a chunk plus the tail (the last pre-token).
class StreamingTokenizer final : public io::Tokenizer {
public:
    explicit StreamingTokenizer(const vktrain::Tokenizer& tokenizer) : m_tokenizer(tokenizer) {}
    uint64_t vocabulary_size() const override { return m_tokenizer.vocabulary_size(); }
    void encode(const io::TextChunk& chunk, TokenArray& out) override {
        if (m_pending.empty()) m_offset = chunk.byte_offset;
        m_pending.append(chunk.utf8);
        m_ids.clear();
        const size_t used = m_tokenizer.encode_settled(m_pending, m_ids, m_offset);
        out.append(m_ids.data(), m_ids.size());
        m_pending.erase(0, used);
        m_offset += used;
    }
    void end_of_file(TokenArray& out) override {
        m_ids.clear();
        m_tokenizer.encode(m_pending, m_ids, m_offset);
        out.append(m_ids.data(), m_ids.size());
        m_pending.clear();
    }

private:
    const vktrain::Tokenizer& m_tokenizer;
    std::string m_pending;
    uint64_t m_offset = 0;
    std::vector<int32_t> m_ids;
};

} // namespace

TextTokens load_text_tokens(const std::string& path, const Tokenizer& tokenizer, const TextLoadOptions& options) {
    VKT_CHECK(options.chunk_bytes >= 1, "TextLoadOptions::chunk_bytes must be at least 1");
    const io::CorpusFiles files = io::corpus_files(path);
    TextTokens t;
    // Pass 1: which files are valid UTF-8 (a folder's other files are left out, as load_text_tokens does).
    std::vector<size_t> valid;
    uint64_t bytes = 0;
    for (size_t f = 0; f < files.paths.size(); ++f) {
        std::string reason;
        uint64_t file_bytes = 0;
        if (!io::stream_utf8_file(
                files.paths[f], options.chunk_bytes, [&](const io::TextChunk& c) { file_bytes += c.utf8.size(); },
                reason)) {
            VKT_CHECK(files.folder, path, ": ", reason);
            t.skipped.push_back(files.names[f] + ": " + reason);
            continue;
        }
        bytes += file_bytes;
        valid.push_back(f);
        t.files.push_back(files.paths[f]);
    }
    if (t.files.empty() || bytes == 0) io::fail_no_text(path, files, t.skipped);
    // Pass 2: tokenised. The count is not known before; the array grows (a BPE gives about a token per 3-4 bytes).
    t.tokens = TokenArray(tokenizer.vocabulary_size());
    for (const size_t f : valid) {
        StreamingTokenizer stream(tokenizer);
        std::string reason;
        bool ok = false;
        try {
            ok = io::stream_utf8_file(
                files.paths[f], options.chunk_bytes,
                [&](const io::TextChunk& chunk) { stream.encode(chunk, t.tokens); }, reason);
            if (ok) stream.end_of_file(t.tokens);
        } catch (const Error& e) {
            VKT_FAIL(files.paths[f], ": ", e.what());
        }
        VKT_CHECK(ok, files.paths[f], ": the file changed while it was read (", reason, ")");
    }
    return t;
}

} // namespace vktrain
