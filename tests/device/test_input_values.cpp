// An inf or NaN in a float input (features, regression targets) is refused before anything runs, like an
// out-of-range label: a one-line error naming the input, the sample and the element, and no step taken, skipped or
// counted, and no change of the loss scale (an overflow skip would halve it, even in fp32 where nothing overflows).
#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "support.hpp"
#include "vktrain/model.hpp"

namespace {

using vktrain::DataType;
using vktrain::Model;
using vktrain::Precision;
using vktrain::Trainer;
using vktrain::TrainerOptions;

std::string message(const std::function<void()>& f) {
    try {
        f();
    } catch (const vktrain::Error& e) {
        return e.what();
    }
    return "no error";
}

TrainerOptions options(Precision p) {
    TrainerOptions o;
    o.precision = p;
    o.batch_size = 8;
    return o;
}

class InputValues : public testing::TestWithParam<Precision> {};

TEST_P(InputValues, NonFiniteFeaturesAreRefusedBeforeAnythingRuns) {
    const Model m = Model::mlp(6, {5}, 3);
    Trainer t(vkt_test::context(), m, options(GetParam()));
    vkt_test::Batch b = vkt_test::make_batch(8, 6, 3, 1);
    const float scale = t.loss_scale();
    b.x[2 * 6 + 5] = std::numeric_limits<float>::quiet_NaN();
    const std::string e = message([&] { t.step(b.x.data(), b.labels.data(), 8); });
    EXPECT_NE(e.find("input 'x': value nan at index 17 (sample 2, element 5) is not finite"), std::string::npos) << e;
    b.x[2 * 6 + 5] = 0.5f;
    b.x[7 * 6] = -std::numeric_limits<float>::infinity();
    EXPECT_NE(message([&] { t.evaluate(b.x.data(), b.labels.data(), 8); }).find("value -inf at index 42 (sample 7"),
              std::string::npos);
    EXPECT_NE(message([&] { t.predict(b.x.data(), 8); }).find("input 'x': value -inf"), std::string::npos);
    std::vector<std::vector<float>> grads;
    EXPECT_NE(message([&] { t.compute_gradients(b.x.data(), b.labels.data(), 8, grads); }).find("not finite"),
              std::string::npos);
    EXPECT_EQ(t.steps(), 0u);
    EXPECT_EQ(t.skipped_steps(), 0u);
    EXPECT_EQ(t.loss_scale(), scale);
    // Samples beyond `count` are not read; a finite batch trains.
    EXPECT_NO_THROW(t.step(b.x.data(), b.labels.data(), 7));
    EXPECT_EQ(t.steps(), 1u);
    EXPECT_EQ(t.skipped_steps(), 0u);
}

TEST_P(InputValues, NonFiniteRegressionTargetsAreRefused) {
    Model m;
    const int x_in = m.input("x", {4}); // inputs in this order (function arguments are evaluated in any order)
    const int target_in = m.input("target", {3});
    m.mse_loss(m.linear(x_in, 3), target_in);
    Trainer t(vkt_test::context(), m, options(GetParam()));
    auto x = vkt_test::random_values(8 * 4, 2), target = vkt_test::random_values(8 * 3, 3);
    target[4 * 3 + 1] = std::numeric_limits<float>::infinity();
    const std::string e = message([&] { t.step({x.data(), target.data()}, 8); });
    EXPECT_NE(e.find("input 'target': value inf at index 13 (sample 4, element 1) is not finite"), std::string::npos)
        << e;
    EXPECT_EQ(t.steps(), 0u);
    EXPECT_EQ(t.skipped_steps(), 0u);
    target[4 * 3 + 1] = 0.25f;
    EXPECT_FALSE(t.step({x.data(), target.data()}, 8).skipped);
}

INSTANTIATE_TEST_SUITE_P(Precisions, InputValues, testing::Values(Precision::fp32, Precision::mixed),
                         [](const testing::TestParamInfo<Precision>& i) {
                             return std::string(i.param == Precision::mixed ? "mixed" : "fp32");
                         });

} // namespace
