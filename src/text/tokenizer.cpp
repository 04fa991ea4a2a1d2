// The public tokenizer entry points: the file formats (vocab.json + merges.txt, tokenizer.json), the character
// tokenizer, and the serialised form a model file carries.
#include "vktrain/tokenizer.hpp"

#include <algorithm>

#include "common/check.hpp"
#include "io/json.hpp"
#include "text/tokenizers.hpp"
#include "text/unicode_tables.hpp"
#include "text/utf8.hpp"

namespace vktrain {

std::vector<int32_t> Tokenizer::encode(std::string_view utf8) const {
    std::vector<int32_t> ids;
    encode(utf8, ids, 0);
    return ids;
}

const char* tokenizer_unicode_version() {
    return text::unicode_tables_version();
}

namespace {

using io::Json;

int32_t token_id(const Json& value, const std::string& what, const std::string& token) {
    VKT_CHECK(value.is_number(), what, ": the id of \"", token, "\" is not a number");
    const int64_t id = value.as_int64();
    VKT_CHECK(id >= 0 && id < (int64_t(1) << 31), what, ": the id of \"", token, "\" (", id, ") is out of range");
    return int32_t(id);
}

std::vector<std::pair<std::string, int32_t>> vocab_of(const Json& vocab, const std::string& what) {
    VKT_CHECK(vocab.is_object(), what, ": the vocabulary is not a JSON object of token: id");
    std::vector<std::pair<std::string, int32_t>> out;
    out.reserve(vocab.size());
    for (const auto& [token, id] : vocab.as_object()) out.emplace_back(token, token_id(id, what, token));
    return out;
}

std::vector<text::MergeRule> merges_of_text(const std::string& merges, const std::string& what) {
    std::vector<text::MergeRule> out;
    size_t line = 0;
    for (size_t pos = 0; pos < merges.size();) {
        size_t end = merges.find('\n', pos);
        if (end == std::string::npos) end = merges.size();
        std::string l = merges.substr(pos, end - pos);
        pos = end + 1;
        ++line;
        if (!l.empty() && l.back() == '\r') l.pop_back();
        if (l.empty() || (line == 1 && l.rfind("#version", 0) == 0)) continue;
        const size_t space = l.find(' ');
        VKT_CHECK(space != std::string::npos && space > 0 && space + 1 < l.size() &&
                      l.find(' ', space + 1) == std::string::npos,
                  what, " line ", line, ": expected two tokens separated by one space, got \"", l, "\"");
        out.push_back({l.substr(0, space), l.substr(space + 1)});
    }
    return out;
}

std::unique_ptr<Tokenizer> from_files(const std::vector<std::pair<std::string, std::string>>& files,
                                      const std::string& where) {
    const auto file = [&](const char* name) -> const std::string* {
        for (const auto& [n, text] : files)
            if (n == name) return &text;
        return nullptr;
    };
    // A Llama folder holds tokenizer.model and a tokenizer.json of the same model in Hugging Face's form (a
    // Metaspace BPE); SentencePiece's own file is the one read.
    if (const std::string* model = file("tokenizer.model"))
        return text::make_sentencepiece(*model, where + "tokenizer.model");
    if (const std::string* b64 = file("tokenizer.model.base64"))
        return text::make_sentencepiece(text::base64_decode(*b64, where + "tokenizer.model.base64"),
                                        where + "tokenizer.model");
    if (const std::string* json = file("tokenizer.json"))
        return tokenizer_from_hf_json(*json, where + "tokenizer.json");
    const std::string *vocab = file("vocab.json"), *merges = file("merges.txt");
    if (vocab && merges) return gpt2_tokenizer(*vocab, *merges, where);
    std::string name = where.empty() ? "tokenizer" : where; // "folder/" or "what: "
    name.resize(name.size() - (name.size() >= 2 && name.compare(name.size() - 2, 2, ": ") == 0 ? 2
                               : name.back() == '/'                                            ? 1
                                                                                               : 0));
    VKT_FAIL(name, ": no tokenizer files (tokenizer.model, tokenizer.json, or vocab.json and merges.txt)");
}

// ---- characters

class CharTokenizer final : public Tokenizer {
public:
    explicit CharTokenizer(const CharVocabulary& vocabulary) : m_vocabulary(vocabulary) {}
    std::string kind() const override { return "char"; }
    uint64_t vocabulary_size() const override { return m_vocabulary.size(); }
    const SpecialTokens& special_tokens() const override { return m_special; }
    void encode(std::string_view utf8, std::vector<int32_t>& out, uint64_t base) const override {
        std::vector<char32_t> cps;
        std::vector<uint32_t> offsets;
        text::decode_utf8_strict(utf8, cps, &offsets, base, "text");
        for (size_t i = 0; i < cps.size(); ++i) {
            const int32_t id = m_vocabulary.id(cps[i]);
            if (id < 0) {
                std::string c;
                text::append_utf8(cps[i], c);
                VKT_FAIL("character \"", c, "\" at byte ", base + offsets[i], " is not in the vocabulary of ",
                         m_vocabulary.size(), " characters");
            }
            out.push_back(id);
        }
    }
    size_t encode_settled(std::string_view utf8, std::vector<int32_t>& out, uint64_t base) const override {
        encode(utf8, out, base);
        return utf8.size();
    }
    std::string decode(const std::vector<int32_t>& ids) const override {
        for (const int32_t id : ids)
            VKT_CHECK(id >= 0 && uint32_t(id) < m_vocabulary.size(), "token id ", id, " is not in the vocabulary of ",
                      m_vocabulary.size(), " characters");
        return m_vocabulary.decode(ids);
    }
    std::string serialize() const override {
        Json j = Json::object();
        j["kind"] = "char";
        j["symbols"] = m_vocabulary.to_utf8();
        return j.dump();
    }

private:
    CharVocabulary m_vocabulary;
    SpecialTokens m_special;
};

} // namespace

std::unique_ptr<Tokenizer> gpt2_tokenizer(const std::string& vocab_json, const std::string& merges_txt,
                                          const std::string& folder) {
    const std::string vocab_what = folder + "vocab.json", merges_what = folder + "merges.txt";
    const std::vector<std::pair<std::string, int32_t>> vocab =
        vocab_of(Json::parse(vocab_json, vocab_what), vocab_what);
    return text::make_gpt2_bpe(vocab, merges_of_text(merges_txt, merges_what), {},
                               {{"vocab.json", vocab_json}, {"merges.txt", merges_txt}}, vocab_what, merges_what);
}

std::unique_ptr<Tokenizer> tokenizer_from_hf_json(const std::string& tokenizer_json, const std::string& what) {
    const Json j = Json::parse(tokenizer_json, what);
    VKT_CHECK(j.is_object(), what, ": not a JSON object");
    const Json* model = j.find("model");
    VKT_CHECK(model && model->is_object(), what, ": no \"model\" object");
    const Json* type = model->find("type");
    VKT_CHECK(type && type->is_string() && type->as_string() == "BPE", what, ": model.type is ",
              type && type->is_string() ? "\"" + type->as_string() + "\"" : std::string("missing"),
              "; only BPE models (GPT-2's byte-level BPE) are supported");
    // What would change the ids and is not GPT-2's: refused by name rather than silently ignored.
    const auto null_or = [&](const Json* v, const char* field, auto ok) {
        VKT_CHECK(!v || v->is_null() || ok(*v), what, ": ", field, " = ", v ? v->dump() : "", " is not supported");
    };
    null_or(j.find("normalizer"), "normalizer", [](const Json&) { return false; });
    null_or(model->find("dropout"), "model.dropout", [](const Json&) { return false; });
    null_or(model->find("continuing_subword_prefix"), "model.continuing_subword_prefix",
            [](const Json& v) { return v.is_string() && v.as_string().empty(); });
    null_or(model->find("end_of_word_suffix"), "model.end_of_word_suffix",
            [](const Json& v) { return v.is_string() && v.as_string().empty(); });
    null_or(model->find("byte_fallback"), "model.byte_fallback",
            [](const Json& v) { return v.is_bool() && !v.as_bool(); });
    const Json* pre = j.find("pre_tokenizer");
    VKT_CHECK(pre && pre->is_object() && pre->find("type") && pre->at("type").is_string() &&
                  pre->at("type").as_string() == "ByteLevel",
              what, ": pre_tokenizer = ", pre ? pre->dump() : "missing",
              " is not supported (GPT-2's ByteLevel pre-tokenizer is)");
    null_or(pre->find("add_prefix_space"), "pre_tokenizer.add_prefix_space",
            [](const Json& v) { return v.is_bool() && !v.as_bool(); });
    null_or(pre->find("use_regex"), "pre_tokenizer.use_regex",
            [](const Json& v) { return v.is_bool() && v.as_bool(); });

    const Json* vocab = model->find("vocab");
    VKT_CHECK(vocab, what, ": no model.vocab");
    const Json* merges = model->find("merges");
    VKT_CHECK(merges && merges->is_array(), what, ": model.merges is not an array");
    std::vector<text::MergeRule> rules;
    rules.reserve(merges->size());
    for (size_t i = 0; i < merges->size(); ++i) {
        const Json& m = merges->at(i);
        if (m.is_string()) { // "a b" (tokenizers before 0.20)
            const std::string& s = m.as_string();
            const size_t space = s.find(' ');
            VKT_CHECK(space != std::string::npos && space > 0 && space + 1 < s.size() &&
                          s.find(' ', space + 1) == std::string::npos,
                      what, ": model.merges[", i, "] = \"", s, "\" is not two tokens separated by one space");
            rules.push_back({s.substr(0, space), s.substr(space + 1)});
        } else {
            VKT_CHECK(m.is_array() && m.size() == 2 && m.at(0).is_string() && m.at(1).is_string(), what,
                      ": model.merges[", i, "] is neither \"a b\" nor [\"a\", \"b\"]");
            rules.push_back({m.at(0).as_string(), m.at(1).as_string()});
        }
    }
    std::vector<std::pair<std::string, int32_t>> added;
    if (const Json* tokens = j.find("added_tokens"); tokens && !tokens->is_null()) {
        VKT_CHECK(tokens->is_array(), what, ": added_tokens is not an array");
        for (size_t i = 0; i < tokens->size(); ++i) {
            const Json& t = tokens->at(i);
            const Json* content = t.is_object() ? t.find("content") : nullptr;
            VKT_CHECK(content && content->is_string() && t.find("id"), what, ": added_tokens[", i,
                      "] has no content and id");
            added.emplace_back(content->as_string(), token_id(t.at("id"), what, content->as_string()));
        }
    }
    return text::make_gpt2_bpe(vocab_of(*vocab, what + ": model.vocab"), rules, added,
                               {{"tokenizer.json", tokenizer_json}}, what, what);
}

std::unique_ptr<Tokenizer> char_tokenizer(const CharVocabulary& vocabulary) {
    return std::make_unique<CharTokenizer>(vocabulary);
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
    VKT_CHECK(!path.empty(), "no tokenizer folder given");
    if (text::is_regular_file(path)) {
        const std::string name = path.substr(path.find_last_of('/') + 1);
        VKT_CHECK(name == "tokenizer.json", path, ": not a tokenizer folder or a tokenizer.json file");
        return tokenizer_from_hf_json(text::read_text_file(path), path);
    }
    const std::string dir = path.empty() || path.back() == '/' ? path : path + "/";
    const auto present = [&](const char* name) { return text::is_regular_file(dir + name); };
    std::vector<std::pair<std::string, std::string>> files;
    for (const char* name : {"tokenizer.model", "tokenizer.json", "vocab.json", "merges.txt"})
        if (present(name)) files.emplace_back(name, text::read_text_file(dir + name));
    VKT_CHECK(!files.empty() || text::is_directory(path), path, ": no such tokenizer folder");
    return from_files(files, dir);
}

std::unique_ptr<Tokenizer> tokenizer_from_string(const std::string& serialized, const std::string& what) {
    const Json j = Json::parse(serialized, what);
    VKT_CHECK(j.is_object() && j.find("kind") && j.at("kind").is_string(), what,
              ": not a serialised tokenizer (no \"kind\")");
    const std::string& kind = j.at("kind").as_string();
    if (kind == "char") {
        const Json* symbols = j.find("symbols");
        VKT_CHECK(symbols && symbols->is_string(), what, ": a character tokenizer without \"symbols\"");
        return char_tokenizer(CharVocabulary::from_utf8(symbols->as_string()));
    }
    VKT_CHECK(kind == "gpt2-bpe" || kind == "sentencepiece", what, ": unknown tokenizer kind \"", kind, "\"");
    const Json* files = j.find("files");
    VKT_CHECK(files && files->is_object(), what, ": no \"files\" object");
    std::vector<std::pair<std::string, std::string>> texts;
    for (const auto& [name, text] : files->as_object()) {
        VKT_CHECK(text.is_string(), what, ": files.", name, " is not a string");
        texts.emplace_back(name, text.as_string());
    }
    return from_files(texts, what + ": ");
}

std::unique_ptr<Tokenizer> tokenizer_from_metadata(const std::vector<std::pair<std::string, std::string>>& metadata,
                                                   const std::string& what) {
    for (const auto& [key, value] : metadata)
        if (key == tokenizer_metadata_key) return tokenizer_from_string(value, what + ": " + tokenizer_metadata_key);
    return nullptr;
}

} // namespace vktrain
