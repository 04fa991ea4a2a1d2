#include "model_spec.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "args.hpp"
#include "vktrain/error.hpp"

namespace vktrain::cli {

namespace {

// Layer widths beyond this are certainly a typo (and would overflow the 32-bit sizes the library uses).
constexpr unsigned long max_features = 1u << 20;
// The most GPT blocks the command accepts (it took up to 2^20). Set-up time grows linearly with depth (issue 21), and
// this is as deep as has been measured to work well on lavapipe: gpt:layers=4096,width=8 set up in a few seconds and
// ran a step in about 25 s with about 1 GB of host memory, most of it the recorded command buffers. (MLP depth is
// bounded by the length of a command line: about 65,000 layers.)
constexpr uint32_t max_layers = 4096;

// Parses a positive layer width; returns 0 when the text is not one.
uint32_t parse_width(const std::string& text) {
    if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos) return 0;
    const unsigned long v = std::strtoul(text.c_str(), nullptr, 10);
    return v >= 1 && v <= max_features ? uint32_t(v) : 0;
}

// A spec as error messages quote it: a very long one (thousands of layers) is shortened to keep the line readable.
std::string quoted(const std::string& spec) {
    return "'" + (spec.size() <= 80 ? spec : spec.substr(0, 60) + "...") + "'";
}

std::vector<std::string> split(const std::string& text, char sep) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (true) {
        const size_t pos = text.find(sep, start);
        parts.push_back(text.substr(start, pos == std::string::npos ? std::string::npos : pos - start));
        if (pos == std::string::npos) return parts;
        start = pos + 1;
    }
}

std::string joined(const std::vector<std::string>& words, const char* sep = ", ") {
    std::string s;
    for (const std::string& w : words) s += (s.empty() ? "" : sep) + w;
    return s;
}

// The registry's activation ops (category "activation"): relu, gelu, gelu_tanh, silu, ... An op added there is an
// mlp: activation without a change here.
std::vector<std::string> activation_ops() {
    std::vector<std::string> out;
    for (const OpInfo& op : list_ops())
        if (op.category == "activation") out.push_back(op.name);
    return out;
}

// The op an mlp: spec's activation word names, or "" when none: "gelu" is GELU's tanh approximation, as it has been
// since the first version (the registry's "gelu" is the exact one); every other word is a registry name.
std::string activation_op(const std::string& word) {
    if (word == "gelu") return "gelu_tanh";
    for (const std::string& a : activation_ops())
        if (a == word) return a;
    return "";
}

// "mlp:H1,H2,...[:relu|:gelu|:gelu_tanh|:silu]"
std::string mlp_form() {
    std::string acts = ":relu|:gelu";
    for (const std::string& a : activation_ops())
        if (a != "relu" && a != "gelu") acts += "|:" + a;
    return "mlp:H1,H2,...[" + acts + "]";
}

const OpInfo* find_op(const std::string& name) {
    static const std::vector<OpInfo> ops = list_ops();
    for (const OpInfo& op : ops)
        if (op.name == name) return &op;
    return nullptr;
}

// Splits at the commas outside parentheses: "conv2d(out=8,kernel_h=3),relu" -> {"conv2d(out=8,kernel_h=3)", "relu"}.
std::vector<std::string> split_top_level(const std::string& text) {
    std::vector<std::string> parts(1);
    int depth = 0;
    for (char c : text) {
        if (c == '(') ++depth;
        if (c == ')') --depth;
        if (c == ',' && depth == 0)
            parts.emplace_back();
        else
            parts.back() += c;
    }
    return parts;
}

std::string number_text(double v) {
    if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(int64_t(v));
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

// A whole-text finite number; false otherwise.
bool parse_number(const std::string& text, double& value) {
    if (text.empty() || text.find_first_of(" \t\n") != std::string::npos) return false;
    errno = 0;
    char* end = nullptr;
    value = std::strtod(text.c_str(), &end);
    return errno == 0 && end == text.c_str() + text.size() && std::isfinite(value);
}

} // namespace

