#include "option_table.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <optional>

namespace vktrain::cli {

uint64_t parse_uint(const std::string& option, const std::string& text, uint64_t min, uint64_t max) {
    const auto fail = [&](const std::string& why) -> UsageError {
        return UsageError(option + " expects " + why + ", got '" + text + "'");
    };
    const std::string range = max == std::numeric_limits<uint64_t>::max()
                                  ? "an integer >= " + std::to_string(min)
                                  : "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
    // strtoull accepts leading spaces and '-' (wrapping around); insist on plain digits.
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) throw fail(range);
    errno = 0;
    char* end = nullptr;
    const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
    if (errno == ERANGE || *end != '\0' || v < min || v > max) throw fail(range);
    return uint64_t(v);
}

double parse_real(const std::string& option, const std::string& text, bool positive) {
    const std::string what = positive ? "a positive number" : "a non-negative number";
    errno = 0;
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    const bool syntax_ok = !text.empty() && end == text.c_str() + text.size() && text.front() != ' ';
    if (!syntax_ok || errno == ERANGE || !std::isfinite(v) || (positive ? !(v > 0.0) : !(v >= 0.0)))
        throw UsageError(option + " expects " + what + ", got '" + text + "'");
    // These options are used as floats: a value that overflows to inf or (if it must be positive) underflows to 0
    // there is a usage error here, not a failure deep inside a run.
    const auto f = static_cast<float>(v);
    if (!std::isfinite(f) || (positive && !(f > 0.0f)))
        throw UsageError(option + " expects " + what + " within the float range, got '" + text + "'");
    return v;
}

OptionTable& OptionTable::flag(const std::string& name, std::function<void()> set) {
    add({name, false, [set = std::move(set)](const std::string&, const std::string&) { set(); }});
    return *this;
}

OptionTable& OptionTable::value(const std::string& name, OptionHandler set) {
    add({name, true, std::move(set)});
    return *this;
}

void OptionTable::add(Option option) {
    for (const Option& o : m_options)
        if (o.name == option.name) throw std::logic_error("option " + option.name + " is declared twice");
    m_options.push_back(std::move(option));
}

void OptionTable::parse(const std::vector<std::string>& args, std::set<std::string>* given) const {
    const auto is_option = [](const std::string& arg) { return arg.size() > 2 && arg.compare(0, 2, "--") == 0; };
    size_t pos = 0;
    while (pos < args.size()) {
        const std::string& arg = args[pos++];
        std::string name;
        std::optional<std::string> inline_value;
        if (arg == "-h") {
            name = "--help";
        } else if (!is_option(arg)) {
            throw UsageError("unexpected argument '" + arg + "' (options start with --)");
        } else if (const size_t eq = arg.find('='); eq != std::string::npos) {
            name = arg.substr(0, eq);
            inline_value = arg.substr(eq + 1);
        } else {
            name = arg;
        }
        if (given) given->insert(name);

        const Option* option = nullptr;
        for (const Option& o : m_options)
            if (o.name == name) option = &o;
        if (!option) throw UsageError("unknown option '" + name + "'");
        if (!option->takes_value) {
            if (inline_value) throw UsageError(name + " takes no value");
            option->set(name, {});
            continue;
        }
        std::string value;
        if (inline_value)
            value = *inline_value;
        else if (pos < args.size() && !is_option(args[pos]))
            value = args[pos++];
        if (value.empty()) throw UsageError(name + " needs a value");
        option->set(name, value);
    }
}

OptionHandler store(std::string& target) {
    return [&target](const std::string&, const std::string& value) { target = value; };
}

} // namespace vktrain::cli
