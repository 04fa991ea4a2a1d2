// Device and host limits are checked when a model is compiled: a model that cannot fit is refused with a clear
// message before anything is allocated (instead of an allocation failure or the out-of-memory killer).
#include "device/support.hpp"

namespace {

TEST(Limits, AModelTooLargeForMemoryIsRefusedBeforeAllocating) {
    // 2^20 inputs x 2^16 hidden: 68.7 G parameters, 256 GiB of fp32 master weights alone.
    const vktrain::Model m = vktrain::Model::mlp(1u << 20, {1u << 16}, 10);
    vktrain::TrainerOptions o;
    o.batch_size = 1;
    const uint64_t before = vkt_test::context().allocated_bytes();
    try {
        vktrain::Trainer t(vkt_test::context(), m, o);
        FAIL() << "a 68.7 G parameter model was accepted";
    } catch (const vktrain::Error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("the model needs about"), std::string::npos) << what;
        EXPECT_NE(what.find("GiB"), std::string::npos) << what;
        EXPECT_NE(what.find("memory"), std::string::npos) << what;
    }
    EXPECT_EQ(vkt_test::context().allocated_bytes(), before) << "memory was allocated before the check";
    EXPECT_GT(vkt_test::context().device_info().device_memory_bytes, 0u);
}

} // namespace
