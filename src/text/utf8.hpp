// Strict UTF-8 decoding for tokenizers (NUL is allowed: a tokenizer encodes any text, the corpus reader is the one
// that refuses NUL bytes), and the file reader they share. Plain host C++.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vktrain::text {

// Decodes utf8 into code points (cleared first) and, when `offsets` is given, the byte offset of each code point
// plus a last entry holding utf8.size(). Throws "<what>: invalid UTF-8 ... at byte N" (N counted from `base`) at the
// first ill-formed sequence (overlong forms, surrogates, values above U+10FFFF, truncated sequences).
void decode_utf8_strict(std::string_view utf8, std::vector<char32_t>& out, std::vector<uint32_t>* offsets,
                        uint64_t base, const char* what);

void append_utf8(char32_t c, std::string& out);

// The whole file; throws naming the path when it cannot be read.
std::string read_text_file(const std::string& path);
bool is_regular_file(const std::string& path);
bool is_directory(const std::string& path);

} // namespace vktrain::text
