#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <utility>

#include "io/json.hpp"
#include "vktrain/error.hpp"

using vktrain::io::Json;

namespace {

// Returns the vktrain::Error message thrown by parsing text, or "" when it parses.
std::string parse_error(const std::string& text) {
    try {
        Json::parse(text, "doc");
    } catch (const vktrain::Error& e) {
        return e.what();
    }
    return "";
}

// Parse errors are one line of plain text whatever the input holds.
bool one_line_ascii(const std::string& message) {
    for (const char c : message) {
        if (c == '\n' || c == '\r' || static_cast<unsigned char>(c) >= 0x80) return false;
    }
    return !message.empty();
}

uint64_t bits_of(double value) {
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(bits));
    return bits;
}

} // namespace

TEST(Json, BuildAndAccess) {
    Json doc;
    doc["name"] = "vktrain";
    doc["epochs"] = 3;
    doc["ok"] = true;
    doc["nothing"] = nullptr;
    doc["losses"].push_back(0.5);
    doc["losses"].push_back(0.25f);
    doc["nested"]["depth"] = size_t{2};
    ASSERT_TRUE(doc.is_object());
    EXPECT_EQ(doc.size(), 6u);
    EXPECT_EQ(doc.at("name").as_string(), "vktrain");
    EXPECT_EQ(doc.at("epochs").as_int64(), 3);
    EXPECT_TRUE(doc.at("ok").as_bool());
    EXPECT_TRUE(doc.at("nothing").is_null());
    EXPECT_EQ(doc.at("losses").at(size_t{1}).as_number(), 0.25);
    EXPECT_EQ(doc.at("nested").at("depth").as_int64(), 2);
    EXPECT_EQ(doc.find("missing"), nullptr);
    // Insertion order is kept, and assigning an existing key replaces it in place.
    doc["name"] = "again";
    const Json::Object& members = doc.as_object();
    EXPECT_EQ(members[0].first, "name");
    EXPECT_EQ(members[0].second.as_string(), "again");
    EXPECT_EQ(members[5].first, "nested");
}

TEST(Json, TypeMismatchThrows) {
    const Json number(1.5);
    EXPECT_THROW(number.as_string(), vktrain::Error);
    EXPECT_THROW(number.as_int64(), vktrain::Error);     // has a fraction
    EXPECT_THROW(Json(1e17).as_int64(), vktrain::Error); // beyond 2^53
    EXPECT_THROW(Json("x").as_number(), vktrain::Error);
    EXPECT_THROW(Json::object().at("missing"), vktrain::Error);
    EXPECT_THROW(Json::array().at(size_t{0}), vktrain::Error);
    EXPECT_THROW(number.size(), vktrain::Error);
    try {
        Json(true).as_array();
        FAIL() << "expected an exception";
    } catch (const vktrain::Error& e) {
        EXPECT_NE(std::string(e.what()).find("JSON value is a boolean, expected an array"), std::string::npos)
            << e.what();
    }
}

TEST(Json, CompactAndPrettyOutput) {
    Json doc;
    doc["a"] = 1;
    doc["b"] = Json::array();
    doc["b"].push_back(1);
    doc["b"].push_back("two");
    doc["c"] = Json::object();
    doc["d"] = Json::array();
    doc["e"]["f"].push_back(Json::object());
    EXPECT_EQ(doc.dump(), R"({"a":1,"b":[1,"two"],"c":{},"d":[],"e":{"f":[{}]}})");
    EXPECT_EQ(doc.dump(true), "{\n"
                              "  \"a\": 1,\n"
                              "  \"b\": [1, \"two\"],\n"
                              "  \"c\": {},\n"
                              "  \"d\": [],\n"
                              "  \"e\": {\n"
                              "    \"f\": [\n"
                              "      {}\n"
                              "    ]\n"
                              "  }\n"
                              "}");
}

