// Float32 ops that move or sum values along tensor layouts: the strided copy behind
// `contiguous` / `clone`, rotary position embeddings, and sums (and means) over axes. They
// follow the TypeScript kernels' arithmetic: rope and the sums computed in double and rounded
// once, so results agree with them (the sums up to the order of the double additions).
#pragma once

#include <cstdint>

namespace blora {

/** Most dims a strided copy takes (after merging). */
constexpr int kMaxCopyRank = 8;

/**
 * dst (dense, row-major) = the elements src[sum of i_d * strides[d]] for i_d < sizes[d], d <
 * rank (rank <= kMaxCopyRank; strides in elements, any sign or 0).
 */
void copy_strided_f32(int threads, const float* src, int rank, const int64_t* sizes, const int64_t* strides, float* dst);

/** A [B, H, T, Dh] operand: element (b, h, t, i) at data[b * sb + h * sh + t * st + i]. */
struct RopeInput {
  const float* data;
  int64_t sb, sh, st;
};

/**
 * out (dense [B, H, T, Dh]) = x rotated in the "rotate half" layout by the angles of cos, sin
 * ([T, Dh / 2], dense): for i < Dh / 2, out[i] = x[i] c - x[i + Dh/2] s and out[i + Dh/2] =
 * x[i + Dh/2] c + x[i] s, with s negated when `inverse`. Computed in double, rounded once.
 */
void rope_f32(int threads, const RopeInput& x, int64_t batch, int64_t heads, int64_t t, int64_t dh, const float* cos,
              const float* sin, bool inverse, float* out);

/**
 * out[o * inner + j] = (the sum over r < reduced of x[(o * reduced + r) * inner + j]) / divisor,
 * for o < outer, j < inner (x dense; divisor 1 for a sum, the count for a mean). Sums in
 * double in the order of r, then one division and one rounding, like the TypeScript kernel;
 * the thread count does not change any result.
 */
void sum_f32(int threads, const float* x, int64_t outer, int64_t reduced, int64_t inner, double divisor, float* out);

}  // namespace blora
