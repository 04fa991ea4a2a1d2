// The tokenizer implementations behind include/vktrain/tokenizer.hpp, for the loaders in tokenizer.cpp. Plain host
// C++.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "vktrain/tokenizer.hpp"

namespace vktrain::text {

struct MergeRule {
    std::string left, right; // as spelled in the files (byte-level symbols)
};

// vocab: token (byte-level spelling) and id; merges in rank order; added: special/added tokens (content, id) of a
// tokenizer.json; files: the source files' names and texts, for serialize(); vocab_what and merges_what name the
// vocabulary's and the merges' source in errors.
std::unique_ptr<vktrain::Tokenizer> make_gpt2_bpe(const std::vector<std::pair<std::string, int32_t>>& vocab,
                                                  const std::vector<MergeRule>& merges,
                                                  const std::vector<std::pair<std::string, int32_t>>& added,
                                                  std::vector<std::pair<std::string, std::string>> files,
                                                  const std::string& vocab_what, const std::string& merges_what);

// A SentencePiece model from its serialised protobuf (tokenizer.model); fails naming `what` when the build has no
// SentencePiece (sentencepiece_available()) or the bytes are not a model.
bool sentencepiece_available();
std::unique_ptr<vktrain::Tokenizer> make_sentencepiece(const std::string& model, const std::string& what);

std::string base64_encode(const std::string& bytes);
std::string base64_decode(const std::string& text, const std::string& what);

} // namespace vktrain::text
