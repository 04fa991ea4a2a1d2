#include "io/json.hpp"
#include "io/temp_files.hpp"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <unordered_set>

#include "common/check.hpp"

namespace vktrain::io {

namespace {

// Deep enough for any real document, shallow enough that hostile input cannot overflow the stack.
constexpr int max_depth = 512;

// Largest magnitude below which every integer is exactly representable as a double.
constexpr double max_exact_integer = 9007199254740992.0; // 2^53

// Length of the valid UTF-8 sequence starting at p (at most n bytes available), or 0 if it is invalid
// (bad lead byte, missing continuation, overlong form, UTF-16 surrogate or above U+10FFFF).
size_t utf8_sequence_length(const unsigned char* p, size_t n) {
    const unsigned char c = p[0];
    if (c < 0x80) return 1;
    size_t length = 0;
    uint32_t code = 0;
    uint32_t min_code = 0;
    if ((c & 0xE0) == 0xC0) {
        length = 2, code = c & 0x1Fu, min_code = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        length = 3, code = c & 0x0Fu, min_code = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        length = 4, code = c & 0x07u, min_code = 0x10000;
    } else {
        return 0;
    }
    if (n < length) return 0;
    for (size_t i = 1; i < length; ++i) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        code = (code << 6) | (p[i] & 0x3Fu);
    }
    if (code < min_code || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return 0;
    return length;
}

void append_utf8(std::string& out, uint32_t code) {
    if (code < 0x80) {
        out += static_cast<char>(code);
    } else if (code < 0x800) {
        out += static_cast<char>(0xC0 | (code >> 6));
        out += static_cast<char>(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
        out += static_cast<char>(0xE0 | (code >> 12));
        out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (code & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (code >> 18));
        out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (code & 0x3F));
    }
}

// Thrown inside the parser and turned into one vktrain::Error by Json::parse, so the message is built once.
struct ParseFailure {
    size_t offset;
    std::string problem;
};

class Parser {
public:
    explicit Parser(std::string_view text) : m_text(text) {}

    Json parse_document() {
        skip_whitespace();
        Json value = parse_value(0);
        skip_whitespace();
        if (m_pos != m_text.size()) fail("unexpected " + describe_here() + " after the JSON value");
        return value;
    }

private:
    [[noreturn]] void fail(std::string problem) const { fail_at(m_pos, std::move(problem)); }
    [[noreturn]] static void fail_at(size_t offset, std::string problem) {
        throw ParseFailure{offset, std::move(problem)};
    }

    bool at_end() const { return m_pos >= m_text.size(); }
    unsigned char peek() const { return static_cast<unsigned char>(m_text[m_pos]); }

    std::string describe_here() const {
        if (at_end()) return "end of input";
        const unsigned char c = peek();
        if (c >= 0x20 && c < 0x7F) return detail::concat("character '", static_cast<char>(c), "'");
        char buffer[16];
        std::snprintf(buffer, sizeof(buffer), "byte 0x%02X", c);
        return buffer;
    }

    void skip_whitespace() {
        while (!at_end()) {
            const char c = m_text[m_pos];
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
            ++m_pos;
        }
    }

    void expect(char c, const char* context) {
        if (at_end() || m_text[m_pos] != c) {
            fail(detail::concat("expected '", c, "' ", context, ", got ", describe_here()));
        }
        ++m_pos;
    }

    Json parse_value(int depth) {
        if (at_end()) fail("unexpected end of input, expected a value");
        switch (m_text[m_pos]) {
        case '{': return parse_object(depth + 1);
        case '[': return parse_array(depth + 1);
        case '"': return Json(parse_string());
        case 't': parse_literal("true"); return Json(true);
        case 'f': parse_literal("false"); return Json(false);
        case 'n': parse_literal("null"); return Json();
        default:
            if (m_text[m_pos] == '-' || (m_text[m_pos] >= '0' && m_text[m_pos] <= '9')) return Json(parse_number());
            fail("unexpected " + describe_here() + ", expected a value");
        }
    }

