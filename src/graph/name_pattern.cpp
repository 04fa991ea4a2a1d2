#include "graph/name_pattern.hpp"

#include <cstddef>

namespace vktrain::graph {

bool matches_pattern(const std::string& pattern, const std::string& name) {
    if (pattern.empty()) return false;
    const bool prefix = pattern.back() == '.';
    // Greedy wildcard matching with one backtrack point (the last '*'): linear in practice, no recursion.
    size_t p = 0, n = 0, star = std::string::npos, resume = 0;
    while (n < name.size()) {
        if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            resume = n;
        } else if (p < pattern.size() && pattern[p] == name[n]) {
            ++p;
            ++n;
        } else if (p == pattern.size() && prefix) {
            return true; // the whole pattern matched a beginning of the name
        } else if (star != std::string::npos) {
            p = star + 1;
            n = ++resume;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
}

} // namespace vktrain::graph
