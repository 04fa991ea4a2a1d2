#include "text/utf8.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>

#include "common/check.hpp"

namespace vktrain::text {

void decode_utf8_strict(std::string_view utf8, std::vector<char32_t>& out, std::vector<uint32_t>* offsets,
                        uint64_t base, const char* what) {
    VKT_CHECK(utf8.size() < (uint64_t(1) << 32), what, ": a text of ", utf8.size(), " bytes is too large to encode");
    out.clear();
    out.reserve(utf8.size());
    if (offsets) {
        offsets->clear();
        offsets->reserve(utf8.size() + 1);
    }
    const auto* p = reinterpret_cast<const unsigned char*>(utf8.data());
    const size_t n = utf8.size();
    for (size_t i = 0; i < n;) {
        const unsigned char b = p[i];
        if (offsets) offsets->push_back(uint32_t(i));
        if (b < 0x80) {
            out.push_back(char32_t(b));
            ++i;
            continue;
        }
        uint32_t cp = 0, min = 0;
        size_t len = 0;
        if ((b & 0xE0) == 0xC0) {
            cp = b & 0x1Fu, len = 2, min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            cp = b & 0x0Fu, len = 3, min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            cp = b & 0x07u, len = 4, min = 0x10000;
        } else {
            std::ostringstream h;
            h << std::hex << unsigned(b);
            VKT_FAIL(what, ": invalid UTF-8 (byte 0x", h.str(), ") at byte ", base + i);
        }
        VKT_CHECK(i + len <= n, what, ": invalid UTF-8 (a sequence cut short by the end) at byte ", base + i);
        for (size_t k = 1; k < len; ++k) {
            VKT_CHECK((p[i + k] & 0xC0) == 0x80, what, ": invalid UTF-8 (a missing continuation byte) at byte ",
                      base + i);
            cp = (cp << 6) | (p[i + k] & 0x3Fu);
        }
        VKT_CHECK(cp >= min && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF), what,
                  ": invalid UTF-8 (an overlong form, a surrogate or a value above U+10FFFF) at byte ", base + i);
        out.push_back(char32_t(cp));
        i += len;
    }
    if (offsets) offsets->push_back(uint32_t(n));
}

void append_utf8(char32_t c, std::string& out) {
    if (c < 0x80) {
        out.push_back(char(c));
    } else if (c < 0x800) {
        out.push_back(char(0xC0 | (c >> 6)));
        out.push_back(char(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
        out.push_back(char(0xE0 | (c >> 12)));
        out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(char(0x80 | (c & 0x3F)));
    } else {
        out.push_back(char(0xF0 | (c >> 18)));
        out.push_back(char(0x80 | ((c >> 12) & 0x3F)));
        out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(char(0x80 | (c & 0x3F)));
    }
}

namespace {
struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
};
} // namespace

std::string read_text_file(const std::string& path) {
    std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
    VKT_CHECK(f, path, ": cannot open (", std::strerror(errno), ")");
    std::string data;
    char buffer[1 << 16];
    size_t got = 0;
    while ((got = std::fread(buffer, 1, sizeof(buffer), f.get())) > 0) data.append(buffer, got);
    VKT_CHECK(!std::ferror(f.get()), path, ": read error");
    return data;
}

bool is_regular_file(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_directory(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

} // namespace vktrain::text
