// Text corpora: strict UTF-8, the vocabulary, encoding and training / validation windows.
#include <string>

#include "fuzz_common.hpp"
#include "vktrain/text.hpp"

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
    return 0;
}