NetSpec parse_net_spec(const std::string& spec) {
    const auto fail = [&](const std::string& why) -> UsageError {
        return UsageError("--model " + quoted(spec) + ": " + why + " (expected net:OP[(KEY=VALUE,...)],...)");
    };
    if (spec.rfind("net:", 0) != 0) throw fail("not a net: spec");
    NetSpec out;
    for (const std::string& item : split_top_level(spec.substr(4))) {
        const size_t open = item.find('(');
        const std::string name = item.substr(0, open);
        if (name.empty()) throw fail("an empty op name");
        std::vector<std::string> ops;
        for (const OpInfo& op : list_ops())
            if (op.inputs.size() == 1) ops.push_back(op.name);
        const OpInfo* op = find_op(name);
        if (!op) throw fail("unknown op '" + name + "' (ops of one input: " + joined(ops) + ")");
        if (op->inputs.size() != 1)
            throw fail("op '" + name + "' takes " + std::to_string(op->inputs.size()) + " inputs (" +
                       joined(op->inputs) + "); a net: spec chains ops of one input");
        NetSpec::Op o;
        o.name = name;
        if (open != std::string::npos) {
            if (item.back() != ')' || item.find('(', open + 1) != std::string::npos)
                throw fail("'" + item + "' is not OP(KEY=VALUE,...)");
            const std::string args = item.substr(open + 1, item.size() - open - 2);
            for (const std::string& kv : split(args, ',')) {
                const size_t eq = kv.find('=');
                if (eq == std::string::npos) throw fail("'" + kv + "' in " + name + "(...) is not KEY=VALUE");
                const std::string key = kv.substr(0, eq), text = kv.substr(eq + 1);
                const OpAttrInfo* a = nullptr;
                std::vector<std::string> names;
                for (const OpAttrInfo& i : op->attrs) {
                    names.push_back(i.name);
                    if (i.name == key) a = &i;
                }
                if (!a)
                    throw fail("op '" + name + "' has no attribute '" + key + "' (attributes: " + joined(names) + ")");
                if (o.attrs.count(key)) throw fail(name + ": attribute '" + key + "' is given more than once");
                if (a->kind == AttrKind::shape) {
                    std::vector<int64_t> dims;
                    for (const std::string& d : split(text, 'x')) {
                        double v = 0;
                        if (!parse_number(d, v) || v != std::floor(v) || std::fabs(v) > 1e15)
                            throw fail(name + ": " + key + " '" + text + "' is not dimensions joined by 'x'");
                        dims.push_back(int64_t(v));
                    }
                    o.attrs.emplace(key, AttrValue(dims));
                    continue;
                }
                double v = 0;
                if (!parse_number(text, v)) throw fail(name + ": " + key + " '" + text + "' is not a number");
                if (a->kind != AttrKind::real && v != std::floor(v))
                    throw fail(name + ": " + key + " " + text + " is not an integer");
                const bool low = a->min_open ? v > a->min : v >= a->min, high = a->max_open ? v < a->max : v <= a->max;
                if (!low || !high)
                    throw fail(name + ": " + key + " " + text + " is outside " + (a->min_open ? "(" : "[") +
                               number_text(a->min) + ", " + number_text(a->max) + (a->max_open ? ")" : "]"));
                o.attrs.emplace(key, AttrValue(v));
            }
        }
        for (const OpAttrInfo& a : op->attrs)
            if (a.required && !o.attrs.count(a.name))
                throw fail("op '" + name + "' needs attribute '" + a.name + "' (" + a.doc + ")");
        out.ops.push_back(std::move(o));
    }
    return out;
}

MlpSpec parse_mlp_spec(const std::string& spec) {
    const auto fail = [&](const std::string& why) -> UsageError {
        return UsageError("--model " + quoted(spec) + ": " + why + " (expected " + mlp_form() + ")");
    };
    const std::vector<std::string> parts = split(spec, ':');
    if (parts[0] != "mlp") throw fail("unknown model type '" + parts[0] + "'");
    if (parts.size() > 3) throw fail("too many ':' sections");
    MlpSpec out;
    // "mlp" alone (or an empty size list) has no hidden layers: a linear classifier.
    if (parts.size() >= 2 && !parts[1].empty()) {
        for (const std::string& h : split(parts[1], ',')) {
            const uint32_t w = parse_width(h);
            if (w == 0)
                throw fail("hidden size '" + h + "' is not an integer in [1, " + std::to_string(max_features) + "]");
            out.hidden.push_back(w);
        }
    }
    if (parts.size() == 3) {
        out.activation = activation_op(parts[2]);
        if (out.activation.empty()) throw fail("unknown activation '" + parts[2] + "'");
    }
    return out;
}

GptOptions parse_gpt_spec(const std::string& spec) {
    const auto fail = [&](const std::string& why) -> UsageError {
        return UsageError("--model " + quoted(spec) + ": " + why +
                          " (expected gpt[:layers=N,heads=N,width=N,context=N,mlp=N,tied=0|1])");
    };
    GptOptions o;
    if (spec == "gpt") return o;
    if (spec.rfind("gpt:", 0) != 0) throw fail("unknown model type");
    std::vector<std::string> seen;
    for (const std::string& item : split(spec.substr(4), ',')) {
        const size_t eq = item.find('=');
        if (eq == std::string::npos) throw fail("'" + item + "' is not key=value");
        const std::string key = item.substr(0, eq), text = item.substr(eq + 1);
        // "layers=1,layers=2" is a typo or a bad merge of two specs, not a request for the last value.
        for (const std::string& k : seen)
            if (k == key) throw fail("key '" + key + "' is given more than once");
        seen.push_back(key);
        const uint32_t v = parse_width(text);
        if (key == "tied") {
            if (text != "0" && text != "1") throw fail("tied takes 0 or 1");
            o.tied = text == "1";
            continue;
        }
        if (v == 0) throw fail(key + " '" + text + "' is not an integer in [1, " + std::to_string(max_features) + "]");
        if (key == "layers")
            o.layers = v;
        else if (key == "heads")
            o.heads = v;
        else if (key == "width")
            o.width = v;
        else if (key == "context")
            o.context = v;
        else if (key == "mlp")
            o.mlp = v;
        else
            throw fail("unknown key '" + key + "'");
    }
    if (o.layers > max_layers)
        throw fail("layers " + std::to_string(o.layers) + " is more than the " + std::to_string(max_layers) +
                   " this command accepts");
    if (o.width % o.heads != 0)
        throw fail("width " + std::to_string(o.width) + " is not a multiple of heads " + std::to_string(o.heads));
    return o;
}

