// The smallest complete vktrain application: train an MLP on Fashion-MNIST in mixed precision on the
// default Vulkan device and report test accuracy.
//   train_mlp [TRAIN_SAMPLES] [EPOCHS]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include <vktrain/vktrain.hpp>

int main(int argc, char** argv) {
    const size_t limit = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 0; // 0: all 60,000
    const int epochs = argc > 2 ? std::atoi(argv[2]) : 1;
    try {
        vktrain::ContextOptions options;
        options.log = [](vktrain::LogLevel level, vktrain::LogSource, const std::string& message) {
            std::fprintf(stderr, "[%s] %s\n", vktrain::to_string(level), message.c_str());
        };
        vktrain::Context ctx(options);
        const auto train = vktrain::load_fashion_mnist(vktrain::default_fashion_mnist_dir(), true, limit);
        const auto test = vktrain::load_fashion_mnist(vktrain::default_fashion_mnist_dir(), false);

        const vktrain::Model model = vktrain::Model::mlp(784, {256, 128}, 10);
        vktrain::TrainerOptions opt; // mixed precision, AdamW 1e-3, batch 128, dynamic loss scaling
        if (!ctx.fp16_available()) opt.precision = vktrain::Precision::fp32;
        vktrain::Trainer trainer(ctx, model, opt);
        std::printf("device %s, precision %s, GEMM path %s\n", ctx.device_info().name.c_str(),
                    opt.precision == vktrain::Precision::mixed ? "mixed" : "fp32", trainer.gemm_path_summary().c_str());

        for (int e = 0; e < epochs; ++e) {
            for (size_t i = 0; i < train.count; i += opt.batch_size) {
                const uint32_t n = uint32_t(std::min<size_t>(opt.batch_size, train.count - i));
                const vktrain::StepResult r = trainer.step(&train.x[i * 784], &train.labels[i], n);
                if (r.skipped)
                    std::printf("step skipped (non-finite gradients), loss scale now %g\n", trainer.loss_scale());
            }
            // Accuracy is the application's metric: the share of test images whose largest logit is the label.
            const std::vector<float> logits = trainer.predict(test.x.data(), test.count);
            size_t correct = 0;
            for (size_t i = 0; i < test.count; ++i) {
                const float* row = &logits[i * 10];
                correct += size_t(std::max_element(row, row + 10) - row) == size_t(test.labels[i]);
            }
            std::printf("epoch %d: test accuracy %.4f, loss scale %g\n", e + 1, double(correct) / double(test.count),
                        trainer.loss_scale());
        }
        trainer.save("train_mlp.safetensors");
    } catch (const vktrain::Error& e) {
        std::fprintf(stderr, "train_mlp: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "train_mlp: %s\n", e.what());
        return 1;
    }
    return 0;
}
