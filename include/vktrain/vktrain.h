/* vktrain's C API: the C ABI for applications and bindings that cannot use the C++ API (Python through ctypes,
 * Kotlin/Java through JNI, Swift). It covers what the C++ API does (docs/c-api.md lists the correspondence). Opaque
 * handles; nothing here aborts or exits.
 *
 *   vkt_context* ctx;   vkt_context_create(NULL, &ctx);
 *   vkt_model* m;       vkt_model_create(&m);
 *   int64_t shape[1] = {784};
 *   int32_t x, labels, h;  vkt_model_input(m, "x", shape, 1, VKT_F32, &x);
 *   vkt_attr out = {"out", 128};
 *   vkt_model_op(m, "linear", &x, 1, &out, 1, &h);  vkt_model_op(m, "relu", &h, 1, NULL, 0, &h);
 *   out.value = 10;  vkt_model_op(m, "linear", &h, 1, &out, 1, &h);
 *   vkt_model_input(m, "labels", NULL, 0, VKT_I32, &labels);
 *   int32_t loss_in[2] = {h, labels};  vkt_model_op(m, "cross_entropy", loss_in, 2, NULL, 0, NULL);
 *   vkt_trainer_options o;  vkt_trainer_options_default(&o, sizeof o);
 *   vkt_trainer* t;     vkt_trainer_create(ctx, m, &o, &t);
 *   const void* in[2] = {images, labels_i32};  vkt_step_result r = {sizeof r};  vkt_trainer_step(t, in, 2, 128, &r);
 *
 * Link libvktrain_c.so (CMake: vktrain::vktrain_c) or the static libvktrain.a (vktrain::vktrain), which contains
 * these functions too.
 *
 * STATUS CODES. Every function that can fail returns a vkt_status, by one rule:
 *   VKT_OK                success: every output was written.
 *   VKT_INVALID_ARGUMENT  the call breaks what this header says about its arguments, and nothing was done: a null
 *                         handle, or a null pointer where one is required; an enum value outside its list; a
 *                         struct_size smaller than the struct's first version; an array whose length disagrees with
 *                         the model (input_count is not the model's number of inputs); a count whose sizes do not
 *                         fit in size_t; an output buffer too small — then the size it needs is written to the
 *                         call's size output (written, rank, ...) when that pointer is not null, so a call with
 *                         capacity 0 is the way to ask for it.
 *   VKT_ERROR             vktrain refused the request on its merits or the work failed: an unknown op, attribute,
 *                         value, input or parameter name; a value out of range; shapes that do not fit; a file or
 *                         device failure.
 *   VKT_OUT_OF_MEMORY     an allocation failed.
 * After a failure vkt_last_error() gives this thread's one-line message naming what is at fault. Functions that cannot
 * fail (destroy, free, vkt_last_error, vkt_version) return nothing or a string.
 *
 * VERSIONED STRUCTS. Every struct passed by pointer begins with `uint32_t struct_size`, so a field added later does
 * not break a binding built against an earlier header. Option structs (inputs) are filled by their *_default(&s,
 * sizeof s) function, which writes the defaults of the fields within that size and sets struct_size; the library
 * reads the fields of the newest version struct_size covers (the padding after a version's last field is not read)
 * and takes the defaults for the rest. Result structs (outputs) have their
 * struct_size set by the caller (vkt_step_result r = {sizeof r};) and the library writes only the fields it covers.
 * A struct_size below the struct's first version (the *_SIZE_V1 constants) is VKT_INVALID_ARGUMENT. vkt_attr, an
 * array element, is the one exception: its layout is fixed.
 *
 * STRINGS. char** outputs are allocated and freed with vkt_free. const char* outputs point into the object they
 * describe (valid until it is destroyed or, for models, next changed) or, for the op listing, into static storage.
 *
 * THREADS. A trainer is used from one thread at a time, as in C++; a context may be shared. The log callback may be
 * called from any thread that uses the context or a trainer made on it.
 */
#ifndef VKTRAIN_VKTRAIN_H
#define VKTRAIN_VKTRAIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define VKT_API __declspec(dllexport)
#else
#define VKT_API __attribute__((visibility("default")))
#endif

typedef enum vkt_status {
    VKT_OK = 0,
    VKT_ERROR = 1,            /* refused on its merits, or the work failed: see vkt_last_error() */
    VKT_INVALID_ARGUMENT = 2, /* the call breaks this header's contract (see STATUS CODES above) */
    VKT_OUT_OF_MEMORY = 3
} vkt_status;

typedef enum vkt_dtype { VKT_F32 = 0, VKT_I32 = 1 } vkt_dtype;
typedef enum vkt_precision { VKT_PRECISION_MIXED = 0, VKT_PRECISION_FP32 = 1 } vkt_precision;
typedef enum vkt_optimizer { VKT_ADAMW = 0, VKT_SGD = 1 } vkt_optimizer;
typedef enum vkt_gemm_path {
    VKT_GEMM_AUTO = 0, /* measured per shape on first use, the fastest kept (cached per device and driver) */
    VKT_GEMM_COOPMAT = 1,
    VKT_GEMM_TILED_FP16 = 2,
    VKT_GEMM_FP32 = 3
} vkt_gemm_path;
typedef enum vkt_update_location {
    VKT_UPDATE_AUTOMATIC = 0,
    VKT_UPDATE_HOST = 1,
    VKT_UPDATE_DEVICE = 2
} vkt_update_location;

/* Activation recomputation (TrainerOptions::recompute): BLOCKS keeps only each block's input (a transformer layer's)
   from the forward pass and recomputes the rest in the backward pass, bit-identically; less memory, more time. */
