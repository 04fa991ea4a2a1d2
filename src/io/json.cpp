#include "io/json.hpp"
#include "io/temp_files.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "common/check.hpp"

namespace vktrain::io {

namespace {

using NlohmannJson = nlohmann::json;

// Deep enough for any real document, shallow enough that hostile input cannot overflow the stack of the recursive
// writer and destructor.
constexpr size_t max_depth = 512;

// Largest magnitude below which every integer is exactly representable as a double.
constexpr double max_exact_integer = 9007199254740992.0; // 2^53

// Thrown inside the parser and turned into one vktrain::Error by Json::parse, so the message is built once.
struct ParseFailure {
    size_t offset;
    std::string problem;
};

// The iterator nlohmann's lexer reads the text through. The lexer takes one byte at a time and never steps back
// in its input, so the byte it dereferenced last tells the SAX handler where its own refusals (duplicate key, depth)
// are: nlohmann passes positions only with its own errors.
class TrackingIterator {
public:
    using iterator_category = std::input_iterator_tag;
    using value_type = char;
    using difference_type = std::ptrdiff_t;
    using pointer = const char*;
    using reference = const char&;

    TrackingIterator(const char* at, const char** last_read) : m_at(at), m_last_read(last_read) {}

    reference operator*() const {
        *m_last_read = m_at;
        return *m_at;
    }
    TrackingIterator& operator++() {
        ++m_at;
        return *this;
    }
    TrackingIterator operator++(int) {
        TrackingIterator before = *this;
        ++m_at;
        return before;
    }
    bool operator==(const TrackingIterator& other) const { return m_at == other.m_at; }
    bool operator!=(const TrackingIterator& other) const { return m_at != other.m_at; }

private:
    const char* m_at;
    const char** m_last_read;
};

// Appends a string as a JSON string literal: nlohmann escapes it (quote, backslash, control characters; UTF-8 is kept
// as it is) and replaces each ill-formed UTF-8 sequence with U+FFFD, so the output is always valid JSON. Printable
// ASCII without quote or backslash (keys, dtypes, names: most strings) needs neither and is copied as it is, which
// makes writing a large safetensors header about three times faster.
void append_string_literal(std::string& out, const std::string& text) {
    const bool plain =
        std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c < 0x7F && c != '"' && c != '\\'; });
    if (plain) {
        out += '"';
        out += text;
        out += '"';
        return;
    }
    out += NlohmannJson(text).dump(-1, ' ', false, NlohmannJson::error_handler_t::replace);
}

std::string string_literal(const std::string& text) {
    std::string out;
    append_string_literal(out, text);
    return out;
}

// nlohmann's message for a parse error without its "[json.exception.parse_error.101] parse error at line 1, column
// 8: " prefix (Json::parse gives the byte offset) and without its "; last read: '...'" excerpt, which can be as long
// as the input and hold bytes that are not UTF-8. What is left is one line of fixed ASCII text.
std::string problem_text(std::string_view message, const std::string& last_token) {
    if (message.rfind("[json.exception.", 0) == 0) {
        if (const size_t bracket = message.find("] "); bracket != std::string_view::npos) {
            message.remove_prefix(bracket + 2);
        }
    }
    if (message.rfind("parse error", 0) == 0) {
        if (const size_t colon = message.find(": "); colon != std::string_view::npos) message.remove_prefix(colon + 2);
    }
    std::string problem(message);
    const std::string excerpt = "; last read: '" + last_token + "'";
    if (const size_t at = problem.find(excerpt); at != std::string::npos) problem.erase(at, excerpt.size());
    return problem;
}

// nlohmann's SAX events build the Json tree directly (no nlohmann::json in between), with the checks nlohmann does
// not make: duplicate keys and the nesting depth. Every refusal throws ParseFailure.
class Builder {
public:
    Builder(std::string_view text, const char* const* last_read) : m_text(text), m_last_read(last_read) {}

    Json take_result() { return std::move(m_root); }

    bool null() { return add(Json()); }
    bool boolean(bool value) { return add(Json(value)); }
    // nlohmann reports an integer written with a minus sign here and one without through number_unsigned, so a zero
    // here is "-0" and keeps its sign like any other negative zero.
    bool number_integer(NlohmannJson::number_integer_t value) {
        return add(Json(value == 0 ? -0.0 : static_cast<double>(value)));
    }
    // Integers are stored as doubles like every number: exact up to 2^53 and rounded to the nearest double beyond
    // (the double the decimal text gives), where as_int64 refuses them.
    bool number_unsigned(NlohmannJson::number_unsigned_t value) { return add(Json(static_cast<double>(value))); }
    // Underflow (1e-400) arrives here as zero; overflow (1e400) as a parse error.
    bool number_float(NlohmannJson::number_float_t value, const NlohmannJson::string_t&) { return add(Json(value)); }
    bool string(NlohmannJson::string_t& value) { return add(Json(std::move(value))); }
    // Only the binary formats (CBOR, MessagePack, ...) have binary values.
    bool binary(NlohmannJson::binary_t&) { fail_at(last_read_offset(), "binary value"); }

