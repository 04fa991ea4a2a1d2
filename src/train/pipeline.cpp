#include "train/pipeline.hpp"

#include <chrono>
#include <cmath>

#include "common/check.hpp"
#include "common/half.hpp"
#include "common/parallel.hpp"
#include "train/gradients.hpp"

namespace vktrain::train {

PipelinedStep pipelined_step(Optimizer& optimizer, const std::vector<std::vector<size_t>>& buckets,
                             const std::function<const float*(size_t)>& wait_bucket, const PipelineTensors& tensors,
                             std::vector<float>& master, std::vector<float>& master_next, float multiplier,
                             float learning_rate, const std::vector<uint16_t*>& halves) {
    const std::vector<size_t>& sizes = optimizer.param_sizes();
    const size_t n = sizes.size();
    VKT_CHECK(tensors.master_offsets.size() == n && tensors.grad_offsets.size() == n, "pipelined step: offsets for ",
              tensors.master_offsets.size(), " tensors, the optimizer has ", n);
    VKT_CHECK(master.size() == master_next.size(), "pipelined step: master banks of ", master.size(), " and ",
              master_next.size(), " floats");
    std::vector<bool> seen(n, false);
    for (const auto& b : buckets)
        for (size_t t : b) {
            VKT_CHECK(t < n && !seen[t], "pipelined step: tensor ", t, " is out of range or in two buckets");
            seen[t] = true;
        }
    for (size_t t = 0; t < n; ++t) VKT_CHECK(seen[t], "pipelined step: tensor ", t, " is in no bucket");

    using clock = std::chrono::steady_clock;
    const auto seconds = [](clock::duration d) { return std::chrono::duration<double>(d).count(); };
    PipelinedStep r;
    std::vector<const float*> params(n), grads(n, nullptr);
    std::vector<float*> next(n);
    for (size_t t = 0; t < n; ++t) {
        params[t] = master.data() + tensors.master_offsets[t];
        next[t] = master_next.data() + tensors.master_offsets[t];
    }
    // Chunk by chunk as global_sum_squares sums, so that the norm is the same bit for bit.
    const std::vector<TensorChunk> chunks = tensor_chunks(sizes);
    std::vector<std::vector<size_t>> chunks_of(n);
    for (size_t i = 0; i < chunks.size(); ++i) chunks_of[chunks[i].tensor].push_back(i);
    std::vector<double> sums(chunks.size(), 0.0);

    optimizer.begin_staged(multiplier, 1.0f, learning_rate);
    std::vector<size_t> staged;
    bool finite = true;
    for (size_t b = 0; b < buckets.size(); ++b) {
        const float* g = wait_bucket(b);
        const auto start = clock::now();
        std::vector<size_t> which;
        for (size_t t : buckets[b]) {
            grads[t] = g + tensors.grad_offsets[t];
            which.insert(which.end(), chunks_of[t].begin(), chunks_of[t].end());
        }
        chunk_sum_squares(grads, chunks, which, multiplier, sums);
        double bucket_sum = 0.0;
        for (size_t i : which) bucket_sum += sums[i];
        // After an overflow the step is dropped: later buckets are only summed (the norm reports inf either way).
        finite = finite && std::isfinite(bucket_sum);
        if (finite) {
            optimizer.stage(buckets[b], params, next, grads, halves);
            staged.insert(staged.end(), buckets[b].begin(), buckets[b].end());
        }
        const double spent = seconds(clock::now() - start);
        r.host_seconds += spent;
        if (b + 1 < buckets.size()) r.overlapped_seconds += spent;
    }
    const auto start = clock::now();
    for (double s : sums) r.sum_squares += s;
    r.committed = std::isfinite(r.sum_squares);
    if (r.committed) {
        optimizer.commit();
        master.swap(master_next);
    } else {
        optimizer.discard();
        // The fp16 copies of the tensors staged before the overflow was seen hold the dropped step's weights.
        if (!halves.empty())
            for (size_t t : staged) floats_to_halves(params[t], halves[t], sizes[t]);
    }
    r.host_seconds += seconds(clock::now() - start);
    return r;
}

} // namespace vktrain::train