typedef enum vkt_recompute { VKT_RECOMPUTE_NONE = 0, VKT_RECOMPUTE_BLOCKS = 1 } vkt_recompute;
typedef enum vkt_lr_schedule { VKT_LR_CONSTANT = 0, VKT_LR_WARMUP_COSINE = 1 } vkt_lr_schedule;
typedef enum vkt_init_kind {
    VKT_INIT_DEFAULT = 0, /* the op's PyTorch default */
    VKT_INIT_ZEROS = 1,
    VKT_INIT_ONES = 2,
    VKT_INIT_CONSTANT = 3, /* a */
    VKT_INIT_NORMAL = 4,   /* mean a, std b */
    VKT_INIT_UNIFORM = 5   /* [a, b) */
} vkt_init_kind;
typedef enum vkt_log_level {
    VKT_LOG_DEBUG = 0,
    VKT_LOG_INFO = 1,
    VKT_LOG_WARNING = 2,
    VKT_LOG_ERROR = 3
} vkt_log_level;
typedef enum vkt_log_source { VKT_LOG_LIBRARY = 0, VKT_LOG_VALIDATION = 1 } vkt_log_source;
typedef enum vkt_attr_kind {
    VKT_ATTR_INTEGER = 0,
    VKT_ATTR_REAL = 1,
    VKT_ATTR_FLAG = 2,
    VKT_ATTR_SHAPE = 3
} vkt_attr_kind;

typedef struct vkt_context vkt_context;
typedef struct vkt_device_list vkt_device_list;
typedef struct vkt_model vkt_model;
typedef struct vkt_trainer vkt_trainer;
typedef struct vkt_metadata vkt_metadata;
typedef struct vkt_weights vkt_weights;

/* The message of this thread's last failed call ("" when none); valid until the thread's next failing call. */
VKT_API const char* vkt_last_error(void);
/* Frees what this API returned through a char** (JSON, descriptions). */
VKT_API void vkt_free(void* p);
VKT_API const char* vkt_version(void);

/* ---- Contexts: one Vulkan device ---- */

/* A diagnostic (warnings and errors by default; validation-layer messages always). Called on the thread that ran
 * into it; message is valid during the call. */
typedef void (*vkt_log_callback)(void* user_data, vkt_log_level level, vkt_log_source source, const char* message);

typedef struct vkt_context_options {
    uint32_t struct_size;
    int32_t device_index;    /* < 0: the default device */
    const char* device_name; /* a substring of the device name, or NULL */
    int32_t validation;      /* 1: Khronos validation layer (its messages go to the log) */
    int32_t allow_coopmat;   /* 0 forbids VK_KHR_cooperative_matrix */
    /* ---- end of version 1 ---- */
    int32_t allow_fp16;           /* 0 forces every path to fp32 */
    int32_t allow_unified_memory; /* 0 keeps staging copies even on unified memory */
    int32_t tune_gemm_tiles;      /* 0 runs the device's default GEMM tiles, untimed */
    const char* cache_dir;        /* NULL or "": $VKTRAIN_CACHE_DIR, $XDG_CACHE_HOME/vktrain or ~/.cache/vktrain;
                                     "none": no caching */
    vkt_log_callback log;         /* NULL: to stderr */
    void* log_user_data;
    vkt_log_level log_level; /* the least severe level reported (default VKT_LOG_WARNING) */
} vkt_context_options;
#define VKT_CONTEXT_OPTIONS_SIZE_V1 (offsetof(vkt_context_options, allow_coopmat) + sizeof(int32_t))

typedef struct vkt_device_info {
    uint32_t struct_size;
    uint32_t index;
    char name[256];
    char type[16]; /* discrete, integrated, virtual, cpu, other */
    char driver_name[256];
    char driver_info[256];
    char api_version[32]; /* "1.4.305" */
    uint32_t vendor_id, device_id, driver_version;
    int32_t shader_float16, storage_buffer_16bit;
    uint32_t subgroup_size, min_subgroup_size, max_subgroup_size;
    int32_t subgroup_size_control;
    uint32_t max_shared_memory, max_workgroup_invocations;
    int32_t timestamps;
    int32_t coopmat_extension, coopmat_feature; /* VK_KHR_cooperative_matrix listed; its feature bit set */
    uint32_t coopmat_shape_count;
    uint64_t device_memory_bytes; /* the largest device-local heap */
    int32_t unified_memory;
} vkt_device_info;
#define VKT_DEVICE_INFO_SIZE_V1 sizeof(vkt_device_info)

/* One entry of the device's cooperative-matrix property list. */
typedef struct vkt_coopmat_shape {
    uint32_t struct_size;
    uint32_t m, n, k;
    char a_type[8], b_type[8], c_type[8], result_type[8]; /* "f16", "f32", "s8", ... */
    char scope[16];                                       /* "subgroup", "workgroup", ... */
    int32_t saturating;
} vkt_coopmat_shape;
#define VKT_COOPMAT_SHAPE_SIZE_V1 sizeof(vkt_coopmat_shape)

/* What a context may use (requested and supported) and the device memory vktrain holds. */
typedef struct vkt_context_capabilities {
    uint32_t struct_size;
    int32_t coopmat, fp16, unified_memory;
    uint64_t allocated_bytes, peak_allocated_bytes;
} vkt_context_capabilities;
#define VKT_CONTEXT_CAPABILITIES_SIZE_V1 sizeof(vkt_context_capabilities)

VKT_API vkt_status vkt_context_options_default(vkt_context_options* options, size_t struct_size);
VKT_API vkt_status vkt_context_create(const vkt_context_options* options /* NULL: defaults */, vkt_context** out);
VKT_API void vkt_context_destroy(vkt_context* context);
VKT_API const char* vkt_context_device_name(const vkt_context* context); /* NULL for a null handle */
VKT_API vkt_status vkt_context_device_info(const vkt_context* context, vkt_device_info* out);
VKT_API vkt_status vkt_context_coopmat_shape(const vkt_context* context, uint32_t index, vkt_coopmat_shape* out);
VKT_API vkt_status vkt_context_capabilities_get(const vkt_context* context, vkt_context_capabilities* out);