    bool start_object(std::size_t) { return open(Json::object()); }
    bool start_array(std::size_t) { return open(Json::array()); }
    bool key(NlohmannJson::string_t& key) {
        if (!m_open.back().keys.insert(key).second) {
            fail_at(opening_quote_offset(), "duplicate key " + string_literal(key) + " in object");
        }
        m_key = std::move(key);
        return true;
    }
    bool end_object() { return close(); }
    bool end_array() { return close(); }

    bool parse_error(std::size_t position, const std::string& last_token, const NlohmannJson::exception& error) {
        // out_of_range.406: a number beyond the double range. The token is the number, which the lexer has just
        // read (position is one past its last byte), so the offset is its first byte.
        if (error.id == 406) {
            fail_at(position >= last_token.size() ? position - last_token.size() : 0,
                    "number out of range for a double");
        }
        // position counts the bytes the lexer read, the end of input as one more: the last of them is where it gave up.
        fail_at(std::min(position > 0 ? position - 1 : 0, m_text.size()), problem_text(error.what(), last_token));
    }

private:
    struct Open {
        Json* value;
        std::unordered_set<std::string> keys; // objects only
    };

    [[noreturn]] static void fail_at(size_t offset, std::string problem) {
        throw ParseFailure{offset, std::move(problem)};
    }

    size_t last_read_offset() const { return static_cast<size_t>(*m_last_read - m_text.data()); }

    // The lexer has just read a key's closing quote; its opening quote is the nearest quote before it that no
    // backslash escapes (inside the string every quote is escaped; before a quote an escaped backslash makes an even
    // run). A key is never at offset 0, and its opening quote stops every backward walk.
    size_t opening_quote_offset() const {
        size_t at = last_read_offset();
        for (;;) {
            --at;
            if (m_text[at] != '"') continue;
            size_t backslashes = 0;
            while (m_text[at - 1 - backslashes] == '\\') ++backslashes;
            if (backslashes % 2 == 0) return at;
        }
    }

    // Appends a complete value or a container about to be filled to the innermost open container (an array, or the
    // object whose key came last), or makes it the document. The returned reference stays valid while the value is
    // open: its parent gets no other element before the value is closed.
    Json& insert(Json value) {
        if (m_open.empty()) return m_root = std::move(value);
        Json& parent = *m_open.back().value;
        if (parent.is_array()) return parent.as_array().emplace_back(std::move(value));
        return parent.as_object().emplace_back(std::move(m_key), std::move(value)).second;
    }

    bool add(Json value) {
        insert(std::move(value));
        return true;
    }

    bool open(Json container) {
        if (m_open.size() == max_depth) {
            fail_at(last_read_offset(), detail::concat("nesting deeper than ", max_depth, " levels"));
        }
        m_open.push_back({&insert(std::move(container)), {}});
        return true;
    }

    bool close() {
        m_open.pop_back();
        return true;
    }

    std::string_view m_text;
    const char* const* m_last_read;
    Json m_root;
    std::vector<Open> m_open;
    std::string m_key;
};

// The whole text as one value, or ParseFailure.
Json parse_text(std::string_view text) {
    // nlohmann skips a UTF-8 byte order mark. RFC 8259 lets a parser ignore one, but nothing here writes one and the
    // reader stays as strict as before; 0xEF cannot start a JSON text, so nothing else is refused.
    if (!text.empty() && static_cast<unsigned char>(text[0]) == 0xEF) {
        throw ParseFailure{0, "unexpected byte 0xEF (a byte order mark is not allowed)"};
    }
    const char* last_read = text.data();
    Builder builder(text, &last_read);
    const TrackingIterator first(text.data(), &last_read);
    const TrackingIterator last(text.data() + text.size(), &last_read);
    try {
        // Strict: the whole text is one value. Comments are refused. The handlers throw instead of returning false.
        NlohmannJson::sax_parse(first, last, &builder, NlohmannJson::input_format_t::json, true, false);
    } catch (ParseFailure& failure) {
        // nlohmann's lexer takes a NUL byte between tokens for the end of the input; name what is there.
        const std::string end = "unexpected end of input";
        if (failure.offset < text.size() && text[failure.offset] == '\0') {
            if (const size_t at = failure.problem.find(end); at != std::string::npos) {
                failure.problem.replace(at, end.size(), "unexpected byte 0x00");
            }
        }
        throw;
    }
    // For the same reason it accepts a value followed by a NUL byte. No value holds a raw NUL (strings refuse it), so
    // the first one in the text is where nlohmann stopped.
    if (const size_t nul = text.find('\0'); nul != std::string_view::npos) {
        throw ParseFailure{nul, "unexpected byte 0x00 after the JSON value"};
    }
    return builder.take_result();
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
    case Json::Type::string: append_string_literal(out, value.as_string()); return;
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
            append_string_literal(out, members[i].first);
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
        return parse_text(text.data() != nullptr ? text : std::string_view(""));
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
    AtomicFile file(path, false);
    file.write(text.data(), text.size());
    file.commit();
}

} // namespace vktrain::io
