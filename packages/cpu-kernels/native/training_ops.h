// Row-wise training ops on float32: RMS normalisation (forward and backward), cross-entropy
// (forward and backward) and the AdamW update. They follow the reference kernels' arithmetic:
// sums and per-row statistics in double, one rounding to float32 per stored value.
#pragma once

#include <cstdint>

#include "kernels.h"

namespace blora {

/**
 * y = x * rstd * (offset + w) per row of d values, rstd = 1 / sqrt(mean(x^2) + eps). Rows of x
 * are ldx apart; y is dense; rstd holds one value per row.
 */
void rms_norm_f32(int threads, const float* x, int64_t ldx, const float* w, double offset, double eps, int64_t rows,
                  int64_t d, float* y, float* rstd);

/**
 * dx and dw of rms_norm_f32 from dy (rows lddy apart) and the saved rstd; dx is dense, dw has d
 * values (summed over rows in a fixed order, so the result does not depend on the threads).
 * Returns false when scratch memory could not be allocated.
 */
bool rms_norm_backward_f32(int threads, const float* dy, int64_t lddy, const float* x, int64_t ldx, const float* w,
                           double offset, const float* rstd, int64_t rows, int64_t d, float* dx, float* dw);

/**
 * lse[r] = log-sum-exp of logits row r (rows ld apart, v values each; -inf for a row of -inf)
 * and *total = the sum over rows whose target is not `ignore` of lse - logit[target]. Targets
 * must lie in [0, v) or equal `ignore`. Returns false when scratch memory could not be allocated.
 */
bool cross_entropy_f32(const KernelTable& kt, int threads, const float* logits, int64_t ld, const int32_t* targets,
                       int64_t rows, int64_t v, int64_t ignore, float* lse, double* total);

/**
 * dlogits = scale * (softmax(logits) - onehot(target)) per row, zero for ignored rows; dlogits is dense.
 */
void cross_entropy_backward_f32(const KernelTable& kt, int threads, const float* logits, int64_t ld,
                                const int32_t* targets, const float* lse, int64_t rows, int64_t v, int64_t ignore,
                                double scale, float* dlogits);

/** The bias-corrected decay and step constants of one AdamW update. */
struct AdamwConstants {
  double beta1, beta2, eps;
  double decay;              // 1 - lr * weightDecay
  double step_size;          // lr / (1 - beta1^step)
  double sqrt_correction2;   // sqrt(1 - beta2^step)
};

/**
 * In place, for i < n: m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g^2 (each stored
 * to float32 before use), p = p decay - step_size m / (sqrt(v) / sqrt_correction2 + eps).
 */
void adamw_f32(int threads, float* p, const float* g, float* m, float* v, int64_t n, const AdamwConstants& c);

}  // namespace blora