/* Every device the Vulkan loader reports (no device is created); options as for a context (validation, ...). */
VKT_API vkt_status vkt_list_devices(const vkt_context_options* options /* NULL: defaults */, vkt_device_list** out);
VKT_API vkt_status vkt_device_list_count(const vkt_device_list* list, size_t* count);
VKT_API vkt_status vkt_device_list_get(const vkt_device_list* list, size_t index, vkt_device_info* out);
VKT_API vkt_status vkt_device_list_coopmat_shape(const vkt_device_list* list, size_t device, uint32_t index,
                                                 vkt_coopmat_shape* out);
VKT_API void vkt_device_list_destroy(vkt_device_list* list);

/* ---- The op registry: every op vkt_model_op builds, with its inputs and attributes (for generated bindings) ---- */

typedef struct vkt_op_info {
    uint32_t struct_size;
    const char* name;       /* static storage, like every string of the listing */
    const char* doc;        /* one line */
    const char* category;   /* "dense", "vision", "activation", "elementwise", "shape", "norm", "attention", "loss",
                               "embedding" */
    size_t input_count;     /* names: vkt_op_input_name */
    size_t attr_count;      /* vkt_op_attr */
    int32_t loss;           /* a model's one loss (its last node) */
    int32_t inference_only; /* no backward: models using it only run forward */
} vkt_op_info;
#define VKT_OP_INFO_SIZE_V1 sizeof(vkt_op_info)

typedef struct vkt_op_attr_info {
    uint32_t struct_size;
    const char* name;
    vkt_attr_kind kind;
    double min, max; /* the accepted range (integer and real; flags are 0 or 1) */
    int32_t min_open, max_open;
    int32_t required;    /* no default: vkt_model_op needs it */
    int32_t optional;    /* may be left out (doc says what that means) */
    int32_t has_default; /* default_value applies when the attribute is not given */
    double default_value;
    const char* default_from; /* non-NULL: when not given, the value of this (earlier) attribute */
    const char* doc;
} vkt_op_attr_info;
#define VKT_OP_ATTR_INFO_SIZE_V1 sizeof(vkt_op_attr_info)

VKT_API size_t vkt_op_count(void);
VKT_API vkt_status vkt_op_get(size_t index, vkt_op_info* out);
VKT_API vkt_status vkt_op_find(const char* name, size_t* index); /* VKT_ERROR for an unknown op */
VKT_API vkt_status vkt_op_input_name(size_t op, size_t input, const char** name);
VKT_API vkt_status vkt_op_attr(size_t op, size_t attr, vkt_op_attr_info* out);
/* The whole listing as one JSON array of {"name", "doc", "category", "inputs", "attrs": [{"name", "kind", "min",
 * "max", "min_open", "max_open", "required", "optional", "default", "default_from", "doc"}], "loss",
 * "inference_only"} (free with vkt_free). */
VKT_API vkt_status vkt_ops_json(char** out);

/* ---- Models ---- */

/* An attribute for vkt_model_op: a number (integer, real and flag attributes) or, when shape is not NULL, a shape
 * of rank dimensions (reshape's "shape"). A fixed layout: not versioned. */
typedef struct vkt_attr {
    const char* name;
    double value;
    const int64_t* shape;
    size_t rank;
} vkt_attr;

VKT_API vkt_status vkt_model_create(vkt_model** out);
VKT_API void vkt_model_destroy(vkt_model* model);
/* shape: rank dimensions per sample (the batch dimension is implicit). */
VKT_API vkt_status vkt_model_input(vkt_model* m, const char* name, const int64_t* shape, size_t rank, vkt_dtype type,
                                   int32_t* out);
/* Any op of the registry (vkt_op_*): inputs are value ids in the op's input order; an attribute not given takes its
 * default. Writes the new value's id to *out (may be NULL). Unknown ops and attributes, values out of range and
 * shapes that do not fit are VKT_ERROR with a message naming them. */
VKT_API vkt_status vkt_model_op(vkt_model* m, const char* op, const int32_t* inputs, size_t input_count,
                                const vkt_attr* attrs, size_t attr_count, int32_t* out);
/* Gives a node another name (its parameters become "<name>.weight", ...); before any set_trainable/weight decay/init.
 */
VKT_API vkt_status vkt_model_rename(vkt_model* m, int32_t node, const char* name);
/* Parameter groups, by pattern: an exact name, a prefix ending in '.' ("conv0." = every parameter of conv0), or '*'
 * for any characters ("*.bias"); a pattern no parameter matches is VKT_ERROR. They shape the trainers made from this
 * model afterwards (a trainer copies its model): vkt_trainer_set_trainable changes a running one. */
VKT_API vkt_status vkt_model_set_trainable(vkt_model* m, const char* name_or_prefix, int32_t trainable);
VKT_API vkt_status vkt_model_set_weight_decay(vkt_model* m, const char* name_or_prefix, float weight_decay);
VKT_API vkt_status vkt_model_set_init(vkt_model* m, const char* name_or_prefix, vkt_init_kind kind, float a, float b);
/* Per-group learning rates (Model::set_learning_rate_scale): the optimizer's rate, after the schedule, times `scale`
 * (> 0 and finite, else VKT_ERROR) for the parameters the pattern matches; default 1. */
VKT_API vkt_status vkt_model_set_learning_rate_scale(vkt_model* m, const char* name_or_prefix, float scale);
/* BatchNorm with frozen running statistics in training (Model::freeze_batch_norm; PyTorch's bn.eval() inside
 * model.train()): the batch_norm2d nodes whose names `pattern` matches (an exact node name, a prefix ending in '.', or
 * '*' for any characters; "*" is every one) normalise with the running statistics, leave them unchanged and
 * back-propagate with them as constants (frozen 1), or train as usual again (frozen 0). Saved in the model file. A
 * pattern matching no batch_norm2d node is VKT_ERROR. */
