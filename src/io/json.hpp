// Small JSON value type with a strict parser (nlohmann-json's, through its SAX interface) and a writer, used for the
// --report file, safetensors headers and the per-device cache. Objects keep insertion order so written files are stable
// and diffable; numbers are doubles (integers up to 2^53 are exact, which covers every offset and count we store).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace vktrain::io {

class Json {
public:
    enum class Type { null, boolean, number, string, array, object };
    using Array = std::vector<Json>;
    using Object = std::vector<std::pair<std::string, Json>>;

    // Implicit on purpose, so that `report["loss"] = 0.25;` and `list.push_back("name");` read naturally.
    Json() = default;
    Json(std::nullptr_t) {}
    Json(bool value) : m_type(Type::boolean), m_bool(value) {}
    template <typename T, std::enable_if_t<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>, int> = 0>
    Json(T value) : m_type(Type::number), m_number(static_cast<double>(value)) {}
    // Without this overload a string literal would silently become a bool.
    Json(const char* value) : m_type(Type::string), m_string(value) {}
    Json(std::string value) : m_type(Type::string), m_string(std::move(value)) {}
    Json(std::string_view value) : m_type(Type::string), m_string(value) {}
    Json(Array value) : m_type(Type::array), m_array(std::move(value)) {}
    Json(Object value) : m_type(Type::object), m_object(std::move(value)) {}

    static Json array() { return Json(Array{}); }
    static Json object() { return Json(Object{}); }

    Type type() const { return m_type; }
    bool is_null() const { return m_type == Type::null; }
    bool is_bool() const { return m_type == Type::boolean; }
    bool is_number() const { return m_type == Type::number; }
    bool is_string() const { return m_type == Type::string; }
    bool is_array() const { return m_type == Type::array; }
    bool is_object() const { return m_type == Type::object; }

    // Typed access; a type mismatch throws vktrain::Error.
    bool as_bool() const;
    double as_number() const;
    // The number as an exact integer: throws if it has a fraction or its magnitude exceeds 2^53 (where doubles
    // stop representing every integer, so the value in the text may already have been rounded).
    int64_t as_int64() const;
    const std::string& as_string() const;
    const Array& as_array() const;
    Array& as_array();
    const Object& as_object() const;
    Object& as_object();

    // Element count of an array or object.
    size_t size() const;

    // Array element access (throws when out of range or not an array).
    const Json& at(size_t index) const;
    // Appends to an array; a null value becomes an empty array first.
    void push_back(Json value);

    // Object lookup: nullptr when the key is absent (throws when not an object).
    const Json* find(std::string_view key) const;
    Json* find(std::string_view key);
    bool contains(std::string_view key) const { return find(key) != nullptr; }
    // Throws when the key is absent.
    const Json& at(std::string_view key) const;
    // Inserts a null member at the end when absent; a null value becomes an empty object first.
    Json& operator[](std::string_view key);

    bool operator==(const Json& other) const;
    bool operator!=(const Json& other) const { return !(*this == other); }

    // Strict RFC 8259 parsing of a whole document (no comments, no trailing commas, no duplicate keys, valid
    // UTF-8, no byte order mark, nesting depth <= 512). Errors throw one line, "<what>: JSON parse error at byte
    // <offset>: <problem>", where offset is the byte at which the parser gave up (for a duplicate key its opening
    // quote, for a number beyond the double range its first byte).
    static Json parse(std::string_view text, std::string_view what = "JSON");

    // Numbers are written in their shortest round-trip form (integers without exponent); NaN and infinities are
    // written as null. Each ill-formed UTF-8 sequence in a string is replaced with U+FFFD so the output is always
    // valid JSON.
    // pretty: two-space indentation, arrays of scalars kept on one line. No trailing newline.
    std::string dump(bool pretty = false) const;

private:
    Type m_type = Type::null;
    bool m_bool = false;
    double m_number = 0.0;
    std::string m_string;
    Array m_array;
    Object m_object;
};

const char* to_string(Json::Type type);

// Reads and parses a whole file; errors name the path.
Json read_json_file(const std::string& path);

// Writes dump(pretty) plus a newline to "<path>.tmp-<pid>" and renames it over path, so readers never see a
// half-written file.
void write_json_file(const std::string& path, const Json& value, bool pretty = true);

} // namespace vktrain::io
