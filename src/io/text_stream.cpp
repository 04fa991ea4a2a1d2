#include "io/text_stream.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>

#include "common/check.hpp"

namespace vktrain::io {

namespace {

bool ends_with(const std::string& s, const char* tail) {
    const std::string t(tail);
    return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

std::string hex(unsigned value) {
    std::ostringstream h;
    h << std::hex << value;
    return h.str();
}

struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
};

} // namespace

bool decode_utf8_prefix(const unsigned char* p, size_t n, bool last, uint64_t base, char32_t* out, size_t& used,
                        size_t& count, std::string& reason) {
    size_t i = 0, k = 0;
    const auto stop = [&](bool ok) {
        used = i;
        count = k;
        return ok;
    };
    while (i < n) {
        const unsigned char b = p[i];
        if (b < 0x80) { // the common case, one byte
            if (b == 0) {
                reason = "NUL byte at byte " + std::to_string(base + i);
                return stop(false);
            }
            out[k++] = char32_t(b);
            ++i;
            continue;
        }
        uint32_t cp = 0, min = 0;
        size_t len = 0;
        if ((b & 0xE0) == 0xC0) {
            cp = b & 0x1Fu;
            len = 2;
            min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            cp = b & 0x0Fu;
            len = 3;
            min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            cp = b & 0x07u;
            len = 4;
            min = 0x10000;
        } else {
            reason = "invalid UTF-8 lead byte 0x" + hex(b) + " at byte " + std::to_string(base + i);
            return stop(false);
        }
        if (len > n - i) {
            if (!last) return stop(true); // the next chunk completes it (or finds it invalid)
            reason = "invalid UTF-8 (truncated sequence) at byte " + std::to_string(base + i);
            return stop(false);
        }
        for (size_t j = 1; j < len; ++j) {
            if ((p[i + j] & 0xC0) != 0x80) {
                reason = "invalid UTF-8 continuation byte at byte " + std::to_string(base + i + j);
                return stop(false);
            }
            cp = (cp << 6) | (p[i + j] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            reason = "invalid UTF-8 (overlong, surrogate or out of range) at byte " + std::to_string(base + i);
            return stop(false);
        }
        out[k++] = char32_t(cp);
        i += len;
    }
    return stop(true);
}

bool stream_utf8_file(const std::string& path, size_t chunk_bytes, const std::function<void(const TextChunk&)>& each,
                      std::string& reason) {
    VKT_CHECK(chunk_bytes >= 1, "text chunks must be at least 1 byte");
    errno = 0;
    const std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
    VKT_CHECK(file != nullptr, path, ": cannot open for reading: ", errno ? std::strerror(errno) : "unknown error");
    // Buffers no larger than the file (a folder of small files, such as fortunes, reads each in one chunk). A
    // sequence cut by the end of a chunk (at most 3 bytes) moves to the front of the next one.
    struct stat st {};
    if (::fstat(::fileno(file.get()), &st) == 0 && st.st_size >= 0)
        chunk_bytes = size_t(std::min<uint64_t>(chunk_bytes, uint64_t(st.st_size) + 1));
    const size_t capacity = chunk_bytes + 3;
    const std::unique_ptr<unsigned char[]> bytes(new unsigned char[capacity]);
    const std::unique_ptr<char32_t[]> chars(new char32_t[capacity]);
    size_t have = 0;
    uint64_t base = 0; // file offset of bytes[0]
    for (;;) {
        const size_t got = std::fread(bytes.get() + have, 1, chunk_bytes, file.get());
        VKT_CHECK(!std::ferror(file.get()), path, ": read error at byte ", base + have, ": ",
                  errno ? std::strerror(errno) : "unknown error");
        have += got;
        const bool last = got == 0;
        size_t used = 0, count = 0;
        const bool ok = decode_utf8_prefix(bytes.get(), have, last, base, chars.get(), used, count, reason);
        if (!ok) return false;
        if (count)
            each(TextChunk{std::string_view(reinterpret_cast<const char*>(bytes.get()), used),
                           std::u32string_view(chars.get(), count), base});
        if (last) return true;
        std::memmove(bytes.get(), bytes.get() + used, have - used);
        have -= used;
        base += used;
    }
}

CorpusFiles corpus_files(const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
        VKT_CHECK(errno != ENOENT && errno != ENOTDIR, path, ": no such file or folder");
        VKT_FAIL(path, ": ", std::strerror(errno));
    }
    CorpusFiles c;
    if (S_ISREG(st.st_mode)) {
        c.paths.push_back(path);
        c.names.push_back(path);
        c.bytes = uint64_t(st.st_size);
        return c;
    }
    VKT_CHECK(S_ISDIR(st.st_mode), path, ": neither a regular file nor a folder");
    c.folder = true;
    DIR* dir = opendir(path.c_str());
    VKT_CHECK(dir != nullptr, path, ": cannot open the folder: ", std::strerror(errno));
    std::vector<std::string> names;
    while (const dirent* e = readdir(dir)) {
        const std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        names.push_back(name);
    }
    closedir(dir);
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
        const std::string file = path + "/" + name;
        struct stat fs {};
        if (lstat(file.c_str(), &fs) != 0 || !S_ISREG(fs.st_mode)) continue; // symlinks, folders, devices
        if (ends_with(name, ".dat") || ends_with(name, ".u8")) continue;
        c.paths.push_back(file);
        c.names.push_back(name);
        c.bytes += uint64_t(fs.st_size);
    }
    return c;
}

void fail_no_text(const std::string& path, const CorpusFiles& files, const std::vector<std::string>& skipped) {
    if (files.folder && files.paths.size() == skipped.size())
        VKT_FAIL(path, ": no text file (regular, valid UTF-8, no NUL byte, not *.dat or *.u8)",
                 skipped.empty() ? "" : "; skipped: ", skipped.empty() ? "" : skipped.front());
    VKT_FAIL(path, ": the corpus is empty");
}

} // namespace vktrain::io
