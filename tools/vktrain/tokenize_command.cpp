// `vktrain tokenize --tokenizer DIR FILE`: FILE's token ids, space-separated on one line; with --decode, FILE holds
// ids (separated by white space) and the text they stand for is printed. The text is streamed through
// Tokenizer::encode_settled, so a corpus of any size takes a chunk's memory.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "commands.hpp"
#include "io/text_stream.hpp"
#include "option_table.hpp"
#include "vktrain/error.hpp"
#include "vktrain/tokenizer.hpp"

namespace vktrain::cli {

namespace {

void print_ids(const std::vector<int32_t>& ids, bool& first) {
    std::string line;
    for (const int32_t id : ids) {
        if (!first) line.push_back(' ');
        first = false;
        line += std::to_string(id);
    }
    std::fwrite(line.data(), 1, line.size(), stdout);
}

void encode_file(const Tokenizer& tokenizer, const std::string& path) {
    std::string pending; // the unsettled tail (the last pre-token), carried into the next chunk
    uint64_t pending_offset = 0;
    std::vector<int32_t> ids;
    bool first = true;
    std::string reason;
    const bool ok = io::stream_utf8_file(
        path, size_t(1) << 20,
        [&](const io::TextChunk& chunk) {
            pending.append(chunk.utf8);
            ids.clear();
            const size_t used = tokenizer.encode_settled(pending, ids, pending_offset);
            print_ids(ids, first);
            pending.erase(0, used);
            pending_offset += used;
        },
        reason);
    if (!ok) throw Error(path + ": " + reason);
    ids.clear();
    tokenizer.encode(pending, ids, pending_offset);
    print_ids(ids, first);
    std::fputc('\n', stdout);
}

// Prints the bytes of ids (and clears them); an id outside the vocabulary is an error naming the file.
void write_text(const Tokenizer& tokenizer, std::vector<int32_t>& ids, const std::string& path) {
    std::string text;
    try {
        text = tokenizer.decode(ids);
    } catch (const Error& e) {
        throw Error(path + ": " + e.what());
    }
    std::fwrite(text.data(), 1, text.size(), stdout);
    ids.clear();
}

void decode_file(const Tokenizer& tokenizer, const std::string& path) {
    const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!file) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
    std::FILE* f = file.get();
    std::vector<int32_t> ids;
    std::string word;
    uint64_t offset = 0, start = 0;
    const auto flush = [&] {
        if (word.empty()) return;
        size_t used = 0;
        long long v = -1;
        try {
            v = std::stoll(word, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != word.size() || word[0] == '+' || v < 0 || v > 0x7FFFFFFF)
            throw Error(path + ": \"" + word.substr(0, 40) + "\" at byte " + std::to_string(start) +
                        " is not a token id (a non-negative integer)");
        ids.push_back(int32_t(v));
        word.clear();
    };
    for (int c; (c = std::fgetc(f)) != EOF; ++offset) {
        if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
            flush();
        } else {
            if (word.empty()) start = offset;
            word.push_back(char(c));
        }
        // As we go where the bytes of a prefix of the ids are a prefix of the bytes (not SentencePiece's: it drops
        // the dummy prefix at the start of what it decodes).
        if (ids.size() >= 65536 && tokenizer.kind() != "sentencepiece") write_text(tokenizer, ids, path);
    }
    if (std::ferror(f)) throw Error(path + ": read error");
    flush();
    write_text(tokenizer, ids, path);
}

} // namespace

int run_tokenize(const std::vector<std::string>& args) {
    bool help = false, decode = false;
    std::string dir;
    std::vector<std::string> options, files;
    // FILE is the one positional argument: the rest goes through the option table (its errors for unknown options).
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a.size() > 1 && a[0] == '-') {
            options.push_back(a);
            if (a == "--tokenizer" && i + 1 < args.size()) options.push_back(args[++i]);
        } else {
            files.push_back(a);
        }
    }
    OptionTable()
        .flag("--help", [&] { help = true; })
        .flag("--decode", [&] { decode = true; })
        .value("--tokenizer", store(dir))
        .parse(options);
    if (help) {
        std::fputs(tokenize_usage(), stdout);
        return 0;
    }
    if (dir.empty()) throw UsageError("--tokenizer DIR is required");
    if (files.size() != 1)
        throw UsageError(files.empty() ? "no FILE given" : "one FILE expected, got " + std::to_string(files.size()));
    const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(dir);
    if (decode)
        decode_file(*tokenizer, files[0]);
    else
        encode_file(*tokenizer, files[0]);
    return 0;
}

} // namespace vktrain::cli
