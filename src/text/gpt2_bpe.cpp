// GPT-2's byte-level BPE (openai/gpt-2's encoder.py, which gpt-3-encoder and Hugging Face's ByteLevel BPE follow):
// text is cut into pre-tokens by GPT-2's pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (matched here by hand, leftmost alternative first, as a backtracking regex engine does), each pre-token's UTF-8
// bytes become the vocabulary's 256 byte symbols, and merges are applied lowest rank first until none applies. Every
// byte has a symbol, so any UTF-8 text encodes, and decoding concatenates the tokens' bytes: an exact round trip.
#include <algorithm>
#include <array>
#include <mutex>
#include <unordered_map>

#include "common/check.hpp"
#include "io/json.hpp"
#include "text/tokenizers.hpp"
#include "text/unicode_tables.hpp"
#include "text/utf8.hpp"

namespace vktrain::text {

namespace {

enum CharClass : unsigned char { letter, number, space, other };

CharClass classify(char32_t c) {
    static const auto ascii = [] {
        std::array<CharClass, 128> t{};
        for (char32_t a = 0; a < 128; ++a)
            t[a] = is_unicode_letter(a)        ? letter
                   : is_unicode_number(a)      ? number
                   : is_unicode_white_space(a) ? space
                                               : other;
        return t;
    }();
    if (c < 128) return ascii[c];
    if (is_unicode_letter(c)) return letter;
    if (is_unicode_number(c)) return number;
    if (is_unicode_white_space(c)) return space;
    return other;
}

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68 for U+0100 onwards in order.
std::array<char32_t, 256> byte_symbols() {
    std::array<char32_t, 256> map{};
    char32_t next = 256;
    for (unsigned b = 0; b < 256; ++b) {
        const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        map[b] = printable ? char32_t(b) : next++;
    }
    return map;
}

// The end (code point index) of the pre-token starting at i: the first alternative of the pattern that matches.
size_t pretoken_end(const char32_t* c, const CharClass* k, size_t i, size_t n) {
    if (c[i] == U'\'' && i + 1 < n) { // 's|'t|'re|'ve|'m|'ll|'d (lower case only, as in GPT-2)
        const char32_t a = c[i + 1];
        if (a == U's' || a == U't' || a == U'm' || a == U'd') return i + 2;
        if (i + 2 < n) {
            const char32_t b = c[i + 2];
            if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l')) return i + 3;
        }
    }
    // ` ?X+` for X in letters, numbers, neither-nor-space: a space joins the run that follows it.
    const size_t j = (c[i] == U' ' && i + 1 < n && k[i + 1] != space) ? i + 1 : i;
    const CharClass x = k[j];
    if (x != space) {
        size_t e = j + 1;
        while (e < n && k[e] == x) ++e;
        return e;
    }
    // \s+(?!\S) then \s+: a run of white space, less its last character when a non-space follows and the run is
    // longer than one (that character then starts the next pre-token: a space joins the word after it).
    size_t e = i + 1;
    while (e < n && k[e] == space) ++e;
    if (e < n && e - i > 1) return e - 1;
    return e;
}

class Gpt2Bpe final : public vktrain::Tokenizer {
public:
    Gpt2Bpe(const std::vector<std::pair<std::string, int32_t>>& vocab, const std::vector<MergeRule>& merges,
            const std::vector<std::pair<std::string, int32_t>>& added,
            std::vector<std::pair<std::string, std::string>> files, const std::string& vocab_what,
            const std::string& merges_what)
        : m_files(std::move(files)) {
        const std::array<char32_t, 256> symbols = byte_symbols();
        std::unordered_map<char32_t, int> byte_of;
        for (int b = 0; b < 256; ++b) byte_of[symbols[size_t(b)]] = b;

        std::unordered_map<std::string, int32_t> ids;
        int64_t top = -1;
        for (const auto& [token, id] : vocab) top = std::max<int64_t>(top, id);
        for (const auto& [token, id] : added) top = std::max<int64_t>(top, id);
        VKT_CHECK(top >= 0, vocab_what, ": the vocabulary is empty");
        m_bytes.resize(size_t(top) + 1);
        m_known.assign(size_t(top) + 1, false);
        std::vector<char32_t> cps;
        for (const auto& [token, id] : vocab) {
            VKT_CHECK(!m_known[size_t(id)], vocab_what, ": id ", id, " is given to two tokens (one is \"", token,
                      "\")");
            m_known[size_t(id)] = true;
            ids.emplace(token, id);
            // A token's bytes: its characters through the byte map (a character outside the map, as in an added
            // token, stands for its own UTF-8).
            decode_utf8_strict(token, cps, nullptr, 0, vocab_what.c_str());
            std::string& bytes = m_bytes[size_t(id)];
            for (const char32_t ch : cps) {
                const auto b = byte_of.find(ch);
                if (b != byte_of.end())
                    bytes.push_back(char(b->second));
                else
                    append_utf8(ch, bytes);
            }
        }
        for (const auto& [content, id] : added) {
            if (m_known[size_t(id)]) continue; // also in the model's vocabulary (GPT-2's <|endoftext|>)
            m_known[size_t(id)] = true;
            m_bytes[size_t(id)] = content;
        }
        for (size_t b = 0; b < 256; ++b) {
            std::string s;
            append_utf8(symbols[b], s);
            const auto it = ids.find(s);
            VKT_CHECK(it != ids.end(), vocab_what, ": the vocabulary has no token for byte ", b, " (\"", s,
                      "\"): not a byte-level BPE vocabulary");
            m_byte_ids[b] = it->second;
        }
        m_merges.reserve(merges.size());
        for (size_t r = 0; r < merges.size(); ++r) {
            const MergeRule& m = merges[r];
            const auto a = ids.find(m.left), b = ids.find(m.right), ab = ids.find(m.left + m.right);
            VKT_CHECK(a != ids.end() && b != ids.end() && ab != ids.end(), merges_what, ": merge ", r + 1, " (\"",
                      m.left, " ", m.right, "\") names a token that is not in ", vocab_what);
            // A repeated rule takes its last rank, as in the reference's dict built from the list.
            m_merges.insert_or_assign(pair_key(a->second, b->second), (uint64_t(r) << 32) | uint32_t(ab->second));
        }
        for (const auto& [content, id] : added) m_special.all.emplace_back(content, id);
        std::sort(m_special.all.begin(), m_special.all.end(),
                  [](const auto& x, const auto& y) { return x.second < y.second; });
        const auto eot = ids.find("<|endoftext|>");
        if (eot != ids.end()) {
            m_special.bos = m_special.eos = eot->second;
            if (added.empty()) m_special.all.emplace_back(eot->first, eot->second);
        }
    }

