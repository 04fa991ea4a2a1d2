// What an op's recording sees: the device, the sequence being recorded, and every value of the graph as a
// kernel operand (its buffer and element offset, resolved by Program from the memory plan). While GEMM sites
// are being collected (before memory exists) `seq` is null and only declare_gemm() may be called.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "graph/ir.hpp"
#include "kernels/conv.hpp"
#include "kernels/gemm.hpp"
#include "kernels/gemm_autotune.hpp"
#include "kernels/tensor.hpp"
#include "runtime/sequence.hpp"
#include "vktrain/trainer.hpp"

namespace vktrain::graph {

// A GEMM-like site whose path is chosen by measurement: a GEMM or a convolution.
struct Site {
    bool is_conv = false;
    kernels::GemmShape gemm;
    kernels::ConvProblem conv;
    std::string key() const { return is_conv ? conv.key() : gemm.key(); }
};

struct Location {
    const runtime::Buffer* buffer = nullptr;
    uint64_t offset = 0; // elements
};

class Exec {
public:
    Exec(runtime::Device& device, const Ir& ir, kernels::DType act) : m_device(device), m_ir(ir), m_act(act) {}

    runtime::Device& device() const { return m_device; }
    runtime::Sequence& seq() const;
    bool collecting() const { return m_seq == nullptr; }
    const Ir& ir() const { return m_ir; }
    const IrValue& value(int v) const { return m_ir.values.at(size_t(v)); }

    kernels::DType dtype(int v) const;
    // value v as rows × cols (rows · cols must equal its element count); rows() views it as
    // [product of all but the last dimension, last dimension]; batch() as [shape[0], the rest].
    kernels::MatRef mat(int v, uint64_t rows, uint64_t cols) const;
    kernels::MatRef rows(int v) const;
    kernels::MatRef batch(int v) const;
    // The host-written per-step scalars (kernels::StepParams: valid samples, loss scale, step counter).
    const runtime::Buffer& step_params() const { return *m_step_params; }

    // GEMM sites: declared while collecting, then recorded on the chosen path.
    void declare_gemm(const std::string& site, const kernels::GemmShape& shape);
    void declare_conv(const std::string& site, const kernels::ConvProblem& problem);
    GemmPath path(const std::string& site) const;
    uint32_t tile(const std::string& site) const; // the site's kernels::gemm_configs index
    void gemm(const std::string& site, const kernels::MatRef& a, bool trans_a, const kernels::MatRef& b, bool trans_b,
              const kernels::MatRef& c, bool accumulate);
    // A strided GEMM (leading dimensions, two-level batch) on the site's path; declare it with
    // kernels::gemm_shape(desc). An op with several GEMMs names its sites "<label>:<what>".
    void gemm(const std::string& site, const kernels::GemmDesc& desc);
    // The convolution of `direction` on the site's path: forward (x, w -> y), backward_data (dy, w -> dx),
    // backward_weight (dy, x -> dw).
    void conv(const std::string& site, kernels::ConvDirection direction, const kernels::Conv2dShape& shape,
              const kernels::MatRef& in0, const kernels::MatRef& in1, const kernels::MatRef& out, bool accumulate);

    // Program's side.
    void bind(std::vector<Location> locations, const runtime::Buffer* step_params) {
        m_loc = std::move(locations);
        m_step_params = step_params;
    }
    void set_sequence(runtime::Sequence* seq) { m_seq = seq; }
    std::map<std::string, Site>& sites() { return m_sites; }
    std::map<std::string, GemmPath>& paths() { return m_paths; }
    std::map<std::string, uint32_t>& tiles() { return m_tiles; } // kernels::gemm_configs index per GEMM site

private:
    runtime::Device& m_device;
    const Ir& m_ir;
    kernels::DType m_act;
    runtime::Sequence* m_seq = nullptr;
    std::vector<Location> m_loc;
    const runtime::Buffer* m_step_params = nullptr;
    std::map<std::string, Site> m_sites;
    std::map<std::string, GemmPath> m_paths;
    std::map<std::string, uint32_t> m_tiles;
};

} // namespace vktrain::graph
