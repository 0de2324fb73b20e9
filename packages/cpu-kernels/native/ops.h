// Drivers of the elementwise, softmax and pooling kernels: they split large inputs across
// the thread pool and call the inner loops of a kernel table.
#pragma once

#include <cstdint>

#include "kernels.h"

namespace blora {

/** out[i] = x[i * xs] op y[i * ys] for i < n (steps 0 or 1). */
void binary_f32(const KernelTable& kt, int threads, BinaryOp op, const float* x, int64_t xs, const float* y,
                int64_t ys, float* out, int64_t n);

/** dst[i] = sigmoid or silu of src[i] for i < n. */
void activation_f32(const KernelTable& kt, int threads, ActivationOp op, const float* src, float* dst, int64_t n);

/** Softmax (or log-softmax) of `rows` contiguous rows of length n. */
void softmax_f32(const KernelTable& kt, int threads, const float* src, float* dst, int64_t rows, int64_t n, bool log);

/** dst[o] = mean of src[o * k .. o * k + k) for o < outputs. */
void avg_pool_f32(const KernelTable& kt, int threads, const float* src, float* dst, int64_t outputs, int64_t k);

/**
 * Repeats each of the `blocks` runs of `inner` values of src `repeats` times in a row:
 * dst block b * repeats + r = src block b.
 */
void repeat_interleave_f32(int threads, const float* src, float* dst, int64_t blocks, int64_t inner, int64_t repeats);

}  // namespace blora