    std::string kind() const override { return "gpt2-bpe"; }
    uint64_t vocabulary_size() const override { return m_bytes.size(); }
    const SpecialTokens& special_tokens() const override { return m_special; }

    void encode(std::string_view utf8, std::vector<int32_t>& out, uint64_t base) const override {
        encode_part(utf8, out, base, false);
    }
    size_t encode_settled(std::string_view utf8, std::vector<int32_t>& out, uint64_t base) const override {
        return encode_part(utf8, out, base, true);
    }

    std::string decode(const std::vector<int32_t>& ids) const override {
        std::string s;
        for (const int32_t id : ids) {
            VKT_CHECK(id >= 0 && uint64_t(id) < m_bytes.size() && m_known[size_t(id)], "token id ", id,
                      " is not in the vocabulary of ", m_bytes.size(), " tokens");
            s += m_bytes[size_t(id)];
        }
        return s;
    }

    std::string serialize() const override {
        io::Json files = io::Json::object();
        for (const auto& [name, text] : m_files) files[name] = text;
        io::Json j = io::Json::object();
        j["kind"] = "gpt2-bpe";
        j["files"] = std::move(files);
        return j.dump();
    }

private:
    static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

    // Encodes utf8, or (settled) all of it but its last pre-token, whose ids may change with what follows; returns
    // the bytes encoded.
    size_t encode_part(std::string_view utf8, std::vector<int32_t>& out, uint64_t base, bool settled) const {
        thread_local std::vector<char32_t> cps;
        thread_local std::vector<uint32_t> offsets;
        thread_local std::vector<CharClass> classes;
        decode_utf8_strict(utf8, cps, &offsets, base, "text");
        const size_t n = cps.size();
        classes.resize(n);
        for (size_t i = 0; i < n; ++i) classes[i] = classify(cps[i]);
        size_t i = 0;
        while (i < n) {
            const size_t e = pretoken_end(cps.data(), classes.data(), i, n);
            // The last pre-token may go on in what follows, and an apostrophe near the end may start a contraction.
            if (settled && (e == n || (cps[i] == U'\'' && i + 2 >= n))) break;
            bpe(utf8.substr(offsets[i], offsets[e] - offsets[i]), out);
            i = e;
        }
        return offsets[i];
    }

