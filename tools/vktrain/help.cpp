// Help texts for `vktrain --help` and `vktrain COMMAND --help`.
#include "commands.hpp"

namespace vktrain::cli {

const char* main_usage() {
    return R"(usage: vktrain COMMAND [options]

Train neural networks with Vulkan compute in mixed precision.

commands:
  train     train an MLP on Fashion-MNIST
  eval      evaluate saved weights on the Fashion-MNIST test set
  devices   list the Vulkan devices and their capabilities

  vktrain COMMAND --help   options of a command
  vktrain --version        print the version

exit status: 0 success, 1 runtime error, 2 usage error
)";
}

const char* train_usage() {
    return R"(usage: vktrain train [options]

Trains a built-in model on Fashion-MNIST (gzipped IDX files), evaluating on the test set after every epoch.

data and model:
  --data DIR              Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)
  --model SPEC            mlp:H1,H2,...[:relu|:gelu] hidden layer sizes (default mlp:256,128), or cnn:
                          conv(1,32,5,p2)+relu+maxpool2, conv(32,64,5,p2)+relu+maxpool2, linear(3136,1024)+relu,
                          linear(1024,10); its recipe defaults are weight decay 0.01 and a constant learning rate
  --limit N               use the first N training samples
  --test-limit N          use the first N test samples

training:
  --precision P           mixed or fp32 (default mixed)
  --optimizer O           adamw or sgd (default adamw)
  --lr X                  learning rate (default 1e-3 for adamw, 0.05 for sgd)
  --lr-schedule S         cosine (decay to 0 over the run, per step; MLP default) or constant (CNN default)
  --momentum X            sgd momentum (default 0.9)
  --weight-decay X        weight decay (default 0 for mlp, 0.01 for cnn)
  --batch-size N          samples per step (default 128)
  --epochs N              passes over the training set (default 5)
  --seed N                weight initialisation and shuffle seed (default 1)

mixed precision:
  --loss-scale X          initial loss scale (default 65536)
  --growth-interval N     finite steps before the scale doubles (default 2000)
  --no-loss-scaling       train with a fixed scale of 1
  --gemm-path P           auto, coopmat or tiled-fp16 (default auto)

device:
  --device INDEX|NAME     device index (see `vktrain devices`) or a substring of its name
  --no-coopmat            never use VK_KHR_cooperative_matrix
  --validation            enable the Vulkan validation layer

checkpoints:
  --checkpoint FILE       write a full training checkpoint (weights, optimizer and loss-scaler state, counters;
                          safetensors) at the end of every epoch
  --resume FILE           continue a run from a --checkpoint file with the epoch after the one it was saved at
                          (bit-identical to an uninterrupted run); --epochs is the new total. Model, precision,
                          optimizer, batch size and --lr-schedule must match; seed and --lr default to its own
  --stop-after N          stop after N epochs of this invocation (the schedule still spans --epochs); continue
                          later with --resume: training in slices, e.g. while a phone is charging

output:
  --output FILE           save the fp32 master weights (safetensors) at the end
  --report FILE           write a JSON report at the end
  --force                 allow --output/--report/--checkpoint to replace existing files
  --quiet                 no progress display
  --profile               before training, time every op of one step on the first batch (GPU timestamps)
                          and print a table (op, µs, % of the step; GEMMs vs the rest); with --report it
                          also goes into the JSON ("profile", "profile_total_us")
  --help                  this text
)";
}

const char* eval_usage() {
    return R"(usage: vktrain eval --weights FILE [options]

Evaluates saved weights on the Fashion-MNIST test set and prints test_loss, test_accuracy and the sample count.

  --weights FILE          safetensors file written by `vktrain train --output`
  --data DIR              Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)
  --model SPEC            mlp:H1,H2,...[:relu|:gelu] or cnn; default: the architecture stored in the file
  --precision P           mixed or fp32 (default: the precision stored in the file, else mixed)
  --batch-size N          samples per forward pass (default 128)
  --test-limit N          use the first N test samples
  --gemm-path P           auto, coopmat or tiled-fp16 (default auto)
  --device INDEX|NAME     device index or a substring of its name
  --no-coopmat            never use VK_KHR_cooperative_matrix
  --validation            enable the Vulkan validation layer
  --help                  this text
)";
}

const char* devices_usage() {
    return R"(usage: vktrain devices [--validation]

Lists every Vulkan device with the capabilities vktrain uses, marking the one picked by default
(discrete > integrated > virtual > cpu).

  --validation            enable the Vulkan validation layer
  --help                  this text
)";
}

} // namespace vktrain::cli