VKT_API vkt_status vkt_model_freeze_batch_norm(vkt_model* m, const char* pattern, int32_t frozen);
/* LoRA (Model::add_lora, PEFT's LoraConfig with bias "none") on every linear layer whose node name `pattern` matches:
 * y = base(x) + (alpha / r)·B·A·dropout(x), parameters "<module>.lora_A.weight" [r, in] (Kaiming-uniform) and
 * "<module>.lora_B.weight" [out, r] (zeros); every other parameter is frozen. VKT_ERROR for r == 0, alpha not
 * positive, dropout outside [0, 1), a pattern matching no linear layer or a layer with LoRA already. */
VKT_API vkt_status vkt_model_add_lora(vkt_model* m, const char* pattern, uint32_t r, float alpha, float dropout);
/* PEFT adapter folders (vktrain/lora.hpp): LoRA on the model as DIRECTORY/adapter_config.json says (its
 * target_modules, r, lora_alpha, lora_dropout); a trainer's adapters read from and written to such a folder
 * (adapter_model.safetensors with base_model.model.<module>.lora_A.weight [r, in] and lora_B.weight [out, r]).
 * base_model_name_or_path may be NULL. */
VKT_API vkt_status vkt_model_add_lora_adapter(vkt_model* m, const char* directory);
VKT_API vkt_status vkt_trainer_load_lora_adapter(vkt_trainer* t, const char* directory);
VKT_API vkt_status vkt_trainer_save_lora_adapter(const vkt_trainer* t, const char* directory,
                                                 const char* base_model_name_or_path);

/* Typed shorthands for a few ops, kept from the first version of this header: each is vkt_model_op. */
VKT_API vkt_status vkt_model_linear(vkt_model* m, int32_t x, uint32_t out_features, int32_t bias, int32_t* out);
/* op: "relu", "gelu", "gelu_tanh", "silu", "softmax", "flatten" (others: VKT_INVALID_ARGUMENT; use vkt_model_op) */
VKT_API vkt_status vkt_model_unary(vkt_model* m, const char* op, int32_t x, int32_t* out);
VKT_API vkt_status vkt_model_add(vkt_model* m, int32_t a, int32_t b, int32_t* out);
VKT_API vkt_status vkt_model_conv2d(vkt_model* m, int32_t x, uint32_t out_channels, uint32_t kernel, uint32_t stride,
                                    uint32_t padding, int32_t* out);
VKT_API vkt_status vkt_model_max_pool2d(vkt_model* m, int32_t x, uint32_t kernel, int32_t* out);
VKT_API vkt_status vkt_model_layer_norm(vkt_model* m, int32_t x, float eps, int32_t* out);
VKT_API vkt_status vkt_model_embedding(vkt_model* m, int32_t ids, uint32_t num_embeddings, uint32_t dim, int32_t* out);
VKT_API vkt_status vkt_model_self_attention(vkt_model* m, int32_t qkv, uint32_t heads, int32_t causal, int32_t* out);
VKT_API vkt_status vkt_model_cross_entropy(vkt_model* m, int32_t logits, int32_t labels, int32_t* out);
VKT_API vkt_status vkt_model_mse_loss(vkt_model* m, int32_t pred, int32_t target, int32_t* out);

/* The recipes of the C++ API (Model::mlp, cnn, gpt, gpt_decoder). */
typedef enum vkt_mlp_activation { VKT_MLP_RELU = 0, VKT_MLP_GELU = 1 /* tanh approximation */ } vkt_mlp_activation;
VKT_API vkt_status vkt_model_mlp(uint32_t input_features, const uint32_t* hidden, size_t hidden_count, uint32_t classes,
                                 vkt_mlp_activation activation, vkt_model** out);
VKT_API vkt_status vkt_model_cnn(uint32_t classes, vkt_model** out);
typedef enum vkt_gpt_activation {
    VKT_GPT_GELU = 0,     /* exact (Hugging Face "gelu") */
    VKT_GPT_GELU_TANH = 1 /* the tanh form (GPT-2's "gelu_new") */
} vkt_gpt_activation;
typedef struct vkt_gpt_options {
    uint32_t struct_size;
    uint32_t vocab; /* required */
    uint32_t layers, heads, width, context;
    uint32_t mlp; /* 0: 4 · width */
    int32_t tied;
    float eps; /* LayerNorm */
    /* ---- end of version 1 ---- */
    vkt_gpt_activation activation; /* the MLP's GELU (default VKT_GPT_GELU) */
    uint32_t sequence;             /* tokens per sample, at most context (0: context) */
} vkt_gpt_options;
#define VKT_GPT_OPTIONS_SIZE_V1 (offsetof(vkt_gpt_options, eps) + sizeof(float))
VKT_API vkt_status vkt_gpt_options_default(vkt_gpt_options* options, size_t struct_size);
VKT_API vkt_status vkt_model_gpt(const vkt_gpt_options* options, vkt_model** out);
VKT_API vkt_status vkt_model_gpt_decoder(const vkt_gpt_options* options, vkt_model** out);
/* The options of a GPT (gpt_options): m must be exactly the graph vkt_model_gpt or vkt_model_gpt_decoder builds from
 * them (e.g. the architecture a weights file records: vkt_load_model), else VKT_ERROR naming the first node that
 * differs. out is a result struct here: its struct_size set by the caller (vkt_gpt_options_default sets it). */
VKT_API vkt_status vkt_model_gpt_options(const vkt_model* m, vkt_gpt_options* out);
/* Model::llama (Hugging Face's LlamaForCausalLM, its parameter names; vktrain/model.hpp LlamaOptions) and its options
 * back from a model of that shape (e.g. the architecture `vktrain import` recorded for a Llama folder). */
