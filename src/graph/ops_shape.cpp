// Shape ops. flatten and reshape are views (the output is the input's storage under another shape); transpose
// and slice are strided views that consuming kernels cannot read in place, so they are materialised by one
// strided copy, and their gradients by the inverse copy.
#include <string>

#include "common/check.hpp"
#include "graph/autodiff.hpp"
#include "graph/exec.hpp"
#include "graph/registry.hpp"
#include "kernels/copy.hpp"

namespace vktrain::graph {

namespace {

std::vector<uint64_t> dims(const Shape& s) {
    return std::vector<uint64_t>(s.begin(), s.end());
}

OpDef view(const char* name) {
    OpDef d;
    d.name = name;
    d.is_public = true;
    d.category = "shape";
    d.inputs = {"x"};
    if (std::string(name) == "flatten") {
        d.doc = "[d0, d1, ...] -> [d0 · d1 · ...] per sample (a view: no copy)";
    } else {
        d.doc = "the same elements under another per-sample shape; one dimension may be -1 (a view: no copy)";
        d.attrs = {shape_attr("shape", "the per-sample shape, 1 to 5 dimensions, at most one -1 (inferred)")};
    }
    d.view = true;
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 1);
        const uint64_t count = element_count(in[0]->shape);
        if (n.op == "flatten") return Shape{int64_t(count)};
        Shape s = shape_attr_of(n);
        VKT_CHECK(!s.empty() && s.size() <= 5, "reshape '", n.name, "': 1 to 5 dimensions per sample, got ", s.size());
        int unknown = -1;
        uint64_t known = 1;
        for (size_t i = 0; i < s.size(); ++i) {
            if (s[i] == -1) {
                VKT_CHECK(unknown < 0, "reshape '", n.name, "': more than one -1 in ", shape_text(s));
                unknown = int(i);
                continue;
            }
            VKT_CHECK(s[i] > 0, "reshape '", n.name, "': dimension ", s[i], " in ", shape_text(s));
            // No product may pass the input's count (checked before multiplying, so it cannot wrap around).
            VKT_CHECK(uint64_t(s[i]) <= count / known, "reshape '", n.name, "': ", shape_text(in[0]->shape), " has ",
                      count, " elements per sample, fewer than ", shape_text(s));
            known *= uint64_t(s[i]);
        }
        if (unknown >= 0) {
            VKT_CHECK(known > 0 && count % known == 0, "reshape '", n.name, "': ", shape_text(in[0]->shape),
                      " cannot become ", shape_text(s));
            s[size_t(unknown)] = int64_t(count / known);
            known = count;
        }
        VKT_CHECK(known == count, "reshape '", n.name, "': ", shape_text(in[0]->shape), " has ", count,
                  " elements per sample, ", shape_text(s), " has ", known);
        return s;
    };
    return d;
}

// ---- transpose: swaps two per-sample dimensions (attrs dim0, dim1) ----

// The strides that read a contiguous tensor of shape `from` in the order of its transpose (dims a, b swapped).
std::vector<uint64_t> swapped_strides(const Shape& from, size_t a, size_t b) {
    auto s = kernels::contiguous_strides(dims(from));
    std::swap(s[a], s[b]);
    return s;
}

void record_transpose(Exec& e, int src, int dst, size_t a, size_t b, bool accumulate) {
    const Shape& out = e.value(dst).shape;
    const kernels::StridedView sv{0, swapped_strides(e.value(src).shape, a, b)};
    const kernels::StridedView dv{0, kernels::contiguous_strides(dims(out))};
    kernels::record_strided_copy(e.device(), e.seq(), dims(out), e.batch(src), sv, e.batch(dst), dv, accumulate);
}

OpDef transpose() {
    OpDef d;
    d.name = "transpose";
    d.is_public = true;
    d.doc = "swaps two per-sample dimensions (the batch dimension not counted; one strided copy)";
    d.category = "shape";
    d.inputs = {"x"};
    d.attrs = {int_attr("dim0", 0, 5, "a per-sample dimension"), int_attr("dim1", 0, 5, "the other one")};
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 1);
        expect_real(n, *in[0]);
        const auto a = attr<size_t>(n, "dim0"), b = attr<size_t>(n, "dim1");
        Shape s = in[0]->shape;
        VKT_CHECK(a < s.size() && b < s.size(), "transpose '", n.name, "': dimensions ", a, " and ", b, " of ",
                  shape_text(s), " (per sample, the batch dimension not counted)");
        std::swap(s[a], s[b]);
        return s;
    };
    d.record = [](Exec& e, const IrNode& n) {
        record_transpose(e, n.in[0], n.out[0], attr<size_t>(n, "dim0") + 1, attr<size_t>(n, "dim1") + 1, false);
    };
    d.backward = [](Autodiff& ad, const IrNode& n) {
        ad.emit("transpose_backward", n, "backward", {ad.grad_output(n)}, ad.grad_input(n, 0));
    };
    return d;
}

