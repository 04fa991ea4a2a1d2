// The command line's reader: each command declares its options in an OptionTable (a spelling, whether it takes a
// value, and what to do with it), and OptionTable::parse walks the arguments once. Options several commands share
// are declared by the add_* functions of args.cpp, so each is spelled, parsed and validated in one place.
//
// Accepted forms: "--name value", "--name=value", and "-h" for "--help". Positional arguments are rejected: every
// command takes only options, so a stray word is almost always a typo worth reporting. A value may not be empty and
// may not look like an option ("--output --force" is a mistake, not a file named "--force"). The first bad argument
// throws UsageError, in command-line order.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace vktrain::cli {

// Bad usage: main() prints it as one "vktrain: error: ..." line and exits 2 (run-time failures use vktrain::Error
// and exit 1).
class UsageError : public std::runtime_error {
public:
    explicit UsageError(const std::string& message) : std::runtime_error(message) {}
};

// Strict number parsing: the whole text must be a number in [min, max]; errors name the option.
uint64_t parse_uint(const std::string& option, const std::string& text, uint64_t min, uint64_t max);
// Finite numbers that also fit a float; positive: > 0, otherwise >= 0.
double parse_real(const std::string& option, const std::string& text, bool positive);

// A value's handler gets the option's name (for messages) and its non-empty value.
using OptionHandler = std::function<void(const std::string& option, const std::string& value)>;

class OptionTable {
public:
    // An option without a value; "--name=value" is refused.
    OptionTable& flag(const std::string& name, std::function<void()> set);
    // An option with a value.
    OptionTable& value(const std::string& name, OptionHandler set);

    // Calls the handler of every option in `args`, in order; `given` (if set) collects each option's name.
    void parse(const std::vector<std::string>& args, std::set<std::string>* given = nullptr) const;

private:
    struct Option {
        std::string name;
        bool takes_value = false;
        OptionHandler set; // flags get an empty value
    };
    void add(Option option);
    std::vector<Option> m_options;
};

// Handlers for the common kinds of value.
OptionHandler store(std::string& target);

// `Target` is double or std::optional<double>.
template <typename Target>
OptionHandler store_real(Target& target, bool positive) {
    return [&target, positive](const std::string& option, const std::string& value) {
        target = parse_real(option, value, positive);
    };
}

template <typename T>
OptionHandler store_uint(T& target, uint64_t min, uint64_t max) {
    return [&target, min, max](const std::string& option, const std::string& value) {
        target = static_cast<T>(parse_uint(option, value, min, max));
    };
}

// One of a fixed set of words; errors list them ("--precision expects mixed or fp32, got 'fp8'").
template <typename T>
using Choices = std::vector<std::pair<std::string, T>>;

template <typename T>
T parse_choice(const std::string& option, const std::string& text, const Choices<T>& choices) {
    std::string expected;
    for (size_t i = 0; i < choices.size(); ++i) {
        if (choices[i].first == text) return choices[i].second;
        expected += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + choices[i].first;
    }
    throw UsageError(option + " expects " + expected + ", got '" + text + "'");
}

// `Target` is T or std::optional<T>.
template <typename Target, typename T>
OptionHandler store_choice(Target& target, Choices<T> choices) {
    return [&target, choices = std::move(choices)](const std::string& option, const std::string& value) {
        target = parse_choice(option, value, choices);
    };
}

} // namespace vktrain::cli
