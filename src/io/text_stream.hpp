// Text files read as a stream of strict UTF-8 chunks, and the corpus rules for a path (a file, or the regular files of
// a folder). Shared by load_text_corpus (code points) and load_text_tokens (tokens), so both read the same files and
// give the same errors. Plain host C++.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace vktrain::io {

// Decodes the whole sequences of p[0, n) into out (room for n code points) and sets `used` (bytes) and `count` (code
// points) to how far it got. A sequence cut short by the end is left unused unless `last` (then it is an error), so
// a stream can carry it into its next chunk. Returns false at the first invalid sequence, with `reason` giving its
// byte offset counted from `base`; what came before it is decoded.
bool decode_utf8_prefix(const unsigned char* p, size_t n, bool last, uint64_t base, char32_t* out, size_t& used,
                        size_t& count, std::string& reason);

// A piece of a file: whole code points, as read and decoded.
struct TextChunk {
    std::string_view utf8;
    std::u32string_view chars;
    uint64_t byte_offset = 0; // of utf8[0] in the file
};

// Reads `path` in chunks of at most chunk_bytes bytes (plus up to 3 carried over from the previous chunk, when a
// sequence straddles the boundary), passing each to `each`. Returns false with `reason` ("invalid UTF-8 ... at byte
// N", "NUL byte at byte N") at the first invalid sequence: `each` has then seen the chunks before it, not the one
// holding it. Throws when the file cannot be opened or read.
bool stream_utf8_file(const std::string& path, size_t chunk_bytes, const std::function<void(const TextChunk&)>& each,
                      std::string& reason);

// The files a corpus path stands for: the path itself when it is a regular file, else every regular file directly in
// the folder (not a symlink, not named *.dat or *.u8), sorted bytewise. `folder` tells which. Throws naming the path
// when it does not exist or is neither.
struct CorpusFiles {
    bool folder = false;
    std::vector<std::string> paths;
    std::vector<std::string> names; // the file names, for "name: reason" of skipped files
    uint64_t bytes = 0;             // their sizes, summed
};
CorpusFiles corpus_files(const std::string& path);

// The error for a corpus with no usable file or no text.
[[noreturn]] void fail_no_text(const std::string& path, const CorpusFiles& files,
                               const std::vector<std::string>& skipped);

} // namespace vktrain::io