    void parse_literal(std::string_view word) {
        if (m_text.substr(m_pos, word.size()) != word) fail(detail::concat("invalid literal, expected '", word, "'"));
        m_pos += word.size();
    }

    Json parse_object(int depth) {
        if (depth > max_depth) fail(detail::concat("nesting deeper than ", max_depth, " levels"));
        ++m_pos; // '{'
        Json result = Json::object();
        Json::Object& members = result.as_object();
        std::unordered_set<std::string> seen;
        skip_whitespace();
        if (!at_end() && m_text[m_pos] == '}') {
            ++m_pos;
            return result;
        }
        for (;;) {
            skip_whitespace();
            if (at_end() || m_text[m_pos] != '"') fail("expected a string key in object, got " + describe_here());
            const size_t key_offset = m_pos;
            std::string key = parse_string();
            if (!seen.insert(key).second) fail_at(key_offset, "duplicate key \"" + key + "\" in object");
            skip_whitespace();
            expect(':', "after object key");
            skip_whitespace();
            Json value = parse_value(depth);
            members.emplace_back(std::move(key), std::move(value));
            skip_whitespace();
            if (!at_end() && m_text[m_pos] == ',') {
                ++m_pos;
                continue;
            }
            expect('}', "or ',' in object");
            return result;
        }
    }

    Json parse_array(int depth) {
        if (depth > max_depth) fail(detail::concat("nesting deeper than ", max_depth, " levels"));
        ++m_pos; // '['
        Json result = Json::array();
        Json::Array& elements = result.as_array();
        skip_whitespace();
        if (!at_end() && m_text[m_pos] == ']') {
            ++m_pos;
            return result;
        }
        for (;;) {
            skip_whitespace();
            elements.push_back(parse_value(depth));
            skip_whitespace();
            if (!at_end() && m_text[m_pos] == ',') {
                ++m_pos;
                continue;
            }
            expect(']', "or ',' in array");
            return result;
        }
    }

    uint32_t parse_hex4() {
        if (m_text.size() - m_pos < 4) fail("truncated \\u escape");
        uint32_t value = 0;
        for (int i = 0; i < 4; ++i) {
            const char c = m_text[m_pos];
            uint32_t digit = 0;
            if (c >= '0' && c <= '9') {
                digit = static_cast<uint32_t>(c - '0');
            } else if (c >= 'a' && c <= 'f') {
                digit = static_cast<uint32_t>(c - 'a' + 10);
            } else if (c >= 'A' && c <= 'F') {
                digit = static_cast<uint32_t>(c - 'A' + 10);
            } else {
                fail("invalid hex digit in \\u escape");
            }
            value = value * 16 + digit;
            ++m_pos;
        }
        return value;
    }

    std::string parse_string() {
        ++m_pos; // opening quote
        std::string out;
        for (;;) {
            if (at_end()) fail("unterminated string");
            const unsigned char c = peek();
            if (c == '"') {
                ++m_pos;
                return out;
            }
            if (c < 0x20) fail(detail::concat("unescaped control character ", describe_here(), " in string"));
            if (c >= 0x80) {
                const auto* bytes = reinterpret_cast<const unsigned char*>(m_text.data());
                const size_t length = utf8_sequence_length(bytes + m_pos, m_text.size() - m_pos);
                if (length == 0) fail("invalid UTF-8 in string");
                out.append(m_text.data() + m_pos, length);
                m_pos += length;
                continue;
            }
            if (c != '\\') {
                out += static_cast<char>(c);
                ++m_pos;
                continue;
            }
            ++m_pos;
            if (at_end()) fail("unterminated string");
            const char e = m_text[m_pos++];
            switch (e) {
            case '"': out += '"'; break;
            case '\\': out += '\\'; break;
            case '/': out += '/'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'u': {
                const size_t escape_offset = m_pos - 2;
                uint32_t code = parse_hex4();
                if (code >= 0xDC00 && code <= 0xDFFF) fail_at(escape_offset, "unpaired low surrogate in \\u escape");
                if (code >= 0xD800 && code <= 0xDBFF) {
                    const char* unpaired = "unpaired high surrogate in \\u escape";
                    if (m_text.substr(m_pos, 2) != "\\u") fail_at(escape_offset, unpaired);
                    m_pos += 2;
                    const uint32_t low = parse_hex4();
                    if (low < 0xDC00 || low > 0xDFFF) fail_at(escape_offset, unpaired);
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                }
                append_utf8(out, code);
                break;
            }
            default: fail_at(m_pos - 2, "invalid escape sequence in string");
            }
        }
    }

