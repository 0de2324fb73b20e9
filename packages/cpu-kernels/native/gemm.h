// Float32 matrix multiply driver: C = A @ B for a batch of equally shaped products.
#pragma once

#include <cstdint>

#include "kernels.h"

namespace blora {

/** Sizes and strides shared by every product of a batch (strides in elements, any sign, 0 allowed). */
struct GemmShape {
  int64_t m, n, k;
  int64_t rsa, csa;  // A(i, p) = a[i * rsa + p * csa]
  int64_t rsb, csb;  // B(p, j) = b[p * rsb + j * csb]
};

/** One product: where A and B start, and the dense row-major m x n output C. */
struct GemmOperands {
  const float* a;
  const float* b;
  float* c;
};

/**
 * Computes every product of the batch with up to `threads` threads. Returns false when
 * scratch memory could not be allocated (the outputs are then incomplete).
 */
bool gemm_f32(const KernelTable& kt, int threads, const GemmShape& shape, const GemmOperands* items, int64_t count);

}  // namespace blora
