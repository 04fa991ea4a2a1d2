// `vktrain ops`: the op registry as a user sees it (vktrain::list_ops()): every op a model can use, its inputs, and
// each attribute's kind, range, default and meaning. The same list the C API's vkt_op_* functions and the --model
// net: spec read.
#include <cmath>
#include <cstdio>
#include <string>

#include "commands.hpp"
#include "option_table.hpp"
#include "vktrain/model.hpp"

namespace vktrain::cli {

namespace {

std::string number(double v) {
    if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(int64_t(v));
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

std::string kind_text(const OpAttrInfo& a) {
    switch (a.kind) {
    case AttrKind::flag: return "flag (0 or 1)";
    case AttrKind::shape: return "shape (dimensions)";
    case AttrKind::integer:
    case AttrKind::real: break;
    }
    const std::string kind = a.kind == AttrKind::integer ? "integer " : "real ";
    if (a.kind == AttrKind::real && a.max > 1e38) return kind + (a.min_open ? "> " : ">= ") + number(a.min);
    return kind + (a.min_open ? "(" : "[") + number(a.min) + ", " + number(a.max) + (a.max_open ? ")" : "]");
}

std::string default_text(const OpAttrInfo& a) {
    if (a.default_value) return "default " + number(*a.default_value);
    if (!a.default_from.empty()) return "default: " + a.default_from;
    return a.required ? "required" : "optional";
}

} // namespace

int run_ops(const std::vector<std::string>& args) {
    bool help = false;
    OptionTable().flag("--help", [&] { help = true; }).parse(args);
    if (help) {
        std::fputs(ops_usage(), stdout);
        return 0;
    }
    for (const OpInfo& op : list_ops()) {
        std::string inputs;
        for (const std::string& i : op.inputs) inputs += (inputs.empty() ? "" : ", ") + i;
        std::printf("%s(%s)  [%s]%s\n  %s\n", op.name.c_str(), inputs.c_str(), op.category.c_str(),
                    op.inference_only ? " inference only" : "", op.doc.c_str());
        for (const OpAttrInfo& a : op.attrs)
            std::printf("    %-15s %-28s %-18s %s\n", a.name.c_str(), kind_text(a).c_str(), default_text(a).c_str(),
                        a.doc.c_str());
    }
    return 0;
}

} // namespace vktrain::cli
