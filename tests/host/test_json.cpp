#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

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
    // Invalid UTF-8 is replaced when writing so the output stays valid JSON.
    EXPECT_EQ(Json(std::string("a\xff"
                               "b\xc3"))
                  .dump(),
              "\"a\\ufffdb\\ufffd\"");
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
    const Case cases[] = {
        {"", "doc: JSON parse error at byte 0: unexpected end of input"},
        {"   ", "at byte 3: unexpected end of input"},
        {"{\"a\":1,}", "at byte 7: expected a string key in object, got character '}'"},
        {"[1,2,]", "at byte 5: unexpected character ']', expected a value"},
        {"[1 2]", "at byte 3: expected ']' or ',' in array, got character '2'"},
        {"{\"a\" 1}", "at byte 5: expected ':' after object key"},
        {"{\"a\":1,\"a\":2}", "at byte 7: duplicate key \"a\" in object"},
        {"01", "at byte 0: invalid number: leading zero"},
        {"1.", "at byte 2: invalid number: expected a digit after '.'"},
        {"1e", "at byte 2: invalid number: expected a digit in exponent"},
        {"-", "at byte 1: invalid number: expected a digit"},
        {"+1", "at byte 0: unexpected character '+', expected a value"},
        {".5", "at byte 0: unexpected character '.'"},
        {"1e400", "at byte 0: number out of range for a double"},
        {"NaN", "at byte 0: unexpected character 'N'"},
        {"tru", "at byte 0: invalid literal, expected 'true'"},
        {"nul", "invalid literal, expected 'null'"},
        {"\"abc", "at byte 4: unterminated string"},
        {"\"a\nb\"", "at byte 2: unescaped control character byte 0x0A in string"},
        {"\"\\x\"", "at byte 1: invalid escape sequence in string"},
        {"\"\\u12G4\"", "at byte 5: invalid hex digit in \\u escape"},
        {"\"\\ud800\"", "at byte 1: unpaired high surrogate"},
        {"\"\\udc00\"", "at byte 1: unpaired low surrogate"},
        {"\"\xff\"", "at byte 1: invalid UTF-8 in string"},
        {"\"\xc0\x80\"", "at byte 1: invalid UTF-8 in string"},     // overlong NUL
        {"\"\xed\xa0\x80\"", "at byte 1: invalid UTF-8 in string"}, // encoded surrogate
        {"{} x", "at byte 3: unexpected character 'x' after the JSON value"},
        {"[1]]", "at byte 3: unexpected character ']' after the JSON value"},
        {"// comment\n1", "at byte 0: unexpected character '/'"},
        {"\xef\xbb\xbf{}", "at byte 0: unexpected byte 0xEF"}, // no BOM
    };
    for (const Case& c : cases) {
        const std::string message = parse_error(c.text);
        EXPECT_NE(message.find(c.expected), std::string::npos) << "input: " << c.text << "\nmessage: " << message;
    }
}

TEST(Json, NestingLimit) {
    EXPECT_EQ(parse_error(std::string(512, '[') + std::string(512, ']')), "");
    const std::string message = parse_error(std::string(100000, '['));
    EXPECT_NE(message.find("at byte 512: nesting deeper than 512 levels"), std::string::npos) << message;
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
