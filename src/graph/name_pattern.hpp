// Parameter-name patterns: one syntax wherever parameters are chosen by name (Model::set_trainable, set_weight_decay,
// set_init, Trainer::set_trainable, and later the command line's --freeze):
// - an exact name: "linear0.weight";
// - a prefix ending in '.': "conv0." is every parameter of conv0;
// - '*' matches any run of characters, dots included: "*.bias", "transformer.h.*.attn." (a pattern ending in '.' still
//   matches every name that begins with a match of it).
#pragma once

#include <string>

namespace vktrain::graph {

bool matches_pattern(const std::string& pattern, const std::string& name);

// What a one-line error says about the syntax (after "no parameter matches 'PATTERN'").
constexpr const char* pattern_rule = "an exact name, a prefix ending in '.', or '*' for any characters";

} // namespace vktrain::graph