typedef struct vkt_llama_options {
    uint32_t struct_size;
    uint32_t vocab; /* required (vocab_size) */
    uint32_t layers, heads;
    uint32_t kv_heads;     /* num_key_value_heads, dividing heads (0: heads) */
    uint32_t width;        /* hidden_size */
    uint32_t intermediate; /* 0: 4 · width */
    uint32_t context;      /* max_position_embeddings */
    int32_t tied;
    float eps; /* rms_norm_eps */
    float rope_theta;
    uint32_t sequence; /* tokens per sample, at most context (0: context) */
} vkt_llama_options;
#define VKT_LLAMA_OPTIONS_SIZE_V1 (offsetof(vkt_llama_options, sequence) + sizeof(uint32_t))
VKT_API vkt_status vkt_llama_options_default(vkt_llama_options* options, size_t struct_size);
VKT_API vkt_status vkt_model_llama(const vkt_llama_options* options, vkt_model** out);
VKT_API vkt_status vkt_model_llama_options(const vkt_model* m, vkt_llama_options* out);

/* The architecture as JSON (docs/model-format.md; free with vkt_free) and back; vkt_load_model reads it from a
 * weights file that vkt_trainer_save wrote. */
VKT_API vkt_status vkt_model_to_json(const vkt_model* m, char** out);
VKT_API vkt_status vkt_model_from_json(const char* json, vkt_model** out);
VKT_API vkt_status vkt_load_model(const char* weights_path, vkt_model** out);
VKT_API vkt_status vkt_model_describe(const vkt_model* m, char** out); /* "784-256(relu)-10", ... */

/* Hugging Face folders in and out (vktrain/import.hpp): import_hf writes the weights file `output` from the folder
 * `source` (config.json + model.safetensors or its shards; model_type gpt2 or llama), recording `precision` (mixed
 * refuses weights outside fp16's range); export_hf writes the weights file as the folder `directory` (config.json +
 * model.safetensors in Hugging Face's layout), replacing files there only when overwrite is non-zero. */
VKT_API vkt_status vkt_import_hf(const char* source, const char* output, vkt_precision precision);
VKT_API vkt_status vkt_export_hf(const char* weights, const char* directory, int32_t overwrite);

/* torchvision state_dicts in and out (vktrain/import.hpp, docs/torchvision.md): import_torchvision writes the weights
 * file `output` from the safetensors file `source` holding a torchvision model's state_dict(); export_torchvision
 * writes a weights file of a torchvision architecture back as one (F32, num_batches_tracked I64), replacing `output`
 * only when overwrite is non-zero. */
typedef struct vkt_torchvision_options {
    uint32_t struct_size;
    const char* arch;       /* "resnet18" ... "resnet152", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large" */
    uint32_t classes;       /* 0: the file's classifier; N > 0: a new one of N outputs (nn.Linear's init from seed) */
    uint32_t height, width; /* the input size the weights file records (default 224 x 224) */
    vkt_precision precision; /* mixed (default) refuses weights outside fp16's range */
    uint64_t seed;
} vkt_torchvision_options;
#define VKT_TORCHVISION_OPTIONS_SIZE_V1 sizeof(vkt_torchvision_options)
VKT_API vkt_status vkt_torchvision_options_default(vkt_torchvision_options* options, size_t struct_size);
VKT_API vkt_status vkt_import_torchvision(const char* source, const char* output,
                                          const vkt_torchvision_options* options);
VKT_API vkt_status vkt_export_torchvision(const char* weights, const char* output, int32_t overwrite);

/* Inspection. Value ids are node indexes: node i produces value i. */
typedef struct vkt_node_info {
    uint32_t struct_size;
    const char* op;     /* "input", "linear", ... (valid until the model next changes) */
    const char* name;   /* "linear0" */
    size_t input_count; /* vkt_model_node_input */
    size_t rank;        /* of the per-sample output shape: vkt_model_value_shape */
    vkt_dtype type;
} vkt_node_info;
#define VKT_NODE_INFO_SIZE_V1 sizeof(vkt_node_info)
VKT_API vkt_status vkt_model_node_count(const vkt_model* m, size_t* count);
VKT_API vkt_status vkt_model_node(const vkt_model* m, int32_t node, vkt_node_info* out);
VKT_API vkt_status vkt_model_node_input(const vkt_model* m, int32_t node, size_t input, int32_t* value);
/* A value's per-sample shape (the batch dimension not counted): rank dimensions into dims (capacity entries). */
VKT_API vkt_status vkt_model_value_shape(const vkt_model* m, int32_t value, int64_t* dims, size_t capacity,
                                         size_t* rank);
/* The model's inputs (value ids, declaration order): the order vkt_trainer_step's inputs follow. */
VKT_API vkt_status vkt_model_inputs(const vkt_model* m, int32_t* values, size_t capacity, size_t* count);
VKT_API vkt_status vkt_model_loss(const vkt_model* m, int32_t* value); /* -1: no loss */
/* The default output, what vkt_trainer_predict returns, and its per-sample shape: the loss's prediction operand (the
 * logits), or in a model without a loss its only output (VKT_ERROR when it has none or several). */
VKT_API vkt_status vkt_model_output(const vkt_model* m, int32_t* value);
VKT_API vkt_status vkt_model_output_shape(const vkt_model* m, int64_t* dims, size_t capacity, size_t* rank);

/* Named outputs (Model::output(value, name)): values that vkt_trainer_predict_output reads back by name. Several may
 * be marked, the loss's operands included; a name follows the node-name rule and is unique among outputs; an output
 * is a real (f32) value, not the loss. A model without a loss runs only in an inference_only trainer, and predicts
 * its outputs. Recorded by vkt_model_to_json, so a weights file keeps them. */
VKT_API vkt_status vkt_model_mark_output(vkt_model* m, int32_t value, const char* name);
VKT_API vkt_status vkt_model_output_count(const vkt_model* m, size_t* count); /* the named outputs */
/* The index-th named output, in the order they were marked; name is owned by the model (valid until it next
 * changes). */