TEST(Json, NumbersRoundTripExactly) {
    const double values[] = {0.0,
                             -0.0,
                             1.0,
                             -1.0,
                             0.1,
                             1.0 / 3.0,
                             1e6,
                             123456789012345.0,
                             1e300,
                             1e-300,
                             5e-324,
                             2.2250738585072014e-308,
                             9007199254740993.0,
                             1.7976931348623157e308,
                             -2.5e-7,
                             3.4028234663852886e38,
                             65504.0};
    for (const double value : values) {
        const std::string text = Json(value).dump();
        const Json back = Json::parse(text);
        EXPECT_EQ(bits_of(back.as_number()), bits_of(value)) << text;
    }
    EXPECT_EQ(Json(1e6).dump(), "1000000");
    EXPECT_EQ(Json(-42).dump(), "-42");
    EXPECT_EQ(Json(0.1).dump(), "0.1");
    EXPECT_EQ(Json(-0.0).dump(), "-0");
    EXPECT_EQ(Json(std::numeric_limits<double>::quiet_NaN()).dump(), "null");
    EXPECT_EQ(Json(std::numeric_limits<double>::infinity()).dump(), "null");
    EXPECT_EQ(Json(-std::numeric_limits<float>::infinity()).dump(), "null");
    EXPECT_EQ(Json::parse("1E+2").as_number(), 100.0);
    EXPECT_EQ(Json::parse("-0.5e-1").as_number(), -0.05);
    EXPECT_EQ(Json::parse("1e-400").as_number(), 0.0); // underflow becomes zero
    EXPECT_TRUE(std::signbit(Json::parse("-1e-400").as_number()));
}

TEST(Json, StringEscaping) {
    const std::string tricky = std::string("quote\" backslash\\ slash/ \b\f\n\r\t ctl\x01\x1f nul") + '\0' +
                               " utf8 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    const std::string text = Json(tricky).dump();
    EXPECT_EQ(text, "\"quote\\\" backslash\\\\ slash/ \\b\\f\\n\\r\\t ctl\\u0001\\u001f nul\\u0000 utf8 \xc3\xa9 "
                    "\xe2\x82\xac \xf0\x9f\x98\x80\"");
    EXPECT_EQ(Json::parse(text).as_string(), tricky);
    // Escapes decode to UTF-8, including surrogate pairs.
    EXPECT_EQ(Json::parse(R"("\u00e9\u20AC\ud83d\ude00\/")").as_string(), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80/");
    // Invalid UTF-8 is replaced with U+FFFD (written as UTF-8) when writing, so the output stays valid JSON: one per
    // ill-formed sequence, in keys too.
    EXPECT_EQ(Json(std::string("a\xff"
                               "b\xc3"))
                  .dump(),
              "\"a\xef\xbf\xbd"
              "b\xef\xbf\xbd\"");
    EXPECT_EQ(Json(std::string("x\xe2\x82y")).dump(), "\"x\xef\xbf\xbdy\"");
    Json object;
    object[std::string("k\xff")] = 1;
    EXPECT_EQ(object.dump(), "{\"k\xef\xbf\xbd\":1}");
    EXPECT_EQ(Json::parse(Json(std::string("\xc0\x80")).dump()).as_string(), "\xef\xbf\xbd\xef\xbf\xbd");
}

TEST(Json, RoundTripDocument) {
    const std::string text = R"( {"model": "mlp", "layers": [784, 256, 10], "lr": 0.001, "flags": {"fp16": true,
        "seed": null}, "empty": "", "deep": [[[[]]]], "neg": -12.5e3 } )";
    const Json doc = Json::parse(text);
    EXPECT_EQ(doc.at("layers").size(), 3u);
    EXPECT_EQ(doc.at("neg").as_number(), -12500.0);
    EXPECT_EQ(Json::parse(doc.dump()), doc);
    EXPECT_EQ(Json::parse(doc.dump(true)), doc);
    EXPECT_EQ(doc.dump(), R"({"model":"mlp","layers":[784,256,10],"lr":0.001,"flags":{"fp16":true,"seed":null},)"
                          R"("empty":"","deep":[[[[]]]],"neg":-12500})");
    EXPECT_NE(Json::parse(R"({"a":1,"b":2})"), Json::parse(R"({"b":2,"a":1})")); // order matters
    EXPECT_EQ(Json::parse("\"x\""), Json("x"));
    EXPECT_EQ(Json::parse(" true "), Json(true));
    EXPECT_EQ(Json::parse("null"), Json());
}