// dX (+)= transpose(dY): in = {dY}.
OpDef transpose_backward() {
    OpDef d;
    d.name = "transpose_backward";
    d.backward_only = true;
    d.can_accumulate = true;
    d.record = [](Exec& e, const IrNode& n) {
        record_transpose(e, n.in[0], n.out[0], attr<size_t>(n, "dim0") + 1, attr<size_t>(n, "dim1") + 1, n.accumulate);
    };
    return d;
}

// ---- slice: elements [start, end) of one per-sample dimension (attrs dim, start, end) ----

kernels::StridedView slice_view(const Shape& full, size_t dim, uint64_t start) {
    kernels::StridedView v{0, kernels::contiguous_strides(dims(full))};
    v.offset = start * v.stride[dim];
    return v;
}

OpDef slice() {
    OpDef d;
    d.name = "slice";
    d.is_public = true;
    d.doc = "elements [start, end) of one per-sample dimension (one strided copy)";
    d.category = "shape";
    d.inputs = {"x"};
    d.attrs = {int_attr("dim", 0, 5, "the per-sample dimension (the batch dimension not counted)"),
               count_attr("start", "the first index kept"), size_attr("end", "one past the last index kept")};
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 1);
        expect_real(n, *in[0]);
        const auto dim = attr<size_t>(n, "dim");
        const auto start = attr<int64_t>(n, "start"), end = attr<int64_t>(n, "end");
        Shape s = in[0]->shape;
        VKT_CHECK(dim < s.size(), "slice '", n.name, "': dimension ", dim, " of ", shape_text(s));
        VKT_CHECK(0 <= start && start < end && end <= s[dim], "slice '", n.name, "': [", start, ", ", end,
                  ") of a dimension of ", s[dim]);
        s[dim] = end - start;
        return s;
    };
    d.record = [](Exec& e, const IrNode& n) {
        const Shape& out = e.value(n.out[0]).shape;
        kernels::record_strided_copy(
            e.device(), e.seq(), dims(out), e.batch(n.in[0]),
            slice_view(e.value(n.in[0]).shape, attr<size_t>(n, "dim") + 1, attr<uint64_t>(n, "start")),
            e.batch(n.out[0]), {0, kernels::contiguous_strides(dims(out))});
    };
    d.backward = [](Autodiff& ad, const IrNode& n) {
        ad.emit("slice_backward", n, "backward", {ad.grad_output(n)}, ad.grad_input(n, 0));
    };
    return d;
}

// dX (+)= dY placed at the slice, zero elsewhere: in = {dY}.
OpDef slice_backward() {
    OpDef d;
    d.name = "slice_backward";
    d.backward_only = true;
    d.can_accumulate = true;
    d.record = [](Exec& e, const IrNode& n) {
        const kernels::MatRef dx = e.batch(n.out[0]);
        if (!n.accumulate) {
            // Arena values start 64-byte aligned and are padded to it, so rounding up to 4 bytes stays inside.
            e.seq().fill(*dx.buffer, 0, (dx.byte_size() + 3) / 4 * 4, dx.byte_offset());
        }
        const Shape& dy = e.value(n.in[0]).shape;
        kernels::record_strided_copy(
            e.device(), e.seq(), dims(dy), e.batch(n.in[0]), {0, kernels::contiguous_strides(dims(dy))}, dx,
            slice_view(e.value(n.out[0]).shape, attr<size_t>(n, "dim") + 1, attr<uint64_t>(n, "start")), n.accumulate);
    };
    return d;
}

} // namespace

void register_shape_ops(std::vector<OpDef>& t) {
    t.push_back(view("flatten"));
    t.push_back(view("reshape"));
    t.push_back(transpose());
    t.push_back(transpose_backward());
    t.push_back(slice());
    t.push_back(slice_backward());
}

} // namespace vktrain::graph
