// Hugging Face folders: the input is config.json, beside a fixed tiny GPT-2 model.safetensors (written once); import
// must return or throw vktrain::Error, and what it imports must export.
#include <filesystem>

#include "fuzz_common.hpp"
#include "io/safetensors.hpp"
#include "vktrain/import.hpp"

namespace {

// A GPT-2 of vocab 11, 8 positions, width 4, 1 layer, MLP 16 under GPT2LMHeadModel's names and Conv1D layouts.
std::string folder() {
    const char* base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    const std::string dir = std::string(base) + "/vktrain-fuzz-hf-" + std::to_string(getpid());
    std::filesystem::create_directories(dir);
    std::vector<vktrain::io::NamedTensor> t;
    const auto add = [&](const std::string& name, std::vector<int64_t> shape) {
        size_t n = 1;
        for (int64_t d : shape) n *= size_t(d);
        t.push_back({"transformer." + name, std::move(shape), std::vector<float>(n, 0.5f)});
    };
    add("wte.weight", {11, 4});
    add("wpe.weight", {8, 4});
    for (const char* ln : {"h.0.ln_1", "h.0.ln_2", "ln_f"}) {
        add(std::string(ln) + ".weight", {4});
        add(std::string(ln) + ".bias", {4});
    }
    add("h.0.attn.c_attn.weight", {4, 12});
    add("h.0.attn.c_attn.bias", {12});
    add("h.0.attn.c_proj.weight", {4, 4});
    add("h.0.attn.c_proj.bias", {4});
    add("h.0.mlp.c_fc.weight", {4, 16});
    add("h.0.mlp.c_fc.bias", {16});
    add("h.0.mlp.c_proj.weight", {16, 4});
    add("h.0.mlp.c_proj.bias", {4});
    add("h.0.attn.bias", {1, 1, 8, 8});
    vktrain::io::write_safetensors(dir + "/model.safetensors", t);
    return dir;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::string dir = folder();
    {
        FILE* f = std::fopen((dir + "/config.json").c_str(), "wb");
        if (!f) __builtin_trap();
        if (size) std::fwrite(data, 1, size, f);
        std::fclose(f);
    }
    const std::string out = dir + "/out.safetensors";
    vkt_fuzz::expect_clean([&] {
        vktrain::import_hf(dir, out);
        vktrain::ExportOptions o;
        o.overwrite = true;
        vktrain::export_hf(out, dir + "/export", o);
    });
    return 0;
}
