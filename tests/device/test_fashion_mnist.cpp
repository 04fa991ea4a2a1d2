// End to end on real data: the default MLP shape trained in mixed precision on a Fashion-MNIST subset
// reaches a stated test accuracy (the full recipe's numbers are in docs/results.md and bench/).
#include <filesystem>

#include "device/support.hpp"
#include "vktrain/data.hpp"
#include "vktrain/trainer.hpp"

namespace {

using vktrain::GemmPath;
using vktrain::Precision;

double train_subset(Precision precision, GemmPath path, size_t train_count, int epochs) {
    const std::string dir = vktrain::default_fashion_mnist_dir();
    const auto train = vktrain::load_fashion_mnist(dir, true, train_count);
    const auto test = vktrain::load_fashion_mnist(dir, false, 2000);
    const vktrain::Model model = vktrain::Model::mlp(784, {256, 128}, 10);
    vktrain::TrainerOptions o;
    o.precision = precision;
    o.gemm_path = path;
    o.batch_size = 100;
    o.optimizer.learning_rate = 2e-3f;
    o.seed = 1;
    vktrain::Trainer t(vkt_test::context(), model, o);
    for (int e = 0; e < epochs; ++e)
        for (size_t i = 0; i < train.count; i += 100) {
            const uint32_t n = uint32_t(std::min<size_t>(100, train.count - i));
            const auto r = t.step(train.x.data() + i * 784, train.labels.data() + i, n);
            EXPECT_TRUE(std::isfinite(r.loss));
        }
    const double accuracy = vkt_test::accuracy(t, test.x.data(), test.labels.data(), test.count);
    std::printf("[fashion-mnist] %s %s: test accuracy %.4f on %zu samples (path %s, skipped %llu)\n",
                precision == Precision::mixed ? "mixed" : "fp32", vktrain::to_string(path), accuracy, test.count,
                t.gemm_path_summary().c_str(), (unsigned long long)t.skipped_steps());
    return accuracy;
}

bool have_data() {
    return std::filesystem::exists(std::string(vktrain::default_fashion_mnist_dir()));
}

TEST(FashionMnist, MixedPrecisionSubsetReachesAccuracy) {
    if (!have_data()) GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
    VKT_REQUIRE_FP16();
    EXPECT_GE(train_subset(Precision::mixed, GemmPath::auto_select, 10000, 1), 0.78);
}

TEST(FashionMnist, CoopmatPathSubsetReachesAccuracy) {
    if (!have_data()) GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
    VKT_REQUIRE_COOPMAT();
    EXPECT_GE(train_subset(Precision::mixed, GemmPath::coopmat, 5000, 1), 0.72);
}

} // namespace
