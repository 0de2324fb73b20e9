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

/**
 * Produces packed slivers of a right operand that is not a plain strided matrix (for example a
 * quantized weight decoded on the fly), so it never has to exist in full.
 */
struct BPanelSource {
  /**
   * Packs slivers [s0, s1) of nr columns of the block B(pc .. pc + kc, jc .. jc + nc) into the
   * panel `dst`: dst[s * nr * kc + p * nr + j] = B(pc + p, jc + s * nr + j), zero for columns at
   * or past nc. Called from several threads at once, with disjoint slivers.
   */
  void (*pack)(const void* self, const KernelTable& kt, int nr, float* dst, int64_t pc, int64_t kc, int64_t jc,
               int64_t nc, int64_t s0, int64_t s1);
  const void* self;
};

/**
 * C = A @ B for one m x n x k product whose B comes from `b`; A(i, p) = a[i * rsa + p * csa] and
 * C is dense row-major. Returns false when scratch memory could not be allocated.
 */
bool gemm_f32_source(const KernelTable& kt, int threads, int64_t m, int64_t n, int64_t k, const float* a, int64_t rsa,
                     int64_t csa, const BPanelSource& b, float* c);

}  // namespace blora