TEST(Json, ParseErrorsNameOffsetAndProblem) {
    struct Case {
        const char* text;
        const char* expected;
    };
    // Problems are nlohmann's wording; offsets are where the parser gave up (the offending byte, the last byte of an
    // unexpected token, the end of input) except for a duplicate key, which points at the key.
    const Case cases[] = {
        {"", "doc: JSON parse error at byte 0: syntax error while parsing value - unexpected end of input"},
        {"   ", "at byte 3: syntax error while parsing value - unexpected end of input"},
        {"{\"a\":1,}", "at byte 7: syntax error while parsing object key - unexpected '}'; expected string literal"},
        {"[1,2,]", "at byte 5: syntax error while parsing value - unexpected ']'"},
        {"[1 2]", "at byte 3: syntax error while parsing array - unexpected number literal; expected ']'"},
        {"{\"a\" 1}",
         "at byte 5: syntax error while parsing object separator - unexpected number literal; expected ':'"},
        {"{\"a\":1,\"a\":2}", "at byte 7: duplicate key \"a\" in object"},
        {"01", "at byte 1: syntax error while parsing value - unexpected number literal; expected end of input"},
        {"1.", "at byte 2: syntax error while parsing value - invalid number; expected digit after '.'"},
        {"1e",
         "at byte 2: syntax error while parsing value - invalid number; expected '+', '-', or digit after exponent"},
        {"-", "at byte 1: syntax error while parsing value - invalid number; expected digit after '-'"},
        {"+1", "at byte 0: syntax error while parsing value - invalid literal"},
        {".5", "at byte 0: syntax error while parsing value - invalid literal"},
        {"1e400", "at byte 0: number out of range for a double"},
        {"[1, -1e400]", "at byte 4: number out of range for a double"},
        {"NaN", "at byte 0: syntax error while parsing value - invalid literal"},
        {"tru", "at byte 3: syntax error while parsing value - invalid literal"},
        {"nul", "invalid literal"},
        {"\"abc", "at byte 4: syntax error while parsing value - invalid string: missing closing quote"},
        {"\"a\nb\"", "at byte 2: syntax error while parsing value - invalid string: control character U+000A (LF) must "
                     "be escaped to \\u000A or \\n"},
        {"\"\\x\"",
         "at byte 2: syntax error while parsing value - invalid string: forbidden character after backslash"},
        {"\"\\u12G4\"", "at byte 5: syntax error while parsing value - invalid string: '\\u' must be followed by 4 hex "
                        "digits"},
        {"\"\\ud800\"",
         "at byte 7: syntax error while parsing value - invalid string: surrogate U+D800..U+DBFF must be "
         "followed by U+DC00..U+DFFF"},
        {"\"\\udc00\"", "at byte 6: syntax error while parsing value - invalid string: surrogate U+DC00..U+DFFF must "
                        "follow U+D800..U+DBFF"},
        {"\"\xff\"", "at byte 1: syntax error while parsing value - invalid string: ill-formed UTF-8 byte"},
        {"\"\xc0\x80\"",
         "at byte 1: syntax error while parsing value - invalid string: ill-formed UTF-8 byte"}, // overlong
        {"\"\xed\xa0\x80\"",
         "at byte 2: syntax error while parsing value - invalid string: ill-formed UTF-8 byte"}, // surrogate
        {"{} x", "at byte 3: syntax error while parsing value - invalid literal; expected end of input"},
        {"[1]]", "at byte 3: syntax error while parsing value - unexpected ']'; expected end of input"},
        {"// comment\n1", "at byte 0: syntax error while parsing value - invalid literal"},
        {"\xef\xbb\xbf{}", "at byte 0: unexpected byte 0xEF (a byte order mark is not allowed)"}, // no BOM
    };
    for (const Case& c : cases) {
        const std::string message = parse_error(c.text);
        EXPECT_NE(message.find(c.expected), std::string::npos) << "input: " << c.text << "\nmessage: " << message;
        EXPECT_TRUE(one_line_ascii(message)) << message;
        // Nothing of nlohmann's prefix or of its excerpt of the input.
        EXPECT_EQ(message.find("json.exception"), std::string::npos) << message;
        EXPECT_EQ(message.find("last read"), std::string::npos) << message;
    }
}

TEST(Json, NestingLimit) {
    EXPECT_EQ(parse_error(std::string(512, '[') + std::string(512, ']')), "");
    const std::string message = parse_error(std::string(100000, '['));
    EXPECT_NE(message.find("at byte 512: nesting deeper than 512 levels"), std::string::npos) << message;
}

TEST(Json, NulBytesRefused) {
    // nlohmann's lexer takes a NUL between tokens for the end of the input; the reader still refuses it.
    struct Case {
        std::string text;
        const char* expected;
    };
    const Case cases[] = {
        {std::string("1\0", 2), "at byte 1: unexpected byte 0x00 after the JSON value"},
        {std::string("{\"a\":[]} \0 x", 12), "at byte 9: unexpected byte 0x00 after the JSON value"},
        {std::string("[1,\0]", 5), "at byte 3: syntax error while parsing value - unexpected byte 0x00; expected"},
        {std::string("\0", 1), "at byte 0: syntax error while parsing value - unexpected byte 0x00"},
        {std::string("\"a\0\"", 4), "at byte 2: syntax error while parsing value - invalid string: control character "
                                    "U+0000 (NUL) must be escaped to \\u0000"},
        {std::string("tr\0e", 4), "at byte 2: syntax error while parsing value - invalid literal"},
    };
    for (const Case& c : cases) {
        const std::string message = parse_error(c.text);
        EXPECT_NE(message.find(c.expected), std::string::npos) << message;
        EXPECT_TRUE(one_line_ascii(message)) << message;
    }
    EXPECT_EQ(Json::parse(R"("a\u0000b")").as_string(), std::string("a\0b", 3)); // escaped, it is a character
}

