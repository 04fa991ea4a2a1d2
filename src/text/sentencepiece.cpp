// SentencePiece tokenizers (tokenizer.model, the protobuf Llama and TinyLlama ship) through the system's
// libsentencepiece, when the build has it (VKTRAIN_SENTENCEPIECE). SentencePiece normalises and adds a dummy prefix
// per encoded text, so a piece of a file cannot be settled before the file ends: streaming holds a file whole.
#include <algorithm>
#include <cstring>

#include "common/check.hpp"
#include "io/json.hpp"
#include "text/tokenizers.hpp"
#include "text/utf8.hpp"

#ifdef VKTRAIN_HAVE_SENTENCEPIECE
#include <sentencepiece_processor.h>
#endif

namespace vktrain::text {

namespace {

const char* const base64_digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

} // namespace

std::string base64_encode(const std::string& bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    for (size_t i = 0; i < bytes.size(); i += 3) {
        const size_t n = std::min<size_t>(3, bytes.size() - i);
        uint32_t v = 0;
        for (size_t k = 0; k < 3; ++k) v = (v << 8) | (k < n ? static_cast<unsigned char>(bytes[i + k]) : 0u);
        for (size_t k = 0; k < 4; ++k) out.push_back(k <= n ? base64_digits[(v >> (18 - 6 * k)) & 63] : '=');
    }
    return out;
}

std::string base64_decode(const std::string& text, const std::string& what) {
    VKT_CHECK(text.size() % 4 == 0, what, ": base64 text of ", text.size(), " characters (not a multiple of 4)");
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (size_t i = 0; i < text.size(); i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (size_t k = 0; k < 4; ++k) {
            const char c = text[i + k];
            uint32_t d = 0;
            if (c == '=' && i + 4 == text.size() && k >= 2) {
                ++pad;
            } else {
                const char* p = c ? std::strchr(base64_digits, c) : nullptr;
                VKT_CHECK(p && pad == 0, what, ": invalid base64 at character ", i + k);
                d = uint32_t(p - base64_digits);
            }
            v = (v << 6) | d;
        }
        out.push_back(char((v >> 16) & 0xFF));
        if (pad < 2) out.push_back(char((v >> 8) & 0xFF));
        if (pad < 1) out.push_back(char(v & 0xFF));
    }
    return out;
}

#ifdef VKTRAIN_HAVE_SENTENCEPIECE

namespace {

class SentencePiece final : public vktrain::Tokenizer {
public:
    SentencePiece(const std::string& model, const std::string& what) : m_model(model) {
        const auto status = m_processor.LoadFromSerializedProto(model);
        VKT_CHECK(status.ok(), what, ": not a SentencePiece model (", status.ToString(), ")");
        const int n = m_processor.GetPieceSize();
        VKT_CHECK(n > 0, what, ": a SentencePiece model without pieces");
        for (int id = 0; id < n; ++id)
            if (m_processor.IsControl(id) || m_processor.IsUnknown(id))
                m_special.all.emplace_back(m_processor.IdToPiece(id), id);
        m_special.bos = m_processor.bos_id();
        m_special.eos = m_processor.eos_id();
    }

    std::string kind() const override { return "sentencepiece"; }
    uint64_t vocabulary_size() const override { return uint64_t(m_processor.GetPieceSize()); }
    const SpecialTokens& special_tokens() const override { return m_special; }

    void encode(std::string_view utf8, std::vector<int32_t>& out, uint64_t base) const override {
        std::vector<char32_t> cps;
        decode_utf8_strict(utf8, cps, nullptr, base, "text"); // SentencePiece would replace, not refuse
        std::vector<int> ids;
        const auto status = m_processor.Encode(std::string_view(utf8), &ids);
        VKT_CHECK(status.ok(), "SentencePiece: ", status.ToString());
        out.insert(out.end(), ids.begin(), ids.end());
    }
    size_t encode_settled(std::string_view, std::vector<int32_t>&, uint64_t) const override {
        return 0; // the ids of a text's start may depend on all of it (normalisation, the dummy prefix)
    }
    std::string decode(const std::vector<int32_t>& ids) const override {
        for (const int32_t id : ids)
            VKT_CHECK(id >= 0 && id < m_processor.GetPieceSize(), "token id ", id, " is not in the vocabulary of ",
                      m_processor.GetPieceSize(), " tokens");
        std::string text;
        const auto status = m_processor.Decode(std::vector<int>(ids.begin(), ids.end()), &text);
        VKT_CHECK(status.ok(), "SentencePiece: ", status.ToString());
        return text;
    }
    std::string serialize() const override {
        io::Json files = io::Json::object();
        files["tokenizer.model.base64"] = base64_encode(m_model);
        io::Json j = io::Json::object();
        j["kind"] = "sentencepiece";
        j["files"] = std::move(files);
        return j.dump();
    }

private:
    std::string m_model; // the serialised protobuf
    sentencepiece::SentencePieceProcessor m_processor;
    SpecialTokens m_special;
};

} // namespace

bool sentencepiece_available() {
    return true;
}

std::unique_ptr<vktrain::Tokenizer> make_sentencepiece(const std::string& model, const std::string& what) {
    return std::make_unique<SentencePiece>(model, what);
}

#else

bool sentencepiece_available() {
    return false;
}

std::unique_ptr<vktrain::Tokenizer> make_sentencepiece(const std::string&, const std::string& what) {
    VKT_FAIL(what, ": SentencePiece tokenizers are not supported by this build of vktrain (it was built without "
                   "libsentencepiece: VKTRAIN_SENTENCEPIECE)");
}

#endif

} // namespace vktrain::text