    double parse_number() {
        const size_t start = m_pos;
        auto digits = [&] {
            const size_t first = m_pos;
            while (!at_end() && m_text[m_pos] >= '0' && m_text[m_pos] <= '9') ++m_pos;
            return m_pos - first;
        };
        if (m_text[m_pos] == '-') ++m_pos;
        const size_t int_start = m_pos;
        const size_t int_digits = digits();
        if (int_digits == 0) fail("invalid number: expected a digit");
        if (int_digits > 1 && m_text[int_start] == '0') fail_at(int_start, "invalid number: leading zero");
        if (!at_end() && m_text[m_pos] == '.') {
            ++m_pos;
            if (digits() == 0) fail("invalid number: expected a digit after '.'");
        }
        bool negative_exponent = false;
        bool has_exponent = false;
        if (!at_end() && (m_text[m_pos] == 'e' || m_text[m_pos] == 'E')) {
            has_exponent = true;
            ++m_pos;
            if (!at_end() && (m_text[m_pos] == '+' || m_text[m_pos] == '-')) negative_exponent = m_text[m_pos++] == '-';
            if (digits() == 0) fail("invalid number: expected a digit in exponent");
        }
        // from_chars rather than strtod: it ignores the C locale's decimal separator and rounds correctly.
        double value = 0.0;
        const char* first = m_text.data() + start;
        const char* last = m_text.data() + m_pos;
        const auto [ptr, ec] = std::from_chars(first, last, value);
        if (ec == std::errc::result_out_of_range) {
            // Underflow (1e-400, 0.000...1) quietly becomes zero like every JSON reader does; overflow is an error
            // because there is no faithful double for it. Without an exponent only "0.xxx" can underflow.
            const bool underflow = has_exponent ? negative_exponent : m_text[int_start] == '0';
            if (!underflow) fail_at(start, "number out of range for a double");
            return m_text[start] == '-' ? -0.0 : 0.0;
        }
        if (ec != std::errc() || ptr != last) fail_at(start, "invalid number");
        return value;
    }

    std::string_view m_text;
    size_t m_pos = 0;
};

void write_escaped(std::string& out, const std::string& text) {
    static const char hex[] = "0123456789abcdef";
    out += '"';
    const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
    for (size_t i = 0; i < text.size();) {
        const unsigned char c = bytes[i];
        if (c >= 0x80) {
            const size_t length = utf8_sequence_length(bytes + i, text.size() - i);
            if (length == 0) {
                out += "\\ufffd";
                ++i;
            } else {
                out.append(text, i, length);
                i += length;
            }
            continue;
        }
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20) {
                out += "\\u00";
                out += hex[c >> 4];
                out += hex[c & 0xF];
            } else {
                out += static_cast<char>(c);
            }
        }
        ++i;
    }
    out += '"';
}

void write_number(std::string& out, double value) {
    if (!std::isfinite(value)) {
        out += "null";
        return;
    }
    char buffer[64];
    std::to_chars_result result{};
    if (value == std::trunc(value) && std::fabs(value) < max_exact_integer) {
        // Integers print without exponent ("1000000", not "1e+06"); -0.0 keeps its sign to stay bit-exact.
        if (value == 0.0 && std::signbit(value)) {
            out += "-0";
            return;
        }
        result = std::to_chars(buffer, buffer + sizeof(buffer), static_cast<int64_t>(value));
    } else {
        result = std::to_chars(buffer, buffer + sizeof(buffer), value); // shortest form that round-trips
    }
    out.append(buffer, result.ptr);
}

