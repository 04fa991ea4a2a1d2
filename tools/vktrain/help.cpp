// Help texts for `vktrain --help` and `vktrain COMMAND --help`.
#include "commands.hpp"

namespace vktrain::cli {

const char* main_usage() {
    return R"(usage: vktrain COMMAND [options]

Train neural networks with Vulkan compute in mixed precision.

commands:
  train     train a model: an MLP or CNN on Fashion-MNIST, or a GPT on text
  eval      evaluate saved weights on the Fashion-MNIST test set
  generate  continue a text with a GPT trained by `vktrain train --model gpt:...` or an imported Llama
  devices   list the Vulkan devices and their capabilities
  ops       list the ops a model can use (--model net:...), with their attributes
  import    convert a Hugging Face model folder (GPT-2) to a vktrain weights file
  export    write a vktrain weights file as a Hugging Face model folder
  predict   run a weights file's model on a safetensors tensor 'input', writing 'logits'
  tokenize  a text's token ids (GPT-2's BPE, SentencePiece), or (--decode) the text of ids

  vktrain COMMAND --help   options of a command
  vktrain --version        print the version

exit status: 0 success, 1 runtime error, 2 usage error
)";
}

const char* train_usage() {
    return R"(usage: vktrain train [options]

Trains a built-in model on Fashion-MNIST (gzipped IDX files), evaluating on the test set after every epoch, or
(--model gpt:...) a character-level GPT on a text corpus for a number of steps, or (--images DIR) a classifier on a
folder of PNG and JPEG images.

data and model:
  --data DIR              Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)
  --model SPEC            mlp:H1,H2,...[:ACTIVATION] hidden layer sizes (default mlp:256,128; relu, gelu = its tanh
                          approximation, or another activation of `vktrain ops`), or cnn:
                          conv(1,32,5,p2)+relu+maxpool2, conv(32,64,5,p2)+relu+maxpool2, linear(3136,1024)+relu,
                          linear(1024,10); its recipe defaults are weight decay 0.01 and a constant learning rate;
                          or net:OP[(KEY=VALUE,...)],...: ops of `vktrain ops` applied in order to the images
                          ([1, 28, 28]), then flatten, a linear layer to the classes and cross-entropy, e.g.
                          net:conv2d(out=16,kernel_h=3,pad_h=1),relu,max_pool2d,flatten,linear(out=128),relu
  --limit N               use the first N training samples
  --test-limit N          use the first N test samples

