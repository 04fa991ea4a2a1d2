#include "device/support.hpp"
#include "runtime/context_access.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <unistd.h>

namespace vkt_test {
namespace {

std::atomic<int> g_validation_messages{0};

bool env_flag(const char* name) {
    const char* v = std::getenv(name);
    return v && std::strcmp(v, "0") != 0 && v[0] != '\0';
}

} // namespace

vktrain::ContextOptions context_options() {
    vktrain::ContextOptions o;
    o.validation = env_flag("VKTRAIN_TEST_VALIDATION");
    if (const char* d = std::getenv("VKTRAIN_TEST_DEVICE")) o.device_name = d;
    o.allow_unified_memory = !env_flag("VKTRAIN_TEST_STAGED"); // the staging copies of discrete GPUs, forced
    o.cache_dir = "none";                                      // tests never depend on what an earlier run cached
    // Tile tuning compiles and times every configuration of every GEMM shape per context; tests cover the
    // configurations and the tuning directly (test_gemm_tiles.cpp), and every configuration computes the same.
    o.tune_gemm_tiles = env_flag("VKTRAIN_TEST_TUNE");
    o.log = [](vktrain::LogLevel level, vktrain::LogSource source, const std::string& message) {
        if (source == vktrain::LogSource::validation) {
            ++g_validation_messages;
            ADD_FAILURE() << "Vulkan validation (" << vktrain::to_string(level) << "): " << message;
        } else if (level >= vktrain::LogLevel::warning) {
            std::fprintf(stderr, "vktrain %s: %s\n", vktrain::to_string(level), message.c_str());
        }
    };
    return o;
}

std::unique_ptr<vktrain::Context> g_context;
std::unique_ptr<vktrain::Context> g_unfused_attention_context;
std::unique_ptr<vktrain::Context> g_fused_attention_context;
std::unique_ptr<vktrain::Context> g_unfused_context;

// The shared context is destroyed when the tests end, not during static destruction at exit: by then
// the driver (lavapipe's LLVM) may already have torn down state that device destruction still needs.
class ContextEnvironment : public testing::Environment {
public:
    void TearDown() override {
        g_unfused_attention_context.reset();
        g_fused_attention_context.reset();
        g_unfused_context.reset();
        g_context.reset();
    }
};
testing::Environment* const g_environment = testing::AddGlobalTestEnvironment(new ContextEnvironment);

vktrain::Context& context() {
    if (!g_context) {
        g_context = std::make_unique<vktrain::Context>(context_options());
        const auto& info = g_context->device_info();
        std::fprintf(stderr,
                     "[vktrain tests] device: %s (%s %s), coopmat %s, fp16 %s, unified memory %s, validation %s\n",
                     info.name.c_str(), info.driver_name.c_str(), info.driver_info.c_str(),
                     g_context->coopmat_available() ? "yes" : "no", g_context->fp16_available() ? "yes" : "no",
                     g_context->unified_memory_available() ? "yes"
                     : info.unified_memory                 ? "forced off"
                                                           : "no",
                     vktrain::detail::ContextAccess::device(*g_context).validation() ? "on" : "off");
    }
    return *g_context;
}

vktrain::Context& unfused_attention_context() {
    if (!g_unfused_attention_context) {
        vktrain::ContextOptions o = context_options();
        o.allow_fused_attention = false;
        g_unfused_attention_context = std::make_unique<vktrain::Context>(o);
    }
    return *g_unfused_attention_context;
}

vktrain::Context& fused_attention_context() {
    if (!g_fused_attention_context) {
        vktrain::ContextOptions o = context_options();
        o.fused_attention_min_score_bytes = 0;
        g_fused_attention_context = std::make_unique<vktrain::Context>(o);
    }
    return *g_fused_attention_context;
}

vktrain::Context& unfused_context() {
    if (!g_unfused_context) {
        vktrain::ContextOptions o = context_options();
        o.allow_fusion = false;
        g_unfused_context = std::make_unique<vktrain::Context>(o);
    }
    return *g_unfused_context;
}

vktrain::runtime::Device& device() {
    return vktrain::detail::ContextAccess::device(context());
}
bool expect_coopmat() {
    return env_flag("VKTRAIN_TEST_EXPECT_COOPMAT");
}
int validation_messages() {
    return g_validation_messages.load();
}

vktrain::runtime::Buffer make_buffer(const std::vector<float>& values, DType dtype) {
    const size_t n = std::max<size_t>(values.size(), 1);
    vktrain::runtime::Buffer buf(device(), n * vktrain::kernels::dtype_size(dtype),
                                 vktrain::runtime::MemoryKind::readback, "test");
    if (dtype == DType::f16) {
        std::vector<uint16_t> h(n, 0);
        vktrain::floats_to_halves(values.data(), h.data(), values.size());
        buf.write(h.data(), h.size() * 2);
    } else {
        std::vector<float> f(n, 0.0f);
        std::copy(values.begin(), values.end(), f.begin());
        buf.write(f.data(), f.size() * 4);
    }
    return buf;
}

vktrain::runtime::Buffer make_buffer_u32(const std::vector<uint32_t>& values) {
    std::vector<uint32_t> v(values);
    if (v.empty()) v.push_back(0);
    vktrain::runtime::Buffer buf(device(), v.size() * 4, vktrain::runtime::MemoryKind::readback, "test");
    buf.write(v.data(), v.size() * 4);
    return buf;
}

std::vector<float> read_buffer(const vktrain::runtime::Buffer& buffer, DType dtype, size_t count) {
    std::vector<float> out(count);
    if (dtype == DType::f16) {
        std::vector<uint16_t> h(count);
        buffer.read(h.data(), count * 2);
        vktrain::halves_to_floats(h.data(), out.data(), count);
    } else {
        buffer.read(out.data(), count * 4);
    }
    return out;
}

std::vector<uint32_t> read_buffer_u32(const vktrain::runtime::Buffer& buffer, size_t count) {
    std::vector<uint32_t> out(count);
    buffer.read(out.data(), count * 4);
    return out;
}

std::vector<float> random_values(size_t n, uint32_t seed, float lo, float hi) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

Batch make_batch(uint32_t n, uint32_t features, uint32_t classes, uint32_t seed) {
    Batch b;
    b.x = random_values(size_t(n) * features, seed);
    std::mt19937 rng(seed);
    for (uint32_t i = 0; i < n; ++i) b.labels.push_back(int32_t(rng() % classes));
    return b;
}

double unit(DType d) {
    return d == DType::f16 ? std::ldexp(1.0, -11) : std::ldexp(1.0, -24);
}
double floor_abs(DType d) {
    return d == DType::f16 ? std::ldexp(1.0, -25) : std::ldexp(1.0, -126);
}

std::vector<float> round_through(const std::vector<float>& v, DType dtype) {
    if (dtype == DType::f32) return v;
    std::vector<float> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = vktrain::round_to_half(v[i]);
    return out;
}

double accuracy(vktrain::Trainer& trainer, const float* x, const int32_t* labels, size_t count) {
    const std::vector<float> logits = trainer.predict(x, count);
    const size_t classes = logits.size() / std::max<size_t>(count, 1);
    size_t correct = 0;
    for (size_t i = 0; i < count; ++i) {
        const float* row = logits.data() + i * classes;
        size_t best = 0;
        for (size_t c = 1; c < classes; ++c)
            if (row[c] > row[best]) best = c;
        correct += best == size_t(labels[i]);
    }
    return count ? double(correct) / double(count) : 0.0;
}

vktrain::kernels::MatRef Placed::ref(uint32_t rows, uint32_t cols) const {
    return vktrain::kernels::MatRef{&buffer, dtype, rows, cols, offset};
}

vktrain::kernels::MatRef Placed::ref() const {
    return ref(1, uint32_t(count));
}

std::vector<float> Placed::values() const {
    const auto all = read_buffer(buffer, dtype, offset + count + k_sentinel_tail);
    size_t bad = 0;
    for (size_t i = 0; i < all.size(); ++i)
        if ((i < offset || i >= offset + count) && !(all[i] == k_sentinel) && bad++ < 5)
            ADD_FAILURE() << "sentinel " << i << " overwritten: " << all[i];
    return std::vector<float>(all.begin() + offset, all.begin() + long(offset + count));
}

Placed place(const std::vector<float>& v, DType dtype, uint32_t offset) {
    std::vector<float> all(offset, k_sentinel);
    all.insert(all.end(), v.begin(), v.end());
    all.insert(all.end(), k_sentinel_tail, k_sentinel);
    return Placed{make_buffer(all, dtype), dtype, offset, v.size()};
}

void run(const std::function<void(vktrain::runtime::Sequence&)>& record) {
    vktrain::runtime::Sequence seq(device());
    seq.begin();
    record(seq);
    seq.end();
    seq.submit_and_wait();
}

void expect_close(const std::vector<float>& got, const std::vector<double>& ref, const std::vector<double>& tol,
                  const std::string& what) {
    ASSERT_EQ(got.size(), ref.size()) << what;
    size_t bad = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        const double err = std::fabs(double(got[i]) - ref[i]);
        if (!(err <= tol[i]) && bad++ < 5)
            ADD_FAILURE() << what << "[" << i << "] = " << got[i] << ", reference " << ref[i] << ", error " << err
                          << " > tolerance " << tol[i];
    }
    EXPECT_EQ(bad, 0u) << what;
}

std::string temp_dir(const std::string& name) {
    namespace fs = std::filesystem;
    const fs::path p = fs::path(testing::TempDir()) / ("vktrain_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p.string();
}

} // namespace vkt_test