    void bpe(std::string_view bytes, std::vector<int32_t>& out) const {
        {
            std::lock_guard<std::mutex> lock(m_cache_mutex);
            const auto hit = m_cache.find(std::string(bytes));
            if (hit != m_cache.end()) {
                out.insert(out.end(), hit->second.begin(), hit->second.end());
                return;
            }
        }
        std::vector<int32_t> word(bytes.size());
        for (size_t i = 0; i < bytes.size(); ++i) word[i] = m_byte_ids[static_cast<unsigned char>(bytes[i])];
        while (word.size() > 1) {
            uint64_t best = ~uint64_t(0); // rank << 32 | merged id
            for (size_t i = 0; i + 1 < word.size(); ++i) {
                const auto m = m_merges.find(pair_key(word[i], word[i + 1]));
                if (m != m_merges.end()) best = std::min(best, m->second);
            }
            if (best == ~uint64_t(0)) break;
            const int32_t merged = int32_t(uint32_t(best));
            // Every occurrence of the best pair, left to right (the pair is identified by its merged id's rank).
            size_t w = 0;
            for (size_t i = 0; i < word.size();) {
                if (i + 1 < word.size()) {
                    const auto m = m_merges.find(pair_key(word[i], word[i + 1]));
                    if (m != m_merges.end() && m->second == best) {
                        word[w++] = merged;
                        i += 2;
                        continue;
                    }
                }
                word[w++] = word[i++];
            }
            word.resize(w);
        }
        out.insert(out.end(), word.begin(), word.end());
        std::lock_guard<std::mutex> lock(m_cache_mutex);
        if (m_cache.size() >= (size_t(1) << 18)) m_cache.clear(); // bounded: a corpus has a long tail of words
        m_cache.emplace(std::string(bytes), std::move(word));
    }

    std::vector<std::pair<std::string, std::string>> m_files; // name, text: what serialize() carries
    std::vector<std::string> m_bytes;                         // by id
    std::vector<bool> m_known;                                // by id: is it a token
    std::array<int32_t, 256> m_byte_ids{};
    std::unordered_map<uint64_t, uint64_t> m_merges; // pair → rank << 32 | merged id
    SpecialTokens m_special;
    mutable std::mutex m_cache_mutex;
    mutable std::unordered_map<std::string, std::vector<int32_t>> m_cache;
};

} // namespace

std::unique_ptr<vktrain::Tokenizer> make_gpt2_bpe(const std::vector<std::pair<std::string, int32_t>>& vocab,
                                                  const std::vector<MergeRule>& merges,
                                                  const std::vector<std::pair<std::string, int32_t>>& added,
                                                  std::vector<std::pair<std::string, std::string>> files,
                                                  const std::string& vocab_what, const std::string& merges_what) {
    return std::make_unique<Gpt2Bpe>(vocab, merges, added, std::move(files), vocab_what, merges_what);
}

} // namespace vktrain::text