text models (--model gpt[:layers=4,heads=4,width=128,context=128,mlp=512,tied=0]; recipe defaults: AdamW lr 3e-4,
weight decay 0.1, batch 32 windows of context+1 characters):
  --text PATH             a UTF-8 file, or a folder whose regular files (not *.dat, *.u8 or symlinks; invalid
                          UTF-8 skipped) are read in name order (default /usr/share/games/fortunes); the first 90%
                          of the characters train, the last 10% validate
  --tokenizer DIR         tokenise --text with DIR's tokenizer (SentencePiece tokenizer.model, or GPT-2's BPE:
                          tokenizer.json, or vocab.json and merges.txt; see `vktrain tokenize`) instead of
                          characters; the weights and checkpoints carry it (metadata vktrain_tokenizer), so
                          eval, generate and --resume use it
  --steps N               optimizer steps (default 2000)
  --warmup N              linear warm-up steps, then cosine decay to --min-lr at the last step (default 100)
  --min-lr X              the learning rate at the last step (default lr / 10; 0 is allowed)
  --clip X                clip the global gradient norm to X (default 1; 0: off)
  --micro-batch N         samples per device pass; smaller than --batch-size accumulates gradients (same update)
  --eval-at LIST          validation loss after these steps (default 0,250,500,1000,2000; the last step always)
  --val-limit N           use the first N validation windows (default: all)
  --log-every N           a progress line every N steps (default steps / 40)
  with --checkpoint FILE a text run writes a full checkpoint after every validation (and at --stop-after N, which
  counts steps here); --resume FILE continues it bit-identically (every option must repeat the original run's);
  a checkpoint records the vocabulary, so `vktrain eval` and `vktrain generate` also take it

fine-tuning a model file (a GPT from `vktrain import` or `vktrain train`, on --text with the file's tokenizer or
characters, or --tokenizer DIR; the text recipe's options and defaults apply):
  --from FILE             start from FILE's architecture and weights instead of --model (a LoRA model file: its
                          adapters merged into the base weights)
  --freeze PATTERN        freeze the parameters PATTERN matches (an exact name, a prefix ending in '.', or '*' for
                          any characters, e.g. transformer.h.0. or *.bias); repeatable. Frozen weights live only
                          on the device: no master copy, gradient or optimizer state
  --train PATTERN         make the parameters PATTERN matches trainable again (after --freeze '*': only those
                          train); --freeze and --train apply in command-line order, the later one winning
  --lr-scale PATTERN=X    the learning rate (after its schedule) times X > 0 for the parameters PATTERN matches,
                          e.g. fc.=10 or layer4.=0.1; repeatable, later ones winning where they overlap
  --lora PATTERN          LoRA (PEFT's) on the linear layers whose names PATTERN matches (e.g. *.attn.c_attn,
                          transformer.h.*); repeatable; everything else is frozen
  --lora-r R              the adapters' rank (default 8)
  --lora-alpha A          scaling alpha / r (default 8)
  --lora-dropout P        dropout on the adapters' input (default 0)
  --save-adapter DIR      write the trained adapters as a PEFT folder (adapter_config.json, adapter_model.safetensors)
  with LoRA, --checkpoint holds only the adapters, their optimizer state and the loss scaler (the base comes from
  --from again on --resume); progress shows the trainable and frozen parameter counts

image folders (one sub-folder per class, as torchvision's ImageFolder; PNG and JPEG; docs/images.md):
  --images DIR            train on DIR's images (RandomResizedCrop and horizontal flip, ImageNet normalisation)
                          instead of Fashion-MNIST; the model is --model net:... or mlp:... on [3, S, S] images, or
                          --from FILE (a model file whose input is [3, S, S])
                          --freeze, --train and --lr-scale apply as above (head only: --freeze '*' --train fc.);
                          after the last epoch a line with the peak device and host memory; --report FILE:
                          settings, per-epoch loss, accuracy and images/s, peak memory as JSON
  --val-images DIR        accuracy after every epoch on DIR (Resize, CenterCrop; its classes must be --images')
  --image-size S          the crop size S (default 224)
  --resize N              the validation images' short side before the centre crop (default S * 8 / 7)
  --workers N             decoding threads (default 2; 0: decode between steps)
  --skip-bad-images       skip and count unreadable or corrupt images instead of stopping at the first
  --freeze-bn             every BatchNorm normalises with its running statistics in training too and leaves them
                          (and num_batches_tracked) as they are; weight and bias still train (PyTorch's bn.eval()
                          inside model.train(): the usual choice for fine-tuning on small batches)

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
  --update-buckets N      read the gradients back in up to N buckets and update each while the device computes
                          the rest (1: one readback, then the update; default 0: 4 for models of 2^20
                          parameters or more, else 1)
  --update-location L     auto, host or device: where the optimizer runs (default auto: timed on GPUs without
                          unified memory, else the host; device keeps the master weights in device memory and
                          cannot clip: text runs need --clip 0 with it)
  --gemm-path P           auto, coopmat or tiled-fp16 (default auto)
  --recompute R           none or blocks: blocks keeps only each transformer layer's input from the forward pass
                          and recomputes the rest in the backward pass (less activation memory, about one more
                          forward pass of time, the same results bit for bit; default none)

device:
  --device INDEX|NAME     device index (see `vktrain devices`) or a substring of its name
  --no-coopmat            never use VK_KHR_cooperative_matrix
  --attention A           auto, fused or unfused: attention's kernels (fused: no T x T score matrix in memory;
                          default auto: fused where the unfused scores would take 64 MiB or more)
  --no-tune               run every GEMM with the device's default tiles (by default each GEMM shape's tile
                          configurations are timed once, cached with the pipelines, and the fastest runs)
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

Evaluates saved weights on the Fashion-MNIST test set and prints test_loss, test_accuracy and the sample count; for
a text model (weights written by `vktrain train --model gpt:...`), the validation loss over the last 10% of --text.

  --weights FILE          safetensors file written by `vktrain train --output`
  --data DIR              Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)
  --model SPEC            mlp:H1,H2,...[:ACTIVATION], cnn or net:... (as for train); default: the architecture
                          stored in the file
  --precision P           mixed or fp32 (default: the precision stored in the file, else mixed)
  --batch-size N          samples per forward pass (default 128)
  --test-limit N          use the first N test samples
  --text PATH             text models: the corpus (default /usr/share/games/fortunes)
  --val-limit N           text models: use the first N validation windows
  --gemm-path P           auto, coopmat or tiled-fp16 (default auto)
  --device INDEX|NAME     device index or a substring of its name
  --no-coopmat            never use VK_KHR_cooperative_matrix
  --attention A           auto, fused or unfused: attention's kernels (fused: no T x T score matrix in memory;
                          default auto: fused where the unfused scores would take 64 MiB or more)
  --no-tune               run every GEMM with the device's default tiles (by default each GEMM shape's tile
                          configurations are timed once, cached with the pipelines, and the fastest runs)
  --validation            enable the Vulkan validation layer
  --help                  this text
)";
}

