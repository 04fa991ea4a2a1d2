// Deep models: what a recorded op costs beyond its dispatch. Some drivers (lavapipe among them) give every
// descriptor set its own memory mapping, and a Linux process may hold at most vm.max_map_count (65,530) of them,
// so a descriptor set per dispatch crashed the driver at about 25,000 ops (issue 21). Sequences share descriptor
// sets between dispatches that bind the same windows of the same buffers.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "device/support.hpp"
#include "kernels/elementwise.hpp"
#include "vktrain/trainer.hpp"

namespace {

using vktrain::Model;
using vktrain::Precision;
using vktrain::Trainer;
using vktrain::TrainerOptions;
using vktrain::kernels::DType;
using vktrain::kernels::MatRef;

// Lines of /proc/self/maps (-1 where there is none).
long memory_maps() {
    std::ifstream in("/proc/self/maps");
    if (!in) return -1;
    long lines = 0;
    std::string line;
    while (std::getline(in, line)) ++lines;
    return lines;
}

// Dispatches on distinct ranges of one buffer (every one binds different bytes) need not cost a descriptor set, or a
// memory map, each: the number of maps a recording adds does not grow with its length.
TEST(Sequence, DescriptorSetsAreSharedAcrossDispatches) {
    if (memory_maps() < 0) GTEST_SKIP() << "no /proc/self/maps";
    auto& dev = vkt_test::device();
    constexpr uint32_t ops = 4096, width = 16;
    auto buf = vkt_test::make_buffer(std::vector<float>(size_t(ops + 1) * width, 1.0f), DType::f32);
    vktrain::runtime::Sequence seq(dev);
    const auto record = [&](uint32_t n) {
        seq.begin();
        for (uint32_t i = 0; i < n; ++i)
            vktrain::kernels::record_activation(dev, seq, vktrain::kernels::Activation::relu,
                                                MatRef{&buf, DType::f32, 1, width, uint64_t(i) * width},
                                                MatRef{&buf, DType::f32, 1, width, uint64_t(i + 1) * width});
        seq.end();
    };
    record(1); // pipelines and pools made once
    const long before = memory_maps();
    record(ops);
    const long added = memory_maps() - before;
    std::printf("%u dispatches: %ld memory maps added, %zu descriptor sets\n", ops, added, seq.descriptor_sets());
    EXPECT_LT(added, long(ops / 64)) << ops << " dispatches added " << added << " memory maps";
    EXPECT_LE(seq.descriptor_sets(), 4u);
    seq.submit_and_wait();
    const std::vector<float> y = vkt_test::read_buffer(buf, DType::f32, size_t(ops + 1) * width);
    EXPECT_EQ(y.back(), 1.0f);
}

// A recording that needs more descriptor sets than the process has memory maps left (some drivers map every set, and
// crash when the kernel refuses another) fails with one line that names the limit instead. The maps are used up
// here by splitting one reserved region into alternating page protections.
TEST(Sequence, RunningOutOfMemoryMapsIsAClearError) {
    long limit = 0;
    if (FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r")) {
        if (std::fscanf(f, "%ld", &limit) != 1) limit = 0;
        std::fclose(f);
    }
    const long held = memory_maps();
    if (limit <= 0 || held < 0 || limit > (1l << 20)) GTEST_SKIP() << "vm.max_map_count " << limit;
    auto& dev = vkt_test::device();
    constexpr uint32_t buffers = 300, width = 16;
    std::vector<vktrain::runtime::Buffer> bufs;
    for (uint32_t i = 0; i < buffers; ++i)
        bufs.push_back(vkt_test::make_buffer(std::vector<float>(2 * width, 1.0f), DType::f32));
    const auto record = [&](vktrain::runtime::Sequence& seq) {
        seq.begin();
        for (const auto& b : bufs) // each dispatch binds another buffer: a descriptor set each
            vktrain::kernels::record_activation(dev, seq, vktrain::kernels::Activation::relu,
                                                MatRef{&b, DType::f32, 1, width, 0},
                                                MatRef{&b, DType::f32, 1, width, width});
        seq.end();
    };
    {
        vktrain::runtime::Sequence warm(dev); // pipelines and their code made before the maps run short
        record(warm);
    }
    const long page = sysconf(_SC_PAGESIZE);
    const long spare = 1000; // left to the process: fewer than the recording needs
    const long pages = 2 * ((limit - memory_maps() - spare) / 2);
    ASSERT_GT(pages, 0);
    void* region = mmap(nullptr, size_t(pages * page), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ASSERT_NE(region, MAP_FAILED);
    for (long i = 1; i < pages; i += 2) // every other page: one map each, and one for each run between them
        mprotect(static_cast<char*>(region) + i * page, size_t(page), PROT_NONE);
    std::string error;
    try {
        vktrain::runtime::Sequence seq(dev);
        record(seq);
    } catch (const vktrain::Error& e) {
        error = e.what();
    }
    munmap(region, size_t(pages * page));
    EXPECT_NE(error.find("vm.max_map_count"), std::string::npos) << error;
    EXPECT_NE(error.find(std::to_string(limit)), std::string::npos) << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
    std::printf("%s\n", error.c_str());
}

// A chain of 30,000 ReLUs compiles for training and evaluation and runs: about 90,000 dispatches in all, where
// about 25,000 crashed before.
TEST(Graph, DeepChainOfCheapOpsRuns) {
    constexpr int depth = 30000;
    Model m;
    int x = m.input("x", {4});
    x = m.linear(x, 4);
    for (int i = 0; i < depth; ++i) x = m.relu(x);
    x = m.linear(x, 3);
    m.softmax_cross_entropy(x);
    TrainerOptions o;
    o.precision = Precision::fp32;
    o.batch_size = 2;
    o.seed = 3;
    const auto t0 = std::chrono::steady_clock::now();
    Trainer t(vkt_test::context(), m, o);
    const vkt_test::Batch b = vkt_test::make_batch(2, 4, 3, 7);
    const auto r = t.step(b.x.data(), b.labels.data(), 2);
    EXPECT_TRUE(std::isfinite(r.loss));
    const std::vector<float> p = t.predict(b.x.data(), 2);
    ASSERT_EQ(p.size(), 6u);
    for (float v : p) EXPECT_TRUE(std::isfinite(v));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%d relu nodes: compiled, trained a step and predicted in %.2f s (%ld memory maps)\n", depth, s,
                memory_maps());
}

// Seconds to make a Trainer (training and evaluation programs) for a GPT of `layers` layers (the best of two runs).
double trainer_set_up_seconds(uint32_t layers) {
    vktrain::GptOptions g;
    g.vocab = 16;
    g.layers = layers;
    g.heads = 2;
    g.width = 8;
    g.context = 8;
    const Model m = Model::gpt(g);
    TrainerOptions o;
    o.precision = vkt_test::context().fp16_available() ? Precision::mixed : Precision::fp32;
    o.batch_size = 2;
    double best = 1e30;
    for (int run = 0; run < 2; ++run) {
        const auto t0 = std::chrono::steady_clock::now();
        Trainer t(vkt_test::context(), m, o);
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
}

// Eight times the depth may take at most 24 times as long to set up (linear: eight; quadratic: 64, so timing noise
// does not decide it). The code this replaced took 12 times as long from 50 to 200 layers here, more at greater
// depths, and in the command line, which builds the model too, 15 s at 200 layers and 85 s at 400.
TEST(Graph, SetUpGrowsLinearlyWithDepth) {
    trainer_set_up_seconds(2); // pipelines compiled and GEMM paths and tiles chosen once, for every depth
    const uint32_t n = 100;
    const double t1 = trainer_set_up_seconds(n), t8 = trainer_set_up_seconds(8 * n);
    std::printf("Trainer set-up: %u layers %.3f s, %u layers %.3f s\n", n, t1, 8 * n, t8);
    EXPECT_LT(t8, 24 * t1) << n << " layers: " << t1 << " s, " << 8 * n << " layers: " << t8 << " s";
}

} // namespace