VKT_API vkt_status vkt_model_output_entry(const vkt_model* m, size_t index, const char** name, int32_t* value);
/* The value of the output named `name` (NULL or "": the default output); VKT_ERROR naming the outputs there are. */
VKT_API vkt_status vkt_model_find_output(const vkt_model* m, const char* name, int32_t* value);

/* Parameters and buffers (trainable and frozen parameters, then buffers, in declaration order). */
typedef struct vkt_parameter_info {
    uint32_t struct_size;
    const char* name; /* "linear0.weight" (valid until the model next changes) */
    size_t rank;
    int64_t shape[8];
    uint64_t elements;
    int32_t trainable, buffer;
    float weight_decay; /* < 0: the optimizer's */
    vkt_init_kind init;
    float init_a, init_b;
    /* ---- end of version 1 ---- */
    int32_t persistent; /* 0: run-time state never saved (a decoder's key/value caches), zero-filled by a load */
    int32_t counter;    /* a buffer counting training forward passes (BatchNorm's num_batches_tracked) */
    float lr_scale;     /* multiplies the optimizer's learning rate (vkt_model_set_learning_rate_scale) */
} vkt_parameter_info;
#define VKT_PARAMETER_INFO_SIZE_V1 (offsetof(vkt_parameter_info, init_b) + sizeof(float))
VKT_API vkt_status vkt_model_parameter_count(const vkt_model* m, uint64_t* out); /* elements, buffers excluded */
VKT_API vkt_status vkt_model_parameter_tensors(const vkt_model* m, size_t* count);
VKT_API vkt_status vkt_model_parameter(const vkt_model* m, size_t index, vkt_parameter_info* out);

/* ---- Trainers ---- */

typedef struct vkt_trainer_options {
    uint32_t struct_size;
    vkt_precision precision;
    uint32_t batch_size;
    vkt_optimizer optimizer;
    float learning_rate;
    float weight_decay;
    float momentum;      /* sgd */
    float max_grad_norm; /* > 0: clip the global gradient norm */
    uint64_t seed;
    int32_t inference_only;
    /* ---- end of version 1 ---- */
    int32_t nesterov;   /* sgd */
    float beta1, beta2; /* adamw */
    float epsilon;      /* adamw */
    /* dynamic loss scaling (mixed precision), torch.amp.GradScaler's defaults */
    int32_t loss_scaling; /* 0: off */
    float init_scale, growth_factor, backoff_factor;
    int32_t growth_interval;
    vkt_gemm_path gemm_path;
    /* the learning-rate schedule (TrainerOptions::lr_schedule) */
    vkt_lr_schedule lr_schedule;
    uint64_t warmup_steps, total_steps;
    float min_learning_rate;
    uint32_t update_buckets; /* 0: automatic, 1: off */
    vkt_update_location update_location;
    /* ---- end of version 2 ---- */
    vkt_recompute recompute; /* VKT_RECOMPUTE_NONE (default) or VKT_RECOMPUTE_BLOCKS */
} vkt_trainer_options;
#define VKT_TRAINER_OPTIONS_SIZE_V1 (offsetof(vkt_trainer_options, inference_only) + sizeof(int32_t))
#define VKT_TRAINER_OPTIONS_SIZE_V2 (offsetof(vkt_trainer_options, update_location) + sizeof(vkt_update_location))

typedef struct vkt_step_result {
    uint32_t struct_size;
    float loss;
    float loss_scale;
    int32_t skipped; /* 1: a gradient was inf/NaN; no update, scale backed off */
    float grad_norm;
    float learning_rate;
    float host_ms, overlapped_ms; /* host work of the update, and the part overlapped with the device */
} vkt_step_result;
#define VKT_STEP_RESULT_SIZE_V1 sizeof(vkt_step_result)

/* The trainer's state and what its options resolved to. Strings are owned by the trainer. */
typedef struct vkt_trainer_info {
    uint32_t struct_size;
    float loss_scale;
    float learning_rate; /* of the last step (or the next one before any step) */
    uint64_t steps, skipped_steps;
    uint32_t update_buckets;
    vkt_update_location update_location; /* host or device */
    const char* update_location_reason;
    const char* gemm_path_summary; /* "coopmat", "tiled-fp16", "fp32" or "mixed" */
    uint64_t device_bytes;
    uint64_t arena_bytes, train_plan_bytes, eval_plan_bytes, unplanned_bytes;
    uint32_t in_place;
    uint64_t weight_uploads, weight_upload_bytes;
} vkt_trainer_info;
#define VKT_TRAINER_INFO_SIZE_V1 sizeof(vkt_trainer_info)

VKT_API vkt_status vkt_trainer_options_default(vkt_trainer_options* options, size_t struct_size);
/* The trainer copies the model and keeps the device alive, so the context may be destroyed first. */
VKT_API vkt_status vkt_trainer_create(vkt_context* context, const vkt_model* model, const vkt_trainer_options* options,
                                      vkt_trainer** out);
VKT_API void vkt_trainer_destroy(vkt_trainer* trainer);
VKT_API vkt_status vkt_trainer_get_options(const vkt_trainer* t, vkt_trainer_options* out);
VKT_API vkt_status vkt_trainer_model(const vkt_trainer* t, vkt_model** out); /* a copy of its model */
VKT_API vkt_status vkt_trainer_info_get(vkt_trainer* t, vkt_trainer_info* out);
/* Every GEMM site's path, tiles and why, as a JSON array (free with vkt_free). */
VKT_API vkt_status vkt_trainer_gemm_paths_json(const vkt_trainer* t, char** out);

/* inputs[i]: `count` samples of model input i (declaration order: vkt_model_inputs), fp32 or int32 as declared;
 * input_count must be the model's number of inputs. */
