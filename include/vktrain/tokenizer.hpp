// Tokenizers: text (UTF-8) to token ids and back. One interface with three ways in: GPT-2's byte-level BPE
// (vocab.json + merges.txt, or a Hugging Face tokenizer.json holding the same model), the character-level vocabulary
// of vktrain's own text runs, and the serialised form a model file carries in its metadata (key
// tokenizer_metadata_key), so a model's tokenizer travels with its weights. Every failure throws vktrain::Error with
// a one-line message naming the file, field, id or byte at fault.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vktrain/text.hpp"

namespace vktrain {

// The metadata key of a model file (safetensors header) that holds Tokenizer::serialize().
constexpr const char* tokenizer_metadata_key = "vktrain_tokenizer";

struct SpecialTokens {
    int32_t bos = -1; // beginning of a sequence, -1 when none (GPT-2: <|endoftext|>)
    int32_t eos = -1; // end of a sequence or document, -1 when none (GPT-2: <|endoftext|>)
    std::vector<std::pair<std::string, int32_t>> all; // every special token's text and id, by id
};

class Tokenizer {
public:
    virtual ~Tokenizer() = default;

    // "char", "gpt2-bpe" or "sentencepiece".
    virtual std::string kind() const = 0;
    // One more than the largest id: what a model's embedding and head need.
    virtual uint64_t vocabulary_size() const = 0;
    virtual const SpecialTokens& special_tokens() const = 0;

    // Appends the ids of `utf8` to `out`. Text is text: a special token's spelling (such as "<|endoftext|>") is
    // encoded as ordinary characters, as gpt-3-encoder and tiktoken do; append special ids yourself. Throws for
    // invalid UTF-8 (naming its byte offset, plus `base`) and, for the character tokenizer, a character outside the
    // vocabulary.
    virtual void encode(std::string_view utf8, std::vector<int32_t>& out, uint64_t base = 0) const = 0;
    std::vector<int32_t> encode(std::string_view utf8) const;

    // The text the ids stand for. GPT-2's BPE and characters: the tokens' bytes concatenated, so for ids from
    // encode() exactly the text encoded (other id sequences may end or begin inside a UTF-8 sequence).
    // SentencePiece: its detokenisation (the dummy prefix dropped; a normalising model gives the normalised text).
    // Throws naming the first id outside the vocabulary.
    virtual std::string decode(const std::vector<int32_t>& ids) const = 0;

    // Streaming: appends the ids of the longest prefix of `utf8` whose ids do not depend on what may follow it, and
    // returns its length in bytes; the caller keeps the rest and puts it before the next piece (and encode()s what
    // is left at the end). So a text encoded piece by piece, at any cuts between code points, gives encode()'s ids.
    // For GPT-2's BPE the prefix ends where the last pre-token begins; for characters it is everything; for
    // SentencePiece (which normalises the whole text and adds a dummy prefix to it) it is empty.
    virtual size_t encode_settled(std::string_view utf8, std::vector<int32_t>& out, uint64_t base = 0) const = 0;

    // The tokenizer as one JSON document (its source files inside), for tokenizer_from_string.
    virtual std::string serialize() const = 0;
};

// The tokenizer of a folder: SentencePiece's tokenizer.model when present (Llama, TinyLlama; when the build has
// libsentencepiece), else tokenizer.json (a BPE model with GPT-2's byte-level pre-tokenizer), else vocab.json +
// merges.txt. `path` may also name a tokenizer.json file. Throws naming the folder and the files looked
// for when none is there, or naming the file, line or field at fault when one is malformed.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

// GPT-2's byte-level BPE from the texts of vocab.json and merges.txt; errors name them as folder + "vocab.json" and
// folder + "merges.txt" ("folder/" or "").
std::unique_ptr<Tokenizer> gpt2_tokenizer(const std::string& vocab_json, const std::string& merges_txt,
                                          const std::string& folder = "");
// The same from a tokenizer.json's text.
std::unique_ptr<Tokenizer> tokenizer_from_hf_json(const std::string& tokenizer_json,
                                                  const std::string& what = "tokenizer.json");

// Characters as tokens: the id of a code point is its rank in the vocabulary (vktrain's text runs).
std::unique_ptr<Tokenizer> char_tokenizer(const CharVocabulary& vocabulary);

// Tokenizer::serialize()'s document back into a tokenizer; `what` names its source (a model file) in errors.
std::unique_ptr<Tokenizer> tokenizer_from_string(const std::string& serialized, const std::string& what = "tokenizer");

// A corpus (a file or a folder, with load_text_tokens' rules and errors) tokenised by `tokenizer`, streamed: each
// file is read in chunks of options.chunk_bytes, and only what Tokenizer::encode_settled settles is encoded, so the
// ids are those of encoding each file whole while the memory held is the token array plus a chunk and the unsettled
// tail (GPT-2's BPE: one pre-token; SentencePiece: the file). Each file is encoded on its own (nothing is added
// between files). The result's `vocabulary` is empty.
TextTokens load_text_tokens(const std::string& path, const Tokenizer& tokenizer, const TextLoadOptions& options = {});

// The tokenizer a model file's metadata carries (tokenizer_metadata_key), or null when it has none; `what` names
// the file in errors.
std::unique_ptr<Tokenizer> tokenizer_from_metadata(const std::vector<std::pair<std::string, std::string>>& metadata,
                                                   const std::string& what);

// The Unicode version of the letter and number tables behind GPT-2's pre-tokenisation pattern ("14.0.0").
const char* tokenizer_unicode_version();

} // namespace vktrain
