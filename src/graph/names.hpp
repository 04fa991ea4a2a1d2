// The rule for node names, shared by the builder (Model::input, Model::rename) and by architectures loaded from a
// file (Model::from_json), so a file cannot hold a name the builder would refuse. Names become parameter names,
// safetensors keys and parts of one-line messages: no whitespace or quotes, dots only between parts.
#pragma once

#include <string>

namespace vktrain::graph {

inline bool is_valid_node_name(const std::string& name) {
    if (name.empty() || name.front() == '.' || name.back() == '.' || name.find("..") != std::string::npos) return false;
    for (const char c : name)
        if (static_cast<unsigned char>(c) < 0x20 || c == ' ' || c == '"' || c == 0x7F) return false; // controls too
    return true;
}

// A name as it may appear in a one-line message: control characters escaped (\n, \t, \xNN).
inline std::string printable_name(const std::string& name) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (const char c : name) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '\n')
            out += "\\n";
        else if (c == '\t')
            out += "\\t";
        else if (u < 0x20 || u == 0x7F)
            out += std::string("\\x") + digits[u >> 4] + digits[u & 15];
        else
            out += c;
    }
    return out;
}

constexpr const char* node_name_rule = "non-empty, no spaces, quotes or control characters, dots only between parts";

} // namespace vktrain::graph