VKT_API vkt_status vkt_trainer_step(vkt_trainer* t, const void* const* inputs, size_t input_count, uint32_t count,
                                    vkt_step_result* out /* may be NULL */);
/* One step over micro_batch_count micro-batches (gradient accumulation): micro-batch j has counts[j] samples in
 * inputs[j][0 .. input_count). */
VKT_API vkt_status vkt_trainer_step_micro_batches(vkt_trainer* t, const void* const* const* inputs, size_t input_count,
                                                  const uint32_t* counts, size_t micro_batch_count,
                                                  vkt_step_result* out);
VKT_API vkt_status vkt_trainer_evaluate(vkt_trainer* t, const void* const* inputs, size_t input_count, uint64_t count,
                                        double* loss);
/* Writes count × (output values per sample: vkt_model_output_shape) floats of the default output. When capacity (in
 * floats) is too small, nothing is read or run: VKT_INVALID_ARGUMENT, and the number of floats needed goes to
 * *written. Inputs the output does not depend on (labels) may be NULL. */
VKT_API vkt_status vkt_trainer_predict(vkt_trainer* t, const void* const* inputs, size_t input_count, uint64_t count,
                                       float* out, size_t capacity, size_t* written);
/* The same for the output named `output` (vkt_model_mark_output; NULL or "": the default output): count ×
 * (vkt_trainer_output_shape's product) floats. An unknown name is VKT_ERROR naming the outputs there are. */
VKT_API vkt_status vkt_trainer_predict_output(vkt_trainer* t, const char* output, const void* const* inputs,
                                              size_t input_count, uint64_t count, float* out, size_t capacity,
                                              size_t* written);
/* An output's per-sample shape (NULL or "": the default output), e.g. to size the buffers above. */
VKT_API vkt_status vkt_trainer_output_shape(const vkt_trainer* t, const char* output, int64_t* dims, size_t capacity,
                                            size_t* rank);
/* What vkt_trainer_predict_all writes, in order (Trainer::predict_all): the named outputs in the order they were
 * marked, preceded by the default output (name "") when the model has a loss whose prediction operand is not one of
 * them. name is owned by the trainer. */
VKT_API vkt_status vkt_trainer_output_count(const vkt_trainer* t, size_t* count);
VKT_API vkt_status vkt_trainer_output_name(const vkt_trainer* t, size_t index, const char** name);
/* Every output of one forward pass, one after the other in that order, each count × its per-sample values (capacity
 * and written in floats over all of them, as for predict). */
VKT_API vkt_status vkt_trainer_predict_all(vkt_trainer* t, const void* const* inputs, size_t input_count,
                                           uint64_t count, float* out, size_t capacity, size_t* written);
/* Loss and fp32 gradients (unscaled) without updating anything: every trainable parameter's gradient, in parameter
 * order, one after the other (capacity and written in floats, as for predict). */
VKT_API vkt_status vkt_trainer_compute_gradients(vkt_trainer* t, const void* const* inputs, size_t input_count,
                                                 uint32_t count, float* loss, float* out, size_t capacity,
                                                 size_t* written);
/* Times every op of one training step (no update); the profile as JSON {"ops": [{"name", "microseconds"}],
 * "total_microseconds", "gpu_timestamps", "dispatches"} (free with vkt_free); "dispatches": the compute dispatches
 * one training step records (StepProfile::dispatches). */
VKT_API vkt_status vkt_trainer_profile_step(vkt_trainer* t, const void* const* inputs, size_t input_count,
                                            uint32_t count, char** out);

/* The peak rate (the schedule scales it) from the next step on; finite and >= 0. */
VKT_API vkt_status vkt_trainer_set_learning_rate(vkt_trainer* t, float learning_rate);
VKT_API vkt_status vkt_trainer_steps(const vkt_trainer* t, uint64_t* steps, uint64_t* skipped);

/* A parameter or buffer by name ("linear0.weight"), without copying the others: its fp32 values (capacity and
 * written in floats, as for predict), and replacing them (count must be its element count; the values finite; the
 * optimizer state is kept). An unknown name is VKT_ERROR. */
VKT_API vkt_status vkt_trainer_parameter(vkt_trainer* t, const char* name, float* out, size_t capacity,
                                         size_t* written);
VKT_API vkt_status vkt_trainer_set_parameter(vkt_trainer* t, const char* name, const float* values, size_t count);

/* Freezes (0) or unfreezes (1) the parameters `pattern` matches (vkt_model_set_trainable's patterns) at any time
 * between steps: tensors that stay trainable keep their optimizer state, newly trainable ones start fresh, frozen ones
 * lose theirs. VKT_ERROR, changing nothing, for a pattern no parameter matches, a change that would leave nothing
 * trainable, or an inference_only trainer. */
VKT_API vkt_status vkt_trainer_set_trainable(vkt_trainer* t, const char* pattern, int32_t trainable);

/* The optimizer's fp32 state by parameter name ("exp_avg.linear0.weight", "momentum_buffer.conv0.bias", ...;
 * Trainer::optimizer_state), for inspection: the names as a JSON array (free with vkt_free), and one tensor by name
 * (capacity and written in floats). */
VKT_API vkt_status vkt_trainer_optimizer_state_names(const vkt_trainer* t, char** out);
VKT_API vkt_status vkt_trainer_optimizer_state(const vkt_trainer* t, const char* name, float* out, size_t capacity,
                                               size_t* written);

/* Weights (safetensors, the architecture in the metadata) and full checkpoints; keys/values: extra metadata
 * entries (count of them; keys must not be vktrain's own, "vktrain_..."). */
VKT_API vkt_status vkt_trainer_save(const vkt_trainer* t, const char* path);
VKT_API vkt_status vkt_trainer_save_with_metadata(const vkt_trainer* t, const char* path, const char* const* keys,
                                                  const char* const* values, size_t count);
