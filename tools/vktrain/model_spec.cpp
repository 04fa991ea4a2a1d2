#include "model_spec.hpp"

#include <cerrno>
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

} // namespace

MlpSpec parse_mlp_spec(const std::string& spec) {
    const auto fail = [&](const std::string& why) -> UsageError {
        return UsageError("--model " + quoted(spec) + ": " + why + " (expected mlp:H1,H2,...[:relu|:gelu])");
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
        if (parts[2] == "relu")
            out.activation = OpKind::relu;
        else if (parts[2] == "gelu")
            out.activation = OpKind::gelu;
        else
            throw fail("unknown activation '" + parts[2] + "'");
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
    if (spec.rfind("mlp", 0) != 0 || (spec.size() > 3 && spec[3] != ':'))
        throw UsageError("--model " + quoted(spec) +
                         ": unknown model (expected mlp:H1,H2,...[:relu|:gelu], cnn or gpt:...)");
    out.kind = "mlp";
    out.mlp = parse_mlp_spec(spec);
    return out;
}

Model build_mlp(const MlpSpec& spec, uint32_t input_features, uint32_t classes) {
    return Model::mlp(input_features, spec.hidden, classes, spec.activation);
}

Model build_model(const ModelSpec& spec, uint32_t input_features, uint32_t classes) {
    if (spec.kind == "mlp") return build_mlp(spec.mlp, input_features, classes);
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
            const std::string act = p.substr(pos + 1, close - pos - 1);
            if (act == "relu")
                x = model.relu(x);
            else if (act == "gelu")
                x = model.gelu_tanh(x);
            else
                throw fail("unknown activation '" + act + "'");
            pos = close + 1;
        }
    }
    if (model.nodes().back().op != "linear") throw fail("the output layer must be linear");
    if (model.nodes().back().shape.back() < 2) throw fail("the output needs at least 2 classes");
    model.softmax_cross_entropy(x);
    return model;
}

} // namespace vktrain::cli
