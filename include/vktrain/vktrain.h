/* vktrain's C API: the C ABI for applications and bindings that cannot use the C++ API (Python through ctypes,
 * Kotlin/Java through JNI, Swift). Opaque handles; every call returns a vkt_status and, on failure, leaves a
 * one-line message for vkt_last_error() (per thread). Nothing here aborts or exits.
 *
 *   vkt_context* ctx;   vkt_context_create(NULL, &ctx);
 *   vkt_model* m;       vkt_model_create(&m);
 *   int64_t shape[1] = {784};
 *   int x, labels, h;   vkt_model_input(m, "x", shape, 1, VKT_F32, &x);
 *   vkt_model_linear(m, x, 128, 1, &h);  vkt_model_unary(m, "relu", h, &h);  vkt_model_linear(m, h, 10, 1, &h);
 *   vkt_model_input(m, "labels", NULL, 0, VKT_I32, &labels);  vkt_model_cross_entropy(m, h, labels, NULL);
 *   vkt_trainer_options o;  vkt_trainer_options_default(&o);
 *   vkt_trainer* t;     vkt_trainer_create(ctx, m, &o, &t);
 *   const void* in[2] = {images, labels_i32};  vkt_step_result r;  vkt_trainer_step(t, in, 2, 128, &r);
 *
 * Link libvktrain_c.so (or the static libvktrain.a, which contains these functions too).
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
    VKT_ERROR = 1,            /* a failure reported by vktrain (file, device, shape, ...): see vkt_last_error() */
    VKT_INVALID_ARGUMENT = 2, /* a null handle or pointer, or an out-of-range value */
    VKT_OUT_OF_MEMORY = 3
} vkt_status;

typedef enum vkt_dtype { VKT_F32 = 0, VKT_I32 = 1 } vkt_dtype;
typedef enum vkt_precision { VKT_PRECISION_MIXED = 0, VKT_PRECISION_FP32 = 1 } vkt_precision;
typedef enum vkt_optimizer { VKT_ADAMW = 0, VKT_SGD = 1 } vkt_optimizer;

typedef struct vkt_context vkt_context;
typedef struct vkt_model vkt_model;
typedef struct vkt_trainer vkt_trainer;

/* The message of this thread's last failed call ("" when none); valid until the thread's next failing call. */
VKT_API const char* vkt_last_error(void);
/* Frees strings returned by this API (vkt_model_to_json). */
VKT_API void vkt_free(void* p);
VKT_API const char* vkt_version(void);

/* Context: one Vulkan device. device_index < 0 picks the default device; name may be NULL. */
typedef struct vkt_context_options {
    int32_t device_index;
    const char* device_name; /* a substring of the device name, or NULL */
    int32_t validation;      /* 1: Khronos validation layer */
    int32_t allow_coopmat;   /* 0 forbids VK_KHR_cooperative_matrix */
} vkt_context_options;
VKT_API void vkt_context_options_default(vkt_context_options* options);
VKT_API vkt_status vkt_context_create(const vkt_context_options* options /* NULL: defaults */, vkt_context** out);
VKT_API void vkt_context_destroy(vkt_context* context);
VKT_API const char* vkt_context_device_name(const vkt_context* context); /* NULL for a null handle */

/* Models (see vktrain/model.hpp for each op). Each builder writes the new value's id to *out (may be NULL). */
VKT_API vkt_status vkt_model_create(vkt_model** out);
VKT_API void vkt_model_destroy(vkt_model* model);
VKT_API vkt_status vkt_model_input(vkt_model* m, const char* name, const int64_t* shape, size_t rank, vkt_dtype type,
                                   int32_t* out);
VKT_API vkt_status vkt_model_linear(vkt_model* m, int32_t x, uint32_t out_features, int32_t bias, int32_t* out);
/* op: "relu", "gelu", "gelu_tanh", "silu", "softmax", "flatten" */
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
VKT_API vkt_status vkt_model_set_trainable(vkt_model* m, const char* name_or_prefix, int32_t trainable);
/* The architecture as JSON (free with vkt_free) and back; vkt_load_model reads it from a weights file. */
VKT_API vkt_status vkt_model_to_json(const vkt_model* m, char** out);
VKT_API vkt_status vkt_model_from_json(const char* json, vkt_model** out);
VKT_API vkt_status vkt_load_model(const char* weights_path, vkt_model** out);
VKT_API vkt_status vkt_model_parameter_count(const vkt_model* m, uint64_t* out);

/* Trainers. */
typedef struct vkt_trainer_options {
    vkt_precision precision;
    uint32_t batch_size;
    vkt_optimizer optimizer;
    float learning_rate;
    float weight_decay;
    float momentum;      /* sgd */
    float max_grad_norm; /* > 0: clip the global gradient norm */
    uint64_t seed;
    int32_t inference_only;
} vkt_trainer_options;
typedef struct vkt_step_result {
    float loss;
    float loss_scale;
    int32_t skipped;
    float grad_norm;
    float learning_rate;
} vkt_step_result;
VKT_API void vkt_trainer_options_default(vkt_trainer_options* options);
/* The trainer copies the model; the context must outlive nothing (the trainer keeps the device alive). */
VKT_API vkt_status vkt_trainer_create(vkt_context* context, const vkt_model* model, const vkt_trainer_options* options,
                                      vkt_trainer** out);
VKT_API void vkt_trainer_destroy(vkt_trainer* trainer);
/* inputs[i]: `count` samples of model input i (declaration order), fp32 or int32 as declared. */
VKT_API vkt_status vkt_trainer_step(vkt_trainer* t, const void* const* inputs, size_t input_count, uint32_t count,
                                    vkt_step_result* out);
VKT_API vkt_status vkt_trainer_evaluate(vkt_trainer* t, const void* const* inputs, size_t input_count, uint64_t count,
                                        double* loss);
/* Writes count × (prediction size per sample) floats; fails with VKT_INVALID_ARGUMENT, before reading any input,
 * when capacity (in floats) is too small or a size computed from count does not fit in size_t. */
VKT_API vkt_status vkt_trainer_predict(vkt_trainer* t, const void* const* inputs, size_t input_count, uint64_t count,
                                       float* out, size_t capacity, size_t* written);
VKT_API vkt_status vkt_trainer_set_learning_rate(vkt_trainer* t, float learning_rate);
VKT_API vkt_status vkt_trainer_steps(const vkt_trainer* t, uint64_t* steps, uint64_t* skipped);
VKT_API vkt_status vkt_trainer_save(const vkt_trainer* t, const char* path);
VKT_API vkt_status vkt_trainer_load(vkt_trainer* t, const char* path);
VKT_API vkt_status vkt_trainer_save_checkpoint(const vkt_trainer* t, const char* path);
VKT_API vkt_status vkt_trainer_load_checkpoint(vkt_trainer* t, const char* path);

#ifdef __cplusplus
}
#endif

#endif