TEST(Json, NestingLimitCountsObjectsAndArrays) {
    std::string ok;
    for (int i = 0; i < 256; ++i) ok += "{\"a\":[";
    for (int i = 0; i < 256; ++i) ok += "]}";
    EXPECT_EQ(parse_error(ok), "");
    // One level more: the 513th container is an object whose '{' is at 6 * 256.
    const std::string deep = ok.substr(0, 6 * 256) + "{}" + ok.substr(6 * 256);
    const std::string message = parse_error(deep);
    EXPECT_NE(message.find("at byte 1536: nesting deeper than 512 levels"), std::string::npos) << message;
}

TEST(Json, DuplicateKeysRefused) {
    // Per object: the same key in two objects, or as a value, is fine.
    EXPECT_EQ(parse_error(R"({"a":{"a":1},"b":{"a":2},"c":"a"})"), "");
    // The offset is the second key's opening quote, at any depth.
    EXPECT_NE(parse_error(R"({"x":[{"k":1, "k":2}]})").find("at byte 14: duplicate key \"k\" in object"),
              std::string::npos);
    // Keys are compared after unescaping; the offset stays right when escaped quotes and backslashes come before.
    EXPECT_NE(parse_error(R"({"a":1,"\u0061":2})").find("at byte 7: duplicate key \"a\" in object"), std::string::npos);
    EXPECT_NE(parse_error(R"({"q\"\\":1, "q\"\\":2})").find(R"(at byte 12: duplicate key "q\"\\" in object)"),
              std::string::npos)
        << parse_error(R"({"q\"\\":1, "q\"\\":2})");
    EXPECT_NE(parse_error(R"({"":1,"":2})").find("at byte 6: duplicate key \"\" in object"), std::string::npos);
    // A key with a line break or a control character is quoted as JSON, so the message stays one line.
    const std::string message = parse_error(R"({"a\nb\u0001":1,"a\nb\u0001":2})");
    EXPECT_NE(message.find(R"(at byte 16: duplicate key "a\nb\u0001" in object)"), std::string::npos) << message;
    EXPECT_TRUE(one_line_ascii(message)) << message;
}

TEST(Json, BigIntegers) {
    // Every integer up to 2^53 in magnitude is exact, and as_int64 gives it back.
    EXPECT_EQ(Json::parse("9007199254740992").as_int64(), int64_t{1} << 53);
    EXPECT_EQ(Json::parse("-9007199254740992").as_int64(), -(int64_t{1} << 53));
    EXPECT_EQ(Json::parse("9007199254740991").as_int64(), (int64_t{1} << 53) - 1);
    EXPECT_EQ(Json::parse("[123456789012345]").at(size_t{0}).as_int64(), 123456789012345);
    // Beyond, a literal becomes the nearest double (as its decimal text would), which as_int64 refuses...
    EXPECT_EQ(Json::parse("9007199254740995").as_number(), 9007199254740996.0);
    EXPECT_THROW(Json::parse("9007199254740995").as_int64(), vktrain::Error);
    EXPECT_THROW(Json::parse("-9223372036854775808").as_int64(), vktrain::Error);
    // ...except 2^53 + 1, which rounds (to even) onto 2^53 itself: a double cannot tell them apart.
    EXPECT_EQ(Json::parse("9007199254740993").as_int64(), int64_t{1} << 53);
    // The 64-bit limits and beyond parse like any other number.
    EXPECT_EQ(Json::parse("18446744073709551615").as_number(), 18446744073709551616.0);
    EXPECT_EQ(Json::parse("18446744073709551616").as_number(), 18446744073709551616.0);
    EXPECT_EQ(Json::parse("-9223372036854775808").as_number(), -9223372036854775808.0);
    EXPECT_EQ(Json::parse("-9223372036854775809").as_number(), -9223372036854775808.0);
    EXPECT_EQ(Json::parse("123456789012345678901234567890").as_number(), 123456789012345678901234567890.0);
    // Zero keeps its sign, as it does in fractions and exponents.
    EXPECT_TRUE(std::signbit(Json::parse("-0").as_number()));
    EXPECT_FALSE(std::signbit(Json::parse("0").as_number()));
    EXPECT_TRUE(std::signbit(Json::parse("-0.0").as_number()));
    // Written back, numbers beyond 2^53 take std::to_chars' shortest round-trip form, as before.
    EXPECT_EQ(Json::parse("18446744073709551615").dump(), "18446744073709551616");
    EXPECT_EQ(Json::parse("[9007199254740991,-9007199254740991]").dump(), "[9007199254740991,-9007199254740991]");
}

