#include "vktrain/text.hpp"

#include <algorithm>
#include <sstream>

#include "common/check.hpp"
#include "io/text_stream.hpp"

namespace vktrain {

namespace {

// SplitMix64: the offset of window i depends on (seed, i) only.
uint64_t mix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

} // namespace

const char* default_text_dir() {
    return "/usr/share/games/fortunes";
}

std::u32string decode_utf8(const std::string& bytes, const std::string& what) {
    std::u32string out(bytes.size(), U'\0');
    size_t used = 0, count = 0;
    std::string reason;
    VKT_CHECK(io::decode_utf8_prefix(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), true, 0,
                                     out.data(), used, count, reason),
              what, ": ", reason);
    out.resize(count);
    return out;
}

std::string encode_utf8(const std::u32string& text) {
    std::string out;
    out.reserve(text.size());
    for (char32_t c : text) {
        const uint32_t cp = uint32_t(c);
        VKT_CHECK(cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF), "cannot encode code point ", cp, " as UTF-8");
        if (cp < 0x80) {
            out += char(cp);
        } else if (cp < 0x800) {
            out += char(0xC0 | (cp >> 6));
            out += char(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += char(0xE0 | (cp >> 12));
            out += char(0x80 | ((cp >> 6) & 0x3F));
            out += char(0x80 | (cp & 0x3F));
        } else {
            out += char(0xF0 | (cp >> 18));
            out += char(0x80 | ((cp >> 12) & 0x3F));
            out += char(0x80 | ((cp >> 6) & 0x3F));
            out += char(0x80 | (cp & 0x3F));
        }
    }
    return out;
}

TextCorpus load_text_corpus(const std::string& path) {
    const io::CorpusFiles files = io::corpus_files(path);
    TextCorpus c;
    c.text.reserve(files.bytes); // at least one byte per character: pages never written are never touched
    for (size_t f = 0; f < files.paths.size(); ++f) {
        const size_t before = c.text.size();
        std::string reason;
        const bool ok = io::stream_utf8_file(
            files.paths[f], TextLoadOptions().chunk_bytes,
            [&](const io::TextChunk& chunk) { c.text.append(chunk.chars.data(), chunk.chars.size()); }, reason);
        if (ok) {
            c.files.push_back(files.paths[f]);
            continue;
        }
        VKT_CHECK(files.folder, path, ": ", reason);
        c.text.resize(before);
        c.skipped.push_back(files.names[f] + ": " + reason);
    }
    if (c.files.empty() || c.text.empty()) io::fail_no_text(path, files, c.skipped);
    return c;
}

CharVocabulary::CharVocabulary(const std::u32string& text) : m_symbols(text) {
    std::sort(m_symbols.begin(), m_symbols.end());
    m_symbols.erase(std::unique(m_symbols.begin(), m_symbols.end()), m_symbols.end());
}

CharVocabulary CharVocabulary::from_utf8(const std::string& symbols) {
    CharVocabulary v;
    v.m_symbols = decode_utf8(symbols, "vocabulary");
    VKT_CHECK(!v.m_symbols.empty(), "vocabulary: empty");
    for (size_t i = 1; i < v.m_symbols.size(); ++i)
        VKT_CHECK(v.m_symbols[i - 1] < v.m_symbols[i], "vocabulary: symbols must be sorted and distinct");
    return v;
}

int32_t CharVocabulary::id(char32_t c) const {
    const auto it = std::lower_bound(m_symbols.begin(), m_symbols.end(), c);
    return it != m_symbols.end() && *it == c ? int32_t(it - m_symbols.begin()) : -1;
}

char32_t CharVocabulary::symbol(int32_t id) const {
    VKT_CHECK(id >= 0 && size_t(id) < m_symbols.size(), "token id ", id, " is outside the vocabulary of ",
              m_symbols.size());
    return m_symbols[size_t(id)];
}

std::vector<int32_t> CharVocabulary::encode(const std::u32string& text) const {
    std::vector<int32_t> ids;
    ids.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
        const int32_t k = id(text[i]);
        VKT_CHECK(
            k >= 0, "character ", encode_utf8(std::u32string(1, text[i])), " (U+",
            [&] {
                std::ostringstream h;
                h << std::hex << std::uppercase << uint32_t(text[i]);
                return h.str();
            }(),
            ") at position ", i, " is not in the vocabulary of ", size(), " characters");
        ids.push_back(k);
    }
    return ids;
}

std::string CharVocabulary::decode(const std::vector<int32_t>& ids) const {
    std::u32string text;
    for (int32_t k : ids) text.push_back(symbol(k));
    return encode_utf8(text);
}

std::string CharVocabulary::to_utf8() const {
    return encode_utf8(m_symbols);
}

TextSplit split_text(const std::u32string& text, double train_fraction) {
    VKT_CHECK(train_fraction > 0.0 && train_fraction < 1.0, "the training fraction must lie in (0, 1), got ",
              train_fraction);
    const size_t n = size_t(double(text.size()) * train_fraction);
    return {text.substr(0, n), text.substr(n)};
}

TextWindows::TextWindows(const std::vector<int32_t>& tokens, uint32_t context, uint64_t seed)
    : m_vector(&tokens), m_size(tokens.size()), m_context(context), m_seed(seed) {
    VKT_CHECK(context > 0, "the context must be at least 1 token");
    VKT_CHECK(m_size > context, "a context of ", context, " tokens needs at least ", uint64_t(context) + 1,
              " tokens of text, the split has ", m_size);
}

TextWindows::TextWindows(const TokenSpan& tokens, uint32_t context, uint64_t seed)
    : m_span(tokens), m_size(tokens.count), m_context(context), m_seed(seed) {
    VKT_CHECK(tokens.tokens != nullptr || tokens.count == 0, "text windows over a span of no token array");
    VKT_CHECK(tokens.tokens == nullptr ||
                  (tokens.first <= tokens.tokens->size() && tokens.count <= tokens.tokens->size() - tokens.first),
              "text windows: tokens [", tokens.first, ", ", tokens.first + tokens.count, ") of ",
              tokens.tokens ? tokens.tokens->size() : 0);
    VKT_CHECK(context > 0, "the context must be at least 1 token");
    VKT_CHECK(m_size > context, "a context of ", context, " tokens needs at least ", uint64_t(context) + 1,
              " tokens of text, the split has ", m_size);
}

void TextWindows::tokens(uint64_t first, uint32_t count, int32_t* out) const {
    if (m_vector) {
        const int32_t* src = m_vector->data() + first;
        std::copy(src, src + count, out);
    } else {
        m_span.tokens->copy(m_span.first + first, count, out);
    }
}

uint64_t TextWindows::offset(uint64_t window) const {
    const uint64_t range = m_size - m_context; // offsets 0 .. size - context - 1
    return mix(mix(m_seed) ^ window) % range;
}

void TextWindows::random(uint64_t first, uint32_t count, int32_t* inputs, int32_t* targets) const {
    for (uint32_t i = 0; i < count; ++i) {
        const uint64_t at = offset(first + i);
        tokens(at, m_context, inputs + size_t(i) * m_context);
        tokens(at + 1, m_context, targets + size_t(i) * m_context);
    }
}

uint64_t TextWindows::sequential_count() const {
    return (m_size - 1) / m_context;
}

void TextWindows::sequential(uint64_t window, int32_t* inputs, int32_t* targets) const {
    VKT_CHECK(window < sequential_count(), "window ", window, " of ", sequential_count());
    tokens(window * m_context, m_context, inputs);
    tokens(window * m_context + 1, m_context, targets);
}

} // namespace vktrain