ModelSpec parse_model_spec(const std::string& spec) {
    ModelSpec out;
    if (spec == "cnn") {
        out.kind = "cnn";
        return out;
    }
    if (spec == "gpt" || spec.rfind("gpt:", 0) == 0) {
        out.kind = "gpt";
        out.gpt = parse_gpt_spec(spec);
        return out;
    }
    if (spec.rfind("net:", 0) == 0) {
        out.kind = "net";
        out.net = parse_net_spec(spec);
        return out;
    }
    if (spec.rfind("mlp", 0) != 0 || (spec.size() > 3 && spec[3] != ':'))
        throw UsageError("--model " + quoted(spec) + ": unknown model (expected " + mlp_form() +
                         ", cnn, gpt:... or net:OP,...)");
    out.kind = "mlp";
    out.mlp = parse_mlp_spec(spec);
    return out;
}

// Model::mlp's graph and names, with any activation op: [linear -> activation] * hidden -> linear -> cross-entropy.
Model build_mlp(const MlpSpec& spec, uint32_t input_features, uint32_t classes) {
    Model m(input_features);
    int x = m.input();
    for (uint32_t h : spec.hidden) x = m.op(spec.activation, {m.linear(x, h)});
    m.softmax_cross_entropy(m.linear(x, classes));
    return m;
}

Model build_net(const NetSpec& spec, uint32_t input_features, uint32_t classes) {
    const auto side = uint32_t(std::lround(std::sqrt(double(input_features))));
    Model m;
    int x = side * side == input_features ? m.input("x", {1, side, side}) : m.input("x", {int64_t(input_features)});
    for (const NetSpec::Op& op : spec.ops) x = m.op(op.name, {x}, op.attrs);
    if (m.nodes()[size_t(x)].shape.size() > 1) x = m.flatten(x);
    m.softmax_cross_entropy(m.linear(x, classes));
    return m;
}

Model build_model(const ModelSpec& spec, uint32_t input_features, uint32_t classes) {
    if (spec.kind == "mlp") return build_mlp(spec.mlp, input_features, classes);
    if (spec.kind == "net") return build_net(spec.net, input_features, classes);
    if (spec.kind == "gpt") throw Error("the gpt model trains on text (--text), not on images");
    if (input_features != 28 * 28)
        throw Error("the cnn model takes 28x28 images; the data has " + std::to_string(input_features) +
                    " pixels per image");
    return Model::cnn(classes);
}

Model model_from_description(const std::string& description) {
    const auto fail = [&](const std::string& why) -> Error {
        return Error("model description '" + description + "': " + why);
    };
    // Each '-' separated part is a width followed by zero or more "(act)" suffixes; the first part is the input
    // and every later one a linear layer with bias (the only form describe() produces for linear layers).
    const std::vector<std::string> parts = split(description, '-');
    if (parts.size() < 2) throw fail("needs at least an input and an output width");
    const uint32_t input = parse_width(parts[0]);
    if (input == 0) throw fail("bad input width '" + parts[0] + "'");
    Model model(input);
    int x = model.input();
    for (size_t i = 1; i < parts.size(); ++i) {
        const std::string& p = parts[i];
        const size_t paren = p.find('(');
        const uint32_t width = parse_width(p.substr(0, paren));
        if (width == 0) throw fail("bad layer width in '" + p + "'");
        x = model.linear(x, width);
        size_t pos = paren;
        while (pos != std::string::npos && pos < p.size()) {
            const size_t close = p.find(')', pos);
            if (p[pos] != '(' || close == std::string::npos) throw fail("malformed activation in '" + p + "'");
            const std::string act = activation_op(p.substr(pos + 1, close - pos - 1));
            if (act.empty()) throw fail("unknown activation '" + p.substr(pos + 1, close - pos - 1) + "'");
            x = model.op(act, {x});
            pos = close + 1;
        }
    }
    if (model.nodes().back().op != "linear") throw fail("the output layer must be linear");
    if (model.nodes().back().shape.back() < 2) throw fail("the output needs at least 2 classes");
    model.softmax_cross_entropy(x);
    return model;
}

} // namespace vktrain::cli