TEST(Json, InvalidUtf8Refused) {
    const char* const bad[] = {
        "\"\xff\"",             // never a UTF-8 byte
        "\"\x80\"",             // continuation without a lead
        "\"\xc3\"",             // truncated at the end of the string
        "\"\xc3",               // truncated at the end of the input
        "\"\xe2\x82x\"",        // truncated three-byte sequence
        "\"\xc1\xbf\"",         // overlong
        "\"\xe0\x80\xaf\"",     // overlong
        "\"\xf4\x90\x80\x80\"", // above U+10FFFF
        "{\"\xff\":1}",         // in a key
        "[\"ok\", \"\xfe\"]",
    };
    for (const char* text : bad) {
        const std::string message = parse_error(text);
        EXPECT_NE(message.find("ill-formed UTF-8 byte"), std::string::npos) << text << "\n" << message;
        EXPECT_TRUE(one_line_ascii(message)) << message;
    }
    // The boundaries of valid UTF-8 are accepted and kept byte for byte.
    const std::string good = "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\xf0\x90\x80\x80"
                             "\xf4\x8f\xbf\xbf";
    EXPECT_EQ(Json::parse("\"" + good + "\"").as_string(), good);
    EXPECT_EQ(Json(good).dump(), "\"" + good + "\"");
    // An error deep in a long string does not bring the string into the message.
    const std::string message = parse_error("[\"" + std::string(100000, 'x') + "\xff\"]");
    EXPECT_NE(message.find("at byte 100002: syntax error while parsing value - invalid string: ill-formed UTF-8 byte"),
              std::string::npos)
        << message.substr(0, 200);
    EXPECT_LT(message.size(), 200u);
}

TEST(Json, Files) {
    const auto dir = std::filesystem::temp_directory_path() / ("vktrain-test-json-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string path = (dir / "cache.json").string();

    Json doc;
    doc["device"] = "NVIDIA H100";
    doc["tile"].push_back(64);
    doc["tile"].push_back(128);
    vktrain::io::write_json_file(path, doc);
    EXPECT_EQ(vktrain::io::read_json_file(path), doc);
    doc["device"] = "other";
    vktrain::io::write_json_file(path, doc, false); // replaces the existing file
    EXPECT_EQ(vktrain::io::read_json_file(path), doc);
    size_t files = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++files;
    EXPECT_EQ(files, 1u); // no temporary left behind

    std::ofstream(path, std::ios::binary) << "{\"a\": [1, 2}";
    try {
        vktrain::io::read_json_file(path);
        FAIL() << "expected an exception";
    } catch (const vktrain::Error& e) {
        EXPECT_NE(std::string(e.what()).find(path + ": JSON parse error at byte 11"), std::string::npos) << e.what();
    }
    // Every parse error names the file and stays one line: duplicate keys, depth, bad bytes.
    const std::pair<std::string, std::string> damaged[] = {
        {"{\"a\": 1, \"a\": 2}", ": JSON parse error at byte 9: duplicate key \"a\" in object"},
        {std::string(600, '['), ": JSON parse error at byte 512: nesting deeper than 512 levels"},
        {"[\"\xc3\x28\"]",
         ": JSON parse error at byte 3: syntax error while parsing value - invalid string: ill-formed "
         "UTF-8 byte"},
        {"", ": JSON parse error at byte 0: syntax error while parsing value - unexpected end of input"},
    };
    for (const auto& [text, expected] : damaged) {
        std::ofstream(path, std::ios::binary) << text;
        try {
            vktrain::io::read_json_file(path);
            FAIL() << "expected an exception for " << text;
        } catch (const vktrain::Error& e) {
            EXPECT_EQ(std::string(e.what()).rfind(path + expected, 0), 0u) << e.what();
            EXPECT_TRUE(one_line_ascii(e.what())) << e.what();
        }
    }
    try {
        vktrain::io::read_json_file(path + ".missing");
        FAIL() << "expected an exception";
    } catch (const vktrain::Error& e) {
        EXPECT_NE(std::string(e.what()).find(path + ".missing: cannot open: No such file"), std::string::npos)
            << e.what();
    }
    EXPECT_THROW(vktrain::io::write_json_file((dir / "no-such-dir" / "x.json").string(), doc), vktrain::Error);
    std::filesystem::remove_all(dir);
}
