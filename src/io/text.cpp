#include "vktrain/text.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/check.hpp"

namespace vktrain {

namespace {

bool ends_with(const std::string& s, const char* tail) {
    const std::string t(tail);
    return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

std::string read_bytes(const std::string& path) {
    errno = 0;
    std::ifstream in(path, std::ios::binary);
    VKT_CHECK(in.good(), path, ": cannot open for reading: ", errno ? std::strerror(errno) : "unknown error");
    std::ostringstream ss;
    ss << in.rdbuf();
    VKT_CHECK(!in.bad(), path, ": read error");
    return ss.str();
}

// Decodes, or returns false with the reason (the caller decides whether that is an error).
bool try_decode(const std::string& bytes, std::u32string& out, std::string& reason) {
    out.clear();
    out.reserve(bytes.size());
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    const size_t n = bytes.size();
    for (size_t i = 0; i < n;) {
        const unsigned char b = p[i];
        uint32_t cp = 0;
        size_t len = 0;
        uint32_t min = 0;
        if (b < 0x80) {
            cp = b;
            len = 1;
        } else if ((b & 0xE0) == 0xC0) {
            cp = b & 0x1Fu;
            len = 2;
            min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            cp = b & 0x0Fu;
            len = 3;
            min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            cp = b & 0x07u;
            len = 4;
            min = 0x10000;
        } else {
            reason = "invalid UTF-8 lead byte 0x" +
                     [&] {
                         std::ostringstream h;
                         h << std::hex << unsigned(b);
                         return h.str();
                     }() +
                     " at byte " + std::to_string(i);
            return false;
        }
        if (i + len > n) {
            reason = "invalid UTF-8 (truncated sequence) at byte " + std::to_string(i);
            return false;
        }
        for (size_t k = 1; k < len; ++k) {
            if ((p[i + k] & 0xC0) != 0x80) {
                reason = "invalid UTF-8 continuation byte at byte " + std::to_string(i + k);
                return false;
            }
            cp = (cp << 6) | (p[i + k] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            reason = "invalid UTF-8 (overlong, surrogate or out of range) at byte " + std::to_string(i);
            return false;
        }
        if (cp == 0) {
            reason = "NUL byte at byte " + std::to_string(i);
            return false;
        }
        out.push_back(char32_t(cp));
        i += len;
    }
    return true;
}

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
    std::u32string out;
    std::string reason;
    VKT_CHECK(try_decode(bytes, out, reason), what, ": ", reason);
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
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
        VKT_CHECK(errno != ENOENT && errno != ENOTDIR, path, ": no such file or folder");
        VKT_FAIL(path, ": ", std::strerror(errno));
    }
    TextCorpus c;
    if (S_ISREG(st.st_mode)) {
        c.text = decode_utf8(read_bytes(path), path);
        c.files.push_back(path);
    } else {
        VKT_CHECK(S_ISDIR(st.st_mode), path, ": neither a regular file nor a folder");
        DIR* dir = opendir(path.c_str());
        VKT_CHECK(dir != nullptr, path, ": cannot open the folder: ", std::strerror(errno));
        std::vector<std::string> names;
        while (const dirent* e = readdir(dir)) {
            const std::string name = e->d_name;
            if (name == "." || name == "..") continue;
            names.push_back(name);
        }
        closedir(dir);
        std::sort(names.begin(), names.end());
        for (const std::string& name : names) {
            const std::string file = path + "/" + name;
            struct stat fs {};
            if (lstat(file.c_str(), &fs) != 0 || !S_ISREG(fs.st_mode)) continue; // symlinks, folders, devices
            if (ends_with(name, ".dat") || ends_with(name, ".u8")) continue;
            std::u32string text;
            std::string reason;
            if (!try_decode(read_bytes(file), text, reason)) {
                c.skipped.push_back(name + ": " + reason);
                continue;
            }
            c.text += text;
            c.files.push_back(file);
        }
        VKT_CHECK(!c.files.empty(), path, ": no text file (regular, valid UTF-8, no NUL byte, not *.dat or *.u8)",
                  c.skipped.empty() ? "" : "; skipped: ", c.skipped.empty() ? "" : c.skipped.front());
    }
    VKT_CHECK(!c.text.empty(), path, ": the corpus is empty");
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
    : m_tokens(tokens), m_context(context), m_seed(seed) {
    VKT_CHECK(context > 0, "the context must be at least 1 token");
    VKT_CHECK(tokens.size() > context, "a context of ", context, " tokens needs at least ", uint64_t(context) + 1,
              " tokens of text, the split has ", tokens.size());
}

uint64_t TextWindows::offset(uint64_t window) const {
    const uint64_t range = m_tokens.size() - m_context; // offsets 0 .. size - context - 1
    return mix(mix(m_seed) ^ window) % range;
}

void TextWindows::random(uint64_t first, uint32_t count, int32_t* inputs, int32_t* targets) const {
    for (uint32_t i = 0; i < count; ++i) {
        const int32_t* src = m_tokens.data() + offset(first + i);
        std::copy(src, src + m_context, inputs + size_t(i) * m_context);
        std::copy(src + 1, src + 1 + m_context, targets + size_t(i) * m_context);
    }
}

uint64_t TextWindows::sequential_count() const {
    return (m_tokens.size() - 1) / m_context;
}

void TextWindows::sequential(uint64_t window, int32_t* inputs, int32_t* targets) const {
    VKT_CHECK(window < sequential_count(), "window ", window, " of ", sequential_count());
    const int32_t* src = m_tokens.data() + window * m_context;
    std::copy(src, src + m_context, inputs);
    std::copy(src + 1, src + 1 + m_context, targets);
}

} // namespace vktrain
