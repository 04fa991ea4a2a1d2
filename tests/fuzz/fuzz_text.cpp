// Text corpora: strict UTF-8, the vocabulary, encoding and training / validation windows; and the streamed loader
// (load_text_tokens, in chunks of 1-8 bytes chosen by the input) against decoding the whole file: the same tokens,
// vocabulary and errors.
#include <string>

#include "fuzz_common.hpp"
#include "vktrain/text.hpp"

namespace {

// The error message without its " (file:line)" suffix, or "" when f does not throw.
template <typename F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const vktrain::Error& e) {
        const std::string m = e.what();
        return m.substr(0, m.rfind(" ("));
    }
    return "";
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const vkt_fuzz::TempFile file(data, size, ".txt");
    vkt_fuzz::expect_clean([&] {
        const vktrain::TextCorpus c = vktrain::load_text_corpus(file.path());
        const vktrain::CharVocabulary v(c.text);
        const std::vector<int32_t> ids = v.encode(c.text);
        if (v.decode(ids) != vktrain::encode_utf8(c.text)) __builtin_trap();
        (void)vktrain::CharVocabulary::from_utf8(v.to_utf8());
        const vktrain::TextWindows w(ids, 4, 1);
        std::vector<int32_t> in(8), target(8);
        w.random(0, 2, in.data(), target.data());
        if (w.sequential_count()) w.sequential(w.sequential_count() - 1, in.data(), target.data());
    });
    vktrain::TextLoadOptions o;
    o.chunk_bytes = size ? 1 + data[size - 1] % 8 : 1;
    std::vector<int32_t> ids, tokens;
    std::u32string symbols, streamed_symbols;
    const std::string whole_error = error_of([&] {
        const vktrain::TextCorpus c = vktrain::load_text_corpus(file.path());
        const vktrain::CharVocabulary v(c.text);
        ids = v.encode(c.text);
        symbols = v.symbols();
    });
    const std::string streamed_error = error_of([&] {
        const vktrain::TextTokens t = vktrain::load_text_tokens(file.path(), o);
        tokens = t.tokens.to_vector();
        streamed_symbols = t.vocabulary.symbols();
    });
    if (whole_error != streamed_error || ids != tokens || symbols != streamed_symbols) __builtin_trap();
    return 0;
}