// "a number", "an array": for messages like "JSON value is a string, expected a number".
std::string with_article(Json::Type type) {
    const bool vowel = type == Json::Type::array || type == Json::Type::object;
    return std::string(vowel ? "an " : "a ") + to_string(type);
}

bool is_scalar(const Json& value) {
    return !value.is_array() && !value.is_object();
}

void write_indent(std::string& out, int level) {
    out.append(static_cast<size_t>(level) * 2, ' ');
}

void write_value(std::string& out, const Json& value, bool pretty, int level) {
    switch (value.type()) {
    case Json::Type::null: out += "null"; return;
    case Json::Type::boolean: out += value.as_bool() ? "true" : "false"; return;
    case Json::Type::number: write_number(out, value.as_number()); return;
    case Json::Type::string: write_escaped(out, value.as_string()); return;
    case Json::Type::array: {
        const Json::Array& elements = value.as_array();
        bool inline_elements = !pretty;
        if (pretty) {
            inline_elements = true;
            for (const Json& element : elements) inline_elements = inline_elements && is_scalar(element);
        }
        out += '[';
        for (size_t i = 0; i < elements.size(); ++i) {
            if (i > 0) out += inline_elements && pretty ? ", " : ",";
            if (!inline_elements) {
                out += '\n';
                write_indent(out, level + 1);
            }
            write_value(out, elements[i], pretty, level + 1);
        }
        if (!inline_elements && !elements.empty()) {
            out += '\n';
            write_indent(out, level);
        }
        out += ']';
        return;
    }
    case Json::Type::object: {
        const Json::Object& members = value.as_object();
        out += '{';
        for (size_t i = 0; i < members.size(); ++i) {
            if (i > 0) out += ',';
            if (pretty) {
                out += '\n';
                write_indent(out, level + 1);
            }
            write_escaped(out, members[i].first);
            out += pretty ? ": " : ":";
            write_value(out, members[i].second, pretty, level + 1);
        }
        if (pretty && !members.empty()) {
            out += '\n';
            write_indent(out, level);
        }
        out += '}';
        return;
    }
    }
}

} // namespace

const char* to_string(Json::Type type) {
    switch (type) {
    case Json::Type::null: return "null";
    case Json::Type::boolean: return "boolean";
    case Json::Type::number: return "number";
    case Json::Type::string: return "string";
    case Json::Type::array: return "array";
    case Json::Type::object: return "object";
    }
    return "?";
}

#define VKT_JSON_EXPECT_TYPE(expected)                                                                                 \
    VKT_CHECK(m_type == (expected), "JSON value is ", with_article(m_type), ", expected ", with_article(expected))

bool Json::as_bool() const {
    VKT_JSON_EXPECT_TYPE(Type::boolean);
    return m_bool;
}

double Json::as_number() const {
    VKT_JSON_EXPECT_TYPE(Type::number);
    return m_number;
}

int64_t Json::as_int64() const {
    VKT_JSON_EXPECT_TYPE(Type::number);
    VKT_CHECK(m_number == std::trunc(m_number) && std::fabs(m_number) <= max_exact_integer, "JSON number ", m_number,
              " is not an integer in [-2^53, 2^53]");
    return static_cast<int64_t>(m_number);
}

const std::string& Json::as_string() const {
    VKT_JSON_EXPECT_TYPE(Type::string);
    return m_string;
}

const Json::Array& Json::as_array() const {
    VKT_JSON_EXPECT_TYPE(Type::array);
    return m_array;
}

Json::Array& Json::as_array() {
    VKT_JSON_EXPECT_TYPE(Type::array);
    return m_array;
}

const Json::Object& Json::as_object() const {
    VKT_JSON_EXPECT_TYPE(Type::object);
    return m_object;
}

