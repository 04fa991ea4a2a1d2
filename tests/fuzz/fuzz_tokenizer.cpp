// Tokenizer files and text: the input is read as a tokenizer.json, as vocab.json + merges.txt (split at the first NUL
// byte) and as a serialised tokenizer (a model file's metadata), where anything but vktrain::Error is a failure; and,
// as text under a small byte-level BPE, its ids must decode to the input exactly and encoding it in pieces (cut
// where the input says) must give the ids of encoding it whole.
#include <string>

#include "fuzz_common.hpp"
#include "vktrain/tokenizer.hpp"

namespace {

// 256 byte tokens and merges across GPT-2's pre-token classes (space, letters, digits, apostrophe, a two-byte
// letter), so a wrong cut would change the ids.
const vktrain::Tokenizer& small_bpe() {
    static const std::unique_ptr<vktrain::Tokenizer> t = [] {
        std::string vocab = "{", merges = "#version: 0.2\n";
        const auto symbol = [](unsigned b) {
            const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            unsigned next = 256;
            for (unsigned i = 0; i < b; ++i)
                if (!((i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE))) ++next;
            const unsigned c = printable ? b : next;
            std::string s;
            if (c < 0x80) {
                if (c == '"' || c == '\\') s.push_back('\\');
                s.push_back(char(c));
            } else {
                s.push_back(char(0xC0 | (c >> 6)));
                s.push_back(char(0x80 | (c & 0x3F)));
            }
            return s;
        };
        for (unsigned b = 0; b < 256; ++b) vocab += "\"" + symbol(b) + "\": " + std::to_string(b) + ",";
        const std::string sp = symbol(' ');
        const std::pair<std::string, std::string> rules[] = {
            {sp, "t"},  {"h", "e"}, {sp + "t", "he"}, {sp, sp},   {"'", "s"},
            {"1", "2"}, {sp, "1"},  {"a", "1"},       {"'", "r"}, {"\xc3\x83", "\xc2\xa9"}};
        unsigned id = 256;
        for (const auto& [a, b] : rules) {
            vocab += "\"" + a + b + "\": " + std::to_string(id++) + ",";
            merges += a + " " + b + "\n";
        }
        vocab += "\"<|endoftext|>\": " + std::to_string(id) + "}";
        return vktrain::gpt2_tokenizer(vocab, merges);
    }();
    return *t;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string input(reinterpret_cast<const char*>(data), size);
    vkt_fuzz::expect_clean([&] { (void)vktrain::tokenizer_from_hf_json(input); });
    vkt_fuzz::expect_clean([&] {
        const size_t nul = input.find('\0');
        (void)vktrain::gpt2_tokenizer(input.substr(0, nul), nul == std::string::npos ? "" : input.substr(nul + 1));
    });
    vkt_fuzz::expect_clean([&] { (void)vktrain::tokenizer_from_string(input); });

    const vktrain::Tokenizer& t = small_bpe();
    std::vector<int32_t> whole;
    try {
        whole = t.encode(input);
    } catch (const vktrain::Error&) {
        return 0; // not UTF-8
    }
    if (t.decode(whole) != input) __builtin_trap();
    // Pieces of 1 + (byte % 5) code points, the sizes taken from the input itself.
    std::vector<int32_t> streamed;
    std::string pending;
    size_t i = 0, k = 0;
    while (i < input.size()) {
        size_t n = 1 + static_cast<unsigned char>(input[k++ % input.size()]) % 5, j = i;
        while (n-- && j < input.size()) {
            ++j;
            while (j < input.size() && (static_cast<unsigned char>(input[j]) & 0xC0) == 0x80) ++j;
        }
        pending += input.substr(i, j - i);
        pending.erase(0, t.encode_settled(pending, streamed));
        i = j;
    }
    t.encode(pending, streamed);
    if (streamed != whole) __builtin_trap();
    return 0;
}