const char* generate_usage() {
    return R"(usage: vktrain generate --weights FILE [options]

Continues --prompt with a GPT trained by `vktrain train --model gpt:...` (its weights file records the model and
the vocabulary) and prints the prompt and the generated text; the time per token goes to stderr. Each new token
costs one position over a key/value cache. The model sees at most a context of characters: when the next one
would not fit, it restarts from the last context/2 (at least 1), with or without --no-cache (both give the same
text). A Llama (from `vktrain import`) decodes over a key/value cache too (grouped-query attention, rotary
embeddings at the position); a head over 512 columns re-runs the whole window instead. A LoRA
model file (`vktrain train --from ... --lora --output`) runs with its adapters merged into the base weights.

  --weights FILE          safetensors file written by `vktrain train --model gpt:...` (--output or --checkpoint)
  --prompt TEXT           the text to continue (default a newline); every character must be in the vocabulary
  --tokens N              characters to generate (default 300)
  --temperature T         sampling temperature (default 0.8; 0: always the most likely character)
  --seed N                sampling seed (default 1)
  --no-cache              re-run all the characters the model sees (up to a context) for every token
  --precision P           mixed or fp32 (default: the precision stored in the file)
  --gemm-path P           auto, coopmat or tiled-fp16 (default auto)
  --device INDEX|NAME     device index or a substring of its name
  --no-coopmat            never use VK_KHR_cooperative_matrix
  --attention A           auto, fused or unfused: attention's kernels (fused: no T x T score matrix in memory;
                          default auto: fused where the unfused scores would take 64 MiB or more)
  --no-tune               run every GEMM with the device's default tiles (by default each GEMM shape's tile
                          configurations are timed once, cached with the pipelines, and the fastest runs)
  --validation            enable the Vulkan validation layer
  --quiet                 print only the text
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

const char* ops_usage() {
    return R"(usage: vktrain ops

Lists every op a model can use: its inputs, and each attribute's kind, range, default and meaning. The same list
serves the C++ API (Model::op), the C API (vkt_model_op, vkt_op_*) and --model net:... specs.

  --help                  this text
)";
}

const char* import_usage() {
    return R"(usage: vktrain import SRC --output FILE [options]
       vktrain import FILE.safetensors --arch NAME --output FILE [--classes N] [--image-size S] [options]

Converts the Hugging Face model folder SRC (config.json, and model.safetensors or the shards that
model.safetensors.index.json lists; tensors F32, F16 or BF16) to a vktrain weights file: fp32 weights under
vktrain's names and layouts, the architecture in its metadata (so eval, predict, train and the C API take it), and
the original config.json and tensor names (so `vktrain export` writes the folder back). The files are memory-mapped
and converted one tensor at a time. Supported model_type: gpt2 (GPT2LMHeadModel; keys with or without the
"transformer." prefix, a tied or untied head, gelu_new or gelu; the h.N.attn.bias / masked_bias buffers are
skipped) and llama (LlamaForCausalLM).

With --arch, SRC is a safetensors file of a torchvision model's state_dict() (torchvision's names; weights F32,
F16 or BF16; num_batches_tracked I64). NAME: resnet18, resnet34, resnet50, resnet101, resnet152,
mobilenet_v2, mobilenet_v3_small, mobilenet_v3_large (docs/torchvision.md).

  --output FILE           the weights file to write
  --precision P           mixed (default: weights must fit fp16, |x| <= 65504) or fp32 (fp32 storage on the
                          device; any finite weight): what the file records for eval, predict and train
  --force                 replace an existing --output file
  --no-tokenizer          leave the folder's tokenizer out (by default tokenizer.model, tokenizer.json or
                          vocab.json + merges.txt go into the file, for eval, generate and train)
  --arch NAME             SRC is a torchvision state_dict of this architecture
  --classes N             (--arch) a new classifier of N outputs, initialised as nn.Linear's default; the file's
                          fc.* are skipped
  --seed S                (--arch) the new classifier's initialisation (default 0)
  --image-size S          (--arch) the input size the file records, S or HxW (default 224; predict takes any
                          size)
  --quiet                 print nothing on success
  --help                  this text
)";
}