VKT_API vkt_status vkt_trainer_load(vkt_trainer* t, const char* path);
VKT_API vkt_status vkt_trainer_save_checkpoint(const vkt_trainer* t, const char* path);
VKT_API vkt_status vkt_trainer_save_checkpoint_with_metadata(const vkt_trainer* t, const char* path,
                                                             const char* const* keys, const char* const* values,
                                                             size_t count);
VKT_API vkt_status vkt_trainer_load_checkpoint(vkt_trainer* t, const char* path);
/* The same, handing back the checkpoint's extra entries (destroy with vkt_metadata_destroy). */
VKT_API vkt_status vkt_trainer_load_checkpoint_with_metadata(vkt_trainer* t, const char* path, vkt_metadata** out);
/* The same, also saying what became of the optimizer state (OptimizerStateLoad), which matters when the checkpoint
 * trained other parameters than this trainer does (vkt_trainer_set_trainable between saving and loading): JSON
 * {"restored": [names], "fresh": [names trainable here only: zero state], "dropped": [names frozen here]} (free with
 * vkt_free). extra and optimizer_state_load may each be NULL. */
VKT_API vkt_status vkt_trainer_load_checkpoint_report(vkt_trainer* t, const char* path, vkt_metadata** extra,
                                                      char** optimizer_state_load);

/* ---- Weights files read without copying (read_weights): a safetensors file (vktrain's, Hugging Face's, a converted
 * torchvision checkpoint) mapped read-only, each tensor a view of its bytes, nothing converted until asked ---- */

/* The file's element types, by its names: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL. */
typedef enum vkt_element_type {
    VKT_ELEMENT_F64 = 0,
    VKT_ELEMENT_F32 = 1,
    VKT_ELEMENT_F16 = 2,
    VKT_ELEMENT_BF16 = 3,
    VKT_ELEMENT_I64 = 4,
    VKT_ELEMENT_I32 = 5,
    VKT_ELEMENT_I16 = 6,
    VKT_ELEMENT_I8 = 7,
    VKT_ELEMENT_U8 = 8,
    VKT_ELEMENT_BOOL = 9
} vkt_element_type;

typedef struct vkt_tensor_info {
    uint32_t struct_size;
    const char* name; /* owned by the weights handle */
    vkt_element_type type;
    const char* type_name; /* the file's name for it: "F32", "BF16", ... (static) */
    size_t rank;           /* 0: a scalar holding one element; the dimensions: vkt_weights_tensor_shape */
    uint64_t elements;
    uint64_t bytes; /* elements × the type's size */
    /* The bytes (little-endian, row-major) inside the mapping, valid until vkt_weights_destroy; not necessarily
     * aligned for the type (read them through vkt_weights_tensor_f32 or memcpy). */
    const void* data;
} vkt_tensor_info;
#define VKT_TENSOR_INFO_SIZE_V1 sizeof(vkt_tensor_info)

/* Opens and checks a safetensors file (header, every tensor's dtype, shape and data offsets, duplicate names):
 * VKT_ERROR "<path>: <problem>". The file must not be truncated while it is open (replacing it through a rename, as
 * vkt_trainer_save does, is safe). */
VKT_API vkt_status vkt_weights_open(const char* path, vkt_weights** out);
VKT_API void vkt_weights_destroy(vkt_weights* w);
/* 1: memory-mapped; 0: read into memory (a file that cannot be mapped, e.g. a pipe). */
VKT_API vkt_status vkt_weights_mapped(const vkt_weights* w, int32_t* mapped);
VKT_API vkt_status vkt_weights_tensor_count(const vkt_weights* w, size_t* count); /* tensors in the header's order */
VKT_API vkt_status vkt_weights_tensor(const vkt_weights* w, size_t index, vkt_tensor_info* out);
VKT_API vkt_status vkt_weights_tensor_shape(const vkt_weights* w, size_t index, int64_t* dims, size_t capacity,
                                            size_t* rank);
/* The index of the tensor named `name`: VKT_ERROR when the file has none. */
VKT_API vkt_status vkt_weights_find(const vkt_weights* w, const char* name, size_t* index);
/* A tensor's values as fp32 (floating types exactly, f64 rounded to nearest; integers to the nearest float; booleans
 * 0 or 1): all of them (capacity and written in floats, as for predict), or elements [first, first + count) for
 * converting a large tensor in pieces (a range outside the tensor is VKT_INVALID_ARGUMENT). */
VKT_API vkt_status vkt_weights_tensor_f32(const vkt_weights* w, size_t index, float* out, size_t capacity,
                                          size_t* written);
VKT_API vkt_status vkt_weights_tensor_f32_range(const vkt_weights* w, size_t index, uint64_t first, uint64_t count,
                                                float* out);
/* The file's "__metadata__" entries, in file order, as a vkt_metadata (destroy with vkt_metadata_destroy). */
VKT_API vkt_status vkt_weights_metadata(const vkt_weights* w, vkt_metadata** out);
/* The architecture vktrain recorded in the file (as vkt_load_model, without reading the file again). */
VKT_API vkt_status vkt_weights_model(const vkt_weights* w, vkt_model** out);

/* ---- Metadata of a weights file or checkpoint (every "__metadata__" entry, in file order) ---- */
/* A file's metadata (read_weights(path).metadata(): mapped, the tensors not read). */
VKT_API vkt_status vkt_read_metadata(const char* path, vkt_metadata** out);
VKT_API vkt_status vkt_metadata_count(const vkt_metadata* md, size_t* count);
/* key and value are owned by md. */
VKT_API vkt_status vkt_metadata_entry(const vkt_metadata* md, size_t index, const char** key, const char** value);
/* VKT_ERROR when there is no such key. */
VKT_API vkt_status vkt_metadata_get(const vkt_metadata* md, const char* key, const char** value);
VKT_API void vkt_metadata_destroy(vkt_metadata* md);

#ifdef __cplusplus
}
#endif

#endif
