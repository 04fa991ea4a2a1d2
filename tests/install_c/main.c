/* A C99 program against the installed vktrain::vktrain_c: builds a classifier op by op with vkt_model_op, trains it
 * on a separable toy task, asks predict for the size it needs, and checks every status (tests/install_example.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vktrain/vktrain.h>

static int warnings = 0;

static void on_log(void* user_data, vkt_log_level level, vkt_log_source source, const char* message) {
    (void)user_data;
    (void)source;
    if (level >= VKT_LOG_WARNING) ++warnings;
    fprintf(stderr, "log: %s\n", message);
}

#define CHECK(call)                                                                                                    \
    do {                                                                                                               \
        vkt_status s_ = (call);                                                                                        \
        if (s_ != VKT_OK) {                                                                                            \
            fprintf(stderr, "%s failed (%d): %s\n", #call, (int)s_, vkt_last_error());                                 \
            return 1;                                                                                                  \
        }                                                                                                              \
    } while (0)

enum { FEATURES = 4, CLASSES = 2, BATCH = 32 };

static void make_batch(float* x, int32_t* y, unsigned* seed) {
    int i, j;
    for (i = 0; i < BATCH; ++i) {
        float sum = 0.0f;
        for (j = 0; j < FEATURES; ++j) {
            *seed = *seed * 1103515245u + 12345u;
            x[i * FEATURES + j] = (float)((*seed >> 8) % 2001) / 1000.0f - 1.0f;
            sum += x[i * FEATURES + j] * (j % 2 ? -1.0f : 1.0f);
        }
        y[i] = sum > 0.0f;
    }
}

int main(void) {
    vkt_context_options co;
    vkt_context* ctx = NULL;
    vkt_model* m = NULL;
    vkt_trainer* t = NULL;
    vkt_trainer_options to;
    vkt_step_result r;
    vkt_attr attrs[2];
    size_t linear_index = 0, needed = 0, written = 0;
    int32_t x, labels, h, loss_inputs[2];
    int64_t shape[1] = {FEATURES};
    float xs[BATCH * FEATURES], first = -1.0f, *out;
    int32_t ys[BATCH];
    const void* inputs[2];
    unsigned seed = 1;
    int step;

    CHECK(vkt_context_options_default(&co, sizeof co));
    co.log = on_log;
    CHECK(vkt_context_create(&co, &ctx));
    printf("vktrain %s on %s; %u ops\n", vkt_version(), vkt_context_device_name(ctx), (unsigned)vkt_op_count());
    CHECK(vkt_op_find("linear", &linear_index));

    CHECK(vkt_model_create(&m));
    CHECK(vkt_model_input(m, "x", shape, 1, VKT_F32, &x));
    memset(attrs, 0, sizeof attrs);
    attrs[0].name = "out";
    attrs[0].value = 16;
    CHECK(vkt_model_op(m, "linear", &x, 1, attrs, 1, &h));
    CHECK(vkt_model_op(m, "silu", &h, 1, NULL, 0, &h));
    attrs[0].value = CLASSES;
    attrs[1].name = "bias";
    attrs[1].value = 1;
    CHECK(vkt_model_op(m, "linear", &h, 1, attrs, 2, &h));
    CHECK(vkt_model_input(m, "labels", NULL, 0, VKT_I32, &labels));
    loss_inputs[0] = h;
    loss_inputs[1] = labels;
    CHECK(vkt_model_op(m, "cross_entropy", loss_inputs, 2, NULL, 0, NULL));

    CHECK(vkt_trainer_options_default(&to, sizeof to));
    to.precision = VKT_PRECISION_FP32;
    to.batch_size = BATCH;
    to.learning_rate = 0.05f;
    to.lr_schedule = VKT_LR_WARMUP_COSINE;
    to.warmup_steps = 5;
    to.total_steps = 80;
    CHECK(vkt_trainer_create(ctx, m, &to, &t));
    inputs[0] = xs;
    inputs[1] = ys;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    for (step = 0; step < 80; ++step) {
        make_batch(xs, ys, &seed);
        CHECK(vkt_trainer_step(t, inputs, 2, BATCH, &r));
        if (first < 0) first = r.loss;
    }
    printf("loss %.4f -> %.4f\n", first, r.loss);
    if (!(r.loss < 0.6f * first)) {
        fprintf(stderr, "the loss did not fall\n");
        return 1;
    }
    if (vkt_trainer_predict(t, inputs, 2, BATCH, NULL, 0, &needed) != VKT_INVALID_ARGUMENT ||
        needed != BATCH * CLASSES) {
        fprintf(stderr, "predict with capacity 0 must report the size it needs (%u)\n", (unsigned)needed);
        return 1;
    }
    out = malloc(needed * sizeof *out);
    if (!out) return 1;
    CHECK(vkt_trainer_predict(t, inputs, 2, BATCH, out, needed, &written));
    printf("predicted %u values; %d warnings\n", (unsigned)written, warnings);
    free(out);
    vkt_trainer_destroy(t);
    vkt_model_destroy(m);
    vkt_context_destroy(ctx);
    return 0;
}