const char* export_usage() {
    return R"(usage: vktrain export FILE --output DIR [options]

Writes the weights file FILE (from `vktrain import`, trained further or not, or a GPT trained by vktrain) as the
Hugging Face folder DIR (created if absent): config.json (the imported one unchanged, or made from the GPT's
options) and model.safetensors (F32, Hugging Face's names, order and layouts; the tied head and the causal-mask
buffers are left out, as save_pretrained does), and the tokenizer files the weights file carries (tokenizer.json,
vocab.json + merges.txt or tokenizer.model, as imported). Importing a folder and exporting it gives back its F32
tensors bit for bit. A torchvision model (imported with --arch, or a ResNet or MobileNet trained by vktrain) goes out instead as
the one safetensors file DIR: its state_dict under torchvision's names (num_batches_tracked I64), which
load_state_dict(strict=True) takes.

  --output DIR            the folder to write
  --adapter DIR           merge the PEFT LoRA adapter folder DIR (adapter_config.json, adapter_model.safetensors)
                          into FILE's weights as PEFT's merge_and_unload does: W + (lora_alpha / r)·B·A
  --force                 replace an existing config.json / model.safetensors / tokenizer file in DIR
  --quiet                 print nothing on success
  --help                  this text
)";
}

const char* predict_usage() {
    return R"(usage: vktrain predict --weights FILE --input X.safetensors --output Y.safetensors [options]

Runs the model of a weights file (its recorded architecture) forward in evaluation mode on the tensor named
'input' of X.safetensors and writes the default output (the logits) as the F32 tensor 'logits' of Y.safetensors,
shaped [batch] + the model's output shape. 'input' holds token ids (I32 or I64 [batch, positions]; a GPT takes any
number of positions up to its context) or real values (F32, F16 or BF16 [batch] + the model's input shape, e.g.
[batch, C, H, W] images).

  --weights FILE          a vktrain weights file or checkpoint (e.g. from `vktrain import` or `vktrain train`)
  --input FILE            safetensors file with the tensor 'input'
  --output FILE           safetensors file to write ('logits')
  --precision P           mixed or fp32 (default: the precision stored in the weights file)
  --batch-size N          samples per device pass (default 16)
  --gemm-path P           auto, coopmat or tiled-fp16 (default auto)
  --device INDEX|NAME     device index or a substring of its name
  --no-coopmat            never use VK_KHR_cooperative_matrix
  --attention A           auto, fused or unfused: attention's kernels (fused: no T x T score matrix in memory;
                          default auto: fused where the unfused scores would take 64 MiB or more)
  --no-tune               run every GEMM with the device's default tiles
  --validation            enable the Vulkan validation layer
  --force                 replace an existing --output file
  --help                  this text
)";
}

const char* tokenize_usage() {
    return R"(usage: vktrain tokenize --tokenizer DIR [--decode] FILE

Prints FILE's token ids, space-separated on one line. DIR holds a SentencePiece tokenizer.model (Llama; read first
when present), or GPT-2's byte-level BPE: tokenizer.json (a BPE model with the ByteLevel pre-tokenizer), or
vocab.json and merges.txt; DIR may also name a tokenizer.json file. Text is text: "<|endoftext|>" in FILE is
encoded as characters, not as the special token. With GPT-2's BPE, decode(encode(FILE)) == FILE for any UTF-8
file.

  --tokenizer DIR         the tokenizer's folder (required)
  --decode                FILE holds token ids separated by white space; print the text they stand for
  --help                  this text
)";
}

} // namespace vktrain::cli