Json::Object& Json::as_object() {
    VKT_JSON_EXPECT_TYPE(Type::object);
    return m_object;
}

#undef VKT_JSON_EXPECT_TYPE

size_t Json::size() const {
    if (m_type == Type::array) return m_array.size();
    if (m_type == Type::object) return m_object.size();
    VKT_FAIL("JSON value is ", with_article(m_type), ", expected an array or object");
}

const Json& Json::at(size_t index) const {
    const Array& elements = as_array();
    VKT_CHECK(index < elements.size(), "JSON array index ", index, " out of range (size ", elements.size(), ")");
    return elements[index];
}

void Json::push_back(Json value) {
    if (m_type == Type::null) m_type = Type::array;
    as_array().push_back(std::move(value));
}

const Json* Json::find(std::string_view key) const {
    for (const auto& member : as_object()) {
        if (member.first == key) return &member.second;
    }
    return nullptr;
}

Json* Json::find(std::string_view key) {
    return const_cast<Json*>(static_cast<const Json*>(this)->find(key));
}

const Json& Json::at(std::string_view key) const {
    const Json* value = find(key);
    VKT_CHECK(value != nullptr, "JSON object has no key \"", key, "\"");
    return *value;
}

Json& Json::operator[](std::string_view key) {
    if (m_type == Type::null) m_type = Type::object;
    if (Json* existing = find(key)) return *existing;
    m_object.emplace_back(std::string(key), Json());
    return m_object.back().second;
}

bool Json::operator==(const Json& other) const {
    if (m_type != other.m_type) return false;
    switch (m_type) {
    case Type::null: return true;
    case Type::boolean: return m_bool == other.m_bool;
    case Type::number: return m_number == other.m_number;
    case Type::string: return m_string == other.m_string;
    case Type::array: return m_array == other.m_array;
    case Type::object: return m_object == other.m_object; // order-sensitive, like the files we write
    }
    return false;
}

Json Json::parse(std::string_view text, std::string_view what) {
    try {
        return Parser(text).parse_document();
    } catch (const ParseFailure& failure) {
        VKT_FAIL(what, ": JSON parse error at byte ", failure.offset, ": ", failure.problem);
    }
}

std::string Json::dump(bool pretty) const {
    std::string out;
    write_value(out, *this, pretty, 0);
    return out;
}

Json read_json_file(const std::string& path) {
    std::FILE* file = std::fopen(path.c_str(), "rb");
    VKT_CHECK(file != nullptr, path, ": cannot open: ", std::strerror(errno));
    std::string text;
    char buffer[1 << 16];
    size_t got = 0;
    while ((got = std::fread(buffer, 1, sizeof(buffer), file)) > 0) text.append(buffer, got);
    const bool failed = std::ferror(file) != 0;
    std::fclose(file);
    VKT_CHECK(!failed, path, ": read error");
    return Json::parse(text, path);
}

void write_json_file(const std::string& path, const Json& value, bool pretty) {
    const std::string text = value.dump(pretty) + "\n";
    remove_stale_temporaries(path);
    const std::string temp_path = detail::concat(path, ".tmp-", ::getpid());
    std::FILE* file = std::fopen(temp_path.c_str(), "wb");
    VKT_CHECK(file != nullptr, temp_path, ": cannot create: ", std::strerror(errno));
    const bool written = std::fwrite(text.data(), 1, text.size(), file) == text.size();
    const int saved_errno = errno;
    const bool closed = std::fclose(file) == 0;
    if (!written || !closed) {
        std::remove(temp_path.c_str());
        VKT_FAIL(temp_path, ": write failed: ", std::strerror(written ? errno : saved_errno));
    }
    if (std::rename(temp_path.c_str(), path.c_str()) != 0) {
        const int rename_errno = errno;
        std::remove(temp_path.c_str());
        VKT_FAIL(path, ": cannot rename ", temp_path, " over it: ", std::strerror(rename_errno));
    }
}

} // namespace vktrain::io
